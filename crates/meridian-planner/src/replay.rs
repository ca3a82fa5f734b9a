//! Replays a plan independently of the scheduler and checks every invariant.
