//! A local directory root: confinement of names under it (checked on the
//! opened file itself), and [`LocalFile`], whose reads never block a
//! runtime thread.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{components, nowait, FileError, Source};

/// A local directory served read-only; names never leave it.
#[derive(Clone, Debug)]
pub struct LocalRoot {
    /// Canonical (symlinks resolved) at start-up.
    root: PathBuf,
}

fn io_err(e: io::Error) -> FileError {
    match e.kind() {
        io::ErrorKind::PermissionDenied => FileError::AccessDenied,
        _ => FileError::NotFound,
    }
}

impl LocalRoot {
    /// The root must exist and be a directory; errors name it.
    pub fn new(root: &Path) -> io::Result<LocalRoot> {
        let canon = root
            .canonicalize()
            .map_err(|e| io::Error::new(e.kind(), format!("root {}: {e}", root.display())))?;
        if !canon.is_dir() {
            return Err(io::Error::other(format!(
                "root {} is not a directory",
                root.display()
            )));
        }
        Ok(LocalRoot { root: canon })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Opens `name` read-only under the root, on a blocking thread (the
    /// lookups may wait for a cold disk). See [`LocalRoot::open_blocking`].
    pub async fn open(&self, name: &str) -> Result<LocalFile, FileError> {
        let (root, name) = (self.clone(), name.to_owned());
        tokio::task::spawn_blocking(move || root.open_blocking(&name))
            .await
            .unwrap_or(Err(FileError::NotFound))
    }

    /// The size of the regular file `name`, under the same confinement.
    pub async fn size(&self, name: &str) -> Option<u64> {
        self.open(name).await.ok().map(|f| f.size)
    }

    /// Opens `name` read-only under the root; blocks. A symlink may point
    /// anywhere inside the root (absolute ones too: that is why this is not
    /// `openat2(RESOLVE_BENEATH)`, which refuses them); one that leads out
    /// of it is an access violation. What is checked is the opened file
    /// itself (`/proc/self/fd`), so a directory or symlink swapped between
    /// the check and the open cannot fool it.
    pub fn open_blocking(&self, name: &str) -> Result<LocalFile, FileError> {
        let mut path = self.root.clone();
        for c in components(name)? {
            path.push(c);
        }
        // Resolve first, so that nothing outside the root is even opened
        // (a device or FIFO can react to an open).
        let canon = path.canonicalize().map_err(io_err)?;
        if !canon.starts_with(&self.root) {
            return Err(FileError::AccessDenied);
        }
        // O_NONBLOCK: a FIFO swapped in does not hang the open.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW)
            .open(&canon)
            .map_err(io_err)?;
        // Without /proc (a bare chroot) the pre-check above is all there is.
        let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let real = match real {
            Ok(real) if !real.starts_with(&self.root) => return Err(FileError::AccessDenied),
            Ok(real) => real,
            Err(_) => canon,
        };
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(FileError::NotRegular);
        }
        let mut f = LocalFile::from_reader(Arc::new(file), meta.len());
        f.path = real;
        Ok(f)
    }
}

/// Positional reads of one open file: the real file, or (in tests) a slow
/// disk put in its place.
pub trait ReadAt: Send + Sync + 'static {
    /// Reads only what is in memory: `WouldBlock` when the bytes must come
    /// from the disk, `Unsupported` when that cannot be known. A short
    /// count may just mean the rest is not cached.
    fn read_at_nowait(&self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> io::Result<usize>;
    /// Reads, waiting for the disk if need be (called on a blocking thread).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for File {
    fn read_at_nowait(&self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> io::Result<usize> {
        nowait::preadv_nowait(self.as_fd(), bufs, offset)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

/// A local file. A read is tried from the page cache first (no wait, no
/// thread hop: boot files are usually there, and this keeps TFTP at full
/// speed); only what would wait for the disk goes to a blocking thread, so
/// a cold disk never stalls the runtime (on one CPU, DHCP with it).
pub struct LocalFile {
    reader: Arc<dyn ReadAt>,
    /// The offset of the next read (reads are positional).
    pos: u64,
    size: u64,
    path: PathBuf,
    /// Cleared once the file system says it cannot do no-wait reads.
    nowait: bool,
    /// The blocking thread's buffer, kept between reads.
    scratch: Vec<u8>,
}

impl fmt::Debug for LocalFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalFile")
            .field("path", &self.path)
            .field("pos", &self.pos)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Fills `buf` from `offset` unless the file ends first; blocks.
fn fill_at(reader: &dyn ReadAt, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl LocalFile {
    /// A file read through `reader`, `size` bytes long, from offset 0.
    pub fn from_reader(reader: Arc<dyn ReadAt>, size: u64) -> LocalFile {
        LocalFile {
            reader,
            pos: 0,
            size,
            path: PathBuf::new(),
            nowait: true,
            scratch: Vec::new(),
        }
    }

    /// The file's real path (symlinks resolved), when opened under a root.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fills `bufs` on a blocking thread (through `scratch`: the slices are
    /// borrowed, the thread needs owned memory).
    async fn read_blocking(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        let mut buf = std::mem::take(&mut self.scratch);
        buf.resize(want, 0);
        let (reader, pos) = (self.reader.clone(), self.pos);
        let (buf, got) = tokio::task::spawn_blocking(move || {
            let got = fill_at(&*reader, &mut buf, pos);
            (buf, got)
        })
        .await
        .map_err(io::Error::other)?;
        let got = got?;
        let mut rest = &buf[..got];
        for b in bufs.iter_mut() {
            let k = b.len().min(rest.len());
            b[..k].copy_from_slice(&rest[..k]);
            rest = &rest[k..];
        }
        self.pos += got as u64;
        self.scratch = buf;
        Ok(got)
    }
}

impl Source for LocalFile {
    fn size(&self) -> Option<u64> {
        Some(self.size)
    }
    async fn read_full(&mut self, mut bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let mut total = 0;
        while self.nowait && !bufs.is_empty() {
            match self.reader.read_at_nowait(bufs, self.pos) {
                Ok(0) => return Ok(total),
                Ok(n) => {
                    total += n;
                    self.pos += n as u64;
                    IoSliceMut::advance_slices(&mut bufs, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Unsupported => self.nowait = false,
                Err(e) => return Err(e),
            }
        }
        if bufs.is_empty() {
            return Ok(total);
        }
        Ok(total + self.read_blocking(bufs).await?)
    }
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_full(&mut [IoSliceMut::new(buf)]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An in-memory disk: the first `cached` bytes are "in the page cache",
    /// the rest would block; blocking reads come back short (1000 bytes).
    struct Disk {
        data: Vec<u8>,
        cached: usize,
        unsupported: bool,
        blocking: AtomicUsize,
    }

    impl ReadAt for Disk {
        fn read_at_nowait(&self, bufs: &mut [IoSliceMut<'_>], off: u64) -> io::Result<usize> {
            let off = off as usize;
            if self.unsupported {
                return Err(io::ErrorKind::Unsupported.into());
            }
            if off < self.data.len() && off >= self.cached {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut rest = &self.data[off.min(self.cached)..self.cached];
            let mut n = 0;
            for b in bufs.iter_mut() {
                let k = b.len().min(rest.len());
                b[..k].copy_from_slice(&rest[..k]);
                (rest, n) = (&rest[k..], n + k);
            }
            Ok(n)
        }
        fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
            self.blocking.fetch_add(1, Ordering::Relaxed);
            let rest = &self.data[(off as usize).min(self.data.len())..];
            let k = buf.len().min(rest.len()).min(1000);
            buf[..k].copy_from_slice(&rest[..k]);
            Ok(k)
        }
    }

    async fn read_all(f: &mut LocalFile, parts: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut bufs: Vec<Vec<u8>> = parts.iter().map(|&n| vec![0; n]).collect();
            let mut slices: Vec<IoSliceMut<'_>> =
                bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            let n = f.read_full(&mut slices).await.unwrap();
            out.extend(bufs.concat().into_iter().take(n));
            if n < parts.iter().sum() {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn cached_and_uncached_reads_give_the_same_bytes() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for cached in [0, 1, 4096, 12_345, data.len()] {
            for unsupported in [false, true] {
                for parts in [&[512][..], &[7, 300, 4096], &[1468; 16]] {
                    let disk = Arc::new(Disk {
                        data: data.clone(),
                        cached,
                        unsupported,
                        blocking: AtomicUsize::new(0),
                    });
                    let mut f = LocalFile::from_reader(disk.clone(), data.len() as u64);
                    assert_eq!(read_all(&mut f, parts).await, data, "{cached} {parts:?}");
                    let went_blocking = disk.blocking.load(Ordering::Relaxed) > 0;
                    assert_eq!(went_blocking, unsupported || cached < data.len());
                }
            }
        }
    }

    /// Counts the reads that went to a blocking thread.
    struct Counted(File, AtomicUsize);

    impl ReadAt for Counted {
        fn read_at_nowait(&self, bufs: &mut [IoSliceMut<'_>], off: u64) -> io::Result<usize> {
            self.0.read_at_nowait(bufs, off)
        }
        fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
            self.1.fetch_add(1, Ordering::Relaxed);
            FileExt::read_at(&self.0, buf, off)
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pybootd-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A file just written is in the page cache: read without a thread hop
    /// (the speed of TFTP depends on it).
    #[tokio::test]
    async fn page_cache_hits_stay_on_the_runtime() {
        let d = scratch("cache");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(d.join("f"), &data).unwrap();
        let reader = Arc::new(Counted(
            File::open(d.join("f")).unwrap(),
            AtomicUsize::new(0),
        ));
        let mut f = LocalFile::from_reader(reader.clone(), data.len() as u64);
        assert_eq!(read_all(&mut f, &[1468; 16]).await, data);
        assert_eq!(
            reader.1.load(Ordering::Relaxed),
            0,
            "went to a blocking thread"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn names_stay_under_the_root() {
        let d = scratch("root");
        let www = d.join("www");
        std::fs::create_dir_all(www.join("sub")).unwrap();
        std::fs::write(www.join("sub/f"), b"in").unwrap();
        std::fs::write(d.join("secret"), b"out").unwrap();
        std::os::unix::fs::symlink(d.join("secret"), www.join("out")).unwrap();
        std::os::unix::fs::symlink(www.join("sub/f"), www.join("abs")).unwrap();
        std::os::unix::fs::symlink("sub", www.join("rel")).unwrap();
        let root = LocalRoot::new(&www).unwrap();
        for ok in ["sub/f", "/sub/f", "sub\\f", "abs", "rel/f", "./sub//f"] {
            let f = root
                .open(ok)
                .await
                .unwrap_or_else(|e| panic!("{ok}: {e:?}"));
            assert_eq!(f.size, 2, "{ok}");
            assert_eq!(f.path(), www.join("sub/f").canonicalize().unwrap());
        }
        for (bad, e) in [
            ("out", FileError::AccessDenied),
            ("../secret", FileError::AccessDenied),
            ("sub/../../secret", FileError::AccessDenied),
            ("missing", FileError::NotFound),
            ("/", FileError::NotFound),
            ("sub", FileError::NotRegular),
        ] {
            assert_eq!(root.open(bad).await.unwrap_err(), e, "{bad}");
        }
        assert_eq!(root.size("rel/f").await, Some(2));
        assert_eq!(root.size("out").await, None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
