//! The example in docs/sim-scenario.md parses and resolves against examples/small.yaml, so
//! the documentation cannot drift from the code.

use meridian_model::Fleet;
use meridian_sim::{FaultSchedule, FaultSpec, Workload, WorkloadSpec};
use serde_yaml_ng::Value;

const DOC: &str = include_str!("../../../docs/sim-scenario.md");
const SMALL_FLEET: &str = include_str!("../../../examples/small.yaml");
const DAY_S: f64 = 86_400.0;

/// The first ```yaml block of the page.
fn example() -> Value {
    let start = DOC.find("```yaml\n").expect("the page has a yaml example") + "```yaml\n".len();
    let length = DOC[start..].find("```").expect("the example is closed");
    serde_yaml_ng::from_str(&DOC[start..start + length]).expect("the example is valid YAML")
}

#[test]
fn documented_example_resolves_against_the_small_fleet() {
    let fleet = Fleet::from_yaml(SMALL_FLEET, "examples/small.yaml").expect("a valid fleet");
    let document = example();
    let workload: WorkloadSpec =
        serde_yaml_ng::from_value(document["workload"].clone()).expect("the workload section");
    let faults: FaultSpec =
        serde_yaml_ng::from_value(document["faults"].clone()).expect("the faults section");
    let workload = Workload::new(&workload, &fleet, 1, 2.0 * DAY_S).expect("resolves");
    let schedule = FaultSchedule::new(&faults, &fleet, 1, 2.0 * DAY_S).expect("resolves");
    assert!(workload.events().len() >= 4);
    assert!(schedule.events().len() >= 8);
    let snapshot = workload.at(DAY_S);
    assert_eq!(snapshot.group_count(), fleet.groups.len());
    assert!(
        schedule.at(6.5 * 3_600.0).nodes_down().len() >= 4,
        "the PDU loss"
    );
}
