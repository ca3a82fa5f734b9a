//! How a `model_server` product is configured.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::ProcessConfig;
use crate::products::support::PortRange;

/// A model server per replica, started once its weights are on the node and verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelServerConfig {
    /// The server process, as for a generic process. It finds its port in `{dir}/port` and
    /// its verified weights at `{dir}/export/weights`.
    pub server: ProcessConfig,
    pub ports: PortRange,
    /// Where weights come from when the planner names no peer to copy from:
    /// `<blob_dir>/<weights>`, with its SHA-256 (hex) in `<blob_dir>/<weights>.sha256`.
    pub blob_dir: PathBuf,
    /// The weights' file name in `blob_dir`; `{group}` is the replica's group.
    #[serde(default = "default_weights")]
    pub weights: String,
    /// The rate of pulls from `blob_dir`, MB/s (the planner books peer copies, not the blob
    /// store). Absent: as fast as the disk goes.
    #[serde(default)]
    pub blob_rate_mbps: Option<f64>,
    /// GPU memory each replica holds, GiB.
    #[serde(default)]
    pub gpu_mem_gib: f64,
    /// This node's GPU memory, GiB: a replica that would not fit is refused, whatever the
    /// controller thought (the controller's view of the node can be stale).
    #[serde(default)]
    pub gpu_mem_gib_capacity: f64,
}

fn default_weights() -> String {
    "{group}.bin".to_string()
}

impl ModelServerConfig {
    /// Checks the options; on error, the field (relative to this product) and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.server
            .validate()
            .map_err(|(field, reason)| (format!("server.{field}"), reason))?;
        self.ports
            .validate()
            .map_err(|reason| ("ports".to_string(), reason))?;
        if self.blob_dir.as_os_str().is_empty() {
            return Err(("blob_dir".into(), "empty".into()));
        }
        if self.weights.is_empty() || self.weights.contains('/') {
            return Err(("weights".into(), "a file name, without `/`".into()));
        }
        if let Some(rate) = self.blob_rate_mbps {
            if !rate.is_finite() || rate <= 0.0 {
                return Err(("blob_rate_mbps".into(), format!("{rate} is not a rate")));
            }
        }
        for (field, value) in [
            ("gpu_mem_gib", self.gpu_mem_gib),
            ("gpu_mem_gib_capacity", self.gpu_mem_gib_capacity),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err((field.into(), format!("{value} is not an amount")));
            }
        }
        if self.gpu_mem_gib > self.gpu_mem_gib_capacity {
            return Err((
                "gpu_mem_gib".into(),
                format!(
                    "{} GiB per replica is more than the node's {} GiB (gpu_mem_gib_capacity)",
                    self.gpu_mem_gib, self.gpu_mem_gib_capacity
                ),
            ));
        }
        Ok(())
    }

    /// The weights' file name for `group`.
    pub fn weights_name(&self, group: &str) -> String {
        self.weights.replace("{group}", group)
    }
}
