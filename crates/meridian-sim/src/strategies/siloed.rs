//! *siloed*: one independent rebalancer per product, as fleets run today — Cruise Control for
//! the streams, a Helix-like controller for the databases, a scheduler for AI inference. Each
//! manages only its product's groups and sees only its own replicas' load on a node (it cannot
//! see the others' tasks), and none sees anything above the node. They run one after the other
//! within a decision on the same view, without coordination: none sees the moves the others
//! chose in the same round, so two can pick the same node, or the same uplink, at once.

use meridian_model::{Fleet, ProductId};

use crate::strategies::rebalancer::{Choice, Options, Rebalancer, Scope, Sight};
use crate::strategy::{Decision, Strategy, View};

/// Cruise Control's net/disk capacity goals: what a stream balancer watches.
const STREAM_WATCH_DIMS: [&str; 4] = ["net_mbps", "disk_gib", "disk_mbps", "disk_iops"];
/// A scheduler's resource request for inference: GPU memory.
const AI_FIT_DIMS: [&str; 1] = ["gpu_mem_gib"];
/// Helix-like count balance: a node may hold this multiple of the average count.
pub const DB_COUNT_SKEW_MAX: f64 = 1.2;

/// Which of today's balancers a product gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Cruise-Control-like: sheds on net and disk, moves leadership first, 100 MB/s throttle.
    Stream,
    /// Helix-like: repair, load shedding, leadership hand-off, and count balance.
    Db,
    /// Scheduler-like: repair only, first fit by GPU memory, never rebalances.
    Ai,
    /// Any other product: the generic rebalancer, seeing only its own replicas.
    Generic,
}

impl Flavour {
    /// The flavour of a product, by its name in the fleet (`db`, `stream`, `ai` built in).
    pub fn of_product(name: &str) -> Flavour {
        match name {
            "stream" => Flavour::Stream,
            "db" => Flavour::Db,
            "ai" => Flavour::Ai,
            _ => Flavour::Generic,
        }
    }

