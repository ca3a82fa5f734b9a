//! Workload over time, per task group: how hot each group is, how large its data is, and from
//! which regions it is read, at any instant of a scenario.
//!
//! All partitions of a group (a database, a topic, a model deployment) share its heat
//! profile, so the model is per group. At time `t_s` a group's access from region `r` is
//!
//! ```text
//! access_r = weight_r × level × regime × growth × (1 + noise × n(t))
//!                     × (1 + daily_amplitude × cos(2π (local_hour_r − peak_hour) / 24))
//!                     × (1 − weekly_amplitude if it is Saturday or Sunday in r)
//! ```
//!
//! then flash crowds add to it, and its `load` (the multiplier on rate-like heat) is the sum
//! over regions. Each reading region peaks at its own local `peak_hour`, so as the day goes
//! round the world, demand moves between regions ("Asia wakes up"). `weight_r` comes from the
//! group's `access` in the fleet file (or from a regime change); `growth` is compound
//! `trend_per_day`, counted from when the group became active; `n(t)` is smooth noise.
//!
//! Time 0 is a Monday, 00:00 UTC. A region's clock is UTC plus its `utc_offset_hours`.
//!
//! [`Workload::at`] is a pure function of (spec, fleet, seed, t): noise is hashed from
//! `(seed, group name, hour)` and random events are drawn once, up front, so sampling order
//! and tick size never change what a strategy sees.

mod crowd;
mod heat;
mod pattern;
mod snapshot;
mod spec;

use std::collections::BTreeMap;
use std::f64::consts::TAU;

use meridian_model::{Fleet, Group, GroupId, RegionId, StateId};

use crate::duration::{check_scenario_duration, format_duration_s, time_within};
use crate::noise::{combine, hash_name, smooth_noise};
use crate::spec_error::{check_above, check_range, unknown_name, SpecError};
use crowd::{draw_random_crowds, Crowd};
use pattern::{select_groups, GroupPattern};

pub use crowd::RANDOM_CROWDS_MAX;
pub use heat::{DimScaling, GroupLoad, HeatScaling, FIXED_DIMENSIONS, SIZE_DIMENSIONS};
pub use snapshot::Snapshot;
pub use spec::{
    Arrival, FlashCrowd, Profile, ProfileOverride, RandomFlashCrowds, RegimeChange, RegionClock,
    WorkloadSpec,
};

/// Lowest access (and so load) a region's share may fall to, as a fraction of its weight:
/// deep troughs and negative noise clamp here, so a live group never goes fully idle and
/// never has negative heat.
pub const LOAD_FLOOR: f64 = 0.01;
/// Highest growth factor from `trend_per_day` or `size_growth_per_day` (×10⁶): keeps long
/// scenarios with steep trends finite.
const GROWTH_MAX: f64 = 1e6;
/// Noise knots are hourly: load wanders over hours, not minutes.
const NOISE_KNOT_S: f64 = 3_600.0;
const SECONDS_PER_DAY: f64 = 86_400.0;
/// Time zones in use span UTC−12 to UTC+14.
const UTC_OFFSET_HOURS_MIN: f64 = -12.0;
const UTC_OFFSET_HOURS_MAX: f64 = 14.0;
/// Keeps the noise stream apart from every other use of the seed.
const NOISE_STREAM: u64 = 0x006E_6F69_7365; // "noise"

/// A scenario's workload, resolved against its fleet; sample it with [`Workload::at`].
#[derive(Debug, Clone)]
pub struct Workload {
    utc_offset_s: Vec<f64>,
    groups: Vec<GroupModel>,
    crowds: Vec<Crowd>,
    events: Vec<WorkloadEvent>,
    scaling: HeatScaling,
    duration_s: f64,
}

/// One scheduled change, for the report's event log.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadEvent {
    pub start_s: f64,
    /// When it is over; `None` for lasting changes (regime changes, arrivals).
    pub end_s: Option<f64>,
    pub description: String,
}

/// One group's workload at one instant (see [`Snapshot`] for all groups at once).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSample {
    pub active: bool,
    pub load: f64,
    pub size: f64,
    /// Access by region, in region order, regions with none left out.
    pub access: Vec<(RegionId, f64)>,
}

impl GroupSample {
    pub fn multipliers(&self) -> GroupLoad {
        GroupLoad {
            active: self.active,
            load: self.load,
            size: self.size,
        }
    }
}

