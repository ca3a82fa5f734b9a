//! *reactive*: one generic rebalancer over every group, re-placing on threshold breach as
//! today's rebalancers do. It sees whole-node usage (OS metrics count every replica on a node,
//! whoever owns it) against the node's own capacity, and nothing above the node: a ToR, spine,
//! PDU or region link it fills is invisible to it.

use crate::strategies::rebalancer::{Options, Rebalancer, Scope, Sight};
use crate::strategy::{Decision, Strategy, View};

#[derive(Debug, Clone)]
pub struct Reactive {
    rebalancer: Rebalancer,
}

impl Reactive {
    /// The generic rebalancer with its defaults (see [`Options::default`]).
    pub fn new() -> Reactive {
        Reactive::with_options(Options::default())
    }

    /// A reactive rebalancer with other thresholds or limits. It always manages every group
    /// and sees whole-node load: that is what makes it *reactive* rather than a silo.
    pub fn with_options(options: Options) -> Reactive {
        let options = Options {
            scope: Scope::All,
            sight: Sight::WholeNode,
            ..options
        };
        Reactive {
            rebalancer: Rebalancer::new(options),
        }
    }

    pub fn options(&self) -> &Options {
        self.rebalancer.options()
    }
}

impl Default for Reactive {
    fn default() -> Reactive {
        Reactive::new()
    }
}

impl Strategy for Reactive {
    fn name(&self) -> &str {
        "reactive"
    }

    fn decide(&mut self, view: &View) -> Decision {
        let moves = self.rebalancer.decide(view);
        if moves.is_empty() {
            Decision::Idle
        } else {
            Decision::Moves(moves)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::rebalancer::testing::Fixture;
    use crate::strategy::{Move, MoveAction};

    fn moves(strategy: &mut Reactive, fx: &Fixture) -> Vec<Move> {
        match strategy.decide(&fx.view()) {
            Decision::Moves(moves) => moves,
            _ => Vec::new(),
        }
    }

    /// Six `events` partitions, each with a replica on a1 (900 of its 1000 Mb/s) and the rest
    /// spread so that b3 is the one empty storage node.
    fn a1_hot_on_net() -> Fixture {
        let mut fx = Fixture::new();
        fx.activate("events");
        let leaders = ["b1", "b1", "b2", "b2", "a2", "a3"];
        let seconds = ["a4", "a4", "a4", "b4", "b4", "b4"];
        for p in 0..6u32 {
            fx.place("events", p, leaders[p as usize], "Leader");
            fx.place("events", p, "a1", "Replica");
            fx.place("events", p, seconds[p as usize], "Replica");
        }
        fx
    }

    #[test]
    fn a_hot_node_sheds_its_hottest_replica_to_the_coolest_node_until_under_high_water() {
        let fx = a1_hot_on_net();
        let moves = moves(&mut Reactive::new(), &fx);
        // 900 → 750 Mb/s after one move: under 80%, so one move is enough.
        assert_eq!(moves.len(), 1, "{moves:?}");
        assert_eq!(moves[0].part, fx.part("events", 0), "ties by part id");
        let MoveAction::Copy {
            source,
            target,
            then_drop,
            ..
        } = moves[0].action
        else {
            panic!("expected a copy, got {:?}", moves[0]);
        };
        assert_eq!(fx.name(source), "a1");
        assert_eq!(
            then_drop,
            Some(source),
            "make-before-break off the hot node"
        );
        assert_eq!(fx.name(target), "b3", "the one empty storage node");
    }

    #[test]
    fn per_node_and_per_round_limits_hold() {
        let mut fx = a1_hot_on_net();
        let options = Options {
            high_water: 0.5,
            ..Options::default()
        };
        let free = moves_of(options.clone(), &fx);
        let from_a1 = free.iter().filter(|m| fx.ends(m).0 == "a1").count();
        assert_eq!(from_a1, 2, "two copies per node: {free:?}");
        fx.copying("events", 5, "a1", "b3");
        // a1 would need three moves to get under 500 Mb/s.
        let moves = moves(&mut Reactive::with_options(options.clone()), &fx);
        let from_a1 = moves.iter().filter(|m| fx.ends(m).0 == "a1").count();
        assert_eq!(
            from_a1, 1,
            "one slot of a1's two is taken by the copy in flight"
        );
        assert!(moves.iter().all(|m| m.part != fx.part("events", 5)));
        let mut per_node = std::collections::BTreeMap::new();
        *per_node.entry("a1".to_string()).or_insert(0) += 1;
        *per_node.entry("b3".to_string()).or_insert(0) += 1;
        for m in &moves {
            if let MoveAction::Copy { .. } = m.action {
                let (from, to) = fx.ends(m);
                *per_node.entry(from).or_insert(0) += 1;
                *per_node.entry(to).or_insert(0) += 1;
            }
        }
        assert!(per_node.values().all(|&n| n <= 2), "{per_node:?}");
        let capped = Options {
            moves_per_round: 1,
            ..options
        };
        assert_eq!(moves_of(capped, &fx).len(), 1);
    }

    fn moves_of(options: Options, fx: &Fixture) -> Vec<Move> {
        moves(&mut Reactive::with_options(options), fx)
    }

    #[test]
    fn a_hot_leader_is_handed_off_before_anything_is_copied() {
        let mut fx = Fixture::new();
        fx.activate("events");
        let (first, second) = (
            ["b1", "b2", "a2", "b3", "a4"],
            ["a3", "b4", "b3", "a2", "b2"],
        );
        for p in 0..5u32 {
            fx.place("events", p, "a1", "Leader");
            fx.place("events", p, first[p as usize], "Replica");
            fx.place("events", p, second[p as usize], "Replica");
        }
        fx.place("events", 5, "b1", "Leader");
        fx.place("events", 5, "a2", "Replica");
        fx.place("events", 5, "a3", "Replica");
        let moves = moves(&mut Reactive::new(), &fx);
        // a1 carries 1000 Mb/s; each hand-off takes 50 off, and 800 is not above 80%.
        assert_eq!(moves.len(), 4, "{moves:?}");
        assert!(moves
            .iter()
            .all(|m| matches!(m.action, MoveAction::HandOff { .. }) && fx.ends(m).0 == "a1"));
    }

    #[test]
    fn the_same_view_gives_the_same_moves() {
        let mut fx = a1_hot_on_net();
        fx.activate("ledger");
        fx.place("ledger", 0, "a1", "Leader");
        fx.place("ledger", 0, "a2", "Follower");
        fx.kill("b4");
        let options = Options {
            high_water: 0.5,
            ..Options::default()
        };
        let first = moves_of(options.clone(), &fx);
        let second = moves_of(options, &fx);
        assert!(!first.is_empty());
        assert_eq!(first, second);
    }
}
