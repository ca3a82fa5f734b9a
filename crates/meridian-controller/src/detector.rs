//! Node failure detection: a phi-accrual detector on each agent's sync arrivals, with
//! hysteresis so a flapping node does not make the controller move data back and forth.
//!
//! Phi (Hayashibara et al., as Cassandra and Akka use it) is the suspicion that a node is
//! down given how late its next heartbeat is, relative to the mean and spread of the
//! intervals seen so far: phi = -log10(P(a heartbeat comes later than this)). A threshold of
//! 8 means about a 1e-8 chance the node is merely late. Pure: time is an argument (ms).
//!
//! Hysteresis:
//! - a node declared dead comes back only after syncing steadily for `rejoin_ms`;
//! - a node that died `flaps_max` times within `flap_window_ms` stays out for
//!   `quarantine_ms` (its replicas were already repaired elsewhere; bringing it back in and out
//!   would only churn).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorOptions {
    pub phi_threshold: f64,
    /// Intervals remembered per node.
    pub window_max: usize,
    /// Floor on the intervals' standard deviation, so a perfectly regular agent is not
    /// declared dead by one slightly late sync.
    pub std_dev_min_ms: f64,
    /// A sync this late is tolerated before suspicion grows (GC pauses, network blips).
    pub acceptable_pause_ms: f64,
    /// Expected interval before any sample exists (the heartbeat the controller asks for).
    pub first_interval_ms: f64,
    pub rejoin_ms: u64,
    pub flaps_max: usize,
    pub flap_window_ms: u64,
    pub quarantine_ms: u64,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        DetectorOptions {
            phi_threshold: 8.0,
            window_max: 100,
            std_dev_min_ms: 100.0,
            acceptable_pause_ms: 500.0,
            first_interval_ms: 1000.0,
            rejoin_ms: 10_000,
            flaps_max: 3,
            flap_window_ms: 600_000,
            quarantine_ms: 600_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    Alive,
    /// Declared dead: its replicas are repaired elsewhere.
    Dead,
    /// Syncing again after being dead, not yet trusted.
    Rejoining,
    /// Died too often lately; kept out until the quarantine ends.
    Quarantined,
}

#[derive(Debug, Clone, Default)]
struct NodeHistory {
    last_ms: Option<u64>,
    /// `last_ms` is not a real sync but the end of a grace period (see [`Detector::grace`]);
    /// the next sync starts the rhythm afresh instead of adding an interval.
    last_is_grace: bool,
    intervals: VecDeque<f64>,
    dead: bool,
    /// When the node started syncing again after being dead.
    back_since_ms: Option<u64>,
    deaths_ms: VecDeque<u64>,
    quarantined_until_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Detector {
    options: DetectorOptions,
    nodes: BTreeMap<String, NodeHistory>,
}

impl Detector {
    pub fn new(options: DetectorOptions) -> Detector {
        Detector {
            options,
            nodes: BTreeMap::new(),
        }
    }

    pub fn options(&self) -> &DetectorOptions {
        &self.options
    }

    pub fn heartbeat(&mut self, node: &str, now_ms: u64) {
        let window_max = self.options.window_max.max(1);
        let history = self.nodes.entry(node.to_string()).or_default();
        if let Some(last) = history.last_ms {
            if history.dead {
                // A gap that long is an outage, not an interval of the node's rhythm.
                history.back_since_ms.get_or_insert(now_ms);
            } else if !history.last_is_grace {
                if history.intervals.len() == window_max {
                    history.intervals.pop_front();
                }
                history
                    .intervals
                    .push_back(now_ms.saturating_sub(last) as f64);
            }
        }
        history.last_ms = Some(now_ms);
        history.last_is_grace = false;
    }

