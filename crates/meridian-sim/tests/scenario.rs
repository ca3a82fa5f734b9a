//! Scenario files with mistakes come back as one readable line naming file, line and field.

use meridian_sim::scenario::Scenario;

fn error(text: &str) -> String {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bad.yaml");
    match Scenario::from_yaml(text, file) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const GOOD_HEAD: &str = "name: t\nfleet: ../../../examples/small.yaml\nduration: 2h\n";

#[test]
fn an_unknown_strategy_is_named_with_its_line() {
    let e = error(&format!("{GOOD_HEAD}strategies: [unified, silo]\n"));
    assert!(e.contains("bad.yaml:4: strategies[1]"), "{e}");
    assert!(e.contains("unknown strategy `silo`"), "{e}");
}

#[test]
fn fleet_and_gen_are_one_or_the_other() {
    let e = error("name: t\nduration: 2h\n");
    assert!(e.contains("give `fleet: FILE` or `gen"), "{e}");
    let both = error(&format!("{GOOD_HEAD}gen: {{ nodes: 10, replicas: 100 }}\n"));
    assert!(both.contains("not both"), "{both}");
}

#[test]
fn a_missing_fleet_file_says_which() {
    let e = error("name: t\nfleet: nowhere.yaml\nduration: 1h\n");
    assert!(
        e.contains("bad.yaml:2: fleet") && e.contains("nowhere.yaml"),
        "{e}"
    );
}

#[test]
fn unknown_fields_and_unitless_durations_are_refused() {
    let e = error(&format!("{GOOD_HEAD}tick_size: 1m\n"));
    assert!(e.contains("tick_size"), "{e}");
    let e = error("name: t\nfleet: ../../../examples/small.yaml\nduration: 2\n");
    assert!(e.contains("duration"), "{e}");
}

#[test]
fn ticks_and_intervals_are_checked() {
    let e = error(&format!("{GOOD_HEAD}tick: 10m\ncontrol_interval: 1m\n"));
    assert!(
        e.contains("control_interval") && e.contains("at least one tick"),
        "{e}"
    );
    let e = error("name: t\nfleet: ../../../examples/small.yaml\nduration: 300d\ntick: 1s\n");
    assert!(e.contains("ticks"), "{e}");
}

#[test]
fn a_bad_name_in_faults_is_located_in_the_scenario() {
    let e = error(&format!(
        "{GOOD_HEAD}faults:\n  events:\n    - node_crash: {{ node: n99, at: 1h }}\n"
    ));
    assert!(e.contains("faults.events[0]"), "{e}");
    assert!(e.contains("bad.yaml:6") || e.contains("bad.yaml:5"), "{e}");
}
