//! Actuators for real products: each maps the state model onto one product's own
//! replication, and moves data at the rate the planner booked.
//!
//! - [`support`]: what they share — per-replica ports, running servers as another user, a
//!   token-bucket throttle.
//! - [`postgres`]: a db shard replica is a PostgreSQL instance.
//! - [`redis`]: a stream partition replica is a Redis instance.
//! - [`model`]: an ai replica is a model server whose weights are pulled and verified first.
//! - [`exec`]: any other product, through commands configured per transition.

pub mod exec;
pub mod model;
pub mod postgres;
pub mod redis;
pub mod support;
