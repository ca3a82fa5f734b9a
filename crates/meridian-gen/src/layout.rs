//! The physical fleet: how many machines stand where, and which PDU feeds which rack.
//!
//! Network: region > zone (2-3 per region) > spine (up to 8 racks) > rack > node. Power:
//! feed > PDU (2-4 storage racks, or 1-2 GPU racks) > rack, joining the network tree at the
//! rack. Names follow the network tree's order so a generated file reads top to bottom.

use std::ops::Range;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::classes::{NodeClass, Pool};
use crate::spec::GenSpec;

/// Racks under one spine switch.
const RACKS_PER_SPINE_MAX: usize = 8;
/// GPU racks are small: their nodes draw ten times the power of a storage node.
const GPU_NODES_PER_RACK_MAX: usize = 8;
const GPU_NODES_MIN: usize = 4;
/// A rack-spread group kept in one region needs more racks there than it has replicas per
/// partition (three): with exactly three, every rack must carry a third of the group, however
/// small the rack, and the capacities sized for a balanced fleet would not fit that.
const RACKS_PER_REGION_MIN: usize = 4;
/// Share of storage racks built from the larger machine type.
const LARGE_RACK_SHARE: f64 = 0.3;
/// Regions with fewer storage racks than this get one machine type: with three racks, a
/// rack-spread partition puts a replica in each, so every rack carries the same load and a
/// rack of smaller machines would run out first.
const MIXED_RACKS_MIN: usize = 6;

const REGION_NAMES: [&str; 8] = [
    "us-east",
    "eu-west",
    "ap-south",
    "us-west",
    "eu-central",
    "ap-northeast",
    "sa-east",
    "af-south",
];

pub struct RegionPlan {
    pub name: String,
    pub zones: Vec<usize>,
    pub feeds: Vec<usize>,
}

pub struct ZonePlan {
    pub name: String,
    pub spines: Vec<usize>,
}

pub struct SpinePlan {
    pub name: String,
    pub racks: Vec<usize>,
}

pub struct RackPlan {
    pub name: String,
    pub region: usize,
    pub class: NodeClass,
    pub nodes: Range<usize>,
}

pub struct NodePlan {
    pub name: String,
    pub class: NodeClass,
    pub rack: usize,
}

pub struct PduPlan {
    pub name: String,
    pub racks: Vec<usize>,
}

pub struct FeedPlan {
    pub name: String,
    pub pdus: Vec<usize>,
}

pub struct Layout {
    pub regions: Vec<RegionPlan>,
    pub zones: Vec<ZonePlan>,
    pub spines: Vec<SpinePlan>,
    pub racks: Vec<RackPlan>,
    pub nodes: Vec<NodePlan>,
    pub pdus: Vec<PduPlan>,
    pub feeds: Vec<FeedPlan>,
}

/// A rack before it has a name: its class, its size, and where it stands in its region.
struct DraftRack {
    class: NodeClass,
    size: usize,
    zone: usize,
}

impl Layout {
    pub fn build(spec: &GenSpec, rng: &mut ChaCha8Rng) -> Layout {
        let gpu_nodes = gpu_node_count(spec);
        let storage = split_by_region(spec.nodes - gpu_nodes, spec.regions, rng);
        let mut drafts: Vec<Vec<DraftRack>> = storage
            .iter()
            .map(|&n| storage_racks(n, spec.nodes_per_rack, rng))
            .collect();
        let mut gpu_racks = split_evenly(gpu_nodes, gpu_nodes.div_ceil(GPU_NODES_PER_RACK_MAX));
        gpu_racks.shuffle(rng);
        for (i, size) in gpu_racks.into_iter().enumerate() {
            drafts[i % spec.regions].push(DraftRack {
                class: NodeClass::Gpu,
                size,
                zone: 0,
            });
        }
        let mut layout = Layout {
            regions: Vec::new(),
            zones: Vec::new(),
            spines: Vec::new(),
            racks: Vec::new(),
            nodes: Vec::new(),
            pdus: Vec::new(),
            feeds: Vec::new(),
        };
        let widths = NameWidths::new(spec.nodes, drafts.iter().map(Vec::len).sum());
        for (region, racks) in drafts.iter_mut().enumerate() {
            layout.add_region(region, racks, &widths, rng);
        }
        for region in 0..layout.regions.len() {
            layout.add_power(region, rng);
        }
        debug_assert_eq!(layout.nodes.len(), spec.nodes);
        layout
    }

