//! Meridian's node agent.
//!
//! One agent runs on every node. It pulls its commands from the leading controller (see
//! `meridian_wire`), executes each transition through the [`Actuator`] of the replica's
//! product, and reports what it runs. The rules it keeps, from the design's invariants:
//!
//! - **Fencing** (invariant 3): the highest epoch seen is made durable *before* any command
//!   of that response is accepted, and a command older than it is refused, never run —
//!   including commands already queued when a newer epoch shows up.
//! - **Idempotency** (invariant 6): every accepted command is journaled under its transition
//!   id before it runs; a repeat of the id is answered from the journal. Each execution is
//!   appended to `executed.log`, an audit trail that tests read to prove nothing ran twice.
//!   Actuators are idempotent too, so a transition interrupted by an agent crash is resumed
//!   by calling the same method again.
//! - **Degrade safely** (invariant 8): on start the agent brings back the last known
//!   assignment without asking anyone, and it never stops a workload because controllers
//!   are unreachable; it keeps retrying them with bounded backoff.
//!
//! Modules, one job each: [`config`] (the YAML file), [`actuator`] (the trait products
//! implement), [`process`] (the generic process actuator), [`state`] and [`journal`] (what
//! is on disk), [`sync`] (talking to controllers), `intake` (which commands may run),
//! `executor` (running them one at a time per replica) and `agent` (the loop).

pub mod actuator;
mod agent;
pub mod config;
pub mod data_server;
mod durable;
mod executor;
mod intake;
pub mod journal;
pub mod paths;
pub mod process;
pub mod products;
mod report;
pub mod state;
pub mod sync;

pub use actuator::{
    Actuator, ActuatorError, Actuators, Observation, Progress, ReplicaContext, TransitionContext,
};
pub use agent::{actuators, run, run_with, AgentError};
pub use config::{AgentConfig, ConfigError, ProcessConfig, ProductConfig};
pub use durable::StateError;
pub use journal::{read_executed_log, ExecutedRecord};
pub use process::ProcessActuator;
