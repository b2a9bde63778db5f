//! Where served bytes come from: the [`Source`] trait and its kinds (a file
//! under the local root, a streamed `http://` URL, filter text), the safe
//! name resolution under the local root, and netascii conversion.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{self, IoSliceMut, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::wire::tftp::code;

/// A TFTP protocol error: what goes in the ERROR packet to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TftpError {
    pub code: u16,
    pub message: String,
}

impl TftpError {
    pub fn new(code: u16, message: impl Into<String>) -> TftpError {
        TftpError {
            code,
            message: message.into(),
        }
    }
    pub fn not_found() -> TftpError {
        TftpError::new(code::FILE_NOT_FOUND, "File not found")
    }
    pub fn access() -> TftpError {
        TftpError::new(code::ACCESS_VIOLATION, "Access violation")
    }
}

/// A stream of a file's bytes, read front to back once.
pub trait Source: Send {
    /// The size in bytes, when known before reading (the `tsize` option).
    fn size(&self) -> Option<u64>;
    /// Reads up to `buf.len()` bytes; `Ok(0)` is the end of the file.
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;

    /// Fills `bufs` in order, each completely unless the file ends first;
    /// returns the bytes read. A source that can do it in one system call
    /// (a local file: `readv`) overrides this.
    fn read_full(
        &mut self,
        bufs: &mut [IoSliceMut<'_>],
    ) -> impl Future<Output = io::Result<usize>> + Send {
        async move {
            let mut total = 0;
            for b in bufs.iter_mut() {
                let mut got = 0;
                while got < b.len() {
                    match self.read(&mut b[got..]).await? {
                        0 => return Ok(total + got),
                        k => got += k,
                    }
                }
                total += got;
            }
            Ok(total)
        }
    }
}

/// Splits a requested name into path components under the root: `\` and
/// `/` separate, a leading `/` (GRUB's `/grub/grub.cfg`) means the root,
/// empty and `.` components are dropped, and any `..` is refused.
pub fn components(name: &str) -> Result<Vec<&str>, TftpError> {
    let mut out = Vec::new();
    for c in name.split(['/', '\\']) {
        match c {
            "" | "." => {}
            ".." => return Err(TftpError::access()),
            c => out.push(c),
        }
    }
    if out.is_empty() {
        return Err(TftpError::not_found());
    }
    Ok(out)
}

/// A local directory served read-only; names never leave it.
#[derive(Clone, Debug)]
pub struct LocalRoot {
    /// Canonical (symlinks resolved) at start-up.
    root: PathBuf,
}

impl LocalRoot {
    pub fn new(root: &Path) -> io::Result<LocalRoot> {
        let canon = root
            .canonicalize()
            .map_err(|e| io::Error::new(e.kind(), format!("TFTP root {}: {e}", root.display())))?;
        if !canon.is_dir() {
            return Err(io::Error::other(format!(
                "TFTP root {} is not a directory",
                root.display()
            )));
        }
        Ok(LocalRoot { root: canon })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Opens `name` read-only under the root. A symlink may point anywhere
    /// inside the root; one that leads out of it is an access violation.
    /// What is checked is the opened file itself (`/proc/self/fd`), so a
    /// symlink swapped between the check and the open cannot fool it.
    pub fn open(&self, name: &str) -> Result<LocalFile, TftpError> {
        let mut path = self.root.clone();
        for c in components(name)? {
            path.push(c);
        }
        let io_err = |e: io::Error| match e.kind() {
            io::ErrorKind::PermissionDenied => TftpError::access(),
            _ => TftpError::not_found(),
        };
        // Resolve first, so that nothing outside the root is even opened
        // (a device or FIFO can react to an open).
        let canon = path.canonicalize().map_err(io_err)?;
        if !canon.starts_with(&self.root) {
            return Err(TftpError::access());
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW)
            .open(&canon)
            .map_err(io_err)?;
        {
            use std::os::fd::AsRawFd;
            if let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
                if !real.starts_with(&self.root) {
                    return Err(TftpError::access());
                }
            }
        }
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(TftpError::new(code::FILE_NOT_FOUND, "Not a regular file"));
        }
        Ok(LocalFile {
            file,
            size: meta.len(),
        })
    }
}

/// A local file. Reads are plain blocking reads: boot files sit in the page
/// cache, where a read costs less than a trip through a thread pool.
#[derive(Debug)]
pub struct LocalFile {
    file: File,
    size: u64,
}

