//! File roots for every service: the one place a requested name becomes
//! bytes. Name rules and confinement ([`components`], [`LocalRoot`]), a
//! local directory or an `http://` prefix ([`FileRoot`]), sizes (DHCP
//! option 13), `[filters]` applied, and the [`Source`] a transfer reads.
//! Errors are file errors ([`FileError`]); each service maps them to its
//! own protocol (a TFTP ERROR code, an HTTP status).

mod http;
mod local;
mod nowait;

use std::future::Future;
use std::io::{self, IoSliceMut};
use std::time::Duration;

use crate::config::Root;
use crate::filters::{self, Filters, Target, Vars};

pub use http::{HttpFile, HttpRoot};
pub use local::{LocalFile, LocalRoot, ReadAt};

/// Why a name cannot be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileError {
    /// No such file (or an empty name).
    NotFound,
    /// `..`, a path out of the root, or a permission refused.
    AccessDenied,
    /// The name exists but is not a regular file (a directory, a FIFO).
    NotRegular,
    /// An HTTP root's server failed: timed out, unreachable, or an error
    /// status; the text says which, for the client.
    Upstream(String),
}

/// Largest indirection file (`[path]` filter) read, in bytes.
const MAX_INDIRECT: usize = 4096;

/// Splits a requested name into path components under the root: `\` and
/// `/` separate, a leading `/` (GRUB's `/grub/grub.cfg`) means the root,
/// empty and `.` components are dropped, and any `..` is refused.
pub fn components(name: &str) -> Result<Vec<&str>, FileError> {
    let mut out = Vec::new();
    for c in name.split(['/', '\\']) {
        match c {
            "" | "." => {}
            ".." => return Err(FileError::AccessDenied),
            c => out.push(c),
        }
    }
    if out.is_empty() {
        return Err(FileError::NotFound);
    }
    Ok(out)
}

/// A stream of a file's bytes, read front to back once.
pub trait Source: Send {
    /// The size in bytes, when known before reading (the `tsize` option).
    fn size(&self) -> Option<u64>;
    /// Reads up to `buf.len()` bytes; `Ok(0)` is the end of the file.
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;

    /// Fills `bufs` in order, each completely unless the file ends first;
    /// returns the bytes read. A source that can do it in one system call
    /// (a local file: `preadv2`) overrides this.
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

#[derive(Clone, Debug)]
enum Kind {
    Local(LocalRoot),
    Http(HttpRoot),
}

/// How long an HTTP root's server may take to answer, or to send each
/// part of a body: the TFTP client's patience, `timeout` x (`retries` +
/// 1), capped at 30 s.
fn http_timeout(t: &crate::config::TftpConfig) -> Duration {
    (t.timeout * (t.retries + 1)).min(Duration::from_secs(30))
}

/// A served root with its `[filters]`: what TFTP serves, and what DHCP
/// sizes for option 13. Cheap to clone (the HTTP client is shared).
#[derive(Clone, Debug)]
pub struct FileRoot {
    kind: Kind,
    filters: Filters,
}

impl FileRoot {
    /// A local root must exist and be a directory. `http` is the client for
    /// an HTTP root (see [`crate::fetch::client`]); `timeout` bounds each
    /// wait for its server (the answer, then each body chunk).
    pub fn new(
        root: &Root,
        filters: Filters,
        http: reqwest::Client,
        timeout: Duration,
    ) -> io::Result<FileRoot> {
        let kind = match root {
            Root::Local(p) => Kind::Local(LocalRoot::new(p)?),
            Root::Http(url) => Kind::Http(HttpRoot::new(url, http, timeout)),
        };
        Ok(FileRoot { kind, filters })
    }

    /// The TFTP root as `[tftp]` and `[filters]` configure it, with the one
    /// HTTP client policy ([`crate::fetch::client`]): what TFTP serves and
    /// what DHCP sizes for option 13.
    pub fn from_config(config: &crate::config::Config) -> io::Result<FileRoot> {
        let t = &config.tftp;
        let timeout = http_timeout(t);
        let filters = Filters::new(&config.filters);
        FileRoot::new(&t.root, filters, crate::fetch::client(timeout)?, timeout)
    }

    /// Under a local directory (sizes are a `stat` away, not a round trip).
    pub fn is_local(&self) -> bool {
        matches!(self.kind, Kind::Local(_))
    }

    /// Whether any `[filters]` rule exists (callers skip work for `vars`).
    pub fn has_filters(&self) -> bool {
        !self.filters.is_empty()
    }

    /// Filters, then the source: the requested name as the root serves it.
    pub async fn open(&self, name: &str, vars: &Vars<'_>) -> Result<AnySource, FileError> {
        let target = self.filters.apply(name, vars);
        if !matches!(&target, Target::Name(n) if n == name) {
            tracing::debug!("filtered: {name} -> {target:?}");
        }
        match target {
            Target::Name(n) => self.open_name(&n).await,
            Target::Text(t) => Ok(AnySource::Text(TextFile::new(t.into_bytes()))),
            Target::Indirect(p) => {
                let real = self.read_indirect(&p).await?;
                tracing::debug!("filter file {p} -> {real}");
                self.open_name(&real).await
            }
        }
    }

    /// The name an indirection file (`[path]` filter) holds.
    async fn read_indirect(&self, path: &str) -> Result<String, FileError> {
        let mut src = self.open_name(path).await?;
        let mut content = vec![0u8; MAX_INDIRECT];
        let mut got = 0;
        while got < content.len() {
            match src.read(&mut content[got..]).await {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(_) => return Err(FileError::NotFound),
            }
        }
        filters::name_from_indirect(&content[..got]).ok_or_else(|| {
            tracing::warn!("filter file {path} names no file");
            FileError::NotFound
        })
    }

    /// The source for a name under the root (no filters).
    pub async fn open_name(&self, name: &str) -> Result<AnySource, FileError> {
        match &self.kind {
            Kind::Local(root) => root.open(name).await.map(AnySource::Local),
            Kind::Http(root) => root.open(name).await.map(|f| AnySource::Http(Box::new(f))),
        }
    }

    /// The size of a regular file under the root, without filters (DHCP
    /// option 13): a `stat` under a local root, a `HEAD`'s Content-Length
    /// under an HTTP root. `None` when unknown.
    pub async fn size(&self, name: &str) -> Option<u64> {
        match &self.kind {
            Kind::Local(root) => root.size(name).await,
            Kind::Http(root) => root.size(name).await,
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
        assert_eq!(components("../x"), Err(FileError::AccessDenied));
        assert_eq!(components("a/../../x"), Err(FileError::AccessDenied));
        assert_eq!(components("a/.."), Err(FileError::AccessDenied));
        assert_eq!(components("/"), Err(FileError::NotFound));
    }
}
