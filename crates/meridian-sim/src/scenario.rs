//! A scenario file: which fleet (a file, or a `gen` spec), how long and how finely to
//! simulate, which strategies to compare, and the `workload:` and `faults:` sections
//! (docs/sim-scenario.md). Loading resolves every name against the fleet, and every mistake
//! comes back as `file:line: path: message`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use meridian_model::line_index::LineIndex;
use meridian_model::Fleet;

use crate::duration::HumanDuration;
use crate::faults::{FaultSchedule, FaultSpec};
use crate::workload::{Workload, WorkloadSpec};

/// The strategies a scenario may name.
pub const STRATEGIES: [&str; 5] = ["static", "reactive", "siloed", "unified", "oracle"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenFleet {
    pub nodes: usize,
    pub replicas: usize,
    #[serde(default)]
    pub seed: u64,
    pub regions: Option<usize>,
    pub utilization: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    pub name: String,
    /// A fleet file, relative to the scenario file.
    pub fleet: Option<PathBuf>,
    /// Or a generated fleet.
    pub r#gen: Option<GenFleet>,
    pub duration: HumanDuration,
    #[serde(default = "default_tick")]
    pub tick: HumanDuration,
    #[serde(default = "default_control_interval")]
    pub control_interval: HumanDuration,
    #[serde(default = "default_failover")]
    pub failover: HumanDuration,
    #[serde(default = "default_sample")]
    pub sample: HumanDuration,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_strategies")]
    pub strategies: Vec<String>,
    /// How far ahead the oracle sees.
    #[serde(default = "default_horizon")]
    pub oracle_horizon: HumanDuration,
    #[serde(default)]
    pub workload: WorkloadSpec,
    #[serde(default)]
    pub faults: FaultSpec,
}

fn default_tick() -> HumanDuration {
    HumanDuration::from_seconds(60.0)
}
fn default_control_interval() -> HumanDuration {
    HumanDuration::from_seconds(300.0)
}
fn default_failover() -> HumanDuration {
    HumanDuration::from_seconds(30.0)
}
fn default_sample() -> HumanDuration {
    HumanDuration::from_seconds(600.0)
}
fn default_horizon() -> HumanDuration {
    HumanDuration::from_seconds(7200.0)
}
fn default_strategies() -> Vec<String> {
    STRATEGIES.iter().map(|s| s.to_string()).collect()
}

/// A loaded scenario: the spec, its fleet, and the resolved workload and faults.
pub struct Scenario {
    pub file: String,
    pub spec: ScenarioSpec,
    pub fleet: Fleet,
    pub workload: Workload,
    pub faults: FaultSchedule,
}

/// Every way a scenario can fail to load, as one readable line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

/// Most seconds a run may span (a year), and fewest seconds per tick.
const DURATION_S_MAX: f64 = 366.0 * 86_400.0;
const TICK_S_MIN: f64 = 1.0;
/// Most ticks in one run: bounds memory and time whatever the file asks.
pub const TICKS_MAX: f64 = 2_000_000.0;

impl Scenario {
    /// Reads a scenario from `text`; `file` names it in errors and anchors a relative
    /// `fleet:` path.
    pub fn from_yaml(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
        Scenario::from_yaml_with(text, file, &|path| {
            std::fs::read_to_string(path).map_err(|e| e.to_string())
        })
    }

    /// [`Scenario::from_yaml`] with the fleet file read by `read` (given the path the
    /// scenario names, resolved against `file`): a program that embeds its scenario embeds
    /// its fleet too.
    pub fn from_yaml_with(
        text: &str,
        file: &str,
        read: &dyn Fn(&Path) -> Result<String, String>,
    ) -> Result<Scenario, ScenarioError> {
        let index = LineIndex::build(text);
        let at = |path: &str| match index.line_of(path) {
            Some(line) => format!("{file}:{line}: {path}"),
            None => format!("{file}: {path}"),
        };
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        let spec: ScenarioSpec = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.location().map(|l| l.line());
            match line {
                Some(line) => ScenarioError(format!("{file}:{line}: {path}: {inner}")),
                None => ScenarioError(format!("{}: {inner}", at(&path))),
            }
        })?;
        check_times(&spec)
            .map_err(|(path, message)| ScenarioError(format!("{}: {message}", at(path))))?;
        for (i, name) in spec.strategies.iter().enumerate() {
            if !STRATEGIES.contains(&name.as_str()) {
                let path = format!("strategies[{i}]");
                return Err(ScenarioError(format!(
                    "{}: unknown strategy `{name}` (known: {})",
                    at(&path),
                    STRATEGIES.join(", ")
                )));
            }
        }
        let fleet = load_fleet(&spec, file, read)
            .map_err(|m| ScenarioError(format!("{}: {m}", at("fleet"))))?;
        let duration_s = spec.duration.seconds();
        let workload =
            Workload::new(&spec.workload, &fleet, spec.seed, duration_s).map_err(|e| {
                let path = in_section("workload", &e.path);
                ScenarioError(format!("{}: {}", at(&path), e.message))
            })?;
        let faults =
            FaultSchedule::new(&spec.faults, &fleet, spec.seed, duration_s).map_err(|e| {
                let path = in_section("faults", &e.path);
                ScenarioError(format!("{}: {}", at(&path), e.message))
            })?;
        Ok(Scenario {
            file: file.to_string(),
            spec,
            fleet,
            workload,
            faults,
        })
    }

    pub fn read(path: &str) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError(format!("cannot read `{path}`: {e}")))?;
        Scenario::from_yaml(&text, path)
    }
}

