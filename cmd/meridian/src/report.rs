//! Human-readable output.

use meridian_model::Fleet;
use meridian_solver::{Explanation, LevelQuality, Solution};

pub fn solution(fleet: &Fleet, solution: &Solution, quality: &[LevelQuality], out: Option<&str>) {
    let stats = &solution.stats;
    println!(
        "fleet `{}`: {} nodes, {} groups, {} replicas",
        fleet.name,
        fleet.topology.nodes.len(),
        fleet.groups.len(),
        stats.replicas
    );
    println!("placed {} / {}: kept {}, added {}, moved {} ({:.1} GiB), role changes {}, rebalance moves {}, leader hand-offs {}", stats.placed, stats.replicas, stats.kept, stats.added, stats.moved, stats.moved_gib, stats.state_changes, stats.rebalance_moves, stats.leader_swaps);
    for (constraint, count) in &stats.evicted {
        println!("  evicted from current placement by {constraint}: {count}");
    }
    for note in &solution.notes {
        println!("note: {note}");
    }
    println!(
        "peak utilization vs lower bound (worst 8 of {}):",
        quality.len()
    );
    println!(
        "  {:<8} {:<12} {:>8} {:>8} {:>7}",
        "level", "dimension", "peak", "bound", "ratio"
    );
    for row in quality.iter().take(8) {
        println!(
            "  {:<8} {:<12} {:>7.1}% {:>7.1}% {:>7.3}",
            row.level,
            row.dimension,
            row.peak * 100.0,
            row.lower_bound * 100.0,
            row.ratio
        );
    }
    for failure in &solution.failures {
        println!(
            "INFEASIBLE {}/{} ({}): {}",
            failure.group, failure.partition, failure.state, failure.summary
        );
        if let Some(closest) = &failure.closest {
            println!(
                "  closest: {} `{}` {}: needs {:.2}, {:.2} free — short by {:.2}",
                closest.level,
                closest.domain,
                closest.dimension,
                closest.need,
                closest.free,
                closest.short_by
            );
        }
        for relax in &failure.relax {
            println!("  relax: {relax}");
        }
    }
    if let Some(out) = out {
        println!("target placement written to {out}");
    }
}

pub fn explanation(e: &Explanation) {
    println!(
        "{}/{} {} is on `{}` (score {:.4})",
        e.group, e.partition, e.state, e.node, e.total
    );
    println!(
        "  terms: balance {:.4}, gravity {:.4}, cost {:.4}, movement {:.4}, affinity {:.4}",
        e.score.balance, e.score.gravity, e.score.cost, e.score.movement, e.score.affinity
    );
    println!("  tightest limits:");
    for line in &e.binding {
        println!("    {line}");
    }
    println!("  ruled out:");
    for (constraint, (count, example)) in &e.rejected_by {
        println!("    {count} node(s) by {constraint}, e.g. {example}");
    }
    println!(
        "  {} other node(s) satisfy every hard constraint",
        e.feasible_alternatives
    );
    if let Some(runner_up) = &e.runner_up {
        let s = &runner_up.score;
        println!("  runner-up `{}` (score {:.4}: balance {:.4}, gravity {:.4}, cost {:.4}, movement {:.4}, affinity {:.4})", runner_up.node, runner_up.total, s.balance, s.gravity, s.cost, s.movement, s.affinity);
    }
    println!("  why not the runner-up: {}", e.why_not_runner_up);
}
