//! Every kind of mistake in a fleet file is reported with the right path, the right line and
//! a message that says what to change; and all mistakes of a file are reported at once.
//!
//! Each case starts from one valid fleet, makes one edit, and names the problem it expects:
//! the document path, the text on the line the problem must point to, and words the message
//! must contain.

use meridian_model::{Fleet, Problem};

const BASE: &str = "\
name: base
topology:
  network:
    levels: [region, zone, rack, node]
    domains:
      - name: east
        children:
          - name: east-a
            children:
              - { name: r1, capacity: { net_mbps: 40000 }, children: [n1, n2] }
              - { name: r2, capacity: { net_mbps: 40000 }, children: [n3, n4] }
              - { name: r3, capacity: { net_mbps: 40000 }, children: [n5, n6] }
      - name: west
        children:
          - name: west-a
            children:
              - { name: r4, children: [n7, n8] }
  power:
    levels: [pdu, rack, node]
    domains:
      - { name: p1, capacity: { power_w: 9000 }, children: [r1, r2] }
      - { name: p2, capacity: { power_w: 9000 }, children: [r3, r4] }
  links:
    - { between: [east, west], latency_ms: 70, cost_per_gb: 0.02 }
node_classes:
  storage:
    capacity: { cpu: 32, mem_gib: 256, disk_gib: 8000, net_mbps: 25000, power_w: 700 }
    labels: { disk: nvme }
nodes:
  - { name: n1, class: storage }
  - { name: n2, class: storage }
  - { name: n3, class: storage }
  - { name: n4, class: storage }
  - { name: n5, class: storage }
  - { name: n6, class: storage }
  - { name: n7, class: storage }
  - { name: n8, class: storage }
policies:
  headroom:
    rack.net_mbps: 0.1
products:
  cache:
    states: [Offline, Serving]
    transitions: [Offline>Serving, Serving>Offline]
    counts: { Serving: 2 }
groups:
  - name: orders
    product: db
    partitions: 8
    size_gib: 10
    heat:
      Leader: { cpu: 2, mem_gib: 8 }
      Follower: { cpu: 1, mem_gib: 8 }
    spread: rack
    access: { east: 1.0 }
  - name: chat
    product: ai
    partitions: 2
    counts: { Active: 1 }
    heat:
      Active: { cpu: 4 }
    pins: [{ partition: 0, node: n1 }]
";

/// `BASE` with the first `from` replaced by `to`.
fn edited(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from:?} is not in the base document");
    BASE.replacen(from, to, 1)
}

fn problems(text: &str) -> Vec<Problem> {
    match Fleet::from_yaml(text, "fleet.yaml") {
        Ok(_) => panic!("the fleet was accepted:\n{text}"),
        Err(problems) => problems.0,
    }
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} is not in the text"))
        + 1
}

/// Asserts a problem at `path`, on the line holding `line_text`, whose message has `words`.
fn expect(text: &str, path: &str, line_text: &str, words: &[&str]) {
    let found = problems(text);
    let line = line_of(text, line_text);
    let matching = found.iter().find(|p| p.path == path);
    let Some(problem) = matching else {
        panic!("no problem at `{path}`; found:\n{}", listing(&found))
    };
    assert_eq!(
        problem.line,
        Some(line),
        "wrong line for `{path}`: {problem}"
    );
    assert_eq!(problem.file, "fleet.yaml");
    for word in words {
        assert!(
            problem.message.contains(word),
            "message of `{path}` lacks {word:?}: {problem}"
        );
    }
}

fn listing(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}\n")).collect()
}

#[test]
fn the_base_document_is_valid() {
    let fleet = Fleet::from_yaml(BASE, "fleet.yaml").unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(fleet.topology.nodes.len(), 8);
}

#[test]
fn yaml_syntax_error_names_its_line() {
    let text = edited("    size_gib: 10\n", "    size_gib: 10: 20\n");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{}", listing(&found));
    assert_eq!(found[0].line, Some(line_of(&text, "size_gib: 10: 20")));
    assert!(found[0].message.contains("not valid YAML"), "{}", found[0]);
}