/// Everything about one group that does not depend on time, precomputed.
#[derive(Debug, Clone)]
struct GroupModel {
    active_from_s: f64,
    level: f64,
    daily_amplitude: f64,
    /// cos and sin of the peak hour's angle on the 24-hour clock.
    peak_cos: f64,
    peak_sin: f64,
    weekly_amplitude: f64,
    trend_ln_per_day: f64,
    size_ln_per_day: f64,
    noise: f64,
    noise_key: u64,
    /// Sorted by `from_s`; the first starts at −∞ with the fleet's access.
    regimes: Vec<Regime>,
    /// Indices into `Workload::crowds`, sorted by start.
    crowds: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq)]
struct Regime {
    from_s: f64,
    /// Product of every regime change's factor so far.
    level_factor: f64,
    access: Shares,
}

/// Access shares by region, summing to 1, in region order.
type Shares = Vec<(RegionId, f64)>;

/// A regime change not yet folded into a group's regimes.
struct PendingChange {
    at_s: f64,
    factor: f64,
    access: Option<Shares>,
}

/// A region's clock at one instant, shared by every group read from it.
struct RegionPhase {
    hour_cos: f64,
    hour_sin: f64,
    weekend: bool,
}

impl Workload {
    /// Resolves `spec` against `fleet` and draws the seed's random events over
    /// `[0, duration_s)`. Every group and region name must resolve; errors name the field.
    pub fn new(
        spec: &WorkloadSpec,
        fleet: &Fleet,
        seed: u64,
        duration_s: f64,
    ) -> Result<Workload, SpecError> {
        check_scenario_duration(duration_s)?;
        if fleet.topology.regions.is_empty() {
            return Err(SpecError::new("fleet", "the fleet has no region"));
        }
        let utc_offset_s = resolve_clocks(&spec.regions, fleet)?;
        let profiles = resolve_profiles(spec, fleet)?;
        let mut groups: Vec<GroupModel> = fleet
            .groups
            .iter()
            .zip(&profiles)
            .map(|(group, profile)| GroupModel::new(group, profile, fleet, seed))
            .collect();
        let mut events = Vec::new();
        apply_arrivals(&spec.arrivals, fleet, duration_s, &mut groups, &mut events)?;
        apply_regime_changes(spec, fleet, duration_s, &mut groups, &mut events)?;
        let crowds = add_crowds(spec, fleet, seed, duration_s, &mut groups, &mut events)?;
        events.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        Ok(Workload {
            utc_offset_s,
            groups,
            crowds,
            events,
            scaling: HeatScaling::for_dimensions(&fleet.dims),
            duration_s,
        })
    }

    /// Every group's workload at `t_s`.
    pub fn at(&self, t_s: f64) -> Snapshot {
        let mut snapshot = Snapshot::default();
        self.at_into(t_s, &mut snapshot);
        snapshot
    }

    /// [`Workload::at`] into a snapshot the caller reuses, so a long run allocates once.
    pub fn at_into(&self, t_s: f64, out: &mut Snapshot) {
        debug_assert!(t_s.is_finite(), "sample times are finite");
        let regions = self.utc_offset_s.len();
        let phases = self.region_phases(t_s);
        out.reset(t_s, self.groups.len(), regions);
        let rows = out.access.chunks_exact_mut(regions);
        for (index, (model, access)) in self.groups.iter().zip(rows).enumerate() {
            if let Some((load, size)) = self.group_into(model, t_s, &phases, access) {
                out.active[index] = true;
                out.load[index] = load;
                out.size[index] = size;
            }
        }
    }

    /// One group's workload at `t_s`; `at` is cheaper when every group is wanted.
    pub fn group_at(&self, group: GroupId, t_s: f64) -> GroupSample {
        let mut access = vec![0.0; self.utc_offset_s.len()];
        let phases = self.region_phases(t_s);
        let sampled = self
            .groups
            .get(group.index())
            .and_then(|model| self.group_into(model, t_s, &phases, &mut access));
        let (load, size) = sampled.unwrap_or((0.0, 0.0));
        GroupSample {
            active: sampled.is_some(),
            load,
            size,
            access: access
                .iter()
                .enumerate()
                .filter(|&(_, &value)| value > 0.0)
                .map(|(region, &value)| (RegionId(region as u16), value))
                .collect(),
        }
    }

