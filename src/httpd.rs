//! The `[httpd]` static file server (`-H`): HTTP/1.x GET and HEAD of
//! regular files under `root`, one tracked task per connection, capped;
//! for iPXE and installers that go on over HTTP after TFTP. Request parsing
//! (`parse_request`) is pure; names, confinement and reads are the file
//! layer's ([`crate::files::LocalRoot`]), the same as TFTP's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::files::{FileError, LocalRoot, Source};
use crate::leases::Leases;
use crate::logging::{Throttle, Untrusted};

/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 256;
/// The request head must arrive within this time and size.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEAD: usize = 8192;
/// A stalled reader is dropped after this long without progress.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections one address may hold at once: a single host cannot take
/// every slot (an installer fetches a few files in parallel, not 16).
pub const MAX_PER_ADDRESS: usize = 16;
/// A whole response must be sent within `SEND_FLOOR + size / MIN_RATE`:
/// a reader slow enough to keep each write alive still ends.
pub const SEND_FLOOR: Duration = Duration::from_secs(30);
pub const MIN_RATE: u64 = 64 * 1024;

/// Refusals a flood repeats: a few lines per minute, with a count.
static REFUSED: Throttle = Throttle::new(10, Duration::from_secs(60));

/// 404s and 403s: more room (a client probing for files is normal), still
/// bounded.
static FILE_REFUSED: Throttle = Throttle::new(60, Duration::from_secs(60));

/// Logs a refusal of `peer` through [`REFUSED`].
fn refused(peer: SocketAddr, why: &str) {
    if let Some(held_back) = REFUSED.admit(Instant::now()) {
        tracing::warn!(%peer, held_back, "HTTP connection refused: {why}");
    }
}

/// Connections held per client address ([`MAX_PER_ADDRESS`]).
#[derive(Clone, Default)]
struct PerAddress(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One connection's place in [`PerAddress`], given back on drop.
struct AddrSlot {
    table: PerAddress,
    ip: IpAddr,
}

impl PerAddress {
    fn take(&self, ip: IpAddr) -> Option<AddrSlot> {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = t.entry(ip).or_insert(0);
        if *n >= MAX_PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(AddrSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        let mut t = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = t.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.ip);
            }
        }
    }
}

/// Whether `peer` holds a lease (`check_ip`); always with no check.
fn allowed(check: Option<&Leases>, peer: SocketAddr) -> bool {
    let Some(leases) = check else {
        return true;
    };
    let now = crate::leases::unix_now();
    match peer.ip() {
        IpAddr::V4(ip) => leases.holds(ip, now),
        IpAddr::V6(ip) => ip.to_ipv4_mapped().is_some_and(|v4| leases.holds(v4, now)),
    }
}

/// How long a response of `len` bytes may take in all.
fn send_bound(floor: Duration, min_rate: u64, len: u64) -> Duration {
    floor + Duration::from_secs(len / min_rate.max(1))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

/// A request line, parsed: the method and the decoded path (still
/// untrusted: the file layer confines it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub path: String,
}

/// Why a request is refused, as an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    TooLarge,
}

impl Refusal {
    /// The status for a file error (TFTP's "file not found" and "access
    /// violation" are HTTP's 404 and 403).
    fn from_file(e: &FileError) -> Refusal {
        match e {
            FileError::AccessDenied => Refusal::Forbidden,
            // A local root never answers `Upstream`.
            FileError::NotFound | FileError::NotRegular | FileError::Upstream(_) => {
                Refusal::NotFound
            }
        }
    }

    fn status(self) -> (u16, &'static str) {
        match self {
            Refusal::BadRequest => (400, "Bad Request"),
            Refusal::Unauthorized => (401, "Unauthorized"),
            Refusal::Forbidden => (403, "Forbidden"),
            Refusal::NotFound => (404, "Not Found"),
            Refusal::MethodNotAllowed => (405, "Method Not Allowed"),
            Refusal::TooLarge => (431, "Request Header Fields Too Large"),
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes; `None` for a bad escape, a NUL or non-UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = hex(*b.get(i + 1)?)?;
            let l = hex(*b.get(i + 2)?)?;
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return None;
    }
    String::from_utf8(out).ok()
}

/// Parses the request head (request line and headers, up to the blank
/// line). Pure; never panics on any input.
pub fn parse_request(head: &[u8]) -> Result<Request, Refusal> {
    let text = std::str::from_utf8(head).map_err(|_| Refusal::BadRequest)?;
    let line = text.lines().next().ok_or(Refusal::BadRequest)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::BadRequest);
    };
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        return Err(Refusal::BadRequest);
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        m if !m.is_empty() && m.bytes().all(|c| c.is_ascii_uppercase()) => {
            return Err(Refusal::MethodNotAllowed)
        }
        _ => return Err(Refusal::BadRequest),
    };
    // Absolute-form (`http://host/path`) is allowed by HTTP/1.1.
    let target = match target.strip_prefix("http://") {
        Some(rest) => &rest[rest.find('/').ok_or(Refusal::BadRequest)?..],
        None => target,
    };
    let raw = target.split(['?', '#']).next().unwrap_or("");
    if !raw.starts_with('/') {
        return Err(Refusal::BadRequest);
    }
    let path = percent_decode(raw).ok_or(Refusal::BadRequest)?;
    Ok(Request { method, path })
}

