//! Small random fleets for property tests, written as YAML so every test also goes through
//! the real parser and validator.

use std::fmt::Write;

#[derive(Debug, Clone)]
pub struct Shape {
    pub regions: usize,
    pub racks_per_region: usize,
    pub nodes_per_rack: usize,
    pub racks_per_pdu: usize,
    pub groups: Vec<GroupShape>,
    /// Scales every node's capacity; small values make instances tight or infeasible.
    pub capacity_scale: f64,
    pub pdu_power_w: f64,
    pub rack_net_mbps: f64,
    pub extra_node: bool,
}

#[derive(Debug, Clone)]
pub struct GroupShape {
    pub product: &'static str,
    pub partitions: u32,
    pub cpu: f64,
    pub net_mbps: f64,
    pub size_gib: f64,
    pub spread: &'static str,
    pub region: Option<usize>,
    pub anti_affinity_with_previous: bool,
}

pub fn fleet_yaml(shape: &Shape) -> String {
    let mut y = String::new();
    y.push_str(
        "name: prop\ntopology:\n  network:\n    levels: [region, rack, node]\n    domains:\n",
    );
    let mut racks = Vec::new();
    let mut nodes = Vec::new();
    for r in 0..shape.regions {
        writeln!(y, "      - name: reg{r}\n        children:").unwrap();
        for k in 0..shape.racks_per_region {
            let rack = format!("r{r}-{k}");
            let mut members: Vec<String> = (0..shape.nodes_per_rack)
                .map(|n| format!("n{r}-{k}-{n}"))
                .collect();
            if shape.extra_node && r == 0 && k == 0 {
                members.push("n-extra".to_string());
            }
            writeln!(
                y,
                "          - {{ name: {rack}, capacity: {{ net_mbps: {} }}, children: [{}] }}",
                shape.rack_net_mbps,
                members.join(", ")
            )
            .unwrap();
            nodes.extend(members);
            racks.push(rack);
        }
    }
    y.push_str("  power:\n    levels: [pdu, rack, node]\n    domains:\n");
    for (p, chunk) in racks.chunks(shape.racks_per_pdu.max(1)).enumerate() {
        writeln!(
            y,
            "      - {{ name: pdu{p}, capacity: {{ power_w: {} }}, children: [{}] }}",
            shape.pdu_power_w,
            chunk.join(", ")
        )
        .unwrap();
    }
    if shape.regions > 1 {
        y.push_str("  links:\n");
        for a in 0..shape.regions {
            for b in a + 1..shape.regions {
                writeln!(
                    y,
                    "    - {{ between: [reg{a}, reg{b}], latency_ms: {}, cost_per_gb: 0.02 }}",
                    20 * (b - a)
                )
                .unwrap();
            }
        }
    }
    let s = shape.capacity_scale;
    writeln!(y, "node_classes:\n  std:\n    capacity: {{ cpu: {}, mem_gib: {}, net_mbps: {}, power_w: {} }}", 32.0 * s, 256.0 * s, 10000.0 * s, 800.0 * s).unwrap();
    y.push_str("nodes:\n");
    for node in &nodes {
        writeln!(y, "  - {{ name: {node}, class: std }}").unwrap();
    }
    y.push_str("policies:\n  headroom: { rack.net_mbps: 0.1, node.*: 0.05 }\ngroups:\n");
    for (i, g) in shape.groups.iter().enumerate() {
        let (leader, other) = match g.product {
            "db" => ("Leader", "Follower"),
            "stream" => ("Leader", "Replica"),
            _ => ("Active", "Active"),
        };
        writeln!(
            y,
            "  - name: g{i}\n    product: {}\n    partitions: {}\n    size_gib: {}\n    spread: {}",
            g.product, g.partitions, g.size_gib, g.spread
        )
        .unwrap();
        writeln!(
            y,
            "    heat:\n      {leader}: {{ cpu: {}, mem_gib: 4, net_mbps: {}, power_w: {} }}",
            g.cpu,
            g.net_mbps,
            g.cpu * 10.0
        )
        .unwrap();
        if other != leader {
            writeln!(
                y,
                "      {other}: {{ cpu: {}, mem_gib: 4, net_mbps: {}, power_w: {} }}",
                g.cpu / 2.0,
                g.net_mbps / 2.0,
                g.cpu * 5.0
            )
            .unwrap();
        }
        if let Some(region) = g.region {
            writeln!(y, "    regions: [reg{}]", region % shape.regions).unwrap();
        }
        if g.anti_affinity_with_previous && i > 0 {
            writeln!(
                y,
                "    anti_affinity: [{{ group: g{}, level: node }}]",
                i - 1
            )
            .unwrap();
        }
        writeln!(y, "    access: {{ reg0: 1 }}").unwrap();
    }
    y
}

pub mod strategies {
    use super::*;
    use proptest::prelude::*;

    fn group() -> impl Strategy<Value = GroupShape> {
        (
            prop_oneof![Just("db"), Just("stream"), Just("ai")],
            1u32..12,
            0.5f64..4.0,
            10.0f64..600.0,
            1.0f64..200.0,
            prop_oneof![Just("node"), Just("rack"), Just("pdu")],
            proptest::option::of(0usize..3),
            proptest::bool::weighted(0.2),
        )
            .prop_map(
                |(product, partitions, cpu, net_mbps, size_gib, spread, region, anti)| GroupShape {
                    product,
                    partitions,
                    cpu,
                    net_mbps,
                    size_gib,
                    spread,
                    region,
                    anti_affinity_with_previous: anti,
                },
            )
    }

    pub fn shape() -> impl Strategy<Value = Shape> {
        (
            1usize..3,
            3usize..6,
            2usize..5,
            1usize..3,
            proptest::collection::vec(group(), 1..6),
            0.3f64..2.0,
            2000.0f64..20000.0,
            10000.0f64..60000.0,
        )
            .prop_map(
                |(
                    regions,
                    racks_per_region,
                    nodes_per_rack,
                    racks_per_pdu,
                    groups,
                    capacity_scale,
                    pdu_power_w,
                    rack_net_mbps,
                )| Shape {
                    regions,
                    racks_per_region,
                    nodes_per_rack,
                    racks_per_pdu,
                    groups,
                    capacity_scale,
                    pdu_power_w,
                    rack_net_mbps,
                    extra_node: false,
                },
            )
    }
}
