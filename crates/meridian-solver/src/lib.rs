//! Meridian's placement solver.
//!
//! Pure and deterministic: the same fleet, current placement, options and seed give a
//! bit-identical target. Hard constraints (capacity at every domain of both trees after
//! headroom, spread, residency, selectors, anti-affinity, pins) are filters that are never
//! traded away; objectives (balance against each level's lower bound, data gravity, cost,
//! movement, soft affinity) are weighted scores. See docs/solver.md.

pub mod bounds;
pub mod context;
pub mod current;
pub mod diagnose;
pub mod engine;
pub mod explain;
pub mod pools;
pub mod quality;
pub mod rebalance;
pub mod relaxation;
pub mod repair;
pub mod score;
pub mod search;
pub mod settle;
pub mod shed;
pub mod solve;
pub mod state;

pub use diagnose::Failure;
pub use engine::{Engine, RepairReport};
pub use explain::{explain, Explanation};
pub use quality::{movement_lower_bound, quality, LevelQuality};
pub use solve::{solve, Mode, Options, Solution, Stats};