#[test]
fn unknown_top_level_section() {
    let text = edited("policies:\n", "nodez: []\npolicies:\n");
    expect(
        &text,
        "nodez",
        "nodez:",
        &["unknown section `nodez`", "nodes"],
    );
}

#[test]
fn unknown_field_points_at_the_typo() {
    let text = edited("    partitions: 8\n", "    partitons: 8\n");
    expect(
        &text,
        "groups[0].partitons",
        "partitons: 8",
        &["unknown field `partitons`", "partitions"],
    );
}

#[test]
fn unknown_level_in_spread() {
    let text = edited("    spread: rack\n", "    spread: rak\n");
    expect(
        &text,
        "groups[0].spread[0]",
        "spread: rak",
        &["unknown level `rak`", "rack"],
    );
}

#[test]
fn spread_needing_more_domains_than_exist() {
    let text = edited("    spread: rack\n", "    spread: zone\n");
    expect(
        &text,
        "groups[0].spread",
        "spread: zone",
        &["3 distinct zones", "only 2"],
    );
}

#[test]
fn negative_capacity() {
    let text = edited(
        "{ name: r1, capacity: { net_mbps: 40000 }",
        "{ name: r1, capacity: { net_mbps: -5 }",
    );
    expect(
        &text,
        "topology.network.domains[0].children[0].children[0].capacity.net_mbps",
        "name: r1,",
        &["negative capacity -5"],
    );
}

#[test]
fn negative_class_capacity_is_reported_once_not_once_per_node() {
    let text = edited("capacity: { cpu: 32,", "capacity: { cpu: -32,");
    let found = problems(&text);
    let about_cpu: Vec<&Problem> = found
        .iter()
        .filter(|p| p.path == "node_classes.storage.capacity.cpu")
        .collect();
    assert_eq!(about_cpu.len(), 1, "{}", listing(&found));
    assert_eq!(about_cpu[0].line, Some(line_of(&text, "cpu: -32")));
}

#[test]
fn unknown_dimension() {
    let text = edited(
        "      Leader: { cpu: 2, mem_gib: 8 }\n",
        "      Leader: { cpu: 2, memory: 8 }\n",
    );
    expect(
        &text,
        "groups[0].heat.Leader.memory",
        "memory: 8",
        &["unknown dimension `memory`", "mem_gib", "dimensions.extra"],
    );
}

#[test]
fn unknown_region_in_access_and_in_residency() {
    let text = edited(
        "    access: { east: 1.0 }\n",
        "    regions: [esat]\n    access: { esat: 1.0 }\n",
    );
    expect(
        &text,
        "groups[0].access.esat",
        "access: { esat",
        &["unknown region `esat`"],
    );
    expect(
        &text,
        "groups[0].regions[0]",
        "regions: [esat]",
        &["unknown region `esat`"],
    );
}

#[test]
fn unknown_node_referenced_in_a_rack() {
    let text = edited("children: [n1, n2]", "children: [n1, n9]");
    expect(
        &text,
        "topology.network.domains[0].children[0].children[0].children[1]",
        "n9",
        &["node `n9` is not defined under `nodes:`"],
    );
}

#[test]
fn node_defined_but_not_placed() {
    let text = edited(
        "  - { name: n8, class: storage }\n",
        "  - { name: n8, class: storage }\n  - { name: n10, class: storage }\n",
    );
    expect(
        &text,
        "nodes[8]",
        "name: n10",
        &["node `n10` is not placed"],
    );
}

#[test]
fn rack_not_fed_by_any_pdu() {
    let text = edited("children: [r3, r4]", "children: [r3]");
    expect(
        &text,
        "topology.network.domains[1].children[0].children[0]",
        "name: r4",
        &["rack `r4` is not fed by any pdu"],
    );
}

