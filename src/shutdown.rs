//! How services stop: one grace period for in-flight work, and the wait
//! that every service does on its tracked tasks once the token is
//! cancelled. Below the services, so none of them reaches up to `lib.rs`.

use std::time::Duration;

use tokio_util::task::TaskTracker;

/// How long in-flight work may take to finish once shutdown is asked for.
pub const GRACE: Duration = Duration::from_secs(3);

/// Closes `tracker` and waits up to [`GRACE`] for its tasks; what still
/// runs then is abandoned (dropped with the runtime), with one warning
/// naming `what` when `what` is not empty.
pub async fn drain(tracker: &TaskTracker, what: &str) -> bool {
    tracker.close();
    let done = tokio::time::timeout(GRACE, tracker.wait()).await.is_ok();
    if !done && !what.is_empty() {
        tracing::warn!("{what} still running at shutdown: abandoned");
    }
    done
}
