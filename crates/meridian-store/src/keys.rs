//! Where the control plane keeps what, under a root prefix (one per cell).
//!
//! - `spec/fleet`: the fleet file (YAML text) the controller works from.
//! - `target/<group>`: the desired placement of one group (JSON) and the decision it came from
//!   (one key per group: a whole fleet's placement would outgrow etcd's request limit).
//! - `plans/<id>`: a plan and the progress of each of its steps.
//! - `nodes/<name>/admin`: operator marks (cordoned, draining).
//! - `observed/<name>`: what a node's agent last reported it runs.
//! - `election`: the leading controller (lease-held; its create revision is the epoch).

pub const SPEC: &str = "spec/fleet";
pub const TARGET: &str = "target/";
pub const PLANS: &str = "plans/";
pub const NODES: &str = "nodes/";
pub const OBSERVED: &str = "observed/";
pub const ELECTION: &str = "election";

/// Keys of one control plane, all under `root` (e.g. `/meridian/` or `/meridian/cell-a/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    root: String,
}

impl Keys {
    pub fn new(root: &str) -> Keys {
        let mut root = root.to_string();
        if !root.ends_with('/') {
            root.push('/');
        }
        Keys { root }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn spec(&self) -> String {
        format!("{}{SPEC}", self.root)
    }

    pub fn targets(&self) -> String {
        format!("{}{TARGET}", self.root)
    }

    pub fn target(&self, group: &str) -> String {
        format!("{}{TARGET}{group}", self.root)
    }

    pub fn plans(&self) -> String {
        format!("{}{PLANS}", self.root)
    }

    pub fn plan(&self, id: u64) -> String {
        // Zero-padded so key order is plan order.
        format!("{}{PLANS}{id:012}", self.root)
    }

    pub fn node_admin(&self, node: &str) -> String {
        format!("{}{NODES}{node}/admin", self.root)
    }

    pub fn nodes(&self) -> String {
        format!("{}{NODES}", self.root)
    }

    pub fn observed(&self, node: &str) -> String {
        format!("{}{OBSERVED}{node}", self.root)
    }

    pub fn observed_all(&self) -> String {
        format!("{}{OBSERVED}", self.root)
    }

    pub fn election(&self) -> String {
        format!("{}{ELECTION}", self.root)
    }
}

impl Default for Keys {
    fn default() -> Keys {
        Keys::new("/meridian/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_keys_sort_in_plan_order() {
        let keys = Keys::new("/m");
        assert!(keys.plan(9) < keys.plan(10));
        assert_eq!(keys.plan(7), "/m/plans/000000000007");
        assert!(keys.plan(7).starts_with(&keys.plans()));
    }
}