#[test]
fn power_tree_levels_that_do_not_join_the_network() {
    let text = edited(
        "    levels: [pdu, rack, node]\n",
        "    levels: [pdu, cabinet]\n",
    );
    expect(
        &text,
        "topology.power.levels",
        "levels: [pdu, cabinet]",
        &["must end in levels of the network tree"],
    );
}

#[test]
fn impossible_state_count() {
    let text = edited(
        "    partitions: 8\n",
        "    partitions: 8\n    counts: { Leader: 2, Follower: 1 }\n",
    );
    expect(
        &text,
        "groups[0].counts.Leader",
        "counts: { Leader: 2",
        &["at most one `Leader`", "not 2"],
    );
}

#[test]
fn huge_counts_are_a_problem_not_a_crash() {
    let text = edited(
        "    counts: { Serving: 2 }\n",
        "    counts: { Serving: 4294967295 }\n",
    );
    expect(
        &text,
        "products.cache.counts.Serving",
        "Serving: 4294967295",
        &["replicas per partition"],
    );
    let text = edited(
        "    counts: { Active: 1 }\n",
        "    counts: { Active: 4294967295, Offline: 4294967295 }\n",
    );
    assert!(!problems(&text).is_empty());
}

#[test]
fn min_serving_above_the_count() {
    let text = edited(
        "    counts: { Serving: 2 }\n",
        "    counts: { Serving: 2 }\n    min_serving: 3\n",
    );
    expect(
        &text,
        "products.cache.min_serving",
        "min_serving: 3",
        &["min_serving 3", "2 replicas"],
    );
}

#[test]
fn missing_heat_for_a_counted_state() {
    let text = edited("      Follower: { cpu: 1, mem_gib: 8 }\n", "");
    expect(
        &text,
        "groups[0].heat",
        "    heat:",
        &["no heat given for state `Follower`", "2 replica(s)"],
    );
}

#[test]
fn selector_that_no_node_matches() {
    let text = edited(
        "    counts: { Active: 1 }\n",
        "    counts: { Active: 1 }\n    selector: { gpu: h100 }\n",
    );
    expect(
        &text,
        "groups[1].selector",
        "selector: { gpu: h100 }",
        &["no node satisfies", "gpu=h100"],
    );
}

#[test]
fn pin_to_an_unknown_node() {
    let text = edited("node: n1 }]", "node: n99 }]");
    expect(
        &text,
        "groups[1].pins[0].node",
        "n99",
        &["unknown node `n99`"],
    );
}

#[test]
fn duplicate_domain_names() {
    let text = edited("{ name: r2,", "{ name: r1,");
    expect(
        &text,
        "topology.network.domains[0].children[0].children[1].name",
        "{ name: r1, capacity: { net_mbps: 40000 }, children: [n3",
        &["`r1`", "unique"],
    );
}

#[test]
fn missing_link_between_regions() {
    let text = edited(
        "    - { between: [east, west], latency_ms: 70, cost_per_gb: 0.02 }\n",
        "",
    );
    let text = text.replacen("  links:\n", "", 1);
    expect(
        &text,
        "topology.links",
        "topology:",
        &["`east` and `west` have no link", "latency_ms"],
    );
}