    /// One replica's heat in `state` at `t_s`: the fleet's declared heat with `load` on
    /// rate-like dimensions and `size` on size-like ones (see [`HeatScaling`]). `fleet` must
    /// be the one this workload was built for.
    pub fn scaled_heat(&self, fleet: &Fleet, group: GroupId, state: StateId, t_s: f64) -> Vec<f64> {
        debug_assert_eq!(
            fleet.groups.len(),
            self.groups.len(),
            "the workload's own fleet"
        );
        let Some(heat) = fleet
            .groups
            .get(group.index())
            .and_then(|group| group.heat.get(state.index()))
        else {
            return vec![0.0; fleet.dims_count()];
        };
        self.scaling
            .apply(heat, self.group_at(group, t_s).multipliers())
    }

    pub fn heat_scaling(&self) -> &HeatScaling {
        &self.scaling
    }

    /// When the group becomes active: 0 unless an arrival says later.
    pub fn active_from_s(&self, group: GroupId) -> f64 {
        self.groups
            .get(group.index())
            .map_or(0.0, |model| model.active_from_s)
    }

    /// Arrivals, regime changes and flash crowds (random ones included), by start time.
    pub fn events(&self) -> &[WorkloadEvent] {
        &self.events
    }

    pub fn duration_s(&self) -> f64 {
        self.duration_s
    }

    fn region_phases(&self, t_s: f64) -> Vec<RegionPhase> {
        self.utc_offset_s
            .iter()
            .map(|&offset_s| {
                let local_s = t_s + offset_s;
                let angle = TAU * local_s.rem_euclid(SECONDS_PER_DAY) / SECONDS_PER_DAY;
                // Day 0 is Monday; days 5 and 6 are the weekend.
                let weekday = (local_s / SECONDS_PER_DAY).floor().rem_euclid(7.0);
                RegionPhase {
                    hour_cos: angle.cos(),
                    hour_sin: angle.sin(),
                    weekend: weekday >= 5.0,
                }
            })
            .collect()
    }

    /// Writes the group's access by region into `access` (zeroed by the caller) and returns
    /// `(load, size)`, or `None` if the group is not active yet.
    fn group_into(
        &self,
        model: &GroupModel,
        t_s: f64,
        phases: &[RegionPhase],
        access: &mut [f64],
    ) -> Option<(f64, f64)> {
        if t_s < model.active_from_s {
            return None;
        }
        let age_days = (t_s - model.active_from_s) / SECONDS_PER_DAY;
        let regime = model.regime_at(t_s);
        let noise = if model.noise == 0.0 {
            1.0
        } else {
            1.0 + model.noise * smooth_noise(model.noise_key, t_s, NOISE_KNOT_S)
        };
        let base = model.level
            * regime.level_factor
            * growth_factor(model.trend_ln_per_day, age_days)
            * noise;
        for &(region, weight) in &regime.access {
            let phase = &phases[region.index()];
            let daily = 1.0
                + model.daily_amplitude
                    * (phase.hour_cos * model.peak_cos + phase.hour_sin * model.peak_sin);
            let weekly = if phase.weekend {
                1.0 - model.weekly_amplitude
            } else {
                1.0
            };
            access[region.index()] = (weight * base * daily * weekly).max(weight * LOAD_FLOOR);
        }
        self.apply_crowds(model, t_s, access);
        let load = access.iter().sum();
        let size = growth_factor(model.size_ln_per_day, age_days);
        debug_assert!(load >= 0.0, "load is never negative");
        debug_assert!(size > 0.0, "size is always positive");
        Some((load, size))
    }

    /// Crowds without a region scale every region's access; a crowd from one region adds its
    /// extra (relative to the group's whole load before crowds) to that region alone.
    fn apply_crowds(&self, model: &GroupModel, t_s: f64, access: &mut [f64]) {
        let active = || {
            model
                .crowds
                .iter()
                .map(|&index| &self.crowds[index as usize])
                .take_while(move |crowd| crowd.start_s <= t_s)
                .filter(move |crowd| t_s < crowd.end_s())
        };
        let base_total: f64 = access.iter().sum();
        let proportional: f64 = active()
            .filter(|crowd| crowd.region.is_none())
            .map(|crowd| crowd.extra_at(t_s))
            .sum();
        if proportional > 0.0 {
            access
                .iter_mut()
                .for_each(|value| *value *= 1.0 + proportional);
        }
        for crowd in active() {
            if let Some(region) = crowd.region {
                access[region.index()] += crowd.extra_at(t_s) * base_total;
            }
        }
    }
}

