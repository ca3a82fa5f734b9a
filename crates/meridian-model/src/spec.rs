//! The fleet file as written by people (YAML), before validation and resolution.
//!
//! These types mirror docs/fleet.schema.json. Unknown fields are rejected so a typo
//! (`partitons:`) is an error with a line number rather than a silently ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A map from dimension name to quantity, e.g. `{ cpu: 4, net_mbps: 400 }`.
pub type QuantitySpec = BTreeMap<String, f64>;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DimensionsSpec {
    /// Dimensions beyond the default set.
    #[serde(default)]
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    pub network: TreeSpec,
    #[serde(default)]
    pub power: Option<TreeSpec>,
    /// Latency, price and bandwidth between pairs of regions.
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    /// Which network level is the region (for residency and data gravity). Default `region`;
    /// a fleet without such a level is one region.
    #[serde(default)]
    pub region_level: Option<String>,
    /// Latency between two points in the same region, ms. Default 1.
    #[serde(default)]
    pub local_latency_ms: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TreeSpec {
    /// Level names from the root down; the network tree's last level is `node`.
    pub levels: Vec<String>,
    pub domains: Vec<DomainSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    pub name: String,
    #[serde(default)]
    pub capacity: QuantitySpec,
    /// Sub-domains inline, or names of domains/nodes defined elsewhere (racks of the network
    /// tree under a PDU; nodes of the `nodes:` list under a rack).
    #[serde(default)]
    pub children: Vec<ChildSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ChildSpec {
    Reference(String),
    Domain(DomainSpec),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub between: [String; 2],
    pub latency_ms: f64,
    #[serde(default)]
    pub cost_per_gb: f64,
    /// Bandwidth between the two regions; unlimited when absent.
    #[serde(default)]
    pub net_mbps: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeClassSpec {
    #[serde(default)]
    pub capacity: QuantitySpec,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Storage price on this class, $ per GiB-month (for the cost objective).
    #[serde(default)]
    pub cost_per_gib_month: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    #[serde(default)]
    pub class: Option<String>,
    /// Overrides or extends the class's capacity.
    #[serde(default)]
    pub capacity: QuantitySpec,
    /// Added to (and override) the class's labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub cost_per_gib_month: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PoliciesSpec {
    /// Fraction of capacity kept free, keyed `level.dimension`; either side may be `*`.
    /// The most specific key wins: `rack.net_mbps` > `rack.*` > `*.net_mbps` > `*.*`.
    #[serde(default)]
    pub headroom: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectivesSpec {
    /// Weight of the peak utilization (relative to its lower bound) along a node's domains.
    #[serde(default = "one")]
    pub balance: f64,
    /// Weight of bytes moved away from the current placement (per replica's size).
    #[serde(default = "default_movement")]
    pub movement: f64,
    /// Weight of access-weighted latency from the regions that read a group.
    #[serde(default = "default_gravity")]
    pub gravity: f64,
    /// Weight of storage price.
    #[serde(default = "default_cost")]
    pub cost: f64,
    /// Weight of soft affinity between groups.
    #[serde(default = "default_affinity")]
    pub affinity: f64,
}

fn one() -> f64 {
    1.0
}
fn default_movement() -> f64 {
    0.5
}
fn default_gravity() -> f64 {
    0.3
}
fn default_cost() -> f64 {
    0.05
}
fn default_affinity() -> f64 {
    0.2
}

impl Default for ObjectivesSpec {
    fn default() -> Self {
        Self {
            balance: one(),
            movement: default_movement(),
            gravity: default_gravity(),
            cost: default_cost(),
            affinity: default_affinity(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSpec {
    /// All states; the first is the initial (offline) state unless `initial` says otherwise.
    pub states: Vec<String>,
    #[serde(default)]
    pub initial: Option<String>,
    /// Legal transitions as `From>To`.
    pub transitions: Vec<String>,
    /// Replicas per partition in each state, e.g. `{ Leader: 1, Follower: 2 }`.
    pub counts: BTreeMap<String, u32>,
    /// The state of which a partition may have at most one (the leader), if any.
    #[serde(default)]
    pub leader: Option<String>,
    /// Fewest serving replicas a partition may have at any time. Default: all counted.
    #[serde(default)]
    pub min_serving: Option<u32>,
    /// How much each state's placement matters for data gravity (it serves reads).
    #[serde(default)]
    pub gravity_weight: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one.clone()],
            OneOrMany::Many(many) => many.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    pub product: String,
    pub partitions: u32,
    /// Overrides the product's per-state counts.
    #[serde(default)]
    pub counts: Option<BTreeMap<String, u32>>,
    /// Data per replica, GiB (what a move copies).
    #[serde(default)]
    pub size_gib: f64,
    /// Steady heat of one replica in each state.
    pub heat: BTreeMap<String, QuantitySpec>,
    /// Fault-domain levels at which a partition's replicas must be distinct. Default `node`.
    #[serde(default)]
    pub spread: Option<OneOrMany>,
    /// Regions where replicas may live (residency). Default: anywhere.
    #[serde(default)]
    pub regions: Option<Vec<String>>,
    /// Node labels a node must carry.
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    #[serde(default)]
    pub affinity: Vec<AffinitySpec>,
    #[serde(default)]
    pub anti_affinity: Vec<AntiAffinitySpec>,
    #[serde(default)]
    pub pins: Vec<PinSpec>,
    /// Share of reads by region, e.g. `{ us-east: 0.7, eu-west: 0.3 }` (normalized).
    #[serde(default)]
    pub access: BTreeMap<String, f64>,
    /// Data read from one replica per month, GiB; with `access`, prices cross-region egress.
    #[serde(default)]
    pub reads_gib_per_month: f64,
    /// Extra heat a transition puts on the replica's node for a while, keyed `From>To`
    /// (e.g. a promotion's catch-up burst, or an inference server loading its weights into
    /// GPU memory as it starts). The planner books it for `seconds` from the transition.
    #[serde(default)]
    pub transition_heat: BTreeMap<String, TransitionHeatSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionHeatSpec {
    /// How long the burst lasts.
    pub seconds: f64,
    /// The burst, per dimension, on top of the replica's steady heat.
    pub heat: QuantitySpec,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AffinitySpec {
    pub group: String,
    /// Level at which partition p of both groups should share a domain.
    pub level: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AntiAffinitySpec {
    pub group: String,
    /// Level at which no domain may hold replicas of both groups.
    pub level: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PinSpec {
    pub partition: u32,
    pub node: String,
    /// The state the pinned replica must have; any state when absent.
    #[serde(default)]
    pub state: Option<String>,
}
