//! Meridian's controller: the shell around the pure core that makes it a running system.
//!
//! - [`leader`]: campaign on the store; while leading (and only while the lease is known
//!   alive) run the reconcile loop; step down on any doubt.
//! - [`reconcile`]: judge node liveness ([`detector`]), advance plans ([`dispatch`]), decide
//!   anew when the world changed ([`planning`]: solver + planner), persist ([`persist`]).
//! - [`sync`]: agents pull their commands, stamped with the leader's fencing epoch.
//! - [`records`]: what lives in the store.
//!
//! See docs/control-plane.md.

pub mod config;
pub mod controller;
pub mod detector;
pub mod dispatch;
pub mod leader;
pub mod leaders;
pub mod metrics;
pub mod ops;
pub mod persist;
pub mod planning;
pub mod reconcile;
pub mod records;
pub mod sim_agent;
pub mod sync;
pub mod translate;

pub use config::ControllerConfig;
pub use controller::Controller;
