//! Boot file sizes for option 13: a `stat` under a local TFTP root, or a
//! HEAD under an HTTP root, found at start and refreshed in the background
//! off the request path. [`watch`] is the one entry point the server calls.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::config::{Config, Root};

/// How often boot file sizes (option 13) are looked up again.
const SIZE_REFRESH: Duration = Duration::from_secs(10);

/// Where a size (or its absence) goes: the engine's cache.
pub type SizeSink = Arc<dyn Fn(&str, Option<u64>) + Send + Sync>;

/// Reports every configured boot file's size to `sink`: under a local
/// root at once (a `stat` each, so the first OFFER carries option 13),
/// then every [`SIZE_REFRESH`] from a task on `tracker` that ends with
/// `shutdown`; under an HTTP root from that task only.
pub fn watch(
    config: &Arc<Config>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
    sink: SizeSink,
) {
    if let Root::Http(prefix) = &config.tftp.root {
        tracker.spawn(refresh_http_sizes(
            sink,
            prefix.clone(),
            boot_files(config),
            shutdown.clone(),
        ));
        return;
    }
    for (name, size) in local_sizes(config) {
        sink(&name, size);
    }
    tracker.spawn(refresh_local_sizes(sink, config.clone(), shutdown.clone()));
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

/// A boot file's path under a local root: a leading `/` means the root,
/// `..` is refused.
pub fn local_path(root: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    let rel = name.trim_start_matches('/');
    let p = std::path::Path::new(rel);
    if rel.is_empty()
        || p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return None;
    }
    Some(root.join(p))
}

/// Sizes of the boot files under a local root (a `stat` each: bounded).
fn local_sizes(config: &Config) -> Vec<(String, Option<u64>)> {
    let Root::Local(root) = &config.tftp.root else {
        return Vec::new();
    };
    boot_files(config)
        .into_iter()
        .map(|name| {
            let size = local_path(root, &name)
                .and_then(|p| std::fs::metadata(p).ok())
                .filter(|m| m.is_file())
                .map(|m| m.len());
            (name, size)
        })
        .collect()
}

async fn refresh_local_sizes(sink: SizeSink, config: Arc<Config>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SIZE_REFRESH) => {}
        }
        let config = config.clone();
        let sizes = tokio::task::spawn_blocking(move || local_sizes(&config))
            .await
            .unwrap_or_default();
        for (name, size) in sizes {
            sink(&name, size);
        }
    }
}

/// HEAD each boot file under an HTTP root (Content-Length), off the
/// request path, with a timeout.
async fn refresh_http_sizes(
    sink: SizeSink,
    prefix: String,
    names: Vec<String>,
    shutdown: CancellationToken,
) {
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
    else {
        warn!("cannot build an HTTP client: boot file sizes (option 13) unknown");
        return;
    };
    loop {
        for name in &names {
            let url = format!("{prefix}/{}", name.trim_start_matches('/'));
            let size = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = client.head(&url).send() => match r {
                    Ok(resp) if resp.status().is_success() => resp
                        .headers()
                        .get(reqwest::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok()),
                    Ok(resp) => {
                        debug!(%url, status = %resp.status(), "boot file size unknown");
                        None
                    }
                    Err(e) => {
                        debug!(%url, "boot file size unknown: {e}");
                        None
                    }
                },
            };
            sink(name, size);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SIZE_REFRESH) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_stay_under_root() {
        let root = std::path::Path::new("/srv/tftp");
        assert_eq!(
            local_path(root, "/grub/x.efi").unwrap(),
            root.join("grub/x.efi")
        );
        assert_eq!(
            local_path(root, "pxelinux.0").unwrap(),
            root.join("pxelinux.0")
        );
        assert!(local_path(root, "../etc/passwd").is_none());
        assert!(local_path(root, "a/../../b").is_none());
        assert!(local_path(root, "").is_none());
    }
}
