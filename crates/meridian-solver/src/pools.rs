//! Pools: the sets of nodes groups may use. Groups with the same selector and allowed regions
//! share one pool, so each distinct set is computed once, not once per group.

use std::collections::BTreeMap;

use meridian_model::Fleet;

/// What makes two groups' eligible nodes the same: selector labels and allowed regions.
type PoolKey = (Vec<(String, String)>, Option<Vec<u16>>);

pub struct Pools {
    /// Per group: the index of its pool.
    pub of_group: Vec<usize>,
    /// Per pool: whether each node (by id) belongs to it.
    pub nodes: Vec<Vec<bool>>,
}

pub fn pools(fleet: &Fleet) -> Pools {
    let topology = &fleet.topology;
    let mut keys: BTreeMap<PoolKey, usize> = BTreeMap::new();
    let mut pools = Pools {
        of_group: Vec::with_capacity(fleet.groups.len()),
        nodes: Vec::new(),
    };
    for group in &fleet.groups {
        let key = (
            group
                .selector
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            group
                .regions
                .as_ref()
                .map(|r| r.iter().map(|x| x.0).collect()),
        );
        let next = keys.len();
        let pool = *keys.entry(key).or_insert(next);
        if pool == pools.nodes.len() {
            pools.nodes.push(
                topology
                    .node_ids()
                    .map(|n| group.node_allowed(topology, n))
                    .collect(),
            );
        }
        pools.of_group.push(pool);
    }
    pools
}
