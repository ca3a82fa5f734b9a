//! The strategies a simulation compares, all behind [`crate::strategy::Strategy`].

pub mod fixed;
pub mod reactive;
pub mod rebalancer;
pub mod siloed;
pub mod unified;
