//! What the kernel says about a workload process, from `/proc`.
//!
//! A pid alone does not name a process: pids are reused. A process is named by its pid *and*
//! its start time (field 22 of `/proc/<pid>/stat`, in clock ticks since boot), which no other
//! process can share; that pair is what pid files record and what adoption checks.

use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// One process, for as long as it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub pid: u32,
    pub start_ticks: u64,
}

/// The fields of `/proc/<pid>/stat` the agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// `R`, `S`, `D`, `Z` (zombie: exited, not yet reaped), `X` (dead), ...
    pub state: char,
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    pub start_ticks: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself
/// hold spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name, index 0 is field 3 (state): field n is at index n - 3.
    let state = fields.first()?.chars().next()?;
    let user_ticks: u64 = fields.get(14 - 3)?.parse().ok()?;
    let system_ticks: u64 = fields.get(15 - 3)?.parse().ok()?;
    let start_ticks: u64 = fields.get(22 - 3)?.parse().ok()?;
    Some(ProcStat {
        state,
        cpu_ticks: user_ticks.saturating_add(system_ticks),
        start_ticks,
    })
}

pub fn read_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// The identity of a live process, `None` if there is none with that pid.
pub fn identify(pid: u32) -> Option<ProcessIdentity> {
    let stat = read_stat(pid)?;
    is_running(stat.state).then_some(ProcessIdentity {
        pid,
        start_ticks: stat.start_ticks,
    })
}

/// Whether this very process still runs (a zombie has exited: it does not).
pub fn is_alive(identity: ProcessIdentity) -> bool {
    read_stat(identity.pid)
        .is_some_and(|stat| stat.start_ticks == identity.start_ticks && is_running(stat.state))
}

fn is_running(state: char) -> bool {
    !matches!(state, 'Z' | 'X' | 'x')
}

/// Resident memory, from `VmRSS` in `/proc/<pid>/status` (in kB).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes.saturating_mul(1024))
}

fn uptime_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The kernel's clock tick (`USER_HZ`), the unit of `/proc` CPU and start times.
pub fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        use nix::unistd::{sysconf, SysconfVar};
        match sysconf(SysconfVar::CLK_TCK) {
            Ok(Some(ticks)) if ticks > 0 => ticks.unsigned_abs(),
            // Linux has used 100 on every architecture for decades.
            _ => 100,
        }
    })
}

/// The last CPU reading of a process, to turn the next one into a rate.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    identity: ProcessIdentity,
    at: Instant,
    cpu_ticks: u64,
}

/// Shorter than this since the last sample, the rate is too noisy to use.
const RATE_INTERVAL_MIN_S: f64 = 0.05;

/// Heat of a process: `cpu` in cores (CPU seconds per second since the last sample, or over
/// its lifetime at the first) and `mem_gib` (resident memory). Only the process itself is
/// counted, not children it forks. Empty if the process is gone.
pub fn measure_heat(
    identity: ProcessIdentity,
    previous: &mut Option<CpuSample>,
) -> Vec<(String, f64)> {
    let Some(stat) = read_stat(identity.pid).filter(|s| s.start_ticks == identity.start_ticks)
    else {
        return Vec::new();
    };
    let now = Instant::now();
    let ticks = ticks_per_second() as f64;
    let since_last = previous
        .filter(|p| p.identity == identity)
        .map(|p| (now.duration_since(p.at).as_secs_f64(), p.cpu_ticks))
        .filter(|(elapsed_s, _)| *elapsed_s >= RATE_INTERVAL_MIN_S);
    let cpu_cores = match since_last {
        Some((elapsed_s, ticks_before)) => {
            stat.cpu_ticks.saturating_sub(ticks_before) as f64 / ticks / elapsed_s
        }
        None => lifetime_cores(&stat, ticks),
    };
    *previous = Some(CpuSample {
        identity,
        at: now,
        cpu_ticks: stat.cpu_ticks,
    });
    let mem_gib = rss_bytes(identity.pid).unwrap_or(0) as f64 / (1u64 << 30) as f64;
    vec![
        ("cpu".to_string(), cpu_cores),
        ("mem_gib".to_string(), mem_gib),
    ]
}

fn lifetime_cores(stat: &ProcStat, ticks_per_second: f64) -> f64 {
    let Some(uptime_s) = uptime_seconds() else {
        return 0.0;
    };
    let age_s = uptime_s - stat.start_ticks as f64 / ticks_per_second;
    if age_s < RATE_INTERVAL_MIN_S {
        return 0.0;
    }
    stat.cpu_ticks as f64 / ticks_per_second / age_s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let text = "4242 (we (ird) name) S 1 4242 4242 0 -1 4194304 100 0 0 0 \
                    250 50 0 0 20 0 1 0 987654 1000000 200 18446744073709551615";
        let stat = parse_stat(text).expect("parses");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.cpu_ticks, 300);
        assert_eq!(stat.start_ticks, 987654);
        assert_eq!(parse_stat("12 (short) S 1"), None);
    }

    #[test]
    fn this_process_is_alive_and_measurable() {
        let pid = std::process::id();
        let identity = identify(pid).expect("we run");
        assert!(is_alive(identity));
        let other = ProcessIdentity {
            start_ticks: identity.start_ticks + 1,
            ..identity
        };
        assert!(!is_alive(other), "a reused pid is another process");
        let mut sample = None;
        let heat = measure_heat(identity, &mut sample);
        assert_eq!(heat.len(), 2);
        assert!(heat[0].1 >= 0.0 && heat[1].1 > 0.0, "{heat:?}");
        assert!(ticks_per_second() > 0);
    }
}
