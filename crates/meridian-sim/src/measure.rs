//! What a run shows about one strategy, accumulated tick by tick: access latency, cost,
//! movement, saturation of every domain and link, availability, and the invariants.
//!
//! Latency model (explainable, not a network simulator): a region's reads of a group go to
//! the nearest serving replica; each read pays the round trip between the regions plus a
//! service time stretched by queueing on the busiest resource of that replica's node chain,
//! `service_ms / (1 − ρ)` with ρ capped at [`RHO_MAX`] — a saturated switch or disk shows up
//! as a tail-latency spike, which is what a brownout is to the users.

use serde::Serialize;

/// Base service time of one access, ms.
pub const SERVICE_MS: f64 = 2.0;
/// Utilization at which the queueing factor stops growing (×50).
pub const RHO_MAX: f64 = 0.98;
/// Invariant violations kept verbatim per run (the count is always exact).
pub const VIOLATIONS_KEPT_MAX: usize = 20;

/// Log-spaced latency histogram, weighted by access × seconds, for run-wide percentiles.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    weights: Vec<f64>,
}

const BUCKETS: usize = 400;
const BUCKET_LOG_MIN: f64 = -1.0; // 0.1 ms
const BUCKET_LOG_MAX: f64 = 4.0; // 10 s

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            weights: vec![0.0; BUCKETS],
        }
    }
}

impl LatencyHistogram {
    fn bucket(latency_ms: f64) -> usize {
        let log = latency_ms.max(1e-3).log10();
        let x = (log - BUCKET_LOG_MIN) / (BUCKET_LOG_MAX - BUCKET_LOG_MIN);
        ((x * BUCKETS as f64) as isize).clamp(0, BUCKETS as isize - 1) as usize
    }

    fn value(bucket: usize) -> f64 {
        let x = (bucket as f64 + 0.5) / BUCKETS as f64;
        10f64.powf(BUCKET_LOG_MIN + x * (BUCKET_LOG_MAX - BUCKET_LOG_MIN))
    }

    pub fn add(&mut self, latency_ms: f64, weight: f64) {
        if weight > 0.0 && latency_ms.is_finite() {
            self.weights[Self::bucket(latency_ms)] += weight;
        }
    }

    /// The latency below which a share `q` of the weight lies (0 when empty).
    pub fn quantile(&self, q: f64) -> f64 {
        let total: f64 = self.weights.iter().sum();
        if total <= 0.0 {
            return 0.0;
        }
        let mut seen = 0.0;
        for (b, w) in self.weights.iter().enumerate() {
            seen += w;
            if seen >= q * total {
                return Self::value(b);
            }
        }
        Self::value(BUCKETS - 1)
    }
}

/// Per resource: how long it spent over its physical capacity, and by how much at worst.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Saturation {
    pub seconds: f64,
    /// Worst demand / capacity seen.
    pub worst: f64,
    /// Seconds over capacity while this strategy's copies were crossing it.
    pub with_copies_s: f64,
}

/// One strategy's run, summed up.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub storage_cost: f64,
    /// Copies crossing regions, $.
    pub transfer_cost: f64,
    /// Reads served from another region than the reader's, $.
    pub egress_cost: f64,
    pub bytes_moved: f64,
    pub copies: u64,
    /// Copies given up after stalling (see `engine::STALL_TIMEOUT_S`).
    pub copies_aborted: u64,
    pub decisions: u64,
    /// Seconds summed over every domain and link that was over its capacity.
    pub saturation_s: f64,
    pub saturated_resources: usize,
    pub worst_overshoot: f64,
    pub worst_resource: String,
    /// Of `saturation_s`, the part with this strategy's copies on the saturated resource.
    pub saturation_with_copies_s: f64,
    /// Partition-seconds below the product's minimum serving replicas.
    pub below_min_s: f64,
    /// Partition-seconds without a leader (products that have one).
    pub leaderless_s: f64,
    /// The fleet-wide utilization at which the worst domain would just reach its capacity,
    /// at the run's tightest instant: mean utilization / peak utilization.
    pub safe_utilization: f64,
    pub invariant_violations: u64,
    pub violations: Vec<String>,
}

/// Time series for the report's plots, one point per sample interval.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    pub t_s: Vec<f64>,
    pub latency_p50_ms: Vec<f64>,
    pub latency_p99_ms: Vec<f64>,
    /// Cumulative $.
    pub cost: Vec<f64>,
    pub copies: Vec<u64>,
    pub bytes_moved: Vec<f64>,
    /// Copies in flight.
    pub in_flight: Vec<usize>,
    /// Per watched level (e.g. `spine net_mbps`): the highest demand/capacity over its
    /// domains at each sample.
    pub level_peak: Vec<(String, Vec<f64>)>,
}
