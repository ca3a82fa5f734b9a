//! The simulation report: a comparison table per measure, the domains each strategy
//! saturated, the invariant verdict, and the events — as markdown (plots are referenced by
//! file name), plus the full results as JSON for anyone who wants to plot their own.

use std::fmt::Write;

use crate::measure::Summary;
use crate::simulate::Results;

/// Saturated resources listed per strategy.
const SATURATED_LISTED_MAX: usize = 8;
/// Events listed (a storm can have hundreds).
const EVENTS_LISTED_MAX: usize = 40;

fn hours(s: f64) -> String {
    if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{s:.0} s")
    }
}

fn row(name: &str, s: &Summary) -> String {
    let worst = if s.saturated_resources == 0 {
        "—".to_string()
    } else {
        format!("{:.0}% ({})", 100.0 * s.worst_overshoot, s.worst_resource)
    };
    format!(
        "| {name} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {} | {:.2} | {} | {} | {} | {worst} | {} | {} | {:.0}% | {} |",
        s.latency_p50_ms,
        s.latency_p99_ms,
        s.storage_cost,
        s.transfer_cost,
        s.egress_cost,
        s.copies,
        s.bytes_moved / 1e12,
        hours(s.saturation_s),
        hours(s.saturation_with_copies_s),
        s.saturated_resources,
        hours(s.below_min_s),
        hours(s.leaderless_s),
        100.0 * s.safe_utilization,
        s.invariant_violations,
    )
}

/// The report as markdown; `plots` are `(title, file)` pairs written beside it.
pub fn markdown(results: &Results, command: &str, plots: &[(String, String)]) -> String {
    let mut out = String::new();
    let r = results;
    let _ = writeln!(out, "# Simulation: {}\n", r.scenario);
    let _ = writeln!(
        out,
        "Fleet `{}`: {} nodes, {} replicas. {} simulated in ticks of {}, seed {}. Made by `{command}`; the same command gives the same report, byte for byte.\n",
        r.fleet,
        r.nodes,
        r.replicas,
        hours(r.duration_s),
        hours(r.tick_s),
        r.seed
    );
    out.push_str("| strategy | latency p50 ms | p99 ms | storage $ | copies across regions $ | reads across regions $ | copies | TB moved | saturation (all resources) | of it with copies crossing | resources saturated | worst overshoot | below min replicas | leaderless | safe utilization | invariant violations |\n");
    out.push_str(
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n",
    );
    for o in &r.outcomes {
        let _ = writeln!(out, "{}", row(&o.strategy, &o.summary));
    }
    out.push_str(
        "\n*Saturation* sums, over every domain and link, the time its demand (steady heat plus \
         copies in flight) was above its physical capacity; *with copies crossing* is the part \
         of it during which the strategy's own copies were loading that resource. *Below min \
         replicas* and *leaderless* are partition-seconds. *Safe utilization* is the fleet's \
         mean node utilization at which its worst resource would just have reached capacity, \
         at the run's tightest instant. Latency is access-weighted: round trip to the nearest \
         serving replica plus a service time stretched by queueing on the busiest resource of \
         its node (docs/simulator.md).\n\n",
    );
    for (title, file) in plots {
        let _ = writeln!(out, "![{title}]({file})\n");
    }
    saturated_section(&mut out, r);
    violations_section(&mut out, r);
    events_section(&mut out, r);
    out
}

fn saturated_section(out: &mut String, r: &Results) {
    out.push_str("## Saturated resources\n\n");
    for o in &r.outcomes {
        if o.saturated.is_empty() {
            let _ = writeln!(out, "- **{}**: none\n", o.strategy);
            continue;
        }
        let _ = writeln!(out, "- **{}**: {} resources", o.strategy, o.saturated.len());
        for (name, s) in o.saturated.iter().take(SATURATED_LISTED_MAX) {
            let _ = writeln!(
                out,
                "  - {name}: {} over capacity (worst {:.0}%), {} of it with copies crossing",
                hours(s.seconds),
                100.0 * s.worst,
                hours(s.with_copies_s)
            );
        }
        out.push('\n');
    }
}

fn violations_section(out: &mut String, r: &Results) {
    out.push_str("## Invariants\n\n");
    for o in &r.outcomes {
        let s = &o.summary;
        if s.invariant_violations == 0 {
            let _ = writeln!(out, "- **{}**: every check held at every tick", o.strategy);
        } else {
            let _ = writeln!(
                out,
                "- **{}**: {} violations",
                o.strategy, s.invariant_violations
            );
            for v in &s.violations {
                let _ = writeln!(out, "  - {v}");
            }
        }
    }
    out.push('\n');
}

fn events_section(out: &mut String, r: &Results) {
    if r.events.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Events ({})\n", r.events.len());
    for (start, end, what) in r.events.iter().take(EVENTS_LISTED_MAX) {
        let until = end.map_or(String::new(), |e| format!("–{}", hours(e)));
        let _ = writeln!(out, "- {}{until}: {what}", hours(*start));
    }
    if r.events.len() > EVENTS_LISTED_MAX {
        let _ = writeln!(out, "- … {} more", r.events.len() - EVENTS_LISTED_MAX);
    }
}
