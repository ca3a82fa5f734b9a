//! Meridian's planner: how to get from the current placement to a target one without hurting
//! the fleet on the way.
//!
//! Pure and deterministic like the solver: time is an argument (`now`), no clock, no IO. A
//! plan is a list of timed steps — copies, state transitions, atomic leader hand-offs, drops —
//! scheduled so that at every instant every domain of both trees (and every region link)
//! carries no more than its limit: steady heat of the replicas there, including new replicas
//! from the moment their copy starts and old ones until they are dropped, plus the transient
//! heat of every copy in flight on the path it takes. See docs/planner.md.

pub mod bound;
pub mod doc;
pub mod ledger;
pub mod options;
pub mod path;
pub mod plan;
pub mod replay;
pub mod routes;
pub mod schedule;

pub use options::{InFlight, Options};
pub use plan::{Action, Blocked, Load, MakespanBound, Plan, Reason, Resource, Step};
pub use schedule::plan;
