//! Uploads (WRQ): where the file goes (a new name under `upload_dir`), and
//! its bytes written and synced off the runtime's threads, in batches, so
//! a slow disk never delays DHCP on a current-thread runtime.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::tftp::source::{components, NetasciiIn, TftpError};
use crate::tftp::transfer::{self, End, Link, Sink};
use crate::tftp::{log_end, negotiate, Shared};
use crate::wire::tftp::{code, Mode, Request};

/// Bytes gathered before one blocking write (lock-step uploads hand the
/// disk this much per thread hop, not one block).
const BATCH_BYTES: usize = 64 << 10;

/// A WRQ: refused unless `upload_dir` is set; then a new file (never an
/// existing one) under it, at most `upload_max` bytes; partial files are
/// removed.
pub(super) async fn run_upload(shared: &Shared, link: &Link<'_>, req: &Request) -> io::Result<()> {
    let Some(dir) = &shared.upload_dir else {
        tracing::info!("WRQ refused: uploads are off (no upload_dir)");
        link.send_error(&TftpError::new(
            code::ACCESS_VIOLATION,
            "Uploads are disabled",
        ))
        .await;
        return Ok(());
    };
    let (dir, name) = (dir.clone(), req.filename.clone());
    let created = tokio::task::spawn_blocking(move || create_upload(&dir, &name))
        .await
        .map_err(io::Error::other)?;
    let (path, file) = match created {
        Ok(x) => x,
        Err(e) => {
            tracing::info!(code = e.code, "WRQ refused: {}", e.message);
            link.send_error(&e).await;
            return Ok(());
        }
    };
    let started = Instant::now();
    let Some(neg) = negotiate(link, req, &shared.config, None, true).await else {
        let _ = tokio::fs::remove_file(&path).await;
        return Ok(());
    };
    let netascii = (req.mode == Mode::Netascii).then(NetasciiIn::default);
    let mut sink = FileSink::new(file, netascii);
    let end = transfer::receive_file(link, &mut sink, &neg, shared.config.tftp.upload_max).await;
    let flushed = sink.flush().await;
    match (&end, flushed) {
        (Ok(End::Done { .. }), Ok(())) => {
            tracing::info!(
                path = %crate::logging::Untrusted(&path.display().to_string()),
                "upload stored"
            );
        }
        _ => {
            let _ = tokio::fs::remove_file(&path).await;
        }
    }
    if let Ok(e) = &end {
        log_end(e, started.elapsed(), "received");
    }
    end.map(|_| ())
}

/// Where a [`FileSink`] writes: a file, or in tests a deliberately slow
/// writer.
pub(super) trait Storage: Write + Send + 'static {
    /// Makes the written bytes durable.
    fn sync(&mut self) -> io::Result<()>;
}

impl Storage for std::fs::File {
    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

/// An upload's bytes, gathered on the runtime (netascii decoded there: no
/// I/O) and handed to a blocking thread per batch.
pub(super) struct FileSink<F: Storage> {
    /// `None` only if a blocking task panicked with it.
    file: Option<F>,
    buf: Vec<u8>,
    netascii: Option<NetasciiIn>,
}

impl<F: Storage> FileSink<F> {
    pub(super) fn new(file: F, netascii: Option<NetasciiIn>) -> Self {
        FileSink {
            file: Some(file),
            buf: Vec::with_capacity(BATCH_BYTES + (64 << 10)),
            netascii,
        }
    }

    /// Runs `work` on the file on a blocking thread, the gathered bytes
    /// with it; both come back (the buffer emptied, its memory kept).
    async fn blocking(&mut self, work: fn(&mut F, &[u8]) -> io::Result<()>) -> io::Result<()> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("upload file lost"))?;
        let buf = std::mem::take(&mut self.buf);
        let (file, mut buf, r) = tokio::task::spawn_blocking(move || {
            let r = work(&mut file, &buf);
            (file, buf, r)
        })
        .await
        .map_err(io::Error::other)?;
        buf.clear();
        self.buf = buf;
        self.file = Some(file);
        r
    }

    /// Writes what is gathered.
    pub(super) async fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.blocking(|f, b| f.write_all(b)).await
    }
}

impl<F: Storage> Sink for FileSink<F> {
    async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.netascii {
            None => self.buf.extend_from_slice(data),
            Some(n) => n.convert(data, &mut self.buf),
        }
        if self.buf.len() >= BATCH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> io::Result<()> {
        self.blocking(|f, b| {
            f.write_all(b)?;
            f.sync()
        })
        .await
    }
}

/// Creates the upload's file: same name rules as reads, the parent must
/// already exist inside `dir`, and an existing name is ERROR 6.
fn create_upload(dir: &Path, name: &str) -> Result<(PathBuf, std::fs::File), TftpError> {
    use std::os::unix::fs::OpenOptionsExt;
    let parts = components(name)?;
    let (file_name, parents) = parts.split_last().ok_or_else(TftpError::access)?;
    let mut parent = dir.to_path_buf();
    for p in parents {
        parent.push(p);
    }
    let parent = parent.canonicalize().map_err(|_| TftpError::access())?;
    if !parent.starts_with(dir) {
        return Err(TftpError::access());
    }
    let path = parent.join(file_name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o644)
        .open(&path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => {
                TftpError::new(code::FILE_EXISTS, "File already exists")
            }
            _ => TftpError::access(),
        })?;
    Ok((path, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A disk that takes 200 ms per write and per sync.
    struct SlowDisk(Arc<Mutex<(Vec<u8>, bool)>>);

    impl Write for SlowDisk {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_millis(200));
            self.0.lock().unwrap().0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Storage for SlowDisk {
        fn sync(&mut self) -> io::Result<()> {
            std::thread::sleep(Duration::from_millis(200));
            self.0.lock().unwrap().1 = true;
            Ok(())
        }
    }

    /// On a one-thread runtime, a task ticking every 5 ms keeps ticking
    /// while an upload's batch is written and synced on a slow disk: the
    /// disk's time is spent off the runtime's thread.
    #[test]
    fn slow_disk_does_not_stall_the_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let disk = Arc::new(Mutex::new((Vec::new(), false)));
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        let stored = rt.block_on(async {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    t.fetch_add(1, Ordering::Relaxed);
                }
            });
            let mut sink = FileSink::new(SlowDisk(disk.clone()), None);
            let block = vec![7u8; 512];
            for _ in 0..BATCH_BYTES / 512 {
                sink.write(&block).await.unwrap();
            }
            sink.write(b"end").await.unwrap();
            sink.finish().await.unwrap();
            ticks.load(Ordering::Relaxed)
        });
        let (bytes, synced) = &*disk.lock().unwrap();
        assert_eq!(bytes.len(), BATCH_BYTES + 3);
        assert!(synced);
        // 400 ms of disk time: about 80 ticks when the runtime is free,
        // none when the disk blocks it.
        assert!(stored >= 20, "the runtime stalled: {stored} ticks");
    }
}
