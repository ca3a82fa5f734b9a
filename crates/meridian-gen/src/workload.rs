//! The task groups of a generated fleet: which products, how many partitions each, and how
//! hot and how large each group is relative to the others.
//!
//! Group sizes (partitions and data) are lognormal: most groups are modest, a few are large.
//! Heat is Zipf-like over a random ranking of groups, so a few groups are hot. Absolute loads
//! are set later, when heat is scaled to the fleet's capacity (see `heat`).

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};

use crate::classes::{round_significant, Quantities, DIMENSIONS, DISK_GIB};
use crate::products::Product;
use crate::spec::GenSpec;

/// Share of storage-pool replicas that belong to databases; streams get the rest.
const DB_SHARE: f64 = 0.55;
/// Zipf exponent of heat over group rank, and the band a group's heat stays in relative to
/// the mean: hot groups are hot, but no group is so hot that one replica crowds a node.
const HEAT_EXPONENT: f64 = 0.5;
const HEAT_RATIO_MIN: f64 = 0.25;
const HEAT_RATIO_MAX: f64 = 6.0;
/// Spread of group sizes (lognormal sigma), for partitions and for data.
const PARTITION_SIGMA: f64 = 0.8;
const SIZE_SIGMA: f64 = 1.0;
/// Heat and sizes are written with this many significant digits.
pub const HEAT_DIGITS: i32 = 4;