impl Source for LocalFile {
    fn size(&self) -> Option<u64> {
        Some(self.size)
    }
    async fn read_full(&mut self, mut bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let mut total = 0;
        while !bufs.is_empty() {
            let n = match self.file.read_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => r?,
            };
            if n == 0 {
                break;
            }
            total += n;
            IoSliceMut::advance_slices(&mut bufs, n);
        }
        Ok(total)
    }
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }
}

/// An `http://` URL prefix; names are fetched on the client's behalf.
#[derive(Clone, Debug)]
pub struct HttpRoot {
    prefix: String,
    client: reqwest::Client,
    /// Longest wait for the server: to answer, and for each body chunk.
    timeout: Duration,
}

/// Characters left as they are in a URL path; the rest is %-encoded (a `?`
/// or `#` in a TFTP name must not become a query or fragment).
fn url_path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl HttpRoot {
    pub fn new(prefix: &str, timeout: Duration) -> io::Result<HttpRoot> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .build()
            .map_err(|e| io::Error::other(format!("HTTP client: {e}")))?;
        Ok(HttpRoot {
            prefix: prefix.trim_end_matches('/').to_string(),
            client,
            timeout,
        })
    }

    pub fn url_for(&self, name: &str) -> Result<String, TftpError> {
        let parts: Vec<String> = components(name)?.into_iter().map(url_path_escape).collect();
        Ok(format!("{}/{}", self.prefix, parts.join("/")))
    }

    /// Starts a GET; the body is streamed by the returned source. A 404 is
    /// "file not found"; a dead or slow server an error within the timeout.
    pub async fn open(&self, name: &str) -> Result<HttpFile, TftpError> {
        let url = self.url_for(name)?;
        let resp = match tokio::time::timeout(self.timeout, self.client.get(&url).send()).await {
            Err(_) => {
                tracing::warn!(%url, "HTTP root: no answer in time");
                return Err(TftpError::new(code::NOT_DEFINED, "Upstream timed out"));
            }
            Ok(Err(e)) => {
                tracing::warn!(%url, "HTTP root: {e}");
                return Err(TftpError::new(code::NOT_DEFINED, "Upstream unreachable"));
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Err(TftpError::not_found());
        }
        if status == reqwest::StatusCode::FORBIDDEN || status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(TftpError::access());
        }
        if !status.is_success() {
            tracing::warn!(%url, %status, "HTTP root: error status");
            return Err(TftpError::new(
                code::NOT_DEFINED,
                format!("Upstream HTTP {}", status.as_u16()),
            ));
        }
        // The header itself: reqwest's content_length() is not the header
        // for every response kind (it is 0 for a HEAD).
        let size = resp
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        Ok(HttpFile {
            url,
            resp,
            size,
            pending: bytes::Bytes::new(),
            got: 0,
            timeout: self.timeout,
        })
    }
}

/// A streamed HTTP body: at most one received chunk is held, so memory per
/// transfer stays near a window, whatever the file size.
#[derive(Debug)]
pub struct HttpFile {
    url: String,
    resp: reqwest::Response,
    size: Option<u64>,
    pending: bytes::Bytes,
    got: u64,
    timeout: Duration,
}

/// Progress is logged (debug) every this many bytes of a proxied file.
const PROGRESS_EVERY: u64 = 16 << 20;

impl Source for HttpFile {
    fn size(&self) -> Option<u64> {
        self.size
    }
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            let chunk = tokio::time::timeout(self.timeout, self.resp.chunk())
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upstream HTTP stalled"))?
                .map_err(|e| io::Error::other(format!("upstream HTTP: {e}")))?;
            match chunk {
                None => {
                    if let Some(want) = self.size {
                        if self.got != want {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("upstream HTTP body ended at {} of {want} bytes", self.got),
                            ));
                        }
                    }
                    return Ok(0);
                }
                Some(c) => {
                    let before = self.got / PROGRESS_EVERY;
                    self.got += c.len() as u64;
                    if self.got / PROGRESS_EVERY != before {
                        tracing::debug!(url = %self.url, bytes = self.got, "HTTP root: fetching");
                    }
                    self.pending = c;
                }
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        let _ = self.pending.split_to(n);
        Ok(n)
    }
}

/// Bytes a filter serves as content (`<text>`).
#[derive(Debug)]
pub struct TextFile {
    bytes: Vec<u8>,
    pos: usize,
}

impl TextFile {
    pub fn new(bytes: Vec<u8>) -> TextFile {
        TextFile { bytes, pos: 0 }
    }
}

