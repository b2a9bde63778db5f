//! Boot file sizes for option 13, through the file-root layer (the same
//! confinement and HTTP client policy as TFTP): found at start under a
//! local root (so the first OFFER carries option 13), refreshed in the
//! background off the request path. [`watch`] is the one entry point.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::files::FileRoot;

/// How often boot file sizes (option 13) are looked up again.
const SIZE_REFRESH: Duration = Duration::from_secs(10);

/// Where a size (or its absence) goes: the engine's cache.
pub type SizeSink = Arc<dyn Fn(&str, Option<u64>) + Send + Sync>;

/// Reports every configured boot file's size to `sink`: under a local
/// root once before returning, then every [`SIZE_REFRESH`] from a task on
/// `tracker` that ends with `shutdown`; under an HTTP root (a HEAD each,
/// which may be slow) from that task only.
pub async fn watch(
    config: &Config,
    files: FileRoot,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
    sink: SizeSink,
) {
    let names = boot_files(config);
    if files.is_local() {
        look_up(&files, &names, &sink).await;
    }
    let shutdown = shutdown.clone();
    tracker.spawn(async move {
        loop {
            if !files.is_local() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    () = look_up(&files, &names, &sink) => {}
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(SIZE_REFRESH) => {}
            }
            if files.is_local() {
                look_up(&files, &names, &sink).await;
            }
        }
    });
}

async fn look_up(files: &FileRoot, names: &[String], sink: &SizeSink) {
    for name in names {
        let size = files.size(name).await;
        if size.is_none() {
            tracing::debug!(file = %name, "boot file size unknown (no option 13)");
        }
        sink(name, size);
    }
}

/// Every configured boot file name.
fn boot_files(config: &Config) -> Vec<String> {
    let mut v: Vec<String> = config.bootfile.by_arch.values().cloned().collect();
    v.extend(config.bootfile.default.clone());
    v.extend(config.bootp.as_ref().and_then(|b| b.boot_file.clone()));
    v.sort();
    v.dedup();
    v
}