    /// The options of this flavour's rebalancer for `product`'s groups.
    pub fn options(self, product: ProductId) -> Options {
        let silo = Options {
            scope: Scope::Product(product),
            sight: Sight::Managed,
            ..Options::default()
        };
        let names = |dims: &[&str]| dims.iter().map(|d| d.to_string()).collect();
        match self {
            Flavour::Stream => Options {
                watch_dims: names(&STREAM_WATCH_DIMS),
                ..silo
            },
            Flavour::Db => Options {
                count_skew_max: Some(DB_COUNT_SKEW_MAX),
                ..silo
            },
            Flavour::Ai => Options {
                fit_dims: names(&AI_FIT_DIMS),
                choice: Choice::FirstFit,
                rebalance: false,
                hand_off_leaders: false,
                ..silo
            },
            Flavour::Generic => silo,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Siloed {
    /// One rebalancer per product, in product id order; built from the first view's fleet
    /// unless given.
    silos: Vec<Rebalancer>,
}

impl Siloed {
    /// Silos are made from the fleet the first decision sees.
    pub fn new() -> Siloed {
        Siloed::default()
    }

    /// One silo per product of `fleet`, each of its product's flavour.
    pub fn for_fleet(fleet: &Fleet) -> Siloed {
        Siloed::with_silos(silos_for(fleet))
    }

    /// Silos chosen by the caller (other thresholds, limits or flavours).
    pub fn with_silos(silos: Vec<Rebalancer>) -> Siloed {
        Siloed { silos }
    }

    pub fn silos(&self) -> &[Rebalancer] {
        &self.silos
    }
}

fn silos_for(fleet: &Fleet) -> Vec<Rebalancer> {
    fleet
        .products
        .iter()
        .enumerate()
        .map(|(i, product)| {
            let flavour = Flavour::of_product(&product.name);
            Rebalancer::new(flavour.options(ProductId(i as u16)))
        })
        .collect()
}

impl Strategy for Siloed {
    fn name(&self) -> &str {
        "siloed"
    }

    fn decide(&mut self, view: &View) -> Decision {
        if self.silos.is_empty() {
            self.silos = silos_for(view.base);
        }
        let mut moves = Vec::new();
        for silo in &self.silos {
            moves.extend(silo.decide(view));
        }
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
    use crate::strategies::reactive::Reactive;
    use crate::strategies::rebalancer::testing::Fixture;
    use crate::strategy::{Move, MoveAction};

    fn moves(strategy: &mut dyn Strategy, fx: &Fixture) -> Vec<Move> {
        match strategy.decide(&fx.view()) {
            Decision::Moves(moves) => moves,
            _ => Vec::new(),
        }
    }

    /// Ledger p0 loses its replica on a3; its candidates are b3 and b4 (some ledger load) and
    /// a4, which has no ledger replica but six `logs` replicas using 9.6 of its 10 cores.
    fn ledger_repair_next_to_logs() -> Fixture {
        let mut fx = Fixture::new();
        fx.activate("ledger");
        fx.activate("logs");
        fx.place("ledger", 0, "a1", "Leader");
        fx.place("ledger", 0, "a2", "Follower");
        fx.place("ledger", 0, "a3", "Follower");
        fx.place("ledger", 1, "b3", "Leader");
        fx.place("ledger", 1, "b4", "Follower");
        fx.place("ledger", 1, "b1", "Follower");
        for p in 0..6 {
            fx.place("logs", p, "b2", "Leader");
            fx.place("logs", p, "a4", "Replica");
        }
        fx.kill("a3");
        fx
    }

    fn repair_target(moves: &[Move], fx: &Fixture) -> Option<String> {
        let part = fx.part("ledger", 0);
        moves.iter().find(|m| m.part == part).map(|m| fx.ends(m).1)
    }

    #[test]
    fn the_db_silo_cannot_see_stream_load_where_reactive_can() {
        let fx = ledger_repair_next_to_logs();
        let siloed = moves(&mut Siloed::new(), &fx);
        let reactive = moves(&mut Reactive::new(), &fx);
        assert_eq!(
            repair_target(&siloed, &fx).as_deref(),
            Some("a4"),
            "{siloed:?}"
        );
        assert_eq!(
            repair_target(&reactive, &fx).as_deref(),
            Some("b4"),
            "{reactive:?}"
        );
    }

    #[test]
    fn the_ai_silo_repairs_first_fit_by_gpu_memory() {
        let mut fx = Fixture::new();
        fx.activate("chat");
        fx.activate("embed");
        fx.place("chat", 0, "g1", "Active");
        fx.place("embed", 0, "g2", "Active");
        fx.kill("g1");
        let siloed = moves(&mut Siloed::new(), &fx);
        assert_eq!(siloed.len(), 1, "{siloed:?}");
        assert!(matches!(siloed[0].action, MoveAction::Start { .. }));
        assert_eq!(fx.ends(&siloed[0]).1, "g2", "first fit, not least utilized");
        let reactive = moves(&mut Reactive::new(), &fx);
        assert_eq!(fx.ends(&reactive[0]).1, "g3", "least utilized");
    }

    #[test]
    fn the_db_silo_balances_replica_counts_within_its_limits() {
        let mut fx = Fixture::new();
        fx.activate("kv");
        for p in 0..8 {
            fx.place("kv", p, "a1", "Leader");
            fx.place("kv", p, "b1", "Follower");
            fx.place("kv", p, "a2", "Follower");
        }
        let moves = moves(&mut Siloed::new(), &fx);
        // 24 replicas over 8 storage nodes: 3 on average, 3.6 allowed; a1 holds only leaders,
        // so b1 and a2 give up followers, two copies each (the per-node limit).
        assert_eq!(moves.len(), 4, "{moves:?}");
        let mut seen = std::collections::BTreeMap::new();
        for m in &moves {
            let MoveAction::Copy {
                source, then_drop, ..
            } = m.action
            else {
                panic!("expected a copy, got {m:?}");
            };
            assert_eq!(then_drop, Some(source));
            let (from, to) = fx.ends(m);
            assert!(from == "b1" || from == "a2", "{from}");
            *seen.entry(from).or_insert(0) += 1;
            *seen.entry(to).or_insert(0) += 1;
        }
        assert!(seen.values().all(|&n| n <= 2), "{seen:?}");
    }

    #[test]
    fn silos_are_deterministic_and_follow_the_products() {
        let fx = ledger_repair_next_to_logs();
        let first = moves(&mut Siloed::new(), &fx);
        let second = moves(&mut Siloed::for_fleet(&fx.fleet), &fx);
        assert_eq!(first, second);
        let flavours: Vec<Flavour> = fx
            .fleet
            .products
            .iter()
            .map(|p| Flavour::of_product(&p.name))
            .collect();
        assert!(flavours.contains(&Flavour::Stream));
        assert!(flavours.contains(&Flavour::Db));
        assert!(flavours.contains(&Flavour::Ai));
        assert_eq!(Flavour::of_product("cache"), Flavour::Generic);
    }
}