fn content_type(p: &Path) -> &'static str {
    match p
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "cfg" | "conf" | "ipxe" | "sh" | "seed" | "preseed") => {
            "text/plain; charset=utf-8"
        }
        Some("json") => "application/json",
        Some("iso") => "application/x-iso9660-image",
        _ => "application/octet-stream",
    }
}

/// The HTTP file server, on a listener `main` (or a test) bound.
pub struct HttpServer {
    root: LocalRoot,
    listener: TcpListener,
    /// `check_ip`: only addresses holding a lease may fetch.
    check: Option<Leases>,
    /// `SEND_FLOOR` and `MIN_RATE`, unless a test shortens them.
    floor: Duration,
    min_rate: u64,
}

impl HttpServer {
    /// `root` must exist; with `check` (`check_ip`), only addresses that
    /// hold a lease (bound, unexpired) in that table may fetch.
    pub fn new(
        root: &Path,
        listener: std::net::TcpListener,
        check: Option<Leases>,
    ) -> std::io::Result<Self> {
        let root = LocalRoot::new(root)
            .map_err(|e| std::io::Error::new(e.kind(), format!("[httpd] {e}")))?;
        listener.set_nonblocking(true)?;
        Ok(HttpServer {
            root,
            listener: TcpListener::from_std(listener)?,
            check,
            floor: SEND_FLOOR,
            min_rate: MIN_RATE,
        })
    }

    /// Another whole-response bound than [`SEND_FLOOR`] + size /
    /// [`MIN_RATE`] (for tests, which cannot wait half a minute).
    pub fn with_send_bound(mut self, floor: Duration, min_rate: u64) -> Self {
        self.floor = floor;
        self.min_rate = min_rate;
        self
    }

    pub async fn serve(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let tracker = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let root = Arc::new(self.root);
        let per_addr = PerAddress::default();
        let bound = (self.floor, self.min_rate);
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and the like: wait a little, do not spin.
                        tracing::warn!(error = %e, "HTTP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            // Before reading anything: a host with no lease, or one that
            // already holds its share, is closed at once and holds no slot.
            if !allowed(self.check.as_ref(), peer) {
                refused(peer, "not one of ours (check_ip)");
                continue;
            }
            let Some(addr_slot) = per_addr.take(peer.ip()) else {
                refused(peer, "too many connections from this address");
                continue;
            };
            let root = root.clone();
            let check = self.check.clone();
            let stop = shutdown.clone();
            tracker.spawn(async move {
                let _slots = (permit, addr_slot);
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = handle(stream, peer, &root, check.as_ref(), bound) => {}
                }
            });
        }
        // Connections end with the token; this wait is short.
        crate::shutdown::drain(&tracker, "").await;
        Ok(())
    }
}

async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, Refusal> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| Refusal::BadRequest)?;
        if n == 0 {
            return Err(Refusal::BadRequest);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(buf);
        }
        if let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() > MAX_HEAD {
            return Err(Refusal::TooLarge);
        }
    }
}

async fn send_error(stream: &mut TcpStream, r: Refusal, head_only: bool) {
    let (code, reason) = r.status();
    let body = format!("{code} {reason}\n");
    let mut msg = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if r == Refusal::MethodNotAllowed {
        msg += "Allow: GET, HEAD\r\n";
    }
    msg += "\r\n";
    if !head_only {
        msg += &body;
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(msg.as_bytes())).await;
    // Lingering close: closing with unread request bytes would send a RST
    // that can destroy the answer before the client reads it. Send FIN,
    // then drain a bounded amount for a bounded time.
    let _ = stream.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut left = 256 * 1024usize;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    root: &LocalRoot,
    check: Option<&Leases>,
    bound: (Duration, u64),
) {
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(h)) => h,
        Ok(Err(r)) => {
            tracing::debug!(%peer, status = r.status().0, "HTTP bad request head");
            send_error(&mut stream, r, false).await;
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "HTTP request head timed out");
            return;
        }
    };
    let req = match parse_request(&head) {
        Ok(r) => r,
        Err(r) => {
            if let Some(held_back) = REFUSED.admit(Instant::now()) {
                tracing::info!(%peer, status = r.status().0, held_back, "HTTP request refused");
            }
            send_error(&mut stream, r, false).await;
            return;
        }
    };
    let head_only = req.method == Method::Head;
    // The span is attached to the future (not entered across awaits: a
    // guard held over an await corrupts the subscriber's span stack when
    // the task moves between worker threads).
    let span = tracing::info_span!("http", %peer, file = %Untrusted(&req.path));
    serve_request(stream, root, check, peer, req, head_only, bound)
        .instrument(span)
        .await;
}

