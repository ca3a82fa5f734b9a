//! Writing the leader's changes to the store, fenced by its epoch, and loading them back when
//! a controller becomes leader.

use std::sync::Arc;

use meridian_model::Fleet;
use meridian_store::{Commit, Compare, Entry, Txn};

use crate::controller::{Controller, PlanEntry, Spec};
use crate::reconcile::StepDown;
use crate::records::{NodeAdmin, ObservedRecord, PlanRecord};

/// One write the leader owes the store.
enum Write {
    Plan {
        id: u64,
        record: PlanRecord,
        revision: Option<i64>,
    },
    Observed {
        node: String,
        record: ObservedRecord,
        revision: Option<i64>,
    },
    Target {
        group: String,
        record: crate::records::TargetRecord,
        revision: Option<i64>,
    },
}

impl Controller {
    /// Writes every dirty plan and changed observation; acknowledges the transition reports
    /// recorded before the writes to their agents only once the writes succeeded.
    pub(crate) async fn persist(&self) -> Result<(), StepDown> {
        let _one_at_a_time = self.persisting.lock().await;
        let (fence, writes, acks) = {
            let mut inner = self.lock();
            let Some(leader) = inner.leader.as_ref() else {
                return Err(StepDown("not leading".into()));
            };
            let fence = leader.leadership.fence();
            let mut writes = Vec::new();
            for (id, entry) in inner.plans.iter_mut().filter(|(_, e)| e.dirty) {
                entry.dirty = false;
                writes.push(Write::Plan {
                    id: *id,
                    record: entry.record.clone(),
                    revision: entry.revision,
                });
            }
            for (group, entry) in inner.targets.iter_mut().filter(|(_, e)| e.dirty) {
                entry.dirty = false;
                writes.push(Write::Target {
                    group: group.clone(),
                    record: entry.record.clone(),
                    revision: entry.revision,
                });
            }
            let mut acks = Vec::new();
            for (node, state) in inner.nodes.iter_mut() {
                if state.observed_dirty {
                    state.observed_dirty = false;
                    writes.push(Write::Observed {
                        node: node.clone(),
                        record: ObservedRecord {
                            node: node.clone(),
                            incarnation: state.incarnation,
                            replicas: state.replicas.clone(),
                        },
                        revision: state.observed_revision,
                    });
                }
                if !state.acks_pending.is_empty() {
                    acks.push((node.clone(), std::mem::take(&mut state.acks_pending)));
                }
            }
            (fence, writes, acks)
        };
        for write in writes {
            self.write(&fence, write).await?;
        }
        let mut inner = self.lock();
        for (node, ids) in acks {
            inner
                .nodes
                .entry(node)
                .or_default()
                .acks_durable
                .extend(ids);
        }
        Ok(())
    }

    async fn write(&self, fence: &meridian_store::Fence, write: Write) -> Result<(), StepDown> {
        let keys = &self.config.keys;
        let (key, value, revision) = match &write {
            Write::Plan {
                id,
                record,
                revision,
            } => (keys.plan(*id), to_json(record)?, *revision),
            Write::Observed {
                node,
                record,
                revision,
            } => (keys.observed(node), to_json(record)?, *revision),
            Write::Target {
                group,
                record,
                revision,
            } => (keys.target(group), to_json(record)?, *revision),
        };
        let compare = match revision {
            Some(revision) => Compare::ModRevision {
                key: key.clone(),
                revision,
            },
            None => Compare::Absent { key: key.clone() },
        };
        let txn = Txn::fenced(fence.clone())
            .compare(compare)
            .put(key.clone(), value);
        let outcome = self
            .store
            .commit(txn)
            .await
            .map_err(|e| StepDown(format!("store: {e}")))?;
        let revision = match outcome {
            Commit::Applied { revision } => revision,
            Commit::Fenced => return Err(StepDown("fenced: another controller leads".into())),
            Commit::Conflict => {
                return Err(StepDown(format!("{key} changed behind this leader's back")))
            }
        };
        let mut inner = self.lock();
        match write {
            Write::Plan { id, .. } => {
                if let Some(entry) = inner.plans.get_mut(&id) {
                    entry.revision = Some(revision);
                }
            }
            Write::Observed { node, .. } => {
                inner.nodes.entry(node).or_default().observed_revision = Some(revision);
            }
            Write::Target { group, .. } => {
                if let Some(entry) = inner.targets.get_mut(&group) {
                    entry.revision = Some(revision);
                }
            }
        }
        Ok(())
    }

