//! The API end to end through the router (and, in `tls`, over real sockets). One test binary
//! for the whole suite: one link instead of one per file.

mod audit;
mod auth_matrix;
mod bodies;
mod common;
mod fleet;
mod follower;
mod nodes;
mod openapi;
mod plans;
mod sync;
mod tls;
