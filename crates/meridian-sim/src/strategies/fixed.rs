//! *static*: the initial placement, never changed — the baseline every strategy must beat.
//! Products still fail over on their own (the engine promotes a follower when a leader's node
//! dies, as Kafka's controller or Patroni would); nothing re-replicates or rebalances.

use crate::strategy::{Decision, Strategy, View};

#[derive(Debug, Default)]
pub struct Fixed;

impl Strategy for Fixed {
    fn name(&self) -> &str {
        "static"
    }

    fn decide(&mut self, _view: &View) -> Decision {
        Decision::Idle
    }
}