#[derive(Debug, Clone, PartialEq)]
pub struct PinPlan {
    pub partition: u32,
    pub node: usize,
    pub state: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct GroupPlan {
    pub name: String,
    pub product: Product,
    pub partitions: u32,
    /// Replicas per partition in each of `product.states()`.
    pub counts: Vec<u32>,
    /// Relative hotness; the mean over groups is about 1.
    pub weight: f64,
    /// Per-dimension variation of this group's heat shape around its product's.
    pub jitter: Quantities,
    /// Relative data size; the mean over groups is about 1.
    pub size_weight: f64,
    /// Data read from one replica per month, in multiples of its size.
    pub reads_per_size: f64,
    /// Load per replica in units of the product's shape, set by heat scaling.
    pub load: f64,
    pub size_gib: f64,
    pub spread: Vec<&'static str>,
    pub region: Option<usize>,
    pub selector: Option<(&'static str, &'static str)>,
    /// Share of reads per region.
    pub access: Vec<(usize, f64)>,
    pub affinity: Vec<(usize, &'static str)>,
    pub anti_affinity: Vec<(usize, &'static str)>,
    pub pins: Vec<PinPlan>,
}

impl GroupPlan {
    pub fn replicas_per_partition(&self) -> u32 {
        self.counts.iter().sum()
    }

    pub fn replicas(&self) -> usize {
        self.partitions as usize * self.replicas_per_partition() as usize
    }

    /// Monthly reads per replica: databases are read a few times over, streams by several
    /// consumers, model weights only by the node that loads them.
    pub fn reads_gib_per_month(&self) -> f64 {
        round_significant(self.size_gib * self.reads_per_size, 3)
    }

    /// Whether the counts differ from the product's defaults (and must be written out).
    pub fn counts_overridden(&self) -> bool {
        self.product
            .states()
            .iter()
            .zip(&self.counts)
            .any(|((_, default), count)| default != count)
    }

    /// The largest entry of any state's shape after jitter: what the heat cap applies to.
    pub fn shape_max(&self) -> f64 {
        self.product
            .states()
            .iter()
            .flat_map(|(state, _)| state.shape.iter().zip(&self.jitter).map(|(s, j)| s * j))
            .fold(0.0, f64::max)
    }

    /// Steady heat of one replica in state `index` of `product.states()`, as written to the
    /// document (rounded).
    pub fn heat(&self, index: usize) -> Quantities {
        let reference = self.product.pool().reference().capacity();
        let states = self.product.states();
        let shape = &states[index].0.shape;
        let mut heat = [0.0; DIMENSIONS];
        for dim in 0..DIMENSIONS {
            heat[dim] = round_significant(
                self.load * shape[dim] * self.jitter[dim] * reference[dim],
                HEAT_DIGITS,
            );
        }
        heat[DISK_GIB] = self.size_gib;
        heat
    }
}

/// Plans every group: products, partitions, names and relative heat and size.
pub fn plan_groups(spec: &GenSpec, gpu_nodes: usize, rng: &mut ChaCha8Rng) -> Vec<GroupPlan> {
    let ai_budget = if gpu_nodes >= 2 {
        (spec.replicas as f64 * gpu_nodes as f64 / spec.nodes as f64).round() as usize
    } else {
        0
    };
    let storage_budget = spec.replicas - ai_budget;
    let db_budget = (storage_budget as f64 * DB_SHARE).round() as usize;
    let budgets = [
        (Product::Db, db_budget),
        (Product::Stream, storage_budget - db_budget),
        (Product::Ai, ai_budget),
    ];
    let mut groups = Vec::new();
    let mut carry = 0isize;
    for (product, budget) in budgets {
        if product == Product::Ai && gpu_nodes < 2 {
            break;
        }
        let budget = (budget as isize + carry).max(0) as usize;
        let planned = plan_product(product, budget, spec.replicas_per_group, groups.len(), rng);
        carry = budget as isize - planned.iter().map(GroupPlan::replicas).sum::<usize>() as isize;
        groups.extend(planned);
    }
    assign_weights(&mut groups, rng);
    groups
}

fn plan_product(
    product: Product,
    budget: usize,
    mean: usize,
    first_index: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<GroupPlan> {
    let replicas_per_partition = |rng: &mut ChaCha8Rng| -> Vec<u32> {
        match product {
            Product::Ai => vec![rng.random_range(1..=2)],
            other => other.states().iter().map(|(_, count)| *count).collect(),
        }
    };
    let fewest = if product == Product::Ai { 1 } else { 2 };
    let most = budget / 3;
    let count = ((budget as f64 / mean as f64).round() as usize)
        .max(fewest)
        .min(most.max(usize::from(budget > 0)));
    let shares = lognormal_weights(count, PARTITION_SIGMA, rng);
    let mut groups: Vec<GroupPlan> = Vec::with_capacity(count);
    let mut remainders = Vec::with_capacity(count);
    for (i, share) in shares.iter().enumerate() {
        let counts = replicas_per_partition(rng);
        let per_partition: u32 = counts.iter().sum();
        let wanted = share * budget as f64 / per_partition as f64;
        remainders.push(wanted - wanted.floor());
        let words = product.words();
        let name = format!(
            "{}-{}-{:04}",
            words[rng.random_range(0..words.len())],
            product.name(),
            first_index + i + 1
        );
        groups.push(new_group(
            name,
            product,
            (wanted.floor() as u32).max(1),
            counts,
            rng,
        ));
    }
    fill_to_budget(&mut groups, &remainders, budget);
    groups
}

fn new_group(
    name: String,
    product: Product,
    partitions: u32,
    counts: Vec<u32>,
    rng: &mut ChaCha8Rng,
) -> GroupPlan {
    let mut jitter = [1.0; DIMENSIONS];
    for value in &mut jitter {
        *value = rng.random_range(0.8..1.25);
    }
    GroupPlan {
        name,
        product,
        partitions,
        counts,
        weight: 1.0,
        jitter,
        size_weight: 1.0,
        reads_per_size: match product {
            Product::Db => rng.random_range(3.0..15.0),
            Product::Stream => rng.random_range(10.0..40.0),
            Product::Ai => 0.0,
        },
        load: 0.0,
        size_gib: 0.0,
        spread: Vec::new(),
        region: None,
        selector: None,
        access: Vec::new(),
        affinity: Vec::new(),
        anti_affinity: Vec::new(),
        pins: Vec::new(),
    }
}

/// Adds partitions, largest rounding remainder first, until no group's partition fits what is
/// left of the budget.
fn fill_to_budget(groups: &mut [GroupPlan], remainders: &[f64], budget: usize) {
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by(|&a, &b| remainders[b].total_cmp(&remainders[a]).then(a.cmp(&b)));
    let mut left = budget.saturating_sub(groups.iter().map(GroupPlan::replicas).sum());
    loop {
        let before = left;
        for &g in &order {
            let per_partition = groups[g].replicas_per_partition() as usize;
            if per_partition <= left {
                groups[g].partitions += 1;
                left -= per_partition;
            }
        }
        if left == before || left == 0 {
            break;
        }
    }
}

/// `count` positive weights drawn lognormally, summing to 1.
fn lognormal_weights(count: usize, sigma: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let distribution =
        LogNormal::new(0.0, sigma).unwrap_or_else(|_| unreachable!("sigma is a positive constant"));
    let weights: Vec<f64> = (0..count).map(|_| distribution.sample(rng)).collect();
    let sum: f64 = weights.iter().sum();
    weights.into_iter().map(|w| w / sum).collect()
}

/// Heat weights Zipf-like over a random ranking of groups, and lognormal data sizes.
fn assign_weights(groups: &mut [GroupPlan], rng: &mut ChaCha8Rng) {
    let mut ranks: Vec<usize> = (0..groups.len()).collect();
    ranks.shuffle(rng);
    let raw: Vec<f64> = ranks
        .iter()
        .map(|&rank| (1.0 + rank as f64).powf(-HEAT_EXPONENT))
        .collect();
    let mean = raw.iter().sum::<f64>() / raw.len().max(1) as f64;
    let sizes = LogNormal::new(0.0, SIZE_SIGMA)
        .unwrap_or_else(|_| unreachable!("sigma is a positive constant"));
    for (group, weight) in groups.iter_mut().zip(raw) {
        group.weight = (weight / mean).clamp(HEAT_RATIO_MIN, HEAT_RATIO_MAX);
        group.size_weight = sizes.sample(rng).clamp(0.1, 8.0);
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn replica_total_is_close_to_the_request() {
        for (nodes, replicas) in [(200, 10_000), (400, 20_000), (60, 50), (1_000, 123_457)] {
            let spec = GenSpec::new(nodes, replicas, 9);
            let groups = plan_groups(&spec, nodes * 6 / 100, &mut ChaCha8Rng::seed_from_u64(9));
            let total: usize = groups.iter().map(GroupPlan::replicas).sum();
            assert!(
                total.abs_diff(replicas) <= 3 + replicas / 100,
                "{nodes} nodes: asked {replicas}, got {total}"
            );
            assert!(groups.iter().all(|g| g.partitions >= 1));
        }
    }

    #[test]
    fn a_few_groups_are_hot() {
        let spec = GenSpec::new(1_000, 200_000, 4);
        let groups = plan_groups(&spec, 60, &mut ChaCha8Rng::seed_from_u64(4));
        let hottest = groups.iter().map(|g| g.weight).fold(0.0, f64::max);
        let hot = groups.iter().filter(|g| g.weight > 3.0).count();
        assert!(hottest >= 5.0, "{hottest}");
        assert!(
            hot >= 2 && hot * 10 < groups.len(),
            "{hot} of {}",
            groups.len()
        );
    }
}