impl GroupModel {
    fn new(group: &Group, profile: &Profile, fleet: &Fleet, seed: u64) -> GroupModel {
        let peak_angle = TAU * profile.peak_hour / 24.0;
        GroupModel {
            active_from_s: 0.0,
            level: profile.level,
            daily_amplitude: profile.daily_amplitude,
            peak_cos: peak_angle.cos(),
            peak_sin: peak_angle.sin(),
            weekly_amplitude: profile.weekly_amplitude,
            trend_ln_per_day: profile.trend_per_day.ln_1p(),
            size_ln_per_day: profile.size_growth_per_day.ln_1p(),
            noise: profile.noise,
            noise_key: combine(combine(seed, NOISE_STREAM), hash_name(&group.name)),
            regimes: vec![Regime {
                from_s: f64::NEG_INFINITY,
                level_factor: 1.0,
                access: base_access(group, fleet),
            }],
            crowds: Vec::new(),
        }
    }

    fn regime_at(&self, t_s: f64) -> &Regime {
        let after = self.regimes.partition_point(|regime| regime.from_s <= t_s);
        &self.regimes[after.saturating_sub(1)]
    }
}

/// `(1 + rate)^days` from its logarithm, capped at [`GROWTH_MAX`].
fn growth_factor(ln_rate_per_day: f64, days: f64) -> f64 {
    if ln_rate_per_day == 0.0 {
        return 1.0;
    }
    (ln_rate_per_day * days).min(GROWTH_MAX.ln()).exp()
}

/// Where the group is read from: the fleet's `access` shares; without them, all from its
/// first allowed region, or evenly from every region if it may live anywhere.
fn base_access(group: &Group, fleet: &Fleet) -> Shares {
    let mut shares: Shares = group
        .access
        .iter()
        .copied()
        .filter(|&(_, share)| share > 0.0)
        .collect();
    if !shares.is_empty() {
        shares.sort_by_key(|&(region, _)| region);
        return shares;
    }
    match group.regions.as_deref() {
        Some([first, ..]) => vec![(*first, 1.0)],
        _ => {
            let count = fleet.topology.regions.len();
            (0..count)
                .map(|region| (RegionId(region as u16), 1.0 / count as f64))
                .collect()
        }
    }
}

/// Each region's UTC offset in seconds, by `RegionId`.
fn resolve_clocks(
    clocks: &BTreeMap<String, RegionClock>,
    fleet: &Fleet,
) -> Result<Vec<f64>, SpecError> {
    let topology = &fleet.topology;
    let mut offsets_s = vec![0.0; topology.regions.len()];
    for (name, clock) in clocks {
        let path = format!("workload.regions.{name}");
        let region = topology.region_by_name(name).ok_or_else(|| {
            let known = topology.regions.iter().map(|region| region.name.as_str());
            SpecError::new(&path, unknown_name("region", name, known))
        })?;
        check_range(
            &format!("{path}.utc_offset_hours"),
            clock.utc_offset_hours,
            UTC_OFFSET_HOURS_MIN,
            UTC_OFFSET_HOURS_MAX,
        )?;
        offsets_s[region.index()] = clock.utc_offset_hours * 3_600.0;
    }
    Ok(offsets_s)
}

/// Each group's profile: the default, or the most specific matching override over it.
fn resolve_profiles(spec: &WorkloadSpec, fleet: &Fleet) -> Result<Vec<Profile>, SpecError> {
    spec.default.validate("workload.default")?;
    let mut overrides: Vec<(GroupPattern, Profile)> = Vec::new();
    for (key, partial) in &spec.groups {
        let path = format!("workload.groups.{key}");
        select_groups(fleet, key, &path)?;
        let profile = partial.apply(&spec.default);
        profile.validate(&path)?;
        overrides.push((GroupPattern::parse(key, &path)?, profile));
    }
    Ok(fleet
        .groups
        .iter()
        .map(|group| {
            overrides
                .iter()
                .filter(|(pattern, _)| pattern.matches(&group.name))
                .max_by_key(|(pattern, _)| pattern.specificity())
                .map_or(spec.default, |&(_, profile)| profile)
        })
        .collect())
}

