//! What the user can set: copy rates, concurrency, a byte budget, priorities, windows.

use serde::Serialize;

use meridian_model::{LevelId, NodeId, ProductId};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Options {
    /// Fastest a single copy may run, MB/s.
    pub rate_max: f64,
    /// A copy that could only run slower than this waits for capacity instead: a crawl would
    /// hold its booking (and the destination's space) for hours.
    pub rate_min: f64,
    /// Copies in flight touching one node (as source or target).
    pub moves_per_node_max: u32,
    /// Copies in flight crossing one domain of a level (e.g. at most 4 through any rack).
    pub moves_per_domain_max: Vec<(LevelId, u32)>,
    /// Bytes all copies together may move per hour (their summed rate is held under it).
    pub bytes_per_hour_max: Option<f64>,
    /// Higher goes first among steps ready at the same time; per product, default 0.
    pub product_priority: Vec<(ProductId, i32)>,
    /// `[start, end)` times (same clock as `now`) when copies may run. Empty: any time.
    /// Copies that restore lost redundancy ignore windows.
    pub windows: Vec<(f64, f64)>,
    /// Nodes that are gone: their replicas are lost, never a source, never dropped.
    pub failed: Vec<NodeId>,
    /// Copies of an earlier plan still running: their loads stay booked until they end, so a
    /// plan made meanwhile never counts on the room they hold.
    pub in_flight: Vec<InFlight>,
}

/// Load an earlier plan's copy holds until `until` (the same clock as `now`); an infinite
/// `until` holds it for the whole plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InFlight {
    pub loads: Vec<crate::plan::Load>,
    pub until: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rate_max: 200.0,
            rate_min: 10.0,
            moves_per_node_max: 2,
            moves_per_domain_max: Vec::new(),
            bytes_per_hour_max: None,
            product_priority: Vec::new(),
            windows: Vec::new(),
            failed: Vec::new(),
            in_flight: Vec::new(),
        }
    }
}

impl Options {
    pub fn priority_of(&self, product: ProductId) -> i32 {
        self.product_priority
            .iter()
            .find(|(p, _)| *p == product)
            .map_or(0, |(_, priority)| *priority)
    }
}
