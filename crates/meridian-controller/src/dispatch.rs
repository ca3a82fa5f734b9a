//! Which commands of a plan may be sent now: the plan's timing turned into an order of
//! events, so that execution that runs faster or slower than scheduled never overlaps steps
//! the planner kept apart.
//!
//! The planner booked every step's heat for `[start, end)`. Executing in wall time, copies
//! finish earlier or later than scheduled, so the controller keeps the *order* instead: a step
//! starts only when
//! 1. every step listed before it has started (steps start in plan order), and
//! 2. every step listed before it whose scheduled end is at or before this step's scheduled
//!    start has finished (it may be counting on what they free: a drop's space, a copy's
//!    bandwidth, a make-before-break predecessor).
//!
//! 3. every step it depends on (`after`: make-before-break, the new leader's home) is done.
//!
//! So the set of steps running together is always a subset of a set the planner scheduled
//! together, and the capacity it checked holds whatever the real durations are. One exception,
//! safe by construction: a step that only starts new replicas (nothing to copy) frees nothing
//! and holds no transient heat, so later steps do not wait for it to finish — otherwise a new
//! group's hundreds of starts, all scheduled at one instant, would run one at a time. Within a
//! step, commands run one after the other (a hand-off's demotion before its promotion).

use crate::records::{CommandStatus, PlanRecord};

/// A command to send: `(step index, command index)` in the plan's lists.
pub type CommandRef = (usize, usize);

/// Commands that become ready now. The caller marks them sent.
pub fn ready(plan: &PlanRecord) -> Vec<CommandRef> {
    let mut out = Vec::new();
    // Earliest scheduled end among earlier steps not finished yet.
    let mut unfinished_end_min = f64::INFINITY;
    for (index, step) in plan.steps.iter().enumerate() {
        if step.is_done() {
            continue;
        }
        if step.failure().is_some() {
            // A failed step stops the plan; nothing after it starts.
            return out;
        }
        if step.is_started() {
            if let Some(next) = next_in_step(plan, index) {
                out.push((index, next));
            }
            if !step.only_starts() {
                unfinished_end_min = unfinished_end_min.min(step.end_s);
            }
            continue;
        }
        let waits_for_dependency = step
            .after
            .iter()
            .any(|&a| !plan.steps.get(a).is_some_and(|s| s.is_done()));
        if !plan.status.dispatches() || unfinished_end_min <= step.start_s || waits_for_dependency {
            return out;
        }
        out.push((index, 0));
        if !step.only_starts() {
            unfinished_end_min = unfinished_end_min.min(step.end_s);
        }
    }
    out
}

/// The next command of a started step, once the one before it is done.
fn next_in_step(plan: &PlanRecord, step: usize) -> Option<usize> {
    let commands = &plan.steps[step].commands;
    let first_pending = commands
        .iter()
        .position(|c| c.status == CommandStatus::Pending)?;
    let previous_done =
        first_pending == 0 || commands[first_pending - 1].status == CommandStatus::Done;
    previous_done.then_some(first_pending)
}