/// How an event names the groups it applies to: the group, or the pattern and a count.
fn describe_groups(fleet: &Fleet, pattern: &str, selected: &[GroupId]) -> String {
    match selected {
        [only] => fleet.group(*only).name.clone(),
        _ => format!("{pattern} ({} groups)", selected.len()),
    }
}

fn apply_arrivals(
    arrivals: &[Arrival],
    fleet: &Fleet,
    duration_s: f64,
    groups: &mut [GroupModel],
    events: &mut Vec<WorkloadEvent>,
) -> Result<(), SpecError> {
    let mut arrived_in: Vec<Option<usize>> = vec![None; groups.len()];
    for (index, arrival) in arrivals.iter().enumerate() {
        let path = format!("workload.arrivals[{index}]");
        let selected = select_groups(fleet, &arrival.group, &format!("{path}.group"))?;
        let at_s = time_within(&format!("{path}.at"), arrival.at, duration_s)?;
        for &group in &selected {
            if let Some(earlier) = arrived_in[group.index()] {
                return Err(SpecError::new(
                    format!("{path}.group"),
                    format!(
                        "group {} already arrives in workload.arrivals[{earlier}]",
                        fleet.group(group).name
                    ),
                ));
            }
            arrived_in[group.index()] = Some(index);
            groups[group.index()].active_from_s = at_s;
        }
        events.push(WorkloadEvent {
            start_s: at_s,
            end_s: None,
            description: format!(
                "{} arrives",
                describe_groups(fleet, &arrival.group, &selected)
            ),
        });
    }
    Ok(())
}

fn apply_regime_changes(
    spec: &WorkloadSpec,
    fleet: &Fleet,
    duration_s: f64,
    groups: &mut [GroupModel],
    events: &mut Vec<WorkloadEvent>,
) -> Result<(), SpecError> {
    let mut pending: Vec<Vec<PendingChange>> = (0..groups.len()).map(|_| Vec::new()).collect();
    for (index, change) in spec.regime_changes.iter().enumerate() {
        let path = format!("workload.regime_changes[{index}]");
        let selected = select_groups(fleet, &change.group, &format!("{path}.group"))?;
        let at_s = time_within(&format!("{path}.at"), change.at, duration_s)?;
        let (factor, access) = resolve_change(change, fleet, &path)?;
        for &group in &selected {
            pending[group.index()].push(PendingChange {
                at_s,
                factor,
                access: access.clone(),
            });
        }
        events.push(WorkloadEvent {
            start_s: at_s,
            end_s: None,
            description: describe_change(fleet, change, &selected),
        });
    }
    for (model, changes) in groups.iter_mut().zip(&mut pending) {
        // Stable: changes at the same instant apply in the order they are written.
        changes.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        for change in changes.drain(..) {
            let last = &model.regimes[model.regimes.len() - 1];
            let regime = Regime {
                from_s: change.at_s,
                level_factor: last.level_factor * change.factor,
                access: change.access.unwrap_or_else(|| last.access.clone()),
            };
            model.regimes.push(regime);
        }
    }
    Ok(())
}

/// A change's level factor (1 if not given) and normalized access shares, if given.
fn resolve_change(
    change: &RegimeChange,
    fleet: &Fleet,
    path: &str,
) -> Result<(f64, Option<Shares>), SpecError> {
    if change.factor.is_none() && change.access.is_none() {
        return Err(SpecError::new(
            path,
            "a regime change needs `factor`, `access` or both",
        ));
    }
    let factor = change.factor.unwrap_or(1.0);
    check_above(&format!("{path}.factor"), factor, 0.0)?;
    let access = match &change.access {
        None => None,
        Some(shares) => Some(resolve_shares(shares, fleet, &format!("{path}.access"))?),
    };
    Ok((factor, access))
}

/// Access shares by region name → normalized shares by region id, zeros left out.
fn resolve_shares(
    shares: &BTreeMap<String, f64>,
    fleet: &Fleet,
    path: &str,
) -> Result<Shares, SpecError> {
    let topology = &fleet.topology;
    let mut resolved = Vec::new();
    for (name, &share) in shares {
        let at = format!("{path}.{name}");
        let region = topology.region_by_name(name).ok_or_else(|| {
            let known = topology.regions.iter().map(|region| region.name.as_str());
            SpecError::new(&at, unknown_name("region", name, known))
        })?;
        check_range(&at, share, 0.0, f64::MAX)?;
        if share > 0.0 {
            resolved.push((region, share));
        }
    }
    let total: f64 = resolved.iter().map(|&(_, share)| share).sum();
    if !(total > 0.0 && total.is_finite()) {
        return Err(SpecError::new(
            path,
            "give at least one region a share above 0",
        ));
    }
    resolved.sort_by_key(|&(region, _)| region);
    resolved.iter_mut().for_each(|(_, share)| *share /= total);
    Ok(resolved)
}

