//! Meridian's deterministic fleet simulator.
//!
//! In the spirit of FoundationDB's and TigerBeetle's simulation testing: simulated time, one
//! seed for every random choice, and the real solver and planner inside. This crate holds the
//! simulator's pure models — what the workload is at any instant ([`workload`]) and which
//! faults are in force ([`faults`]) — each a pure function of (spec, fleet, seed, time), so a
//! run replays bit for bit and strategies that look at different times see the same world.

pub mod accounting;
pub mod duration;
pub mod engine;
pub mod executor;
pub mod faults;
pub mod load;
pub mod measure;
mod noise;
pub mod plots;
pub mod report;
pub mod scenario;
pub mod simulate;
pub mod spec_error;
pub mod strategies;
pub mod strategy;
#[cfg(test)]
mod test_fleet;
pub mod view;
pub mod workload;
pub mod world;

/// Bytes per MB: copy rates are MB/s.
pub const BYTES_PER_MB: f64 = meridian_planner::path::BYTES_PER_MB;

pub use duration::HumanDuration;
pub use faults::{FaultSchedule, FaultSpec, FaultState};
pub use spec_error::SpecError;
pub use workload::{Snapshot, Workload, WorkloadSpec};
