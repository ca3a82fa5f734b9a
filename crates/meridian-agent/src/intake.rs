//! Which commands may run: pure checks, no IO.
//!
//! A command is checked twice. On arrival, against what does not change while it waits
//! (epoch, product, well-formedness); refused there, it is never queued. Again just before
//! it runs, against the epoch and the assignment *at that moment*: a newer epoch may have
//! arrived while it waited, and an earlier transition of the same replica may have failed,
//! so the replica may not be in the state the controller assumed. Refusing is always safe;
//! running on a wrong assumption is not.

use std::collections::BTreeMap;

use meridian_wire::{Action, Command, Epoch, ReplicaKey};

use crate::state::Assigned;

/// The refusal reason for a fenced command. The controller recognizes the `stale epoch`
/// prefix (a deposed leader's command, to be sent again by the current one).
pub fn stale_reason(epoch: Epoch, epoch_seen: Epoch) -> String {
    format!("stale epoch {epoch} < {epoch_seen}")
}

/// Checks a command as it arrives in a response carrying `response_epoch`.
pub fn check_arrival(
    command: &Command,
    epoch_seen: Epoch,
    response_epoch: Epoch,
    products: &[&str],
) -> Result<(), String> {
    if command.epoch < epoch_seen {
        return Err(stale_reason(command.epoch, epoch_seen));
    }
    if command.epoch > response_epoch {
        return Err(format!(
            "command epoch {} is above its response's epoch {response_epoch}",
            command.epoch
        ));
    }
    if command.replica.group.is_empty() {
        return Err("empty group name".into());
    }
    if !products.contains(&command.product.as_str()) {
        return Err(format!(
            "unknown product `{}` (this agent runs: {})",
            command.product,
            products.join(", ")
        ));
    }
    check_action(&command.action)
}

fn check_action(action: &Action) -> Result<(), String> {
    let states: Vec<&str> = match action {
        Action::Start { state } | Action::Replicate { state, .. } => vec![state],
        Action::Promote { from, to, .. } | Action::Demote { from, to } => vec![from, to],
        Action::Stop { from } => vec![from],
    };
    if states.iter().any(|s| s.is_empty()) {
        return Err("empty state name".into());
    }
    if let Action::Replicate { rate_mbps, .. } = action {
        if !rate_mbps.is_finite() || *rate_mbps <= 0.0 {
            return Err(format!("rate_mbps {rate_mbps} is not a rate to copy at"));
        }
    }
    Ok(())
}

/// Checks a command just before it runs, against the replica as this node has it now.
pub fn check_execution(
    command: &Command,
    epoch_seen: Epoch,
    assignment: &BTreeMap<ReplicaKey, Assigned>,
) -> Result<(), String> {
    if command.epoch < epoch_seen {
        return Err(stale_reason(command.epoch, epoch_seen));
    }
    let replica = &command.replica;
    let present = assignment.get(replica);
    if let Some(assigned) = present {
        if assigned.product != command.product {
            return Err(format!(
                "replica {replica} runs product `{}` here, not `{}`",
                assigned.product, command.product
            ));
        }
    }
    match (&command.action, present) {
        (Action::Start { state } | Action::Replicate { state, .. }, Some(assigned)) => {
            // The same state again converges (nothing to do); another would be a second
            // copy of the replica on this node.
            if &assigned.state == state {
                Ok(())
            } else {
                Err(format!(
                    "replica {replica} already runs here as {}",
                    assigned.state
                ))
            }
        }
        (Action::Start { .. } | Action::Replicate { .. }, None) => Ok(()),
        (Action::Promote { .. } | Action::Demote { .. } | Action::Stop { .. }, None) => {
            Err(format!("replica {replica} is not on this node"))
        }
        (Action::Promote { from, to, .. } | Action::Demote { from, to }, Some(assigned)) => {
            if &assigned.state == from || &assigned.state == to {
                Ok(())
            } else {
                Err(format!(
                    "replica {replica} is {} here, not {from}",
                    assigned.state
                ))
            }
        }
        (Action::Stop { from }, Some(assigned)) => {
            if &assigned.state == from {
                Ok(())
            } else {
                Err(format!(
                    "replica {replica} is {} here, not {from}",
                    assigned.state
                ))
            }
        }
    }
}

/// Whether a failure of this command should be rolled back (the replica removed): it was
/// creating a replica the node did not have, so what is left is a partial copy.
pub fn rolls_back_on_failure(
    command: &Command,
    assignment: &BTreeMap<ReplicaKey, Assigned>,
) -> bool {
    matches!(
        command.action,
        Action::Start { .. } | Action::Replicate { .. }
    ) && !assignment.contains_key(&command.replica)
}

