//! The generated fleet as a fleet file: the model's spec types, assembled from the plans.

use std::collections::BTreeMap;

use meridian_model::spec::{
    AffinitySpec, AntiAffinitySpec, ChildSpec, DomainSpec, GroupSpec, LinkSpec, NodeClassSpec,
    NodeSpec, OneOrMany, PinSpec, PoliciesSpec, QuantitySpec, TopologySpec, TreeSpec,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::capacity::{
    Capacities, FEED_POWER_HEADROOM, NODE_HEADROOM, PDU_POWER_HEADROOM, RACK_NET_HEADROOM,
    SPINE_NET_HEADROOM,
};
use crate::classes::{quantity_spec, NodeClass};
use crate::layout::Layout;
use crate::workload::GroupPlan;

/// A whole fleet file. The model reads the sections one by one and has no such type; this one
/// mirrors the document's top-level keys, in the order they are written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetDocument {
    pub name: String,
    pub topology: TopologySpec,
    pub node_classes: BTreeMap<String, NodeClassSpec>,
    pub nodes: Vec<NodeSpec>,
    pub policies: PoliciesSpec,
    pub groups: Vec<GroupSpec>,
}

pub fn assemble(
    name: String,
    layout: &Layout,
    capacities: &Capacities,
    groups: &[GroupPlan],
    rng: &mut ChaCha8Rng,
) -> FleetDocument {
    FleetDocument {
        name,
        topology: TopologySpec {
            network: network_tree(layout, capacities),
            power: Some(power_tree(layout, capacities)),
            links: links(layout, rng),
            region_level: None,
            local_latency_ms: None,
        },
        node_classes: NodeClass::ALL
            .iter()
            .filter(|c| layout.nodes.iter().any(|n| n.class == **c))
            .map(|c| (c.name().to_string(), c.spec()))
            .collect(),
        nodes: layout
            .nodes
            .iter()
            .map(|n| NodeSpec {
                name: n.name.clone(),
                class: Some(n.class.name().to_string()),
                capacity: QuantitySpec::new(),
                labels: BTreeMap::new(),
                cost_per_gib_month: None,
            })
            .collect(),
        policies: policies(),
        groups: groups
            .iter()
            .map(|g| group_spec(g, groups, layout))
            .collect(),
    }
}

fn domain(name: &str, capacity: QuantitySpec, children: Vec<ChildSpec>) -> DomainSpec {
    DomainSpec {
        name: name.to_string(),
        capacity,
        children,
    }
}

fn one(dimension: &str, value: f64) -> QuantitySpec {
    QuantitySpec::from([(dimension.to_string(), value)])
}

fn network_tree(layout: &Layout, capacities: &Capacities) -> TreeSpec {
    let rack = |r: usize| {
        let plan = &layout.racks[r];
        let nodes = plan
            .nodes
            .clone()
            .map(|n| ChildSpec::Reference(layout.nodes[n].name.clone()))
            .collect();
        ChildSpec::Domain(domain(
            &plan.name,
            one("net_mbps", capacities.rack_net_mbps[r]),
            nodes,
        ))
    };
    let spine = |s: usize| {
        let plan = &layout.spines[s];
        ChildSpec::Domain(domain(
            &plan.name,
            one("net_mbps", capacities.spine_net_mbps[s]),
            plan.racks.iter().map(|&r| rack(r)).collect(),
        ))
    };
    let zone = |z: usize| {
        let plan = &layout.zones[z];
        ChildSpec::Domain(domain(
            &plan.name,
            QuantitySpec::new(),
            plan.spines.iter().map(|&s| spine(s)).collect(),
        ))
    };
    TreeSpec {
        levels: ["region", "zone", "spine", "rack", "node"]
            .map(String::from)
            .to_vec(),
        domains: layout
            .regions
            .iter()
            .map(|region| {
                domain(
                    &region.name,
                    QuantitySpec::new(),
                    region.zones.iter().map(|&z| zone(z)).collect(),
                )
            })
            .collect(),
    }
}