    pub fn nodes_in(&self, pool: Pool) -> impl Iterator<Item = usize> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.class.pool() == pool)
            .map(|(i, _)| i)
    }

    pub fn racks_in(&self, pool: Pool) -> usize {
        self.racks.iter().filter(|r| r.class.pool() == pool).count()
    }

    /// Zones, or PDUs, that hold at least one rack of `pool`.
    pub fn zones_with(&self, pool: Pool) -> usize {
        self.zones
            .iter()
            .filter(|z| {
                z.spines.iter().any(|&s| {
                    self.spines[s]
                        .racks
                        .iter()
                        .any(|&r| self.racks[r].class.pool() == pool)
                })
            })
            .count()
    }

    pub fn pdus_with(&self, pool: Pool) -> usize {
        self.pdus
            .iter()
            .filter(|p| p.racks.iter().any(|&r| self.racks[r].class.pool() == pool))
            .count()
    }

    fn add_region(
        &mut self,
        region: usize,
        racks: &mut [DraftRack],
        widths: &NameWidths,
        rng: &mut ChaCha8Rng,
    ) {
        let name = region_name(region);
        let storage_racks = racks
            .iter()
            .filter(|r| r.class.pool() == Pool::Storage)
            .count();
        let zone_count = rng.random_range(2..=3).min(storage_racks).max(1);
        // Both pools deal their racks round-robin over the zones (GPU racks from a random
        // zone), as operators spread capacity so that losing a zone leaves every pool some.
        let gpu_offset = rng.random_range(0..zone_count);
        let (mut storage_index, mut gpu_index) = (0, gpu_offset);
        for rack in racks.iter_mut() {
            let index = match rack.class.pool() {
                Pool::Storage => &mut storage_index,
                Pool::Gpu => &mut gpu_index,
            };
            rack.zone = *index % zone_count;
            *index += 1;
        }
        let mut zones = Vec::new();
        for zone in 0..zone_count {
            let zone_name = format!("{name}-{}", char::from(b'a' + zone as u8));
            let members: Vec<&DraftRack> = racks.iter().filter(|r| r.zone == zone).collect();
            let zone_id = self.zones.len();
            self.zones.push(ZonePlan {
                name: zone_name.clone(),
                spines: Vec::new(),
            });
            let spine_count = members.len().div_ceil(RACKS_PER_SPINE_MAX);
            let mut start = 0;
            for (spine, count) in split_evenly(members.len(), spine_count)
                .into_iter()
                .enumerate()
            {
                let spine_name = format!("{zone_name}-s{}", spine + 1);
                let rack_ids = members[start..start + count]
                    .iter()
                    .map(|draft| self.add_rack(region, draft, widths))
                    .collect();
                start += count;
                self.zones[zone_id].spines.push(self.spines.len());
                self.spines.push(SpinePlan {
                    name: spine_name,
                    racks: rack_ids,
                });
            }
            zones.push(zone_id);
        }
        self.regions.push(RegionPlan {
            name,
            zones,
            feeds: Vec::new(),
        });
    }

    fn add_rack(&mut self, region: usize, draft: &DraftRack, widths: &NameWidths) -> usize {
        let rack = self.racks.len();
        let prefix = if draft.class == NodeClass::Gpu {
            "g"
        } else {
            "r"
        };
        let name = format!("{prefix}{:0width$}", rack + 1, width = widths.rack);
        let first = self.nodes.len();
        for _ in 0..draft.size {
            let node_name = format!("n{:0width$}", self.nodes.len() + 1, width = widths.node);
            self.nodes.push(NodePlan {
                name: node_name,
                class: draft.class,
                rack,
            });
        }
        self.racks.push(RackPlan {
            name,
            region,
            class: draft.class,
            nodes: first..self.nodes.len(),
        });
        rack
    }

    /// PDUs take consecutive racks of one pool (adjacent racks share power); feeds take
    /// consecutive PDUs.
    fn add_power(&mut self, region: usize, rng: &mut ChaCha8Rng) {
        let region_name = self.regions[region].name.clone();
        let mut region_pdus = Vec::new();
        for pool in [Pool::Storage, Pool::Gpu] {
            let racks: Vec<usize> = (0..self.racks.len())
                .filter(|&r| self.racks[r].region == region && self.racks[r].class.pool() == pool)
                .collect();
            let sizes = match pool {
                Pool::Storage => 2..=4,
                Pool::Gpu => 1..=2,
            };
            for chunk in random_chunks(&racks, sizes, rng) {
                region_pdus.push(self.pdus.len());
                let name = format!("{region_name}-pdu{:02}", region_pdus.len());
                self.pdus.push(PduPlan { name, racks: chunk });
            }
        }
        for chunk in random_chunks(&region_pdus, 3..=6, rng) {
            self.regions[region].feeds.push(self.feeds.len());
            let name = format!("{region_name}-feed{}", self.regions[region].feeds.len());
            self.feeds.push(FeedPlan { name, pdus: chunk });
        }
    }
}

struct NameWidths {
    node: usize,
    rack: usize,
}

