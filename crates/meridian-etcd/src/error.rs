//! How a failed etcd call becomes a [`StoreError`]: what may pass by retrying (no answer, no
//! leader, a broken connection) is `Unavailable` and names the endpoints, so an operator sees
//! which cluster is unreachable; what etcd refused on its merits (too many operations, a value
//! too large) is `Other` and says why.

use std::time::Duration;

use meridian_store::StoreError;
use tonic::Code;

/// How many causes of an error are looked at.
const ERROR_CHAIN_MAX: usize = 8;

/// Why one call to etcd failed, before it is told to the caller.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No answer within the bound (a partitioned or dead cluster, or all endpoints down).
    TimedOut(Duration),
    Etcd(etcd_client::Error),
}

impl CallError {
    /// True if etcd said the lease does not exist (it expired or was revoked).
    pub(crate) fn is_lease_gone(&self) -> bool {
        match self {
            CallError::Etcd(etcd_client::Error::GRpcStatus(status)) => {
                status.code() == Code::NotFound
            }
            // etcd-client reports a keep-alive answered with TTL 0 this way.
            CallError::Etcd(etcd_client::Error::LeaseKeepAliveError(message)) => {
                message.contains("not found")
            }
            _ => false,
        }
    }

    /// True if the call never reached etcd (it could not connect to the member it was sent
    /// to, or the connection closed before the request was written), so it may be sent again
    /// without risk of applying twice.
    pub(crate) fn was_never_sent(&self) -> bool {
        let CallError::Etcd(error) = self else {
            return false;
        };
        let first: &(dyn std::error::Error + 'static) = match error {
            // A status made by tonic from a transport failure carries it as its source; one
            // sent by etcd has none.
            etcd_client::Error::GRpcStatus(status) => status,
            etcd_client::Error::TransportError(error) => error,
            _ => return false,
        };
        let mut cause = Some(first);
        // The chain is short (status, transport error, hyper or connect error, io error); the
        // bound only guards against a cyclic one.
        for _ in 0..ERROR_CHAIN_MAX {
            let Some(error) = cause else {
                return false;
            };
            let refused = error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
            // hyper cancels, with the request handed back unsent, what it could not write
            // (the connection closed or was not ready); hyper-util retries those too.
            let canceled = error
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_canceled);
            // hyper-util's connector reports every failure to open a connection so.
            let not_connected = error.to_string().starts_with("tcp connect error");
            if refused || canceled || not_connected {
                return true;
            }
            cause = error.source();
        }
        false
    }

    /// True if the call failed for want of a working cluster, not because of what it asked.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            CallError::TimedOut(_) => true,
            CallError::Etcd(error) => is_transient(error),
        }
    }

    pub(crate) fn into_store_error(self, endpoints: &str, what: &str) -> StoreError {
        match self {
            CallError::TimedOut(waited) => StoreError::Unavailable(format!(
                "{what}: no answer from etcd at {endpoints} within {waited:?}"
            )),
            CallError::Etcd(error) => {
                if is_transient(&error) {
                    StoreError::Unavailable(format!("{what}: etcd at {endpoints}: {error}"))
                } else {
                    StoreError::Other(format!("{what}: etcd at {endpoints} refused: {error}"))
                }
            }
        }
    }
}

/// True for failures that say nothing about the request itself, only about reaching a
/// working cluster.
fn is_transient(error: &etcd_client::Error) -> bool {
    use etcd_client::Error as E;
    match error {
        E::GRpcStatus(status) => matches!(
            status.code(),
            Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Aborted
                | Code::Unknown
                | Code::Internal
        ),
        E::TransportError(_)
        | E::IoError(_)
        | E::WatchError(_)
        | E::LeaseKeepAliveError(_)
        | E::EndpointError(_) => true,
        _ => false,
    }
}