fn describe_change(fleet: &Fleet, change: &RegimeChange, selected: &[GroupId]) -> String {
    let mut parts = Vec::new();
    if let Some(factor) = change.factor {
        parts.push(format!("load ×{factor}"));
    }
    if let Some(shares) = &change.access {
        let shares: Vec<String> = shares
            .iter()
            .map(|(region, share)| format!("{region}: {share}"))
            .collect();
        parts.push(format!("access {{{}}}", shares.join(", ")));
    }
    format!(
        "regime change on {}: {}",
        describe_groups(fleet, &change.group, selected),
        parts.join(", ")
    )
}

/// Resolves the explicit crowds, draws the random ones, and gives each group its list.
fn add_crowds(
    spec: &WorkloadSpec,
    fleet: &Fleet,
    seed: u64,
    duration_s: f64,
    groups: &mut [GroupModel],
    events: &mut Vec<WorkloadEvent>,
) -> Result<Vec<Crowd>, SpecError> {
    let mut crowds = Vec::new();
    for (index, written) in spec.flash_crowds.iter().enumerate() {
        let path = format!("workload.flash_crowds[{index}]");
        let selected = select_groups(fleet, &written.group, &format!("{path}.group"))?;
        let crowd = resolve_crowd(written, fleet, duration_s, &path)?;
        let mut description = format!(
            "flash crowd on {}: ×{}",
            describe_groups(fleet, &written.group, &selected),
            written.factor
        );
        if let Some(region) = &written.region {
            description.push_str(&format!(" from {region}"));
        }
        description.push_str(&format!(" for {}", written.duration));
        push_crowd(crowd, &selected, description, groups, &mut crowds, events);
    }
    if let Some(random) = &spec.random_flash_crowds {
        for drawn in draw_random_crowds(random, fleet, seed, duration_s)? {
            let description = format!(
                "random flash crowd on {}: ×{:.2} for {}",
                fleet.group(drawn.group).name,
                drawn.crowd.extra + 1.0,
                format_duration_s(drawn.crowd.duration_s.round())
            );
            push_crowd(
                drawn.crowd,
                &[drawn.group],
                description,
                groups,
                &mut crowds,
                events,
            );
        }
    }
    for model in groups.iter_mut() {
        model.crowds.sort_by(|&a, &b| {
            crowds[a as usize]
                .start_s
                .total_cmp(&crowds[b as usize].start_s)
        });
    }
    Ok(crowds)
}

fn resolve_crowd(
    written: &FlashCrowd,
    fleet: &Fleet,
    duration_s: f64,
    path: &str,
) -> Result<Crowd, SpecError> {
    let start_s = time_within(&format!("{path}.at"), written.at, duration_s)?;
    check_above(&format!("{path}.duration"), written.duration.seconds(), 0.0)?;
    check_range(&format!("{path}.factor"), written.factor, 1.0, f64::MAX)?;
    let topology = &fleet.topology;
    let region = match &written.region {
        None => None,
        Some(name) => Some(topology.region_by_name(name).ok_or_else(|| {
            let known = topology.regions.iter().map(|region| region.name.as_str());
            SpecError::new(
                format!("{path}.region"),
                unknown_name("region", name, known),
            )
        })?),
    };
    Ok(Crowd {
        start_s,
        duration_s: written.duration.seconds(),
        extra: written.factor - 1.0,
        region,
    })
}

fn push_crowd(
    crowd: Crowd,
    selected: &[GroupId],
    description: String,
    groups: &mut [GroupModel],
    crowds: &mut Vec<Crowd>,
    events: &mut Vec<WorkloadEvent>,
) {
    let index = crowds.len() as u32;
    for &group in selected {
        groups[group.index()].crowds.push(index);
    }
    events.push(WorkloadEvent {
        start_s: crowd.start_s,
        end_s: Some(crowd.end_s()),
        description,
    });
    crowds.push(crowd);
}

#[cfg(test)]
mod tests;