/// A section's error path as a path in the whole scenario.
fn in_section(section: &str, path: &str) -> String {
    if path.starts_with(&format!("{section}.")) || path == section {
        path.to_string()
    } else {
        format!("{section}.{path}")
    }
}

fn check_times(spec: &ScenarioSpec) -> Result<(), (&'static str, String)> {
    let duration = spec.duration.seconds();
    if !(duration > 0.0 && duration <= DURATION_S_MAX) {
        return Err((
            "duration",
            "must be more than 0 and at most 366d".to_string(),
        ));
    }
    let tick = spec.tick.seconds();
    if tick.is_nan() || tick < TICK_S_MIN {
        return Err(("tick", format!("must be at least {TICK_S_MIN}s")));
    }
    if duration / tick > TICKS_MAX {
        return Err((
            "tick",
            format!(
                "{:.0} ticks is more than {TICKS_MAX:.0}; use a longer tick",
                duration / tick
            ),
        ));
    }
    for (path, value) in [
        ("control_interval", spec.control_interval.seconds()),
        ("sample", spec.sample.seconds()),
    ] {
        if value < tick {
            return Err((path, format!("must be at least one tick ({tick}s)")));
        }
    }
    Ok(())
}

fn load_fleet(
    spec: &ScenarioSpec,
    file: &str,
    read: &dyn Fn(&Path) -> Result<String, String>,
) -> Result<Fleet, String> {
    match (&spec.fleet, &spec.r#gen) {
        (Some(_), Some(_)) => Err("give either `fleet` or `gen`, not both".to_string()),
        (None, None) => Err("missing: give `fleet: FILE` or `gen: {nodes, replicas}`".to_string()),
        (Some(path), None) => {
            let full = Path::new(file)
                .parent()
                .unwrap_or(Path::new("."))
                .join(path);
            let shown = full.display().to_string();
            let text = read(&full).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
            Fleet::from_yaml(&text, &shown)
                .map_err(|p| format!("`{shown}` is not a valid fleet\n{p}"))
        }
        (None, Some(g)) => {
            let mut gen_spec = meridian_gen::GenSpec::new(g.nodes, g.replicas, g.seed);
            if let Some(regions) = g.regions {
                gen_spec.regions = regions;
            }
            if let Some(utilization) = g.utilization {
                gen_spec.target_utilization = utilization;
            }
            let yaml = meridian_gen::generate_yaml(&gen_spec).map_err(|e| format!("gen: {e}"))?;
            Fleet::from_yaml(&yaml, "generated").map_err(|p| format!("gen: {p}"))
        }
    }
}
