use proptest::prelude::*;

use super::*;
use crate::test_fleet::{group, parse, region, tiny_fleet, DAY_S, HOUR_S};

fn spec(yaml: &str) -> WorkloadSpec {
    parse(yaml)
}

fn workload(yaml: &str, seed: u64, duration_s: f64) -> Workload {
    let fleet = tiny_fleet();
    match Workload::new(&spec(yaml), &fleet, seed, duration_s) {
        Ok(workload) => workload,
        Err(error) => panic!("test spec does not resolve: {error}"),
    }
}

fn error(yaml: &str) -> SpecError {
    let fleet = tiny_fleet();
    match Workload::new(&spec(yaml), &fleet, 1, 7.0 * DAY_S) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(error) => error,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn empty_spec_is_the_declared_heat_at_all_times() {
    let fleet = tiny_fleet();
    let workload = workload("{}", 1, 7.0 * DAY_S);
    for t_s in [0.0, 5.5 * HOUR_S, 3.0 * DAY_S, 6.9 * DAY_S] {
        let snapshot = workload.at(t_s);
        for group in &fleet.groups {
            assert!(snapshot.active(group.id));
            assert!(close(snapshot.load(group.id), 1.0), "{}", group.name);
            assert!(close(snapshot.size(group.id), 1.0), "{}", group.name);
        }
    }
}

#[test]
fn daily_peak_is_at_the_peak_hour_in_local_time() {
    let fleet = tiny_fleet();
    let workload = workload(
        "regions: { us-east: { utc_offset_hours: -5 } }
default: { daily_amplitude: 0.5, peak_hour: 14 }",
        1,
        DAY_S,
    );
    let orders = group(&fleet, "orders-db");
    let samples: Vec<(f64, f64)> = (0..144)
        .map(|step| {
            let t_s = step as f64 * 600.0;
            (t_s, workload.at(t_s).load(orders))
        })
        .collect();
    let (peak_t_s, peak) = samples
        .iter()
        .copied()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    // 14:00 in UTC−5 is 19:00 UTC; the trough is twelve hours away.
    assert_eq!(peak_t_s, 19.0 * HOUR_S);
    assert!(close(peak, 1.5));
    assert!(close(workload.at(7.0 * HOUR_S).load(orders), 0.5));
}

#[test]
fn demand_follows_the_sun_between_regions() {
    let fleet = tiny_fleet();
    let workload = workload(
        "regions: { us-east: { utc_offset_hours: -5 }, ap-south: { utc_offset_hours: 5.5 } }
default: { daily_amplitude: 0.6, peak_hour: 14 }",
        1,
        DAY_S,
    );
    let clicks = group(&fleet, "clicks");
    let (us, ap) = (region(&fleet, "us-east"), region(&fleet, "ap-south"));
    // 08:30 UTC is 14:00 in ap-south and 03:30 in us-east: Asia is awake.
    let morning = workload.at(8.5 * HOUR_S);
    assert!(morning.access(clicks)[ap.index()] > 2.0 * morning.access(clicks)[us.index()]);
    assert!(close(morning.access(clicks)[ap.index()], 0.5 * 1.6));
    // 19:00 UTC is 14:00 in us-east and 00:30 in ap-south.
    let evening = workload.at(19.0 * HOUR_S);
    assert!(evening.access(clicks)[us.index()] > 2.0 * evening.access(clicks)[ap.index()]);
    let total: f64 = evening.access(clicks).iter().sum();
    assert!(close(total, evening.load(clicks)));
}

#[test]
fn weekend_dips_by_the_weekly_amplitude() {
    let fleet = tiny_fleet();
    let workload = workload("default: { weekly_amplitude: 0.3 }", 1, 7.0 * DAY_S);
    let orders = group(&fleet, "orders-db");
    // Day 0 is a Monday: days 5 and 6 are Saturday and Sunday.
    for day in 0..7 {
        let load = workload.at(day as f64 * DAY_S + 12.0 * HOUR_S).load(orders);
        let expected = if day >= 5 { 0.7 } else { 1.0 };
        assert!(close(load, expected), "day {day}: {load}");
    }
}

#[test]
fn weekend_follows_local_time() {
    let fleet = tiny_fleet();
    let workload = workload(
        "regions: { us-east: { utc_offset_hours: -5 } }
default: { weekly_amplitude: 0.5 }",
        1,
        7.0 * DAY_S,
    );
    let orders = group(&fleet, "orders-db");
    // Saturday 02:00 UTC is still Friday 21:00 in us-east.
    assert!(close(
        workload.at(5.0 * DAY_S + 2.0 * HOUR_S).load(orders),
        1.0
    ));
    assert!(close(
        workload.at(5.0 * DAY_S + 6.0 * HOUR_S).load(orders),
        0.5
    ));
}

#[test]
fn trend_and_size_growth_compound_per_day() {
    let fleet = tiny_fleet();
    let workload = workload(
        "default: { trend_per_day: 0.02, size_growth_per_day: 0.01 }",
        1,
        30.0 * DAY_S,
    );
    let orders = group(&fleet, "orders-db");
    let snapshot = workload.at(10.0 * DAY_S);
    assert!(close(snapshot.load(orders), 1.02_f64.powi(10)));
    assert!(close(snapshot.size(orders), 1.01_f64.powi(10)));
}

#[test]
fn scaled_heat_applies_load_to_rates_size_to_sizes_and_leaves_weights_alone() {
    let fleet = tiny_fleet();
    let workload = workload(
        "default: { trend_per_day: 1.0, size_growth_per_day: 0.5 }",
        1,
        2.0 * DAY_S,
    );
    let llm = group(&fleet, "llm-chat");
    let active = fleet.products[fleet.group(llm).product.index()]
        .state("Active")
        .unwrap();
    let heat = workload.scaled_heat(&fleet, llm, active, DAY_S);
    let dim = |name: &str| heat[fleet.dims.get(name).unwrap().index()];
    assert!(close(dim("cpu"), 16.0));
    assert!(close(dim("mem_gib"), 192.0));
    assert!(close(dim("gpu_mem_gib"), 80.0));
    assert!(close(dim("net_mbps"), 4000.0));
}

#[test]
fn flash_crowd_rises_fast_and_decays_back() {
    let fleet = tiny_fleet();
    let workload = workload(
        "flash_crowds: [ { group: clicks, at: 2h, duration: 1h, factor: 5 } ]",
        1,
        DAY_S,
    );
    let clicks = group(&fleet, "clicks");
    let load = |t_s: f64| workload.at(t_s).load(clicks);
    assert!(close(load(2.0 * HOUR_S - 1.0), 1.0));
    assert!(close(load(2.0 * HOUR_S), 1.0));
    assert!(
        close(load(2.0 * HOUR_S + 3.0 * 60.0), 3.0),
        "halfway up the rise"
    );
    assert!(
        close(load(2.0 * HOUR_S + 6.0 * 60.0), 5.0),
        "peak after a tenth"
    );
    let decay: Vec<f64> = (7..60)
        .map(|m| load(2.0 * HOUR_S + m as f64 * 60.0))
        .collect();
    assert!(decay.windows(2).all(|pair| pair[1] < pair[0]), "{decay:?}");
    assert!(decay[decay.len() - 1] < 1.1);
    assert!(close(load(3.0 * HOUR_S), 1.0));
    assert!(close(
        workload.at(2.1 * HOUR_S).load(group(&fleet, "orders-db")),
        1.0
    ));
}

#[test]
fn regional_flash_crowd_adds_access_from_its_region_only() {
    let fleet = tiny_fleet();
    let workload = workload(
        "flash_crowds: [ { group: clicks, at: 1h, duration: 1h, factor: 3, region: ap-south } ]",
        1,
        DAY_S,
    );
    let clicks = group(&fleet, "clicks");
    let (us, ap) = (region(&fleet, "us-east"), region(&fleet, "ap-south"));
    let peak = workload.at(HOUR_S + 360.0);
    assert!(close(peak.access(clicks)[us.index()], 0.5));
    assert!(close(peak.access(clicks)[ap.index()], 0.5 + 2.0));
    assert!(close(peak.load(clicks), 3.0));
}

#[test]
fn prefix_crowds_hit_every_matching_group() {
    let fleet = tiny_fleet();
    let workload = workload(
        "flash_crowds: [ { group: orders-*, at: 1h, duration: 1h, factor: 2 } ]",
        1,
        DAY_S,
    );
    let peak = workload.at(HOUR_S + 360.0);
    assert!(close(peak.load(group(&fleet, "orders-db")), 2.0));
    assert!(close(peak.load(group(&fleet, "orders-archive")), 2.0));
    assert!(close(peak.load(group(&fleet, "clicks")), 1.0));
    let events = workload.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].description,
        "flash crowd on orders-* (2 groups): ×2 for 1h"
    );
    assert_eq!(events[0].end_s, Some(2.0 * HOUR_S));
}