#[test]
fn headroom_out_of_range() {
    let text = edited("    rack.net_mbps: 0.1\n", "    rack.net_mbps: 1.5\n");
    expect(
        &text,
        "policies.headroom.rack.net_mbps",
        "rack.net_mbps: 1.5",
        &["[0, 1)", "1.5"],
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let mut text = BASE.to_string();
    let edits = [
        ("policies:\n", "nodez: []\npolicies:\n"),
        ("    partitions: 8\n", "    partitons: 8\n"),
        ("      Active: { cpu: 4 }\n", "      Active: { cpus: 4 }\n"),
        ("node: n1 }]", "node: n99 }]"),
        ("    rack.net_mbps: 0.1\n", "    rack.net_mbps: 1.5\n"),
        (
            "    counts: { Serving: 2 }\n",
            "    counts: { Serving: 2 }\n    min_serving: 3\n",
        ),
    ];
    for (from, to) in edits {
        assert!(text.contains(from), "{from:?}");
        text = text.replacen(from, to, 1);
    }
    let found = problems(&text);
    let expected = [
        ("nodez", "nodez:"),
        ("groups[0].partitons", "partitons: 8"),
        ("groups[1].heat.Active.cpus", "cpus: 4"),
        ("groups[1].pins[0].node", "n99"),
        ("policies.headroom.rack.net_mbps", "rack.net_mbps: 1.5"),
        ("products.cache.min_serving", "min_serving: 3"),
    ];
    for (path, line_text) in expected {
        let problem = found
            .iter()
            .find(|p| p.path == path)
            .unwrap_or_else(|| panic!("nothing at `{path}` in:\n{}", listing(&found)));
        assert_eq!(problem.line, Some(line_of(&text, line_text)), "{problem}");
    }
    assert!(found.len() >= expected.len(), "{}", listing(&found));
}

#[test]
fn a_broken_entry_does_not_shift_the_paths_of_later_entries() {
    let text = edited(
        "  - { name: n1, class: storage }\n",
        "  - { name: n1, class: storage, colour: red }\n",
    );
    let text = text.replacen(
        "  - { name: n8, class: storage }\n",
        "  - { name: n8, class: storage }\n  - { name: n10, class: storage }\n",
        1,
    );
    expect(
        &text,
        "nodes[0].colour",
        "colour: red",
        &["unknown field `colour`"],
    );
    expect(&text, "nodes[8]", "name: n10", &["not placed"]);
}

#[test]
fn a_section_name_that_is_not_a_string_still_has_its_line() {
    let text = edited("policies:\n", "0: zero\n~: nothing\npolicies:\n");
    expect(&text, "0", "0: zero", &["unknown section `0`"]);
    expect(&text, "null", "~: nothing", &["unknown section `null`"]);
}

#[test]
fn leniently_read_yaml_says_why_later_lines_are_missing() {
    // libyaml reads a flow mapping continued on a less indented line; the strict line indexer
    // stops there, so problems below it cannot be located. The file says so, and where.
    let text = edited("children: [r1, r2]", "children: [r1,\nr2]");
    let text = text.replacen(
        "      Active: { cpu: 4 }\n",
        "      Active: { cpus: 4 }\n",
        1,
    );
    let found = problems(&text);
    let note = found
        .iter()
        .find(|p| p.message.contains("cannot be given line numbers"));
    let Some(note) = note else {
        panic!("no note in:\n{}", listing(&found))
    };
    assert_eq!(note.line, Some(line_of(&text, "r2]")), "{note}");
    assert!(
        found.iter().any(|p| p.path == "groups[1].heat.Active.cpus"),
        "{}",
        listing(&found)
    );
}

#[test]
fn transition_heat_names_a_transition_the_product_has() {
    let text = edited(
        "    spread: rack\n",
        "    spread: rack\n    transition_heat:\n      Leader>Offline: { seconds: 30, heat: { net_mbps: 100 } }\n",
    );
    expect(
        &text,
        "groups[0].transition_heat.Leader>Offline",
        "Leader>Offline:",
        &["no transition `Leader>Offline`"],
    );
}

#[test]
fn transition_heat_needs_a_positive_duration_and_known_dimensions() {
    let text = edited(
        "    spread: rack\n",
        "    spread: rack\n    transition_heat:\n      Follower>Leader: { seconds: -5, heat: { net_mbps: 100 } }\n",
    );
    expect(
        &text,
        "groups[0].transition_heat.Follower>Leader.seconds",
        "Follower>Leader:",
        &["seconds must be a finite number > 0"],
    );
    let text = edited(
        "    spread: rack\n",
        "    spread: rack\n    transition_heat:\n      Follower>Leader: { seconds: 5, heat: { net_mpbs: 100 } }\n",
    );
    let found = problems(&text);
    assert!(
        found.iter().any(|p| p
            .path
            .starts_with("groups[0].transition_heat.Follower>Leader.heat")),
        "{}",
        listing(&found)
    );
}
