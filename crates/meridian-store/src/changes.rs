//! Recent changes of a single-process store, so `wait_change` can tell whether a key under a
//! prefix changed after a revision (deletes included) without scanning the data.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::watch;

use crate::Revision;

/// How many recent changes are remembered; a wait older than that returns at once (the caller
/// re-reads, as it would after an etcd compaction).
const REMEMBERED_MAX: usize = 4096;

pub(crate) struct Changes {
    recent: VecDeque<(Revision, String)>,
    /// The revision before the oldest remembered change.
    forgotten_through: Revision,
    notify: watch::Sender<Revision>,
}

impl Changes {
    pub(crate) fn new(revision: Revision) -> Changes {
        Changes {
            recent: VecDeque::new(),
            forgotten_through: revision,
            notify: watch::Sender::new(revision),
        }
    }

    pub(crate) fn record(&mut self, revision: Revision, keys: impl IntoIterator<Item = String>) {
        for key in keys {
            if self.recent.len() == REMEMBERED_MAX {
                if let Some((old, _)) = self.recent.pop_front() {
                    self.forgotten_through = old;
                }
            }
            self.recent.push_back((revision, key));
        }
        self.notify.send_replace(revision);
    }

    /// True if a key under `prefix` changed after `after`, or if that is too long ago to know.
    pub(crate) fn changed_since(&self, prefix: &str, after: Revision) -> bool {
        after < self.forgotten_through
            || self
                .recent
                .iter()
                .rev()
                .take_while(|(revision, _)| *revision > after)
                .any(|(_, key)| key.starts_with(prefix))
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Revision> {
        self.notify.subscribe()
    }
}

/// Waits on `receiver` until `check` says yes or `timeout` passes.
pub(crate) async fn wait_until(
    mut receiver: watch::Receiver<Revision>,
    timeout: Duration,
    check: impl Fn() -> bool,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check() {
            return;
        }
        match tokio::time::timeout_at(deadline, receiver.changed()).await {
            Ok(Ok(())) => continue,
            // Timed out, or the store is gone.
            Ok(Err(_)) | Err(_) => return,
        }
    }
}