fn power_tree(layout: &Layout, capacities: &Capacities) -> TreeSpec {
    let pdu = |p: usize| {
        let plan = &layout.pdus[p];
        let racks = plan
            .racks
            .iter()
            .map(|&r| ChildSpec::Reference(layout.racks[r].name.clone()))
            .collect();
        ChildSpec::Domain(domain(
            &plan.name,
            one("power_w", capacities.pdu_power_w[p]),
            racks,
        ))
    };
    let feeds = layout.feeds.iter().enumerate().map(|(f, plan)| {
        domain(
            &plan.name,
            one("power_w", capacities.feed_power_w[f]),
            plan.pdus.iter().map(|&p| pdu(p)).collect(),
        )
    });
    TreeSpec {
        levels: ["feed", "pdu", "rack", "node"].map(String::from).to_vec(),
        domains: feeds.collect(),
    }
}

/// Every pair of regions is linked; latency and price grow together, as they do with distance.
fn links(layout: &Layout, rng: &mut ChaCha8Rng) -> Vec<LinkSpec> {
    let mut links = Vec::new();
    for a in 0..layout.regions.len() {
        for b in a + 1..layout.regions.len() {
            let latency_ms: f64 = rng.random_range(15.0..160.0_f64).round();
            let cost_per_gb = ((0.01 + latency_ms / 4_000.0) * 1_000.0).round() / 1_000.0;
            let between = [
                layout.regions[a].name.clone(),
                layout.regions[b].name.clone(),
            ];
            links.push(LinkSpec {
                between,
                latency_ms,
                cost_per_gb,
                net_mbps: Some(200_000.0),
            });
        }
    }
    links
}

fn policies() -> PoliciesSpec {
    let headroom = [
        ("rack.net_mbps", RACK_NET_HEADROOM),
        ("spine.net_mbps", SPINE_NET_HEADROOM),
        ("pdu.power_w", PDU_POWER_HEADROOM),
        ("feed.power_w", FEED_POWER_HEADROOM),
        ("node.*", NODE_HEADROOM),
    ];
    PoliciesSpec {
        headroom: headroom
            .iter()
            .map(|(key, value)| (key.to_string(), *value))
            .collect(),
    }
}

fn group_spec(group: &GroupPlan, groups: &[GroupPlan], layout: &Layout) -> GroupSpec {
    let states = group.product.states();
    let region_name = |r: usize| layout.regions[r].name.clone();
    let counts = group.counts_overridden().then(|| {
        states
            .iter()
            .zip(&group.counts)
            .map(|((state, _), count)| (state.state.to_string(), *count))
            .collect()
    });
    let spread = match group.spread.as_slice() {
        [] => None,
        [one] => Some(OneOrMany::One(one.to_string())),
        many => Some(OneOrMany::Many(
            many.iter().map(|s| s.to_string()).collect(),
        )),
    };
    GroupSpec {
        name: group.name.clone(),
        product: group.product.name().to_string(),
        partitions: group.partitions,
        counts,
        size_gib: group.size_gib,
        heat: states
            .iter()
            .enumerate()
            .filter(|(i, _)| group.counts[*i] > 0)
            .map(|(i, (state, _))| (state.state.to_string(), quantity_spec(&group.heat(i))))
            .collect(),
        spread,
        regions: group.region.map(|r| vec![region_name(r)]),
        selector: group
            .selector
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        affinity: group
            .affinity
            .iter()
            .map(|(g, level)| AffinitySpec {
                group: groups[*g].name.clone(),
                level: level.to_string(),
            })
            .collect(),
        anti_affinity: group
            .anti_affinity
            .iter()
            .map(|(g, level)| AntiAffinitySpec {
                group: groups[*g].name.clone(),
                level: level.to_string(),
            })
            .collect(),
        pins: group
            .pins
            .iter()
            .map(|p| PinSpec {
                partition: p.partition,
                node: layout.nodes[p.node].name.clone(),
                state: p.state.map(str::to_string),
            })
            .collect(),
        access: group
            .access
            .iter()
            .map(|(r, share)| (region_name(*r), *share))
            .collect(),
        reads_gib_per_month: group.reads_gib_per_month(),
        transition_heat: Default::default(),
    }
}