#[test]
fn regime_change_is_permanent_and_can_move_access() {
    let fleet = tiny_fleet();
    let workload = workload(
        "regime_changes:
  - { group: orders-db, at: 5h, factor: 2, access: { ap-south: 3 } }
  - { group: orders-db, at: 10h, factor: 1.5 }",
        1,
        DAY_S,
    );
    let orders = group(&fleet, "orders-db");
    let (us, ap) = (region(&fleet, "us-east"), region(&fleet, "ap-south"));
    let before = workload.at(5.0 * HOUR_S - 1.0);
    assert!(close(before.load(orders), 1.0));
    assert!(close(before.access(orders)[us.index()], 1.0));
    let after = workload.at(5.0 * HOUR_S);
    assert!(close(after.load(orders), 2.0));
    assert_eq!(after.access_by_region(orders), vec![(ap, 2.0)]);
    let later = workload.at(20.0 * HOUR_S);
    assert!(close(later.load(orders), 3.0), "factors multiply");
    assert_eq!(
        later.access_by_region(orders),
        vec![(ap, 3.0)],
        "access is kept"
    );
}

#[test]
fn arrival_makes_a_group_exist_from_its_time() {
    let fleet = tiny_fleet();
    let workload = workload(
        "default: { size_growth_per_day: 0.1 }
arrivals: [ { group: llm-chat, at: 3h } ]",
        1,
        DAY_S,
    );
    let llm = group(&fleet, "llm-chat");
    let before = workload.at(3.0 * HOUR_S - 1.0);
    assert!(!before.active(llm));
    assert_eq!(before.load(llm), 0.0);
    assert!(before.access_by_region(llm).is_empty());
    let active = fleet.products[fleet.group(llm).product.index()]
        .state("Active")
        .unwrap();
    assert!(workload
        .scaled_heat(&fleet, llm, active, HOUR_S)
        .iter()
        .all(|&x| x == 0.0));
    let after = workload.at(3.0 * HOUR_S);
    assert!(after.active(llm));
    assert!(close(after.size(llm), 1.0), "growth counts from arrival");
    // No `access` in the fleet: all reads come from the group's first allowed region.
    assert_eq!(
        after.access_by_region(llm),
        vec![(region(&fleet, "ap-south"), 1.0)]
    );
    assert_eq!(workload.active_from_s(llm), 3.0 * HOUR_S);
    assert_eq!(workload.active_from_s(group(&fleet, "clicks")), 0.0);
}