async fn serve_request(
    mut stream: TcpStream,
    root: &LocalRoot,
    check: Option<&Leases>,
    peer: SocketAddr,
    req: Request,
    head_only: bool,
    bound: (Duration, u64),
) {
    // Again after the head: the lease may have ended meanwhile.
    if !allowed(check, peer) {
        if let Some(held_back) = REFUSED.admit(Instant::now()) {
            tracing::info!(
                status = 401,
                held_back,
                "HTTP client is not one of ours (check_ip)"
            );
        }
        send_error(&mut stream, Refusal::Unauthorized, head_only).await;
        return;
    }
    let mut file = match root.open(&req.path).await {
        Ok(f) => f,
        Err(e) => {
            let r = Refusal::from_file(&e);
            if let Some(held_back) = FILE_REFUSED.admit(Instant::now()) {
                tracing::info!(status = r.status().0, held_back, "HTTP file refused: {e:?}");
            }
            send_error(&mut stream, r, head_only).await;
            return;
        }
    };
    let len = file.size().unwrap_or(0);
    let hdr = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
        content_type(file.path())
    );
    let limit = send_bound(bound.0, bound.1, if head_only { 0 } else { len });
    let sent =
        match tokio::time::timeout(limit, send(&mut stream, &mut file, &hdr, head_only)).await {
            Ok(r) => r,
            Err(_) => {
                // A reset, not a FIN: the kernel then drops what the slow
                // reader has not taken instead of holding it for him.
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("not sent within {limit:?}"),
                ))
            }
        };
    match sent {
        Ok(()) => tracing::info!(status = 200, bytes = len, head = head_only, "HTTP sent"),
        Err(e) => tracing::info!(error = %e, "HTTP transfer ended early"),
    }
}

/// The head, then (for a GET) the file, in bounded steps so that a stalled
/// reader times out.
async fn send(
    stream: &mut TcpStream,
    file: &mut crate::files::LocalFile,
    hdr: &str,
    head_only: bool,
) -> std::io::Result<()> {
    stream.write_all(hdr.as_bytes()).await?;
    if !head_only {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&buf[..n]))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        }
    }
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let r = parse_request(b"GET /a/b%20c.cfg?x=1 HTTP/1.1\r\nHost: x").unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/a/b c.cfg");
        let r = parse_request(b"HEAD http://10.0.0.1:8000/x HTTP/1.0").unwrap();
        assert_eq!((r.method, r.path.as_str()), (Method::Head, "/x"));
        assert_eq!(
            parse_request(b"POST / HTTP/1.1"),
            Err(Refusal::MethodNotAllowed)
        );
        for bad in [
            &b""[..],
            b"GET",
            b"GET /",
            b"GET / HTTP/2",
            b"GET  / HTTP/1.1",
            b"GET x HTTP/1.1",
            b"GET /%zz HTTP/1.1",
            b"GET /%00 HTTP/1.1",
            b"GET /%ff HTTP/1.1",
            b"GET /% HTTP/1.1",
            b"get / HTTP/1.1",
            b"\xff\xfe",
            b"GET http://host HTTP/1.1",
        ] {
            assert!(
                parse_request(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn no_panic_on_any_head() {
        // A small deterministic fuzz of the pure parser.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let seeds: [&[u8]; 3] = [
            b"GET /a%41 HTTP/1.1",
            b"HEAD http://h/ HTTP/1.0",
            b"GET /.. HTTP/1.1",
        ];
        for i in 0..20000 {
            let mut v = seeds[i % 3].to_vec();
            for _ in 0..(i % 5) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let pos = (x as usize) % (v.len() + 1);
                let byte = (x >> 32) as u8;
                if x & 1 == 0 && pos < v.len() {
                    v[pos] = byte;
                } else {
                    v.insert(pos, byte);
                }
            }
            if let Ok(r) = parse_request(&v) {
                let _ = crate::files::components(&r.path);
            }
        }
    }
}
