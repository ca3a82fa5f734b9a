//! The controller's Prometheus metrics (prometheus-client), rendered at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DomainLabels {
    pub level: String,
    pub domain: String,
    pub dim: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

pub struct Metrics {
    registry: Registry,
    pub reconcile_seconds: Histogram,
    pub decision_seconds: Histogram,
    pub is_leader: Gauge,
    pub leader_changes: Counter,
    pub epoch: Gauge,
    pub plans_created: Counter,
    pub decisions: Counter,
    pub plan_steps: Family<StatusLabels, Gauge>,
    pub moves_in_flight: Gauge,
    pub commands_sent: Counter,
    pub nodes: Family<StatusLabels, Gauge>,
    pub utilization: Family<DomainLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("meridian");
        let reconcile_seconds = Histogram::new(exponential_buckets(0.0001, 4.0, 10));
        let decision_seconds = Histogram::new(exponential_buckets(0.001, 4.0, 10));
        let metrics = Metrics {
            reconcile_seconds,
            decision_seconds,
            is_leader: Gauge::default(),
            leader_changes: Counter::default(),
            epoch: Gauge::default(),
            plans_created: Counter::default(),
            decisions: Counter::default(),
            plan_steps: Family::default(),
            moves_in_flight: Gauge::default(),
            commands_sent: Counter::default(),
            nodes: Family::default(),
            utilization: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "reconcile_seconds",
            "Time of one reconcile round of the leader",
            metrics.reconcile_seconds.clone(),
        );
        registry.register(
            "decision_seconds",
            "Time to solve and plan after the world changed",
            metrics.decision_seconds.clone(),
        );
        registry.register(
            "is_leader",
            "1 if this controller leads",
            metrics.is_leader.clone(),
        );
        registry.register(
            "leader_changes",
            "Times this controller became or stopped being leader",
            metrics.leader_changes.clone(),
        );
        registry.register(
            "epoch",
            "The fencing epoch this controller leads with",
            metrics.epoch.clone(),
        );
        registry.register("plans_created", "Plans made", metrics.plans_created.clone());
        registry.register(
            "decisions",
            "Times the leader solved and planned after the world changed",
            metrics.decisions.clone(),
        );
        registry.register(
            "plan_steps",
            "Steps of unfinished plans by status (pending, running, done, failed)",
            metrics.plan_steps.clone(),
        );
        registry.register(
            "moves_in_flight",
            "Data copies sent to agents and not finished",
            metrics.moves_in_flight.clone(),
        );
        registry.register(
            "commands_sent",
            "Commands handed to agents (repeats included)",
            metrics.commands_sent.clone(),
        );
        registry.register("nodes", "Nodes by liveness", metrics.nodes.clone());
        registry.register(
            "domain_utilization",
            "Steady heat placed under a domain over its limit (capacity after headroom), per dimension",
            metrics.utilization.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