/// Commands sent and not finished.
pub fn in_flight(plan: &PlanRecord) -> impl Iterator<Item = CommandRef> + '_ {
    plan.steps.iter().enumerate().flat_map(|(s, step)| {
        step.commands
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                matches!(
                    c.status,
                    CommandStatus::Sent { .. } | CommandStatus::Running { .. }
                )
            })
            .map(move |(c, _)| (s, c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{CommandRecord, PlanStatus, StepRecord};
    use meridian_wire::{Action, ReplicaKey};

    fn step(id: u32, start_s: f64, end_s: f64, commands: usize) -> StepRecord {
        StepRecord {
            id,
            description: format!("step {id}"),
            start_s,
            end_s,
            after: Vec::new(),
            commands: (0..commands)
                .map(|_| CommandRecord {
                    handoff: None,
                    node: "n".into(),
                    product: "db".into(),
                    replica: ReplicaKey {
                        group: "g".into(),
                        partition: id,
                    },
                    action: Action::Promote {
                        from: "Follower".into(),
                        to: "Leader".into(),
                        handoff: None,
                    },
                    status: CommandStatus::Pending,
                })
                .collect(),
        }
    }

    fn plan(steps: Vec<StepRecord>) -> PlanRecord {
        PlanRecord {
            id: 1,
            reason: "test".into(),
            status: PlanStatus::Running,
            created_epoch: 1,
            created_unix_ms: 0,
            spec_revision: 1,
            decision_ms: 0,
            makespan_s: 0.0,
            bytes: 0.0,
            blocked: vec![],
            unplaced: vec![],
            steps,
        }
    }

    fn set(plan: &mut PlanRecord, (s, c): CommandRef, status: CommandStatus) {
        plan.steps[s].commands[c].status = status;
    }

    #[test]
    fn overlapping_steps_start_together_and_later_ones_wait_for_what_they_follow() {
        // Two copies scheduled side by side, then a drop scheduled after the first ends.
        let mut p = plan(vec![
            step(0, 0.0, 10.0, 1),
            step(1, 0.0, 20.0, 1),
            step(2, 10.0, 10.0, 1),
        ]);
        assert_eq!(ready(&p), vec![(0, 0), (1, 0)]);
        set(&mut p, (0, 0), CommandStatus::Sent { epoch: 1 });
        set(&mut p, (1, 0), CommandStatus::Sent { epoch: 1 });
        assert_eq!(
            ready(&p),
            vec![],
            "the drop waits for the copy that ends before it"
        );
        set(&mut p, (0, 0), CommandStatus::Done);
        assert_eq!(ready(&p), vec![(2, 0)], "step 1 (ends at 20) may still run");
    }

    #[test]
    fn instantaneous_steps_at_one_instant_run_in_list_order() {
        let mut p = plan(vec![step(0, 5.0, 5.0, 1), step(1, 5.0, 5.0, 1)]);
        assert_eq!(ready(&p), vec![(0, 0)]);
        set(&mut p, (0, 0), CommandStatus::Sent { epoch: 1 });
        assert_eq!(ready(&p), vec![]);
        set(&mut p, (0, 0), CommandStatus::Done);
        assert_eq!(ready(&p), vec![(1, 0)]);
    }

    #[test]
    fn starts_at_one_instant_run_together_but_their_dependents_wait() {
        let mut p = plan(vec![
            step(0, 0.0, 0.0, 1),
            step(1, 0.0, 0.0, 1),
            step(2, 0.0, 0.0, 1),
        ]);
        for s in 0..2 {
            p.steps[s].commands[0].action = Action::Start {
                state: "Follower".into(),
            };
        }
        p.steps[2].after = vec![0];
        assert_eq!(ready(&p), vec![(0, 0), (1, 0)], "step 2 waits for step 0");
        set(&mut p, (0, 0), CommandStatus::Sent { epoch: 1 });
        set(&mut p, (1, 0), CommandStatus::Sent { epoch: 1 });
        assert_eq!(ready(&p), vec![]);
        set(&mut p, (0, 0), CommandStatus::Done);
        assert_eq!(
            ready(&p),
            vec![(2, 0)],
            "step 1, a start, does not hold step 2 back"
        );
    }

    #[test]
    fn a_hand_off_promotes_only_after_the_demotion_is_done() {
        let mut p = plan(vec![step(0, 0.0, 0.0, 2)]);
        assert_eq!(ready(&p), vec![(0, 0)]);
        set(
            &mut p,
            (0, 0),
            CommandStatus::Running {
                bytes_done: 0,
                lag_bytes: None,
            },
        );
        assert_eq!(ready(&p), vec![]);
        set(&mut p, (0, 0), CommandStatus::Done);
        assert_eq!(ready(&p), vec![(0, 1)]);
    }

    #[test]
    fn paused_plans_start_nothing_new_but_finish_started_steps() {
        let mut p = plan(vec![step(0, 0.0, 0.0, 2), step(1, 1.0, 1.0, 1)]);
        set(&mut p, (0, 0), CommandStatus::Done);
        p.status = PlanStatus::Paused;
        assert_eq!(ready(&p), vec![(0, 1)]);
        set(&mut p, (0, 1), CommandStatus::Done);
        assert_eq!(ready(&p), vec![]);
        p.status = PlanStatus::Running;
        assert_eq!(ready(&p), vec![(1, 0)]);
    }

    #[test]
    fn a_failed_step_stops_the_plan() {
        let mut p = plan(vec![
            step(0, 0.0, 1.0, 1),
            step(1, 0.0, 5.0, 1),
            step(2, 2.0, 2.0, 1),
        ]);
        set(
            &mut p,
            (0, 0),
            CommandStatus::Failed {
                error: "disk".into(),
            },
        );
        assert_eq!(ready(&p), vec![]);
        assert_eq!(in_flight(&p).count(), 0);
    }

    proptest::proptest! {
        /// Whatever order commands finish in, no two steps ever run together unless the
        /// planner scheduled them to overlap, and every step eventually runs.
        #[test]
        fn running_steps_always_overlap_in_the_schedule(
            spans in proptest::collection::vec((0u32..50, 0u32..20), 1..30),
            finish_order in proptest::collection::vec(0usize..1000, 0..200),
        ) {
            let mut steps: Vec<StepRecord> = spans
                .iter()
                .enumerate()
                .map(|(i, &(start, len))| step(i as u32, start as f64, (start + len) as f64, 1))
                .collect();
            steps.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
            let mut p = plan(steps);
            let mut picks = finish_order.into_iter();
            for _round in 0..200 {
                for r in ready(&p) {
                    set(&mut p, r, CommandStatus::Sent { epoch: 1 });
                }
                let running: Vec<usize> = in_flight(&p).map(|(s, _)| s).collect();
                for &a in &running {
                    for &b in &running {
                        let (x, y) = (&p.steps[a.min(b)], &p.steps[a.max(b)]);
                        proptest::prop_assert!(a == b || x.end_s > y.start_s,
                            "steps {a} and {b} run together but were scheduled apart");
                    }
                }
                if running.is_empty() {
                    break;
                }
                let pick = running[picks.next().unwrap_or(0) % running.len()];
                set(&mut p, (pick, 0), CommandStatus::Done);
            }
            proptest::prop_assert!(p.steps.iter().all(|s| s.is_done()), "every step ran");
        }
    }
}
