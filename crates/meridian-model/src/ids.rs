//! Dense integer ids. Everything in the core is indexed by these, never by name or hash-map
//! order, so iteration order (and hence every decision) is deterministic.

use serde::Serialize;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $repr:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub struct $name(pub $repr);

        impl $name {
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id_type!(
    /// A domain of either topology tree; nodes are domains too.
    DomainId, u32);
id_type!(
    /// A node (a machine that runs replicas).
    NodeId, u32);
id_type!(
    /// A named level (`region`, `rack`, `pdu`, `node`, ...).
    LevelId, u16);
id_type!(
    /// A region, for residency and latency.
    RegionId, u16);
id_type!(
    /// A product's state model.
    ProductId, u16);
id_type!(
    /// A state within one product's state model.
    StateId, u8);
id_type!(
    /// A task group (a database, a topic, a model deployment).
    GroupId, u32);