    /// Loads the spec, plans, operator marks and observations a new leader starts from.
    pub(crate) async fn load(&self) -> Result<(), StepDown> {
        let keys = self.config.keys.clone();
        let store_error = |e: meridian_store::StoreError| StepDown(format!("store: {e}"));
        let spec = self.store.get(&keys.spec()).await.map_err(store_error)?;
        let spec = spec.map(|entry| parse_spec(&entry)).transpose()?;
        let plans = self.store.list(&keys.plans()).await.map_err(store_error)?;
        let nodes = self.store.list(&keys.nodes()).await.map_err(store_error)?;
        let observed = self
            .store
            .list(&keys.observed_all())
            .await
            .map_err(store_error)?;
        let targets = self
            .store
            .list(&keys.targets())
            .await
            .map_err(store_error)?;
        // Parsed once, before taking the lock.
        let plans: Vec<(PlanRecord, i64)> = plans
            .entries
            .iter()
            .map(|entry| Ok((from_json::<PlanRecord>(entry)?, entry.mod_revision)))
            .collect::<Result<_, StepDown>>()?;
        let final_count = plans.iter().filter(|(p, _)| p.status.is_final()).count();
        let mut skip_final = final_count.saturating_sub(self.config.history_max);
        let now_ms = self.now_ms();
        // Agents get the settle period to find this leader before any is judged.
        let grace_until_ms = now_ms + self.config.settle.as_millis() as u64;
        let mut inner = self.lock();
        inner.spec = spec;
        inner.plans.clear();
        let mut next_plan_id = 1;
        for (record, revision) in plans {
            next_plan_id = next_plan_id.max(record.id + 1);
            let in_flight = crate::dispatch::in_flight(&record).next().is_some();
            if record.status.is_final() && !in_flight && skip_final > 0 {
                skip_final -= 1;
                continue;
            }
            inner.plans.insert(
                record.id,
                PlanEntry {
                    record,
                    revision: Some(revision),
                    dirty: false,
                    world: 0,
                },
            );
        }
        inner.targets.clear();
        for entry in &targets.entries {
            let record: crate::records::TargetRecord = from_json(entry)?;
            inner.targets.insert(
                record.placement.group.clone(),
                crate::controller::TargetEntry {
                    record,
                    revision: Some(entry.mod_revision),
                    dirty: false,
                },
            );
        }
        inner.admin.clear();
        for entry in &nodes.entries {
            let Some(node) = entry
                .key
                .strip_prefix(&keys.nodes())
                .and_then(|k| k.strip_suffix("/admin"))
            else {
                continue;
            };
            let admin: NodeAdmin = from_json(entry)?;
            inner
                .admin
                .insert(node.to_string(), (admin, Some(entry.mod_revision)));
        }
        for entry in &observed.entries {
            let record: ObservedRecord = from_json(entry)?;
            inner.detector.grace(&record.node, grace_until_ms);
            let state = inner.nodes.entry(record.node.clone()).or_default();
            state.observed_revision = Some(entry.mod_revision);
            if state.last_sync_ms.is_none() {
                state.incarnation = record.incarnation;
                state.replicas = record.replicas;
            }
        }
        // Agents that synced while this controller followed are known too.
        let names: Vec<String> = inner.nodes.keys().cloned().collect();
        inner.leaders.clear();
        for name in names {
            inner.detector.grace(&name, grace_until_ms);
            inner.index_leaders_of(&name);
        }
        if let Some(leader) = inner.leader.as_mut() {
            leader.next_plan_id = next_plan_id;
        }
        Ok(())
    }

    /// Reads the spec again after it changed in the store.
    pub(crate) async fn reload_spec(&self) -> Result<(), StepDown> {
        let entry = self
            .store
            .get(&self.config.keys.spec())
            .await
            .map_err(|e| StepDown(format!("store: {e}")))?;
        let spec = entry.map(|e| parse_spec(&e)).transpose();
        let mut inner = self.lock();
        match spec {
            Ok(spec) => {
                // Only ever forward: a reload that read an older revision than one already
                // loaded (racing a PUT) must not put the old spec back.
                let newer = match (&inner.spec, &spec) {
                    (Some(current), Some(read)) => read.revision > current.revision,
                    (None, Some(_)) => true,
                    (_, None) => false,
                };
                if newer {
                    if let Some(s) = &spec {
                        inner.event(format!("fleet spec revision {} loaded", s.revision));
                    }
                    inner.spec = spec;
                }
            }
            // A spec that does not parse never replaces a good one (the API validates before
            // writing; this guards against writes by other tools).
            Err(e) => inner.event(format!("ignoring the stored spec: {}", e.0)),
        }
        Ok(())
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StepDown> {
    serde_json::to_vec(value).map_err(|e| StepDown(format!("encoding: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(entry: &Entry) -> Result<T, StepDown> {
    serde_json::from_slice(&entry.value)
        .map_err(|e| StepDown(format!("store key {} does not parse: {e}", entry.key)))
}

fn parse_spec(entry: &Entry) -> Result<Spec, StepDown> {
    let yaml = String::from_utf8(entry.value.clone())
        .map_err(|_| StepDown(format!("store key {} is not UTF-8", entry.key)))?;
    let fleet = Fleet::from_yaml(&yaml, &entry.key)
        .map_err(|p| StepDown(format!("stored spec is invalid: {p}")))?;
    Ok(Spec {
        fleet: Arc::new(fleet),
        yaml,
        revision: entry.mod_revision,
    })
}