#[test]
fn unconstrained_group_without_access_is_read_from_everywhere() {
    let fleet = tiny_fleet();
    let workload = workload("{}", 1, DAY_S);
    let profiles = group(&fleet, "profiles");
    let access = workload.at(0.0).access_by_region(profiles);
    assert_eq!(
        access,
        vec![
            (region(&fleet, "us-east"), 0.5),
            (region(&fleet, "ap-south"), 0.5)
        ]
    );
}

#[test]
fn most_specific_override_wins_and_inherits_the_rest() {
    let fleet = tiny_fleet();
    let workload = workload(
        "default: { level: 2, trend_per_day: 0.1 }
groups:
  '*': { level: 3 }
  orders-*: { level: 4 }
  orders-db: { level: 5 }",
        1,
        DAY_S,
    );
    let snapshot = workload.at(DAY_S);
    let load = |name: &str| snapshot.load(group(&fleet, name));
    assert!(close(load("orders-db"), 5.0 * 1.1));
    assert!(close(load("orders-archive"), 4.0 * 1.1));
    assert!(close(load("clicks"), 3.0 * 1.1));
}

#[test]
fn same_seed_is_identical_and_another_seed_differs() {
    let yaml = "default: { noise: 0.2, daily_amplitude: 0.3 }
random_flash_crowds: { per_day: 6 }";
    let first = workload(yaml, 42, 2.0 * DAY_S);
    let again = workload(yaml, 42, 2.0 * DAY_S);
    let other = workload(yaml, 43, 2.0 * DAY_S);
    assert_eq!(first.events(), again.events());
    assert_ne!(first.events(), other.events());
    let mut differs = false;
    for step in 0..48 {
        let t_s = step as f64 * HOUR_S + 600.0;
        let (a, b, c) = (first.at(t_s), again.at(t_s), other.at(t_s));
        assert_eq!(a, b);
        differs |= a.load != c.load;
    }
    assert!(differs, "different seeds give different noise");
}

