use meridian_model::Fleet;

#[test]
fn small_example_loads() {
    let text = include_str!("../../../examples/small.yaml");
    let fleet = Fleet::from_yaml(text, "examples/small.yaml").unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(fleet.topology.nodes.len(), 26);
    assert_eq!(fleet.topology.regions.len(), 2);
    assert_eq!(fleet.groups.len(), 4);
    let n01 = fleet.topology.node_by_name("n01").unwrap();
    let chain: Vec<&str> = fleet
        .topology
        .chain(n01)
        .iter()
        .map(|d| fleet.topology.domain(*d).name.as_str())
        .collect();
    assert_eq!(
        chain,
        [
            "n01",
            "r01",
            "use1-a-sp1",
            "use1-a",
            "us-east",
            "use1-pdu-1",
            "use1-feed-a"
        ]
    );
}