impl NameWidths {
    fn new(nodes: usize, racks: usize) -> NameWidths {
        NameWidths {
            node: digits(nodes).max(5),
            rack: digits(racks).max(4),
        }
    }
}

fn digits(value: usize) -> usize {
    value.max(1).ilog10() as usize + 1
}

pub fn region_name(region: usize) -> String {
    match REGION_NAMES.get(region) {
        Some(name) => name.to_string(),
        None => format!("region-{:02}", region + 1),
    }
}

/// GPU nodes come four at least: an ai group with two replicas per partition then always has
/// a choice of nodes for its second replica. Fewer than two means no GPU nodes (and no ai).
fn gpu_node_count(spec: &GenSpec) -> usize {
    let wanted = (spec.nodes as f64 * spec.gpu_fraction).round() as usize;
    let storage_min = super::spec::NODES_PER_REGION_MIN * spec.regions;
    match wanted {
        0 => 0,
        wanted => wanted
            .max(GPU_NODES_MIN)
            .min(spec.nodes.saturating_sub(storage_min)),
    }
}

/// Storage nodes per region: unequal (a fleet grows unevenly), each region at least
/// `RACKS_PER_REGION_MIN` nodes so it can form that many racks.
fn split_by_region(total: usize, regions: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let weights: Vec<f64> = (0..regions).map(|_| rng.random_range(0.75..1.25)).collect();
    let sum: f64 = weights.iter().sum();
    let mut counts: Vec<usize> = weights
        .iter()
        .map(|w| (total as f64 * w / sum).floor() as usize)
        .collect();
    let mut index = 0;
    while counts.iter().sum::<usize>() < total {
        counts[index % regions] += 1;
        index += 1;
    }
    for region in 0..regions {
        while counts[region] < RACKS_PER_REGION_MIN {
            let largest = (0..regions)
                .max_by_key(|&r| (counts[r], std::cmp::Reverse(r)))
                .unwrap_or(0);
            counts[largest] -= 1;
            counts[region] += 1;
        }
    }
    counts
}

fn storage_racks(nodes: usize, nodes_per_rack: usize, rng: &mut ChaCha8Rng) -> Vec<DraftRack> {
    let count = (nodes as f64 / nodes_per_rack as f64).round() as usize;
    let count = count.clamp(RACKS_PER_REGION_MIN.min(nodes), nodes.max(1));
    let large_share = if count < MIXED_RACKS_MIN {
        0.0
    } else {
        LARGE_RACK_SHARE
    };
    split_evenly(nodes, count)
        .into_iter()
        .map(|size| {
            let class = if rng.random_bool(large_share) {
                NodeClass::StorageLarge
            } else {
                NodeClass::Storage
            };
            DraftRack {
                class,
                size,
                zone: 0,
            }
        })
        .collect()
}

/// `total` split into `parts` sizes differing by at most one, larger first.
pub fn split_evenly(total: usize, parts: usize) -> Vec<usize> {
    if parts == 0 {
        return Vec::new();
    }
    (0..parts)
        .map(|i| total / parts + usize::from(i < total % parts))
        .collect()
}

/// `items` cut into consecutive chunks with sizes drawn from `sizes`.
fn random_chunks(
    items: &[usize],
    sizes: std::ops::RangeInclusive<usize>,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let size = rng.random_range(sizes.clone()).min(items.len() - start);
        chunks.push(items[start..start + size].to_vec());
        start += size;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn every_node_sits_in_one_rack_and_every_rack_in_one_pdu() {
        let spec = GenSpec::new(400, 1_000, 3);
        let layout = Layout::build(&spec, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(layout.nodes.len(), 400);
        let mut fed = vec![0; layout.racks.len()];
        for pdu in &layout.pdus {
            for &rack in &pdu.racks {
                fed[rack] += 1;
            }
        }
        assert!(fed.iter().all(|&count| count == 1));
        for region in 0..spec.regions {
            let racks = layout
                .racks
                .iter()
                .filter(|r| r.region == region && r.class.pool() == Pool::Storage)
                .count();
            assert!(racks >= RACKS_PER_REGION_MIN);
        }
        assert!(layout.nodes_in(Pool::Gpu).count() >= 2);
    }

    #[test]
    fn the_smallest_fleet_still_has_four_racks_per_region() {
        let mut spec = GenSpec::new(12, 100, 1);
        spec.regions = 2;
        let layout = Layout::build(&spec, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(layout.nodes.len(), 12);
        for region in 0..2 {
            assert!(
                layout
                    .racks
                    .iter()
                    .filter(|r| r.region == region && r.class.pool() == Pool::Storage)
                    .count()
                    >= RACKS_PER_REGION_MIN
            );
        }
    }
}