#[test]
fn sampling_order_does_not_matter() {
    let yaml = "default: { noise: 0.3, daily_amplitude: 0.5, weekly_amplitude: 0.2 }
random_flash_crowds: { per_day: 12 }";
    let workload = workload(yaml, 9, 7.0 * DAY_S);
    let times: Vec<f64> = (0..200).map(|i| i as f64 * 2_999.0).collect();
    let forward: Vec<Snapshot> = times.iter().map(|&t| workload.at(t)).collect();
    let mut reused = Snapshot::default();
    for (index, &t_s) in times.iter().enumerate().rev() {
        workload.at_into(t_s, &mut reused);
        assert_eq!(reused, forward[index], "t = {t_s}");
    }
    let fleet = tiny_fleet();
    let clicks = group(&fleet, "clicks");
    let single = workload.group_at(clicks, times[77]);
    assert_eq!(single.load, forward[77].load(clicks));
    assert_eq!(single.access, forward[77].access_by_region(clicks));
}

#[test]
fn random_crowds_are_drawn_within_the_run() {
    let fleet = tiny_fleet();
    let workload = workload(
        "random_flash_crowds: { per_day: 20, group: orders-*, factor_min: 2, factor_max: 3 }",
        5,
        2.0 * DAY_S,
    );
    let events = workload.events();
    assert!((20..=60).contains(&events.len()), "{}", events.len());
    for event in events {
        assert!(event.start_s < 2.0 * DAY_S);
        assert!(event
            .description
            .starts_with("random flash crowd on orders-"));
    }
    assert!(events
        .windows(2)
        .all(|pair| pair[0].start_s <= pair[1].start_s));
    let clicks = group(&fleet, "clicks");
    assert!((0..96).all(|i| close(workload.at(i as f64 * 1_800.0).load(clicks), 1.0)));
}

#[test]
fn unknown_names_are_errors_at_their_field() {
    let cases = [
        (
            "flash_crowds: [ { group: clicks, at: 1h, duration: 1h, factor: 2 }, { group: ordrs-*, at: 1h, duration: 1h, factor: 2 } ]",
            "workload.flash_crowds[1].group",
            "no group matches \"ordrs-*\" (did you mean orders-*?)",
        ),
        (
            "flash_crowds: [ { group: clicks, at: 1h, duration: 1h, factor: 2, region: ap-suoth } ]",
            "workload.flash_crowds[0].region",
            "unknown region \"ap-suoth\" (did you mean ap-south?)",
        ),
        (
            "regions: { eu-west: { utc_offset_hours: 1 } }",
            "workload.regions.eu-west",
            "unknown region \"eu-west\"",
        ),
        (
            "groups: { clciks: { level: 2 } }",
            "workload.groups.clciks",
            "no group matches \"clciks\" (did you mean clicks?)",
        ),
        (
            "arrivals: [ { group: llm, at: 1h } ]",
            "workload.arrivals[0].group",
            "no group matches \"llm\"",
        ),
        (
            "regime_changes: [ { group: clicks, at: 1h, access: { mars: 1 } } ]",
            "workload.regime_changes[0].access.mars",
            "unknown region \"mars\"",
        ),
    ];
    for (yaml, path, message) in cases {
        let error = error(yaml);
        assert_eq!(error.path, path, "{yaml}");
        assert_eq!(error.message, message, "{yaml}");
    }
}

#[test]
fn bad_values_are_errors_at_their_field() {
    let cases = [
        (
            "default: { daily_amplitude: 2 }",
            "workload.default.daily_amplitude",
        ),
        (
            "groups: { clicks: { noise: -1 } }",
            "workload.groups.clicks.noise",
        ),
        (
            "regions: { us-east: { utc_offset_hours: 30 } }",
            "workload.regions.us-east.utc_offset_hours",
        ),
        (
            "flash_crowds: [ { group: clicks, at: 9d, duration: 1h, factor: 2 } ]",
            "workload.flash_crowds[0].at",
        ),
        (
            "flash_crowds: [ { group: clicks, at: 1h, duration: 0s, factor: 2 } ]",
            "workload.flash_crowds[0].duration",
        ),
        (
            "flash_crowds: [ { group: clicks, at: 1h, duration: 1h, factor: 0.5 } ]",
            "workload.flash_crowds[0].factor",
        ),
        (
            "regime_changes: [ { group: clicks, at: 1h } ]",
            "workload.regime_changes[0]",
        ),
        (
            "regime_changes: [ { group: clicks, at: 1h, factor: 0 } ]",
            "workload.regime_changes[0].factor",
        ),
        (
            "regime_changes: [ { group: clicks, at: 1h, access: { us-east: 0 } } ]",
            "workload.regime_changes[0].access",
        ),
        (
            "arrivals: [ { group: orders-*, at: 1h }, { group: orders-db, at: 2h } ]",
            "workload.arrivals[1].group",
        ),
        (
            "random_flash_crowds: { per_day: 1, factor_min: 3, factor_max: 2 }",
            "workload.random_flash_crowds.factor_max",
        ),
        (
            "random_flash_crowds: { per_day: 1, duration_min: 2h, duration_max: 1h }",
            "workload.random_flash_crowds.duration_max",
        ),
        (
            "random_flash_crowds: { per_day: 1000000 }",
            "workload.random_flash_crowds.per_day",
        ),
        (
            "groups: { 'or*ders': { level: 2 } }",
            "workload.groups.or*ders",
        ),
    ];
    for (yaml, path) in cases {
        assert_eq!(error(yaml).path, path, "{yaml}");
    }
    let fleet = tiny_fleet();
    let bad_duration = Workload::new(&WorkloadSpec::default(), &fleet, 1, f64::NAN);
    assert_eq!(bad_duration.unwrap_err().path, "duration");
}

