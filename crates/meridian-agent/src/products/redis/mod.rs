//! Placeholder until the redis actuator lands.
