//! One etcd watch, read until something happens or a deadline, and always cancelled.

use std::time::Duration;

use etcd_client::{Event, WatchOptions, WatchStream};
use meridian_store::{Result, Revision};
use tokio::time::Instant;

use crate::store::{EtcdStore, Resend};

/// How long cancelling a watch may take. The cancel is a message queued on the watch stream;
/// dropping the stream right after ends the watch on the server even if the queue was full.
const CANCEL_WAIT: Duration = Duration::from_millis(100);

/// What a watch saw next.
#[derive(Debug)]
pub(crate) enum WatchNext {
    /// Changes; `revision` is the store's revision when etcd sent them.
    Events {
        revision: Revision,
        events: Vec<Event>,
    },
    /// The start revision was compacted away: the history cannot be replayed, re-read instead.
    Compacted {
        revision: Revision,
    },
    TimedOut,
    /// The stream ended, failed or was cancelled by the server (e.g. its member died).
    Broken,
}

pub(crate) struct KeyWatch {
    stream: WatchStream,
    /// Set by the server's "created" answer; needed to cancel.
    watch_id: Option<i64>,
}

impl KeyWatch {
    /// Watches `key` (or every key under it, with `prefix`) from revision `from` on.
    pub(crate) async fn open(
        store: &EtcdStore,
        key: &str,
        prefix: bool,
        from: Revision,
    ) -> Result<KeyWatch> {
        // Revision 0 would mean "from now" to etcd and skip what happened since `from`.
        let mut options = WatchOptions::new().with_start_revision(from.max(1));
        if prefix {
            options = options.with_prefix();
        }
        let stream = store
            .request("watch", Resend::IfTransient, |mut c| {
                let options = options.clone();
                async move { c.watch(key, Some(options)).await }
            })
            .await?;
        Ok(KeyWatch {
            stream,
            watch_id: None,
        })
    }

    pub(crate) async fn next(&mut self, deadline: Instant) -> WatchNext {
        loop {
            let message = match tokio::time::timeout_at(deadline, self.stream.message()).await {
                Err(_) => return WatchNext::TimedOut,
                Ok(Err(_)) | Ok(Ok(None)) => return WatchNext::Broken,
                Ok(Ok(Some(message))) => message,
            };
            if message.created() {
                self.watch_id = Some(message.watch_id());
            }
            let revision = message.header().map_or(0, |h| h.revision());
            if message.compact_revision() > 0 {
                return WatchNext::Compacted {
                    revision: revision.max(message.compact_revision()),
                };
            }
            if message.canceled() {
                return WatchNext::Broken;
            }
            if !message.events().is_empty() {
                return WatchNext::Events {
                    revision,
                    events: message.events().to_vec(),
                };
            }
        }
    }

    /// Cancels the watch on the server, then drops the stream.
    pub(crate) async fn cancel(mut self) {
        if let Some(id) = self.watch_id {
            // Best effort: dropping the stream below resets it, which ends the watch too.
            let _ = tokio::time::timeout(CANCEL_WAIT, self.stream.cancel(id)).await;
        }
    }
}
