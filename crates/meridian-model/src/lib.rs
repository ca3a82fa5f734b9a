//! Meridian's fleet model: what the fleet is (topology, capacities, products, task groups,
//! policies) and where things are (placements), with validation that names every problem.
//!
//! Pure: no clock, no files, no network. Callers hand in text and get values or problems back.

pub mod check;
pub mod dims;
pub mod fleet;
pub mod group;
pub mod ids;
pub mod line_index;
pub mod placement;
pub mod problem;
pub mod product;
pub mod spec;
pub mod topology;
pub mod topology_build;

pub use dims::{DimId, Dimensions};
pub use fleet::{Fleet, Objectives};
pub use group::Group;
pub use ids::{DomainId, GroupId, LevelId, NodeId, ProductId, RegionId, StateId};
pub use placement::{Placement, Slot};
pub use problem::{Problem, Problems};
pub use product::StateModel;
pub use topology::Topology;
