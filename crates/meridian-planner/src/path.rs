//! Where a copy's bytes go: up the network tree from the source to the lowest domain both
//! ends share, across a region link if they are in different regions, and down to the target.
//! Every domain on the way (below the shared one) carries the copy in `net_mbps`; both ends'
//! disks carry it in `disk_mbps`.

use meridian_model::{DomainId, Fleet, NodeId};

/// Megabits per megabyte: `net_mbps` is in Mb/s, copy rates and `disk_mbps` in MB/s.
pub const BITS_PER_BYTE: f64 = 8.0;

/// Bytes per MB: copy rates are MB/s.
pub const BYTES_PER_MB: f64 = 1e6;

/// Dense indices of every resource the planner books: each dimension of each domain, then each
/// direction of each region link.
#[derive(Debug, Clone, Copy)]
pub struct Resources {
    pub dims: usize,
    pub domains: usize,
    pub regions: usize,
}

impl Resources {
    pub fn new(fleet: &Fleet) -> Resources {
        Resources {
            dims: fleet.dims_count(),
            domains: fleet.topology.domains.len(),
            regions: fleet.topology.regions.len(),
        }
    }

    pub fn count(&self) -> usize {
        self.domains * self.dims + self.regions * self.regions
    }

    pub fn domain(&self, domain: DomainId, dim: usize) -> usize {
        domain.index() * self.dims + dim
    }

    pub fn link(&self, from: usize, to: usize) -> usize {
        self.domains * self.dims + from * self.regions + to
    }

    pub fn resource(&self, index: usize) -> crate::plan::Resource {
        use crate::plan::Resource;
        let domain_cells = self.domains * self.dims;
        if index < domain_cells {
            Resource::Domain {
                domain: DomainId((index / self.dims) as u32),
                dim: index % self.dims,
            }
        } else {
            let link = index - domain_cells;
            Resource::Link {
                from: meridian_model::RegionId((link / self.regions) as u16),
                to: meridian_model::RegionId((link % self.regions) as u16),
            }
        }
    }
}

/// A node's network domains from itself up to its root.
fn network_ancestors(fleet: &Fleet, node: NodeId) -> Vec<DomainId> {
    let topology = &fleet.topology;
    let mut up = Vec::new();
    let mut cursor = Some(topology.node_domain(node));
    while let Some(domain) = cursor {
        up.push(domain);
        cursor = topology.domain(domain).network_parent;
    }
    up
}

/// The route of a copy: the network domains it crosses on each side, and how close the ends
/// are (how many levels they share; higher is closer).
#[derive(Debug, Clone)]
pub struct Route {
    pub source_side: Vec<DomainId>,
    pub target_side: Vec<DomainId>,
    pub shared_levels: usize,
    pub cross_region: Option<(usize, usize)>,
}

/// Every node's network ancestors, computed once per plan: routes are asked for on every
/// attempt to start a copy.
pub struct Network {
    ancestors: Vec<Vec<DomainId>>,
}

impl Network {
    pub fn new(fleet: &Fleet) -> Network {
        Network {
            ancestors: fleet
                .topology
                .node_ids()
                .map(|n| network_ancestors(fleet, n))
                .collect(),
        }
    }

    pub fn route(&self, fleet: &Fleet, source: NodeId, target: NodeId) -> Route {
        route_between(
            fleet,
            source,
            target,
            &self.ancestors[source.index()],
            &self.ancestors[target.index()],
        )
    }

    /// How many levels two nodes share (higher is closer), without building the route.
    pub fn shared_levels(&self, a: NodeId, b: NodeId) -> usize {
        let (a, b) = (&self.ancestors[a.index()], &self.ancestors[b.index()]);
        a.iter()
            .rev()
            .zip(b.iter().rev())
            .take_while(|(x, y)| x == y)
            .count()
    }
}

fn route_between(
    fleet: &Fleet,
    source: NodeId,
    target: NodeId,
    a: &[DomainId],
    b: &[DomainId],
) -> Route {
    // Walk down from the roots while both sides agree.
    let mut shared = 0;
    while shared < a.len() && shared < b.len() && a[a.len() - 1 - shared] == b[b.len() - 1 - shared]
    {
        shared += 1;
    }
    let topology = &fleet.topology;
    let (ra, rb) = (topology.region_of(source), topology.region_of(target));
    Route {
        source_side: a[..a.len() - shared].to_vec(),
        target_side: b[..b.len() - shared].to_vec(),
        shared_levels: shared,
        cross_region: (ra != rb).then_some((ra.index(), rb.index())),
    }
}

/// What one MB/s of a copy along `route` costs each resource it touches, merged per
/// resource.
pub fn per_rate_on(
    fleet: &Fleet,
    resources: &Resources,
    source: NodeId,
    target: NodeId,
    route: &Route,
) -> Vec<(usize, f64)> {
    let topology = &fleet.topology;
    let mut loads: Vec<(usize, f64)> = Vec::new();
    let mut add = |index: usize, amount: f64| match loads.iter_mut().find(|(i, _)| *i == index) {
        Some(entry) => entry.1 += amount,
        None => loads.push((index, amount)),
    };
    if let Some(net) = fleet.dims.get("net_mbps").map(|d| d.index()) {
        for &domain in route.source_side.iter().chain(&route.target_side) {
            add(resources.domain(domain, net), BITS_PER_BYTE);
        }
        if let Some((from, to)) = route.cross_region {
            add(resources.link(from, to), BITS_PER_BYTE);
        }
    } else if let Some((from, to)) = route.cross_region {
        add(resources.link(from, to), BITS_PER_BYTE);
    }
    if let Some(disk) = fleet.dims.get("disk_mbps").map(|d| d.index()) {
        add(resources.domain(topology.node_domain(source), disk), 1.0);
        add(resources.domain(topology.node_domain(target), disk), 1.0);
    }
    loads.sort_by_key(|(i, _)| *i);
    loads
}
