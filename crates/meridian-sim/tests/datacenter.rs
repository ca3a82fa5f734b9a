//! The claim of examples/sim/datacenter.yaml, kept true: product-by-product rebalancers
//! overload a shared domain (a ToR uplink, spine, PDU or feed) while Meridian never does, at
//! equal or better latency and availability.

use meridian_sim::scenario::Scenario;
use meridian_sim::simulate::simulate;

/// Shared (above-node) levels of the datacenter fleet.
const SHARED: [&str; 4] = ["rack ", "spine ", "pdu ", "feed "];

#[test]
fn siloed_rebalancers_saturate_shared_domains_and_meridian_does_not() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/sim/datacenter.yaml"
    );
    let mut scenario = Scenario::read(path).unwrap_or_else(|e| panic!("{e}"));
    scenario.spec.strategies = vec!["siloed".into(), "unified".into()];
    let results = simulate(scenario, &|_, _| {}).unwrap_or_else(|e| panic!("{e}"));
    let (siloed, unified) = (&results.outcomes[0], &results.outcomes[1]);
    let shared = |o: &meridian_sim::engine::Outcome| -> f64 {
        o.saturated
            .iter()
            .filter(|(name, _)| SHARED.iter().any(|level| name.starts_with(level)))
            .map(|(_, s)| s.seconds)
            .sum()
    };
    assert!(
        shared(siloed) >= 1800.0,
        "siloed should overload a shared domain for half an hour or more: {:?}",
        siloed.saturated
    );
    assert_eq!(shared(unified), 0.0, "{:?}", unified.saturated);
    let (s, u) = (&siloed.summary, &unified.summary);
    assert_eq!(u.saturation_with_copies_s, 0.0);
    assert_eq!(u.invariant_violations, 0, "{:?}", u.violations);
    assert!(
        u.latency_p99_ms <= s.latency_p99_ms,
        "{} > {}",
        u.latency_p99_ms,
        s.latency_p99_ms
    );
    assert!(
        u.below_min_s <= s.below_min_s,
        "{} > {}",
        u.below_min_s,
        s.below_min_s
    );
}
