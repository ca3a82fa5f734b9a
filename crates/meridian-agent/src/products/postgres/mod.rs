//! Placeholder until the postgres actuator lands.
