//! The workload processes agents started under a directory, for the demo and benches to clean
//! up after themselves (agents leave workloads running when they stop, on purpose).

use std::path::Path;

/// SIGKILLs every workload a pid file under `dir` names.
pub fn kill_all(dir: &Path) {
    for (_, record) in meridian_agent::process::pidfile::all_under(dir) {
        // Already gone is fine: its agent may have stopped it.
        let _ = std::process::Command::new("kill")
            .args(["-9", &record.pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
}
