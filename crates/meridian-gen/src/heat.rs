//! Sets each group's absolute load and data size so that the fleet is as busy as asked.
//!
//! Per node pool (storage for db and stream, GPU for ai), a common factor scales every
//! group's relative weight into a load; each load is capped so one replica never exceeds
//! `replica_heat_max` of the pool's smallest node. The factor is found by bisection so the
//! pool's most loaded dimension reaches `target_utilization` (or as close as the cap allows).

use crate::classes::{round_significant, Pool, Quantities, DIMENSIONS, DISK_GIB};
use crate::layout::Layout;
use crate::spec::GenSpec;
use crate::workload::GroupPlan;

/// Data fills this share of the disks relative to the target: disks are seldom the binding
/// dimension of a storage fleet, and model weights take little of a GPU node's disk.
const DISK_SHARE_STORAGE: f64 = 0.8;
const DISK_SHARE_GPU: f64 = 0.3;
/// Bisection steps: each halves the interval, so 100 reach float precision from any start.
const BISECTION_STEPS: usize = 100;

/// Expected utilization of one pool per dimension: total steady heat ÷ total node capacity.
pub type Utilization = Quantities;

/// Scales loads and sizes of every group; returns each pool's expected utilization.
pub fn scale(
    groups: &mut [GroupPlan],
    layout: &Layout,
    spec: &GenSpec,
) -> [(Pool, Utilization); 2] {
    [Pool::Storage, Pool::Gpu].map(|pool| {
        let capacity = pool_capacity(layout, pool);
        let members: Vec<usize> = (0..groups.len())
            .filter(|&g| groups[g].product.pool() == pool)
            .collect();
        scale_loads(groups, &members, &capacity, spec);
        scale_sizes(groups, &members, &capacity, pool, spec);
        (pool, utilization(groups, &members, &capacity))
    })
}

pub fn pool_capacity(layout: &Layout, pool: Pool) -> Quantities {
    let mut total = [0.0; DIMENSIONS];
    for node in layout.nodes_in(pool) {
        let capacity = layout.nodes[node].class.capacity();
        for dim in 0..DIMENSIONS {
            total[dim] += capacity[dim];
        }
    }
    total
}

fn scale_loads(groups: &mut [GroupPlan], members: &[usize], capacity: &Quantities, spec: &GenSpec) {
    let caps: Vec<f64> = members
        .iter()
        .map(|&g| spec.replica_heat_max / groups[g].shape_max())
        .collect();
    let highest = members
        .iter()
        .zip(&caps)
        .map(|(&g, cap)| cap / groups[g].weight)
        .fold(0.0, f64::max);
    let peak = |factor: f64, groups: &mut [GroupPlan]| {
        for (&g, cap) in members.iter().zip(&caps) {
            groups[g].load = (factor * groups[g].weight).min(*cap);
        }
        peak_utilization(groups, members, capacity)
    };
    let factor = bisect(highest, spec.target_utilization, |factor| {
        peak(factor, groups)
    });
    peak(factor, groups);
}

fn scale_sizes(
    groups: &mut [GroupPlan],
    members: &[usize],
    capacity: &Quantities,
    pool: Pool,
    spec: &GenSpec,
) {
    let disk = pool.reference().capacity()[DISK_GIB];
    let share = if pool == Pool::Gpu {
        DISK_SHARE_GPU
    } else {
        DISK_SHARE_STORAGE
    };
    let cap = spec.replica_heat_max * disk;
    let highest = members
        .iter()
        .map(|&g| cap / groups[g].size_weight)
        .fold(0.0, f64::max);
    let used = |factor: f64, groups: &mut [GroupPlan]| {
        let mut total = 0.0;
        for &g in members {
            groups[g].size_gib = round_significant((factor * groups[g].size_weight).min(cap), 3);
            total += groups[g].size_gib * groups[g].replicas() as f64;
        }
        total / capacity[DISK_GIB]
    };
    let factor = bisect(highest, spec.target_utilization * share, |factor| {
        used(factor, groups)
    });
    used(factor, groups);
}

/// The largest `x` in `[0, highest]` with `f(x) <= target`, for non-decreasing `f`.
fn bisect(highest: f64, target: f64, mut f: impl FnMut(f64) -> f64) -> f64 {
    if f(highest) <= target {
        return highest;
    }
    let (mut low, mut high) = (0.0, highest);
    for _ in 0..BISECTION_STEPS {
        let middle = (low + high) / 2.0;
        if f(middle) <= target {
            low = middle;
        } else {
            high = middle;
        }
    }
    low
}

fn peak_utilization(groups: &[GroupPlan], members: &[usize], capacity: &Quantities) -> f64 {
    let mut used = utilization(groups, members, capacity);
    used[DISK_GIB] = 0.0;
    used.into_iter().fold(0.0, f64::max)
}

/// Heat of `members` per dimension over `capacity`, as the document will state it.
pub fn utilization(groups: &[GroupPlan], members: &[usize], capacity: &Quantities) -> Utilization {
    let mut total = [0.0; DIMENSIONS];
    for &g in members {
        let group = &groups[g];
        for (state, count) in group.counts.iter().enumerate() {
            let heat = group.heat(state);
            let replicas = f64::from(*count) * f64::from(group.partitions);
            for dim in 0..DIMENSIONS {
                total[dim] += heat[dim] * replicas;
            }
        }
    }
    let mut result = [0.0; DIMENSIONS];
    for dim in 0..DIMENSIONS {
        if capacity[dim] > 0.0 {
            result[dim] = total[dim] / capacity[dim];
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::workload::plan_groups;

    fn scaled(spec: &GenSpec) -> (Vec<GroupPlan>, [(Pool, Utilization); 2]) {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let layout = Layout::build(spec, &mut rng);
        let mut groups = plan_groups(spec, layout.nodes_in(Pool::Gpu).count(), &mut rng);
        let utilization = scale(&mut groups, &layout, spec);
        (groups, utilization)
    }

    #[test]
    fn the_busiest_dimension_of_each_pool_reaches_the_target() {
        let spec = GenSpec::new(400, 20_000, 7);
        let (_, pools) = scaled(&spec);
        for (pool, utilization) in pools {
            let peak = utilization
                .iter()
                .enumerate()
                .filter(|(d, _)| *d != DISK_GIB)
                .map(|(_, u)| *u)
                .fold(0.0, f64::max);
            assert!(
                (peak - spec.target_utilization).abs() < 0.01,
                "{pool:?}: {peak}"
            );
            assert!(
                utilization[DISK_GIB] <= spec.target_utilization,
                "{pool:?} disk"
            );
        }
    }

    #[test]
    fn no_replica_exceeds_the_heat_cap() {
        let spec = GenSpec::new(100, 500, 2);
        let (groups, _) = scaled(&spec);
        for group in &groups {
            let reference = group.product.pool().reference().capacity();
            for state in 0..group.counts.len() {
                let heat = group.heat(state);
                for dim in 0..DIMENSIONS {
                    if reference[dim] > 0.0 {
                        assert!(
                            heat[dim] / reference[dim] <= spec.replica_heat_max * 1.001,
                            "{} dim {dim}",
                            group.name
                        );
                    }
                }
            }
        }
    }
}