/// The assignment once `command` is done.
pub fn apply_done(assignment: &mut BTreeMap<ReplicaKey, Assigned>, command: &Command) {
    let assigned = |state: &str| Assigned {
        product: command.product.clone(),
        state: state.to_string(),
    };
    match &command.action {
        Action::Start { state } | Action::Replicate { state, .. } => {
            assignment.insert(command.replica.clone(), assigned(state));
        }
        Action::Promote { to, .. } | Action::Demote { to, .. } => {
            assignment.insert(command.replica.clone(), assigned(to));
        }
        Action::Stop { .. } => {
            assignment.remove(&command.replica);
        }
    }
}

/// The state a command leaves its replica in (`None` for a stop).
pub fn target_state(action: &Action) -> Option<&str> {
    match action {
        Action::Start { state } | Action::Replicate { state, .. } => Some(state),
        Action::Promote { to, .. } | Action::Demote { to, .. } => Some(to),
        Action::Stop { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use meridian_wire::{Source, TransitionId};

    use super::*;

    fn command(epoch: Epoch, action: Action) -> Command {
        Command {
            id: TransitionId("t".into()),
            epoch,
            replica: ReplicaKey {
                group: "g".into(),
                partition: 0,
            },
            action,
            product: "db".into(),
        }
    }

    fn start(state: &str) -> Action {
        Action::Start {
            state: state.into(),
        }
    }

    fn promote(from: &str, to: &str) -> Action {
        Action::Promote {
            from: from.into(),
            to: to.into(),
            handoff: None,
        }
    }

    fn assignment(state: &str) -> BTreeMap<ReplicaKey, Assigned> {
        let mut map = BTreeMap::new();
        let assigned = Assigned {
            product: "db".into(),
            state: state.into(),
        };
        map.insert(command(1, start(state)).replica, assigned);
        map
    }

    #[test]
    fn arrivals_are_fenced_and_must_name_a_known_product() {
        let products = ["db"];
        assert_eq!(
            check_arrival(&command(5, start("F")), 5, 5, &products),
            Ok(())
        );
        assert_eq!(
            check_arrival(&command(4, start("F")), 5, 5, &products),
            Err("stale epoch 4 < 5".into())
        );
        assert!(check_arrival(&command(6, start("F")), 5, 5, &products).is_err());
        let mut unknown = command(5, start("F"));
        unknown.product = "kafka".into();
        let reason = check_arrival(&unknown, 5, 5, &products).expect_err("unknown");
        assert!(reason.contains("unknown product `kafka`"), "{reason}");
        let copy = Action::Replicate {
            state: "F".into(),
            source: Source {
                node: "n2".into(),
                address: None,
                endpoint: None,
            },
            bytes: 1,
            rate_mbps: f64::NAN,
        };
        assert!(check_arrival(&command(5, copy), 5, 5, &products).is_err());
    }

    #[test]
    fn executions_must_match_the_replica_as_it_is() {
        let none = BTreeMap::new();
        let follower = assignment("Follower");
        assert_eq!(
            check_execution(&command(1, start("Follower")), 1, &none),
            Ok(())
        );
        assert_eq!(
            check_execution(&command(1, start("Follower")), 1, &follower),
            Ok(())
        );
        assert!(check_execution(&command(1, start("Leader")), 1, &follower).is_err());
        let promotion = command(1, promote("Follower", "Leader"));
        assert_eq!(check_execution(&promotion, 1, &follower), Ok(()));
        assert_eq!(
            check_execution(&promotion, 1, &assignment("Leader")),
            Ok(())
        );
        let absent = check_execution(&promotion, 1, &none).expect_err("absent");
        assert!(absent.contains("not on this node"), "{absent}");
        assert!(check_execution(&promotion, 1, &assignment("Learner")).is_err());
        assert_eq!(
            check_execution(&promotion, 2, &follower),
            Err("stale epoch 1 < 2".into()),
            "fenced while queued"
        );
        let stop = command(
            1,
            Action::Stop {
                from: "Leader".into(),
            },
        );
        assert!(
            check_execution(&stop, 1, &follower).is_err(),
            "not the state named"
        );
    }

    #[test]
    fn done_commands_move_the_assignment() {
        let mut map = BTreeMap::new();
        let first = command(1, start("Follower"));
        assert!(rolls_back_on_failure(&first, &map));
        apply_done(&mut map, &first);
        assert!(!rolls_back_on_failure(&first, &map));
        apply_done(&mut map, &command(1, promote("Follower", "Leader")));
        assert_eq!(map, assignment("Leader"));
        apply_done(
            &mut map,
            &command(
                1,
                Action::Stop {
                    from: "Leader".into(),
                },
            ),
        );
        assert!(map.is_empty());
    }
}
