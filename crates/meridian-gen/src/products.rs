//! How each built-in product loads a machine: the shape of a replica's heat per state.
//!
//! Shapes are fractions of the pool's reference node per dimension for one unit of load; a
//! group's load (set when heat is scaled) multiplies them. Leaders do the writes and serve the
//! reads, so they are hotter than followers in every dimension but memory (followers keep the
//! same data warm). `disk_gib` is absent: a replica stores its group's `size_gib`.

use crate::classes::{
    Pool, Quantities, CPU, DISK_IOPS, DISK_MBPS, GPU_MEM_GIB, MEM_GIB, NET_MBPS, POWER_W,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Product {
    Db,
    Stream,
    Ai,
}

/// One state of a product that holds replicas, with the heat shape of one replica in it.
pub struct StateShape {
    pub state: &'static str,
    pub shape: Quantities,
}

impl Product {
    /// The product's name in the model's built-in products.
    pub fn name(self) -> &'static str {
        match self {
            Product::Db => "db",
            Product::Stream => "stream",
            Product::Ai => "ai",
        }
    }

    pub fn pool(self) -> Pool {
        match self {
            Product::Db | Product::Stream => Pool::Storage,
            Product::Ai => Pool::Gpu,
        }
    }

    /// Serving states, the leader (if any) first, with their default replica counts.
    pub fn states(self) -> Vec<(StateShape, u32)> {
        match self {
            Product::Db => vec![
                (
                    StateShape {
                        state: "Leader",
                        shape: shape(&[
                            (CPU, 1.0),
                            (MEM_GIB, 0.9),
                            (DISK_IOPS, 1.0),
                            (DISK_MBPS, 0.6),
                            (NET_MBPS, 0.7),
                            (POWER_W, 0.8),
                        ]),
                    },
                    1,
                ),
                (
                    StateShape {
                        state: "Follower",
                        shape: shape(&[
                            (CPU, 0.35),
                            (MEM_GIB, 0.9),
                            (DISK_IOPS, 0.45),
                            (DISK_MBPS, 0.4),
                            (NET_MBPS, 0.35),
                            (POWER_W, 0.4),
                        ]),
                    },
                    2,
                ),
            ],
            Product::Stream => vec![
                (
                    StateShape {
                        state: "Leader",
                        shape: shape(&[
                            (CPU, 0.6),
                            (MEM_GIB, 0.3),
                            (DISK_IOPS, 0.3),
                            (DISK_MBPS, 1.0),
                            (NET_MBPS, 1.0),
                            (POWER_W, 0.6),
                        ]),
                    },
                    1,
                ),
                (
                    StateShape {
                        state: "Replica",
                        shape: shape(&[
                            (CPU, 0.3),
                            (MEM_GIB, 0.3),
                            (DISK_IOPS, 0.2),
                            (DISK_MBPS, 0.7),
                            (NET_MBPS, 0.6),
                            (POWER_W, 0.35),
                        ]),
                    },
                    2,
                ),
            ],
            Product::Ai => vec![(
                StateShape {
                    state: "Active",
                    shape: shape(&[
                        (CPU, 0.5),
                        (MEM_GIB, 0.6),
                        (DISK_IOPS, 0.05),
                        (DISK_MBPS, 0.2),
                        (NET_MBPS, 0.5),
                        (GPU_MEM_GIB, 1.0),
                        (POWER_W, 1.0),
                    ]),
                },
                2,
            )],
        }
    }

    /// Words for group names, so a generated fleet reads like a real one.
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Product::Db => &[
                "orders",
                "users",
                "payments",
                "inventory",
                "sessions",
                "profiles",
                "carts",
                "ledger",
                "catalog",
                "accounts",
            ],
            Product::Stream => &[
                "clicks", "logs", "metrics", "audit", "events", "traces", "alerts", "changes",
            ],
            Product::Ai => &["chat", "embed", "rerank", "vision", "speech", "summarize"],
        }
    }
}

fn shape(entries: &[(usize, f64)]) -> Quantities {
    let mut values = [0.0; crate::classes::DIMENSIONS];
    for &(dim, value) in entries {
        values[dim] = value;
    }
    values
}