    /// The suspicion level of `node` at `now_ms` (0 when it just synced); infinite for a node
    /// never heard from.
    pub fn phi(&self, node: &str, now_ms: u64) -> f64 {
        let Some(history) = self.nodes.get(node) else {
            return f64::INFINITY;
        };
        let Some(last) = history.last_ms else {
            return f64::INFINITY;
        };
        let (mean, std_dev) = self.distribution(history);
        let late_ms = now_ms.saturating_sub(last) as f64;
        phi(late_ms, mean + self.options.acceptable_pause_ms, std_dev)
    }

    fn distribution(&self, history: &NodeHistory) -> (f64, f64) {
        let o = &self.options;
        if history.intervals.is_empty() {
            return (
                o.first_interval_ms,
                o.std_dev_min_ms.max(o.first_interval_ms / 4.0),
            );
        }
        let n = history.intervals.len() as f64;
        let mean = history.intervals.iter().sum::<f64>() / n;
        let variance = history
            .intervals
            .iter()
            .map(|x| (x - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, variance.sqrt().max(o.std_dev_min_ms))
    }

    /// Updates and returns every known node's liveness at `now_ms`.
    pub fn evaluate(&mut self, now_ms: u64) -> BTreeMap<String, Liveness> {
        let names: Vec<String> = self.nodes.keys().cloned().collect();
        names
            .into_iter()
            .map(|name| {
                let liveness = self.evaluate_node(&name, now_ms);
                (name, liveness)
            })
            .collect()
    }

    fn evaluate_node(&mut self, node: &str, now_ms: u64) -> Liveness {
        let suspected = self.phi(node, now_ms) > self.options.phi_threshold;
        let o = self.options.clone();
        let Some(history) = self.nodes.get_mut(node) else {
            return Liveness::Dead;
        };
        if suspected && (!history.dead || history.back_since_ms.is_some()) {
            if !history.dead {
                history.deaths_ms.push_back(now_ms);
                while history
                    .deaths_ms
                    .front()
                    .is_some_and(|&t| now_ms.saturating_sub(t) > o.flap_window_ms)
                {
                    history.deaths_ms.pop_front();
                }
                if history.deaths_ms.len() >= o.flaps_max {
                    history.quarantined_until_ms = now_ms + o.quarantine_ms;
                }
            }
            history.dead = true;
            history.back_since_ms = None;
            return self.dead_state(node, now_ms);
        }
        if !history.dead {
            return Liveness::Alive;
        }
        let Some(back) = history.back_since_ms else {
            return self.dead_state(node, now_ms);
        };
        if now_ms < history.quarantined_until_ms {
            return Liveness::Quarantined;
        }
        if now_ms.saturating_sub(back) >= o.rejoin_ms {
            history.dead = false;
            history.back_since_ms = None;
            history.intervals.clear();
            return Liveness::Alive;
        }
        Liveness::Rejoining
    }

    fn dead_state(&self, node: &str, now_ms: u64) -> Liveness {
        match self.nodes.get(node) {
            Some(h) if now_ms < h.quarantined_until_ms => Liveness::Quarantined,
            _ => Liveness::Dead,
        }
    }

    /// Judges `node` as if it synced at `until_ms`, forgetting its rhythm. A new leader gives
    /// every known agent until the end of its settle period to find it: while no controller
    /// led, agents backed off between attempts, so their silence says nothing about them.
    /// After `until_ms` the usual first-interval judgement applies.
    pub fn grace(&mut self, node: &str, until_ms: u64) {
        let history = self.nodes.entry(node.to_string()).or_default();
        history.last_ms = Some(until_ms);
        history.last_is_grace = true;
        history.intervals.clear();
    }
}

/// phi for a heartbeat `late_ms` after the last one, with intervals ~ Normal(mean, std_dev),
/// using the logistic approximation of the normal CDF (as Akka does): accurate to ~1e-3 and
/// free of erfc.
fn phi(late_ms: f64, mean_ms: f64, std_dev_ms: f64) -> f64 {
    let y = (late_ms - mean_ms) / std_dev_ms;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    let p_later = if late_ms > mean_ms {
        e / (1.0 + e)
    } else {
        1.0 - 1.0 / (1.0 + e)
    };
    -(p_later.max(f64::MIN_POSITIVE)).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regular(detector: &mut Detector, node: &str, from_ms: u64, to_ms: u64, every_ms: u64) {
        let mut t = from_ms;
        while t <= to_ms {
            detector.heartbeat(node, t);
            t += every_ms;
        }
    }

    fn options() -> DetectorOptions {
        DetectorOptions {
            acceptable_pause_ms: 0.0,
            std_dev_min_ms: 50.0,
            first_interval_ms: 200.0,
            rejoin_ms: 2_000,
            flaps_max: 3,
            flap_window_ms: 60_000,
            quarantine_ms: 30_000,
            ..DetectorOptions::default()
        }
    }

    #[test]
    fn suspicion_grows_with_silence() {
        let mut d = Detector::new(options());
        regular(&mut d, "n1", 0, 10_000, 200);
        assert!(d.phi("n1", 10_100) < 1.0);
        assert!(d.phi("n1", 10_400) < d.phi("n1", 10_600));
        assert!(d.phi("n1", 11_500) > 8.0);
        assert_eq!(d.evaluate(10_250)["n1"], Liveness::Alive);
        assert_eq!(d.evaluate(11_500)["n1"], Liveness::Dead);
    }

    #[test]
    fn a_node_comes_back_only_after_syncing_steadily() {
        let mut d = Detector::new(options());
        regular(&mut d, "n1", 0, 5_000, 200);
        assert_eq!(d.evaluate(7_000)["n1"], Liveness::Dead);
        regular(&mut d, "n1", 8_000, 9_000, 200);
        assert_eq!(d.evaluate(9_000)["n1"], Liveness::Rejoining);
        regular(&mut d, "n1", 9_200, 10_200, 200);
        assert_eq!(d.evaluate(10_200)["n1"], Liveness::Alive);
    }

    #[test]
    fn a_flapping_node_is_quarantined() {
        let mut d = Detector::new(options());
        let mut t = 0;
        for _ in 0..3 {
            regular(&mut d, "n1", t, t + 3_000, 200);
            t += 3_000;
            d.evaluate(t);
            assert_ne!(d.evaluate(t + 2_000)["n1"], Liveness::Alive);
            t += 2_000;
        }
        regular(&mut d, "n1", t, t + 5_000, 200);
        assert_eq!(
            d.evaluate(t + 5_000)["n1"],
            Liveness::Quarantined,
            "back and steady, but it died three times within a minute"
        );
        regular(&mut d, "n1", t + 5_200, t + 31_000, 200);
        assert_eq!(d.evaluate(t + 31_000)["n1"], Liveness::Alive);
    }

    #[test]
    fn never_heard_from_is_dead_and_a_grace_revives_the_rhythm() {
        let mut d = Detector::new(options());
        assert!(d.phi("ghost", 0).is_infinite());
        d.grace("n2", 1_000);
        assert_eq!(d.evaluate(1_100)["n2"], Liveness::Alive);
    }

    /// A new leader at t=10 s with a 3 s settle period: agents that were backing off while no
    /// controller led are not judged before 13 s; one that never comes is dead soon after,
    /// and one that comes late starts a fresh rhythm (no interval spanning the grace).
    #[test]
    fn a_grace_covers_the_settle_period_then_judges_as_usual() {
        let mut d = Detector::new(options());
        let (takeover, settle_end) = (10_000, 13_000);
        d.grace("silent", settle_end);
        d.grace("late", settle_end);
        for now in (takeover..=settle_end).step_by(100) {
            assert_eq!(d.evaluate(now)["silent"], Liveness::Alive, "at {now} ms");
        }
        regular(&mut d, "late", 12_900, 20_000, 200);
        assert_eq!(d.evaluate(20_000)["late"], Liveness::Alive);
        assert_eq!(d.evaluate(20_000)["silent"], Liveness::Dead);
        let history = &d.nodes["late"];
        assert!(history.intervals.iter().all(|&i| i == 200.0), "{history:?}");
    }
}
