//! Capacities above the nodes: ToR and spine bandwidth, PDU and feed power.
//!
//! Each is sized from the load the domain carries when every node is exactly as busy as its
//! pool's expected utilization (a perfectly balanced fleet), times a slack. Most domains get
//! generous slack; a few "tight" ones get little, so they bind before their nodes do and the
//! solver has to route load around them. Slack is always above 1 after headroom, so the
//! balanced fleet fits and the instance is feasible.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::classes::{round_up, Pool, NET_MBPS, POWER_W};
use crate::heat::Utilization;
use crate::layout::Layout;

/// Headroom the generated policies reserve at each level (see `document`).
pub const RACK_NET_HEADROOM: f64 = 0.1;
pub const SPINE_NET_HEADROOM: f64 = 0.1;
pub const PDU_POWER_HEADROOM: f64 = 0.05;
pub const FEED_POWER_HEADROOM: f64 = 0.05;
pub const NODE_HEADROOM: f64 = 0.05;

const TIGHT_SLACK: f64 = 1.12;
const RACK_SLACK: std::ops::Range<f64> = 1.4..1.8;
const SPINE_SLACK: std::ops::Range<f64> = 1.25..1.5;
const PDU_SLACK: std::ops::Range<f64> = 1.3..1.6;
const FEED_SLACK: std::ops::Range<f64> = 1.2..1.35;
const NET_STEP_MBPS: f64 = 1_000.0;
const POWER_STEP_W: f64 = 100.0;

pub struct Capacities {
    pub rack_net_mbps: Vec<f64>,
    pub spine_net_mbps: Vec<f64>,
    pub pdu_power_w: Vec<f64>,
    pub feed_power_w: Vec<f64>,
    /// Which racks, spines and PDUs were made tight (for the summary and tests).
    pub tight_racks: Vec<usize>,
    pub tight_spines: Vec<usize>,
    pub tight_pdus: Vec<usize>,
}

pub fn plan(
    layout: &Layout,
    pools: &[(Pool, Utilization); 2],
    tight_fraction: f64,
    rng: &mut ChaCha8Rng,
) -> Capacities {
    let expected = |node: usize, dim: usize| -> f64 {
        let class = layout.nodes[node].class;
        let utilization = pools
            .iter()
            .find(|(pool, _)| *pool == class.pool())
            .map_or(0.0, |(_, u)| u[dim]);
        utilization * class.capacity()[dim]
    };
    let rack_net: Vec<f64> = layout
        .racks
        .iter()
        .map(|r| r.nodes.clone().map(|n| expected(n, NET_MBPS)).sum())
        .collect();
    let rack_power: Vec<f64> = layout
        .racks
        .iter()
        .map(|r| r.nodes.clone().map(|n| expected(n, POWER_W)).sum())
        .collect();
    let spine_net: Vec<f64> = layout
        .spines
        .iter()
        .map(|s| s.racks.iter().map(|&r| rack_net[r]).sum())
        .collect();
    let pdu_power: Vec<f64> = layout
        .pdus
        .iter()
        .map(|p| p.racks.iter().map(|&r| rack_power[r]).sum())
        .collect();
    let feed_power: Vec<f64> = layout
        .feeds
        .iter()
        .map(|f| f.pdus.iter().map(|&p| pdu_power[p]).sum())
        .collect();
    let tight_racks = pick_tight(layout.racks.len(), tight_fraction, rng);
    let tight_spines = pick_tight(layout.spines.len(), tight_fraction, rng);
    let tight_pdus = pick_tight(layout.pdus.len(), tight_fraction, rng);
    Capacities {
        rack_net_mbps: sized(
            &rack_net,
            &tight_racks,
            RACK_SLACK,
            RACK_NET_HEADROOM,
            NET_STEP_MBPS,
            rng,
        ),
        spine_net_mbps: sized(
            &spine_net,
            &tight_spines,
            SPINE_SLACK,
            SPINE_NET_HEADROOM,
            NET_STEP_MBPS,
            rng,
        ),
        pdu_power_w: sized(
            &pdu_power,
            &tight_pdus,
            PDU_SLACK,
            PDU_POWER_HEADROOM,
            POWER_STEP_W,
            rng,
        ),
        feed_power_w: sized(
            &feed_power,
            &[],
            FEED_SLACK,
            FEED_POWER_HEADROOM,
            POWER_STEP_W,
            rng,
        ),
        tight_racks,
        tight_spines,
        tight_pdus,
    }
}

/// About `fraction` of `count` domains, chosen at random; none among fewer than four, where
/// one tight domain would be most of the fleet.
fn pick_tight(count: usize, fraction: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
    if count < 4 {
        return Vec::new();
    }
    let wanted = ((count as f64 * fraction).round() as usize).min(count);
    let mut all: Vec<usize> = (0..count).collect();
    all.shuffle(rng);
    all.truncate(wanted);
    all.sort_unstable();
    all
}

/// Capacity = expected load × slack ÷ (1 − headroom), rounded up to `step`.
fn sized(
    expected: &[f64],
    tight: &[usize],
    slack: std::ops::Range<f64>,
    headroom: f64,
    step: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<f64> {
    expected
        .iter()
        .enumerate()
        .map(|(i, load)| {
            let factor = if tight.binary_search(&i).is_ok() {
                TIGHT_SLACK
            } else {
                rng.random_range(slack.clone())
            };
            round_up(load * factor / (1.0 - headroom), step).max(step)
        })
        .collect()
}
