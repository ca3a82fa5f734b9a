//! Helpers shared by the planner's scenario tests.

use meridian_model::placement::{Slot, UNASSIGNED};
use meridian_model::{Fleet, Placement};

/// A placement of partition 0 of each named group: (group, node, state) per replica.
#[allow(dead_code)] // Not every test binary uses both.
pub fn placement(fleet: &Fleet, replicas: &[(&str, &str, &str)]) -> Placement {
    let all: Vec<(&str, u32, &str, &str)> =
        replicas.iter().map(|&(g, n, s)| (g, 0, n, s)).collect();
    placement_of(fleet, &all)
}

/// A placement from (group, partition, node, state) per replica, each in the partition's next
/// free slot (the planner and the replay compare partitions as sets of node and state, so which
/// slot holds a replica does not matter).
pub fn placement_of(fleet: &Fleet, replicas: &[(&str, u32, &str, &str)]) -> Placement {
    let mut placement = Placement::empty(fleet);
    for &(group, partition, node, state) in replicas {
        let g = fleet.group(fleet.group_by_name(group).expect("group"));
        let model = fleet.product_of(g.id);
        let state = model.state(state).expect("state");
        let first = g.partition_slot(partition);
        let slot = (first..first + g.replicas_per_partition())
            .find(|&s| placement.slots[s].node == UNASSIGNED)
            .expect("a free slot in the partition");
        placement.slots[slot] = Slot {
            node: fleet.topology.node_by_name(node).expect("node").0,
            state,
        };
    }
    placement
}
