//! A fleet small enough to reason about by hand, shared by the unit tests: two regions
//! (us-east, ap-south, 12 hours apart in the tests' clocks), three racks on three PDUs, a GPU
//! rack, and one group of each kind of access.

use meridian_model::{Fleet, GroupId, NodeId, RegionId};

pub(crate) const TINY_FLEET: &str = "
name: tiny
topology:
  network:
    levels: [region, spine, rack, node]
    domains:
      - name: us-east
        children:
          - name: use-sp1
            capacity: { net_mbps: 100000 }
            children:
              - { name: r01, capacity: { net_mbps: 40000 }, children: [n01, n02, n03] }
              - { name: r02, capacity: { net_mbps: 40000 }, children: [n04, n05, n06] }
      - name: ap-south
        children:
          - name: aps-sp1
            children:
              - { name: r11, capacity: { net_mbps: 40000 }, children: [n11, n12, n13] }
              - { name: g11, children: [gpu1] }
  power:
    levels: [feed, pdu, rack, node]
    domains:
      - name: use-feed
        children:
          - { name: pdu-1, capacity: { power_w: 5000 }, children: [r01] }
          - { name: pdu-2, capacity: { power_w: 5000 }, children: [r02] }
      - name: aps-feed
        children:
          - { name: pdu-3, capacity: { power_w: 9000 }, children: [r11, g11] }
  links:
    - { between: [us-east, ap-south], latency_ms: 200, cost_per_gb: 0.05, net_mbps: 10000 }
node_classes:
  storage:
    capacity: { cpu: 32, mem_gib: 256, disk_gib: 8000, disk_iops: 200000, disk_mbps: 3000, net_mbps: 25000, power_w: 700 }
  gpu:
    capacity: { cpu: 64, mem_gib: 1024, disk_gib: 4000, disk_iops: 100000, disk_mbps: 4000, net_mbps: 100000, gpu_mem_gib: 640, power_w: 6000 }
    labels: { gpu: h100 }
nodes:
  - { name: n01, class: storage }
  - { name: n02, class: storage }
  - { name: n03, class: storage }
  - { name: n04, class: storage }
  - { name: n05, class: storage }
  - { name: n06, class: storage }
  - { name: n11, class: storage }
  - { name: n12, class: storage }
  - { name: n13, class: storage }
  - { name: gpu1, class: gpu }
groups:
  - name: orders-db
    product: db
    partitions: 2
    size_gib: 10
    heat:
      Leader: { cpu: 2, mem_gib: 4, disk_gib: 10, disk_iops: 500, net_mbps: 100, power_w: 20 }
      Follower: { cpu: 1, mem_gib: 4, disk_gib: 10, disk_iops: 200, net_mbps: 50, power_w: 10 }
    regions: [us-east]
    access: { us-east: 1.0 }
  - name: orders-archive
    product: db
    partitions: 1
    size_gib: 50
    heat:
      Leader: { cpu: 1, disk_gib: 50 }
      Follower: { cpu: 0.5, disk_gib: 50 }
    regions: [us-east]
  - name: clicks
    product: stream
    partitions: 2
    size_gib: 5
    heat:
      Leader: { cpu: 1, net_mbps: 200 }
      Replica: { cpu: 0.5, net_mbps: 100 }
    access: { us-east: 0.5, ap-south: 0.5 }
  - name: llm-chat
    product: ai
    partitions: 1
    counts: { Active: 1 }
    size_gib: 140
    heat:
      Active: { cpu: 8, mem_gib: 128, gpu_mem_gib: 80, net_mbps: 2000, power_w: 700 }
    selector: { gpu: h100 }
    regions: [ap-south]
  - name: profiles
    product: stream
    partitions: 1
    size_gib: 1
    heat:
      Leader: { cpu: 1 }
      Replica: { cpu: 0.5 }
";

pub(crate) fn tiny_fleet() -> Fleet {
    match Fleet::from_yaml(TINY_FLEET, "tiny.yaml") {
        Ok(fleet) => fleet,
        Err(problems) => panic!("the test fleet is invalid:\n{problems}"),
    }
}

pub(crate) fn group(fleet: &Fleet, name: &str) -> GroupId {
    fleet
        .group_by_name(name)
        .expect("a group of the test fleet")
}

pub(crate) fn node(fleet: &Fleet, name: &str) -> NodeId {
    fleet
        .topology
        .node_by_name(name)
        .expect("a node of the test fleet")
}

pub(crate) fn region(fleet: &Fleet, name: &str) -> RegionId {
    fleet
        .topology
        .region_by_name(name)
        .expect("a region of the test fleet")
}

pub(crate) const HOUR_S: f64 = 3_600.0;
pub(crate) const DAY_S: f64 = 86_400.0;

/// A test's YAML section, parsed or the test fails saying so.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
    match serde_yaml_ng::from_str(yaml) {
        Ok(spec) => spec,
        Err(error) => panic!("test spec does not parse: {error}"),
    }
}
