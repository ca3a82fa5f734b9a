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
    /// The dimensions a copy loads (`net_mbps` on the domains it crosses, `disk_mbps` at both
    /// ends), looked up by name once: every attempt to start a copy needs them.
    net_mbps: Option<usize>,
    disk_mbps: Option<usize>,
}

impl Resources {
    pub fn new(fleet: &Fleet) -> Resources {
        Resources {
            dims: fleet.dims_count(),
            domains: fleet.topology.domains.len(),
            regions: fleet.topology.regions.len(),
            net_mbps: fleet.dims.get("net_mbps").map(|d| d.index()),
            disk_mbps: fleet.dims.get("disk_mbps").map(|d| d.index()),
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

    /// The index of `resource` (the inverse of [`Resources::resource`]).
    pub fn index(&self, resource: crate::plan::Resource) -> usize {
        match resource {
            crate::plan::Resource::Domain { domain, dim } => self.domain(domain, dim),
            crate::plan::Resource::Link { from, to } => self.link(from.index(), to.index()),
        }
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

impl Route {
    fn sides(&self, fleet: &Fleet, source: NodeId, target: NodeId) -> Sides<'_> {
        let topology = &fleet.topology;
        Sides {
            source_side: &self.source_side,
            target_side: &self.target_side,
            cross_region: self.cross_region,
            ends: (topology.node_domain(source), topology.node_domain(target)),
        }
    }
}

/// A route borrowed from the cached ancestor lists: what `per_rate_on` reads of a `Route`,
/// without the two vectors building one allocates.
#[derive(Debug, Clone, Copy)]
struct Sides<'a> {
    source_side: &'a [DomainId],
    target_side: &'a [DomainId],
    cross_region: Option<(usize, usize)>,
    /// The domains of the source and target nodes (their disks carry the copy).
    ends: (DomainId, DomainId),
}

/// Every node's network ancestors, computed once per plan: routes are asked for on every
/// attempt to start a copy. Stored end to end in one vector (node `n`'s from `offsets[n]` to
/// `offsets[n + 1]`), so reading a node's costs one lookup, not two.
pub struct Network {
    ancestors: Vec<DomainId>,
    offsets: Vec<usize>,
}

impl Network {
    pub fn new(fleet: &Fleet) -> Network {
        let mut ancestors = Vec::new();
        let mut offsets = vec![0];
        for node in fleet.topology.node_ids() {
            ancestors.extend(network_ancestors(fleet, node));
            offsets.push(ancestors.len());
        }
        Network { ancestors, offsets }
    }

    fn ancestors(&self, node: NodeId) -> &[DomainId] {
        &self.ancestors[self.offsets[node.index()]..self.offsets[node.index() + 1]]
    }

    pub fn route(&self, fleet: &Fleet, source: NodeId, target: NodeId) -> Route {
        let sides = self.sides(fleet, source, target);
        Route {
            source_side: sides.source_side.to_vec(),
            target_side: sides.target_side.to_vec(),
            shared_levels: self.shared_levels(source, target),
            cross_region: sides.cross_region,
        }
    }

    /// `per_rate_on` of the route between two nodes, read straight off the cached ancestors:
    /// the scheduler asks this for every source of every copy it tries to start.
    pub fn per_rate(
        &self,
        fleet: &Fleet,
        resources: &Resources,
        source: NodeId,
        target: NodeId,
    ) -> Vec<(usize, f64)> {
        per_rate_along(resources, self.sides(fleet, source, target))
    }

    /// The network domains a copy crosses on the target's side, without building the route.
    pub fn target_side(&self, source: NodeId, target: NodeId) -> &[DomainId] {
        let (a, b) = (self.ancestors(source), self.ancestors(target));
        &b[..b.len() - shared_suffix(a, b)]
    }

    /// How many levels two nodes share (higher is closer), without building the route.
    pub fn shared_levels(&self, a: NodeId, b: NodeId) -> usize {
        shared_suffix(self.ancestors(a), self.ancestors(b))
    }

    fn sides(&self, fleet: &Fleet, source: NodeId, target: NodeId) -> Sides<'_> {
        let (a, b) = (self.ancestors(source), self.ancestors(target));
        let shared = shared_suffix(a, b);
        let topology = &fleet.topology;
        let (ra, rb) = (topology.region_of(source), topology.region_of(target));
        Sides {
            source_side: &a[..a.len() - shared],
            target_side: &b[..b.len() - shared],
            cross_region: (ra != rb).then_some((ra.index(), rb.index())),
            // A node's ancestors start at its own domain: read from there, not from the
            // fleet's nodes, which are far apart in memory.
            ends: (a[0], b[0]),
        }
    }
}

/// How many domains two root-last ancestor lists share, walking down from the roots while
/// both sides agree.
fn shared_suffix(a: &[DomainId], b: &[DomainId]) -> usize {
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
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
    per_rate_along(resources, route.sides(fleet, source, target))
}

fn per_rate_along(resources: &Resources, route: Sides<'_>) -> Vec<(usize, f64)> {
    // Every domain crossed, the link and both disks: sized once, never grown.
    let most = route.source_side.len() + route.target_side.len() + 3;
    let mut loads: Vec<(usize, f64)> = Vec::with_capacity(most);
    let mut add = |index: usize, amount: f64| match loads.iter_mut().find(|(i, _)| *i == index) {
        Some(entry) => entry.1 += amount,
        None => loads.push((index, amount)),
    };
    if let Some(net) = resources.net_mbps {
        for &domain in route.source_side.iter().chain(route.target_side) {
            add(resources.domain(domain, net), BITS_PER_BYTE);
        }
        if let Some((from, to)) = route.cross_region {
            add(resources.link(from, to), BITS_PER_BYTE);
        }
    } else if let Some((from, to)) = route.cross_region {
        add(resources.link(from, to), BITS_PER_BYTE);
    }
    if let Some(disk) = resources.disk_mbps {
        add(resources.domain(route.ends.0, disk), 1.0);
        add(resources.domain(route.ends.1, disk), 1.0);
    }
    loads.sort_by_key(|(i, _)| *i);
    loads
}