/// Builds a fleet of `count` single-partition groups over two regions, as YAML text.
fn many_groups_fleet(count: usize) -> Fleet {
    let mut yaml = String::from(
        "topology:
  network:
    levels: [region, rack, node]
    domains:
      - { name: us-east, children: [ { name: r01, children: [n01, n02, n03] } ] }
      - { name: eu-west, children: [ { name: r11, children: [n11, n12, n13] } ] }
  links:
    - { between: [us-east, eu-west], latency_ms: 75, cost_per_gb: 0.02 }
node_classes:
  big: { capacity: { cpu: 1000000, net_mbps: 1000000 } }
nodes: [ { name: n01, class: big }, { name: n02, class: big }, { name: n03, class: big },
         { name: n11, class: big }, { name: n12, class: big }, { name: n13, class: big } ]
groups:
",
    );
    for index in 0..count {
        yaml.push_str(&format!(
            "  - {{ name: g{index:05}, product: stream, partitions: 1, heat: {{ Leader: {{ cpu: 1 }}, Replica: {{ cpu: 1 }} }}, access: {{ us-east: 0.6, eu-west: 0.4 }} }}\n"
        ));
    }
    match Fleet::from_yaml(&yaml, "many.yaml") {
        Ok(fleet) => fleet,
        Err(problems) => panic!("{problems}"),
    }
}

/// The speed budget: 10k groups sampled every minute for a day. Run with
/// `cargo nextest run -p meridian-sim --release --run-ignored only ten_thousand`.
#[test]
#[ignore = "a timing run, not a check"]
fn ten_thousand_groups_for_a_day_of_minutes() {
    let fleet = many_groups_fleet(10_000);
    let yaml = "regions: { us-east: { utc_offset_hours: -5 }, eu-west: { utc_offset_hours: 1 } }
default: { daily_amplitude: 0.4, weekly_amplitude: 0.2, trend_per_day: 0.01, noise: 0.05, size_growth_per_day: 0.01 }
random_flash_crowds: { per_day: 50 }";
    let workload = Workload::new(&spec(yaml), &fleet, 1, DAY_S).unwrap();
    let started = std::time::Instant::now();
    let mut snapshot = Snapshot::default();
    let mut total = 0.0;
    for minute in 0..1_440 {
        workload.at_into(minute as f64 * 60.0, &mut snapshot);
        total += snapshot.load(GroupId(0));
    }
    let elapsed = started.elapsed();
    println!("1440 samples of 10k groups: {elapsed:?} (checksum {total})");
    assert!(total > 0.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the profile, loads and access stay finite and never negative, and the
    /// load is the sum of access.
    #[test]
    fn loads_are_never_negative(
        daily in 0.0..=1.0f64,
        weekly in 0.0..=1.0f64,
        noise in 0.0..=1.0f64,
        trend in -0.5..1.0f64,
        peak in 0.0..24.0f64,
        seed in any::<u64>(),
        t_s in 0.0..(30.0 * DAY_S),
    ) {
        let yaml = format!(
            "default: {{ daily_amplitude: {daily}, weekly_amplitude: {weekly}, noise: {noise}, trend_per_day: {trend}, peak_hour: {peak} }}
random_flash_crowds: {{ per_day: 4 }}"
        );
        let workload = workload(&yaml, seed, 30.0 * DAY_S);
        let snapshot = workload.at(t_s);
        for index in 0..snapshot.group_count() {
            let group = GroupId(index as u32);
            let load = snapshot.load(group);
            prop_assert!(load.is_finite() && load > 0.0);
            prop_assert!(snapshot.access(group).iter().all(|&a| a.is_finite() && a >= 0.0));
            let total: f64 = snapshot.access(group).iter().sum();
            prop_assert!((total - load).abs() <= 1e-9 * load.max(1.0));
        }
    }
}
