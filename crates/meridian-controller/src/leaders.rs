//! Which node serves each partition's leader, as agents report it, so followers can be
//! pointed at it ([`meridian_wire::LeaderHint`]) and copies can read from it.
//!
//! Kept up to date on every report that changes a node's replicas, so a sync costs a lookup
//! per replica of the syncing node, not a scan of the fleet.

use std::collections::BTreeMap;

use meridian_wire::{Health, ReplicaKey, ReplicaStatus};

/// A replica that reports itself serving in its product's leader state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub node: String,
    pub endpoint: Option<String>,
}

#[derive(Debug, Default)]
pub struct LeaderIndex {
    /// Usually one claim per partition; two while a report of a deposed leader is still the
    /// last word from its node (it is demoted first, so this is brief, or the node is dead).
    claims: BTreeMap<ReplicaKey, Vec<Claim>>,
    /// The partitions each node claims to lead, to retract them when its report changes.
    by_node: BTreeMap<String, Vec<ReplicaKey>>,
}

impl LeaderIndex {
    /// Replaces what `node` claims with its latest report. `is_leader(product, state)` says
    /// whether a state is its product's leader state.
    pub fn record(
        &mut self,
        node: &str,
        replicas: &[ReplicaStatus],
        is_leader: impl Fn(&str, &str) -> bool,
    ) {
        for replica in self.by_node.remove(node).unwrap_or_default() {
            if let Some(claims) = self.claims.get_mut(&replica) {
                claims.retain(|c| c.node != node);
                if claims.is_empty() {
                    self.claims.remove(&replica);
                }
            }
        }
        let leading: Vec<&ReplicaStatus> = replicas
            .iter()
            .filter(|r| r.health == Health::Serving && is_leader(&r.product, &r.state))
            .collect();
        if leading.is_empty() {
            return;
        }
        for status in &leading {
            self.claims
                .entry(status.replica.clone())
                .or_default()
                .push(Claim {
                    node: node.to_string(),
                    endpoint: status.endpoint.clone(),
                });
        }
        self.by_node.insert(
            node.to_string(),
            leading.iter().map(|s| s.replica.clone()).collect(),
        );
    }

    /// The one leader of `replica`'s partition among nodes `alive` accepts; None if there is
    /// none or more than one (followers stay where they are rather than guess).
    pub fn leader(&self, replica: &ReplicaKey, alive: impl Fn(&str) -> bool) -> Option<&Claim> {
        let mut live = self.claims.get(replica)?.iter().filter(|c| alive(&c.node));
        let claim = live.next()?;
        live.next().is_none().then_some(claim)
    }

    pub fn clear(&mut self) {
        self.claims.clear();
        self.by_node.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(partition: u32, state: &str, health: Health, endpoint: &str) -> ReplicaStatus {
        ReplicaStatus {
            replica: ReplicaKey {
                group: "orders".into(),
                partition,
            },
            product: "db".into(),
            state: state.into(),
            health,
            heat: Vec::new(),
            endpoint: Some(endpoint.into()),
        }
    }

    fn key(partition: u32) -> ReplicaKey {
        ReplicaKey {
            group: "orders".into(),
            partition,
        }
    }

    fn is_leader(_: &str, state: &str) -> bool {
        state == "Leader"
    }

    #[test]
    fn a_hand_off_moves_the_claim_and_ambiguity_names_no_one() {
        let mut index = LeaderIndex::default();
        let all = |_: &str| true;
        index.record(
            "n1",
            &[status(0, "Leader", Health::Serving, "a:1")],
            is_leader,
        );
        index.record(
            "n2",
            &[status(0, "Follower", Health::Serving, "b:1")],
            is_leader,
        );
        assert_eq!(
            index.leader(&key(0), all).map(|c| c.node.as_str()),
            Some("n1")
        );

        // n2 promoted before n1's next report: two claims, no answer until n1 reports.
        index.record(
            "n2",
            &[status(0, "Leader", Health::Serving, "b:1")],
            is_leader,
        );
        assert_eq!(index.leader(&key(0), all), None);
        assert_eq!(
            index
                .leader(&key(0), |n| n != "n1")
                .map(|c| c.node.as_str()),
            Some("n2"),
            "a dead node's stale claim does not count"
        );
        index.record(
            "n1",
            &[status(0, "Follower", Health::Serving, "a:1")],
            is_leader,
        );
        let claim = index.leader(&key(0), all).expect("n2 leads");
        assert_eq!(
            (claim.node.as_str(), claim.endpoint.as_deref()),
            ("n2", Some("b:1"))
        );

        // A leader that is not serving (restarting) is nobody's leader for now.
        index.record(
            "n2",
            &[status(0, "Leader", Health::Failing, "b:1")],
            is_leader,
        );
        assert_eq!(index.leader(&key(0), all), None);
        assert_eq!(index.leader(&key(1), all), None);
    }
}