impl Source for TextFile {
    fn size(&self) -> Option<u64> {
        Some(self.bytes.len() as u64)
    }
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.bytes[self.pos..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// Any source, by value: one transfer loop serves them all (no boxing).
#[derive(Debug)]
pub enum AnySource {
    Local(LocalFile),
    Http(Box<HttpFile>),
    Text(TextFile),
}

impl Source for AnySource {
    fn size(&self) -> Option<u64> {
        match self {
            AnySource::Local(s) => s.size(),
            AnySource::Http(s) => s.size(),
            AnySource::Text(s) => s.size(),
        }
    }
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            AnySource::Local(s) => s.read(buf).await,
            AnySource::Http(s) => s.read(buf).await,
            AnySource::Text(s) => s.read(buf).await,
        }
    }
    async fn read_full(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        match self {
            AnySource::Local(s) => s.read_full(bufs).await,
            AnySource::Http(s) => s.read_full(bufs).await,
            AnySource::Text(s) => s.read_full(bufs).await,
        }
    }
}

/// Netascii (RFC 764 via RFC 1350) on the way out: LF -> CR LF, CR -> CR NUL.
/// The converted size is not known in advance, so no `tsize`.
#[derive(Debug)]
pub struct NetasciiOut<S> {
    inner: S,
    pending: Option<u8>,
    scratch: Vec<u8>,
}

impl<S: Source> NetasciiOut<S> {
    pub fn new(inner: S) -> Self {
        NetasciiOut {
            inner,
            pending: None,
            scratch: Vec::new(),
        }
    }
}

impl<S: Source> Source for NetasciiOut<S> {
    fn size(&self) -> Option<u64> {
        None
    }
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut o = 0;
        if let Some(p) = self.pending.take() {
            buf[0] = p;
            o = 1;
            if o == buf.len() {
                return Ok(o);
            }
        }
        // Each raw byte becomes at most two: read half the room.
        let want = ((buf.len() - o) / 2).max(1);
        self.scratch.resize(want, 0);
        let n = self.inner.read(&mut self.scratch[..want]).await?;
        for &b in &self.scratch[..n] {
            let (a, c) = match b {
                b'\n' => (b'\r', Some(b'\n')),
                b'\r' => (b'\r', Some(0)),
                x => (x, None),
            };
            buf[o] = a;
            o += 1;
            if let Some(c) = c {
                if o < buf.len() {
                    buf[o] = c;
                    o += 1;
                } else {
                    self.pending = Some(c);
                }
            }
        }
        Ok(o)
    }
}

/// Netascii on the way in (uploads): CR LF -> LF, CR NUL -> CR.
#[derive(Debug, Default)]
pub struct NetasciiIn {
    cr: bool,
}

impl NetasciiIn {
    /// Converts `data`, appending to `out`.
    pub fn convert(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            if self.cr {
                self.cr = false;
                match b {
                    b'\n' => {
                        out.push(b'\n');
                        continue;
                    }
                    0 => {
                        out.push(b'\r');
                        continue;
                    }
                    _ => out.push(b'\r'),
                }
            }
            if b == b'\r' {
                self.cr = true;
            } else {
                out.push(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_refuse_dotdot_and_anchor_root() {
        assert_eq!(components("/grub/grub.cfg").unwrap(), ["grub", "grub.cfg"]);
        assert_eq!(components("./a//b/./c").unwrap(), ["a", "b", "c"]);
        assert_eq!(components("a\\b").unwrap(), ["a", "b"]);
        assert_eq!(components("../x"), Err(TftpError::access()));
        assert_eq!(components("a/../../x"), Err(TftpError::access()));
        assert_eq!(components("a/.."), Err(TftpError::access()));
        assert_eq!(components("/"), Err(TftpError::not_found()));
    }

    #[test]
    fn url_escaping() {
        let h = HttpRoot::new("http://h:1/p/", Duration::from_secs(1)).unwrap();
        assert_eq!(
            h.url_for("/a b/c?d#e").unwrap(),
            "http://h:1/p/a%20b/c%3Fd%23e"
        );
        assert!(h.url_for("../etc").is_err());
    }

    async fn read_all<S: Source>(mut s: S, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0; chunk];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn netascii_both_ways() {
        let raw = b"a\nb\rc\r\n\n".to_vec();
        for chunk in [1, 2, 3, 512] {
            let enc = read_all(NetasciiOut::new(TextFile::new(raw.clone())), chunk).await;
            assert_eq!(enc, b"a\r\nb\r\0c\r\0\r\n\r\n");
            let mut dec = NetasciiIn::default();
            let mut out = Vec::new();
            for part in enc.chunks(chunk) {
                dec.convert(part, &mut out);
            }
            assert_eq!(out, raw);
        }
    }
}
