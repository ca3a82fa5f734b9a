//! The controller's life: campaign, lead while the lease holds, step down, campaign again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::controller::{Controller, LeaderState, LeaderView};
use crate::reconcile::StepDown;

/// How often a follower refreshes who leads (for redirecting agents and operators).
const LEADER_POLL: Duration = Duration::from_millis(500);

impl Controller {
    /// Runs until `shutdown` resolves; on shutdown a leader resigns so a standby takes over
    /// at once instead of after the lease.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let leadership = tokio::select! {
                _ = &mut shutdown => return,
                won = self.follow() => won,
            };
            let leadership: Arc<dyn meridian_store::Leadership> = Arc::from(leadership);
            let outcome = tokio::select! {
                _ = &mut shutdown => {
                    let _ = leadership.resign().await;
                    self.step_down("shutting down");
                    return;
                }
                outcome = self.lead(Arc::clone(&leadership)) => outcome,
            };
            self.step_down(&outcome.0);
            // Give the lease up if it is still ours, so whoever is next need not wait.
            let _ = tokio::time::timeout(Duration::from_secs(1), leadership.resign()).await;
        }
    }

    /// Campaigns until elected, keeping track of who leads meanwhile.
    async fn follow(&self) -> Box<dyn meridian_store::Leadership> {
        let value = serde_json::to_vec(&LeaderView {
            id: self.config.id.clone(),
            api_url: self.config.api_url.clone(),
            epoch: 0,
        })
        .unwrap_or_default();
        let election = self.config.keys.election();
        let campaign = async {
            loop {
                match self
                    .store
                    .campaign(&election, value.clone(), self.config.lease_ttl)
                    .await
                {
                    Ok(leadership) => return leadership,
                    Err(e) => {
                        tracing::warn!("campaign failed: {e}; retrying");
                        tokio::time::sleep(self.config.lease_ttl / 2).await;
                    }
                }
            }
        };
        let watch = async {
            loop {
                if let Ok(Some(info)) = self.store.leader(&election).await {
                    if let Ok(mut view) = serde_json::from_slice::<LeaderView>(&info.value) {
                        view.epoch = info.epoch;
                        self.lock().known_leader = Some(view);
                    }
                }
                tokio::time::sleep(LEADER_POLL).await;
            }
        };
        tokio::select! {
            leadership = campaign => leadership,
            never = watch => never,
        }
    }

    async fn lead(&self, leadership: Arc<dyn meridian_store::Leadership>) -> StepDown {
        let epoch = leadership.epoch();
        let now_ms = self.now_ms();
        {
            let mut inner = self.lock();
            inner.leader = Some(LeaderState {
                leadership: Arc::clone(&leadership),
                epoch,
                since_ms: now_ms,
                settle_until_ms: now_ms + self.config.settle.as_millis() as u64,
                next_plan_id: 1,
                last_plan_ms: None,
                loaded: false,
                decided_for: None,
            });
            inner.known_leader = Some(LeaderView {
                id: self.config.id.clone(),
                api_url: self.config.api_url.clone(),
                epoch,
            });
            inner.event(format!("`{}` leads with epoch {epoch}", self.config.id));
        }
        self.metrics.is_leader.set(1);
        self.metrics.epoch.set(epoch);
        self.metrics.leader_changes.inc();
        if let Err(e) = self.load().await {
            return e;
        }
        if let Some(leader) = self.lock().leader.as_mut() {
            leader.loaded = true;
        }
        let lost = leadership.lost();
        tokio::pin!(lost);
        let spec_watch = self.watch_spec();
        tokio::pin!(spec_watch);
        loop {
            if let Err(e) = self.reconcile().await {
                return e;
            }
            tokio::select! {
                _ = &mut lost => return StepDown("leadership lost".into()),
                e = &mut spec_watch => return e,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.config.tick) => {}
            }
        }
    }

    /// Reloads the spec whenever it changes in the store (an operator's PUT, another tool).
    async fn watch_spec(&self) -> StepDown {
        let key = self.config.keys.spec();
        let mut seen = 0;
        loop {
            let revision = match self
                .store
                .wait_change(&key, seen, Duration::from_secs(10))
                .await
            {
                Ok(r) => r,
                Err(e) => return StepDown(format!("store: {e}")),
            };
            if revision > seen {
                if let Err(e) = self.reload_spec().await {
                    return e;
                }
                seen = revision;
                self.wake();
            }
        }
    }

    fn step_down(&self, why: &str) {
        let mut inner = self.lock();
        if inner.leader.take().is_some() {
            inner.event(format!("`{}` stops leading: {why}", self.config.id));
            self.metrics.leader_changes.inc();
        }
        inner.known_leader = None;
        // Plans are reloaded from the store by whoever leads next; keeping a stale copy
        // would only mislead the API.
        inner.plans.clear();
        self.metrics.is_leader.set(0);
    }
}
