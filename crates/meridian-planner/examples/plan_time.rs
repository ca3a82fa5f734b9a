//! Times `meridian_planner::plan` alone on a fleet and two placements (as `meridian solve
//! --out` writes them), for profiling the scheduler without the solver or the replay:
//!
//! ```sh
//! cargo run --release -p meridian-planner --example plan_time -- FLEET CURRENT TARGET [RUNS]
//! ```
//!
//! With `PLAN_TIME_PROFILE=1` it also prints the last steps to finish (what held them back)
//! and the cross-region copy traffic per tenth of the makespan. With `PLAN_TIME_DUMP=FILE` it
//! writes the last plan as JSON to FILE, so a change meant to be output-neutral can be checked
//! byte for byte.

use std::time::Instant;

use meridian_model::placement::PlacementDoc;
use meridian_model::{Fleet, Placement};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn placement(fleet: &Fleet, path: &str) -> Result<Placement> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let doc = PlacementDoc::from_json(&text, path)?;
    let resolved = doc.resolve(fleet, path)?;
    let (placement, surplus) = meridian_solver::current::to_slots(fleet, &resolved.replicas);
    if !surplus.is_empty() {
        return Err(format!("{path}: {} surplus replicas", surplus.len()).into());
    }
    Ok(placement)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, fleet, current, target, rest @ ..] = args.as_slice() else {
        return Err("usage: plan_time FLEET CURRENT TARGET [RUNS]".into());
    };
    let runs: usize = match rest.first() {
        Some(r) => r
            .parse()
            .map_err(|_| format!("RUNS `{r}` is not a count"))?,
        None => 1,
    };
    let text = std::fs::read_to_string(fleet).map_err(|e| format!("{fleet}: {e}"))?;
    let fleet = Fleet::from_yaml(&text, fleet)?;
    let current = placement(&fleet, current)?;
    let target = placement(&fleet, target)?;
    for run in 0..runs {
        let start = Instant::now();
        let plan = meridian_planner::plan(
            &fleet,
            &current,
            &target,
            &meridian_planner::Options::default(),
            0.0,
        );
        println!(
            "{} steps, {} blocked, makespan {:.1} h (bound {:.1} h), planned in {:.3} s",
            plan.steps.len(),
            plan.blocked.len(),
            plan.makespan() / 3600.0,
            plan.bound.seconds / 3600.0,
            start.elapsed().as_secs_f64()
        );
        if std::env::var_os("PLAN_TIME_PROFILE").is_some() {
            profile(&plan);
        }
        if let Some(path) = std::env::var("PLAN_TIME_DUMP")
            .ok()
            .filter(|_| run + 1 == runs)
        {
            let json = serde_json::to_string(&plan)?;
            std::fs::write(&path, json).map_err(|e| format!("{path}: {e}"))?;
        }
    }
    Ok(())
}

/// Copies by rate, and the summed rate of cross-region copies per tenth of the makespan.
fn profile(plan: &meridian_planner::Plan) {
    let mut rates: Vec<f64> = Vec::new();
    let tenths = 10usize;
    let mut link = vec![0.0f64; tenths];
    let span = plan.makespan().max(1.0);
    for step in &plan.steps {
        let meridian_planner::Action::Replicate { rate, loads, .. } = &step.action else {
            continue;
        };
        rates.push(*rate);
        if !loads
            .iter()
            .any(|l| matches!(l.resource, meridian_planner::Resource::Link { .. }))
        {
            continue;
        }
        for (i, bucket) in link.iter_mut().enumerate() {
            let (a, b) = (
                plan.start + span * i as f64 / tenths as f64,
                plan.start + span * (i + 1) as f64 / tenths as f64,
            );
            let overlap = (step.end.min(b) - step.start.max(a)).max(0.0);
            *bucket += rate * 8.0 * overlap / (b - a);
        }
    }
    let mut longest: Vec<&meridian_planner::Step> = plan.steps.iter().collect();
    longest.sort_by(|a, b| b.end.total_cmp(&a.end));
    for step in longest.iter().take(8) {
        let what = match &step.action {
            meridian_planner::Action::Replicate {
                source,
                target,
                bytes,
                rate,
                ..
            } => format!(
                "copy {source:?}->{target:?} {:.0} GB at {rate:.1}",
                bytes / 1e9
            ),
            other => format!("{other:?}"),
        };
        println!(
            "  {:.1} h to {:.1} h: g{} p{} {what} {:?}",
            (step.start - plan.start) / 3600.0,
            (step.end - plan.start) / 3600.0,
            step.group.0,
            step.partition,
            step.reason
        );
    }
    rates.sort_by(f64::total_cmp);
    let at = |q: f64| rates[((rates.len() - 1) as f64 * q) as usize];
    println!(
        "copy rate MB/s: p10 {:.0} p50 {:.0} p90 {:.0}; mean cross-region Mb/s per tenth: {:?}",
        at(0.1),
        at(0.5),
        at(0.9),
        link.iter().map(|x| x.round()).collect::<Vec<_>>()
    );
}
