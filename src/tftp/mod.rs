//! The TFTP service: the listener on port 69, one tokio task per transfer
//! (each on its own ephemeral socket, capped by a semaphore). What a name
//! serves (root, confinement, filters) is `crate::files`'; protocol
//! decisions live in `transfer` (negotiation); bytes in `crate::wire::tftp`.

mod gso;
pub mod source;
pub mod transfer;
mod upload;
pub mod window;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::files::FileRoot;
use crate::filters::Vars;
use crate::leases::Leases;
use crate::logging::{Throttle, Untrusted};
use crate::wire::tftp::{self as wire, code, Mode, Packet, Request};
use source::{AnySource, NetasciiOut, Source, TftpError};
use transfer::{End, Link, Negotiated};

struct Shared {
    config: Arc<Config>,
    /// The root with `[filters]`: what a requested name serves.
    files: FileRoot,
    /// The lease table, when this daemon hands out addresses: the
    /// `{client_file}` filter variable is the HTTP ACL's `File:` for the
    /// client holding the requesting address. Without it, rules using the
    /// variable are skipped.
    leases: Option<Leases>,
    /// Canonical upload directory, when WRQ is enabled.
    upload_dir: Option<PathBuf>,
    /// Peers with a transfer in progress, with their request's bytes and
    /// a generation: the same request again (the client did not hear our
    /// answer yet) must not start a second transfer, but a different one
    /// from the same port (EDK2: ERROR 8 after the size probe, then the
    /// real RRQ) starts at once.
    active: Mutex<HashMap<SocketAddr, (Vec<u8>, u64)>>,
    /// Running transfers per source address (`max_per_client`).
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    local_ip: IpAddr,
}

pub struct TftpServer {
    shared: Arc<Shared>,
    socket: std::net::UdpSocket,
    /// Listening on 0.0.0.0 with IP_PKTINFO on: each transfer answers from
    /// the address its request was sent to.
    pktinfo: bool,
}

impl TftpServer {
    /// Checks the root (a local root must exist) and the upload directory.
    pub fn new(config: Arc<Config>, socket: std::net::UdpSocket) -> io::Result<Self> {
        let t = &config.tftp;
        let files = FileRoot::from_config(&config)
            .map_err(|e| io::Error::new(e.kind(), format!("TFTP {e}")))?;
        let upload_dir = match &t.upload_dir {
            None => None,
            Some(d) => Some(d.canonicalize().map_err(|e| {
                io::Error::new(e.kind(), format!("TFTP upload_dir {}: {e}", d.display()))
            })?),
        };
        let local_ip = socket.local_addr()?.ip();
        // Asked for here, before anyone can send: a datagram queued before
        // IP_PKTINFO is on carries an empty one.
        let pktinfo = local_ip.is_unspecified() && gso::set_pktinfo(&socket);
        Ok(TftpServer {
            pktinfo,
            shared: Arc::new(Shared {
                config,
                files,
                leases: None,
                upload_dir,
                active: Mutex::new(HashMap::new()),
                per_ip: Mutex::new(HashMap::new()),
                local_ip,
            }),
            socket,
        })
    }

    /// Shares the DHCP side's lease table: `{client_file}` answers from it.
    pub fn with_leases(mut self, leases: Leases) -> Self {
        if let Some(s) = Arc::get_mut(&mut self.shared) {
            s.leases = Some(leases);
        }
        self
    }

    /// Serves until `shutdown`, then gives transfers a grace period.
    pub async fn serve(self, shutdown: CancellationToken) -> io::Result<()> {
        let sock = UdpSocket::from_std(self.socket)?;
        let shared = self.shared;
        let max = shared.config.tftp.max_transfers;
        let slots = Arc::new(Semaphore::new(max));
        let tracker = TaskTracker::new();
        let mut buf = vec![0u8; 4096];
        let mut generation: u64 = 0;
        // On 0.0.0.0, each request's own local address (IP_PKTINFO) is
        // where its transfer answers from: a client talking to one of
        // several addresses hears DATA from that address, as it expects.
        let pktinfo = self.pktinfo;
        loop {
            let received = async {
                if pktinfo {
                    sock.async_io(tokio::io::Interest::READABLE, || {
                        gso::recv_with_local(&sock, &mut buf)
                    })
                    .await
                } else {
                    sock.recv_from(&mut buf).await.map(|(n, p)| (n, p, None))
                }
            };
            let (n, peer, local) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = received => match r {
                    Ok(x) => x,
                    Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::Interrupted) => continue,
                    Err(e) => {
                        // Not a packet's fault (e.g. no memory): do not spin.
                        tracing::warn!("TFTP receive: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let Some(req) = request_of(&sock, &buf[..n], peer).await else {
                continue;
            };
            generation += 1;
            let repeated = (shared.active.lock().unwrap_or_else(|e| e.into_inner()))
                .get(&peer)
                .is_some_and(|(b, _)| b[..] == buf[..n]);
            if repeated {
                tracing::debug!(%peer, "repeated request for a running transfer: ignored");
                continue;
            }
            let Some(slot) = admit(&shared, &slots, peer) else {
                busy(&sock, peer).await;
                continue;
            };
            shared
                .active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(peer, (buf[..n].to_vec(), generation));
            let active = ActiveGuard {
                shared: shared.clone(),
                peer,
                generation,
            };
            let from = local.map_or(shared.local_ip, IpAddr::V4);
            let cancel = shutdown.child_token();
            tracker.spawn(transfer_task(active, slot, from, req, cancel));
        }
        crate::shutdown::drain(&tracker, "TFTP transfers").await;
        Ok(())
    }
}

/// One transfer's task: it holds its active entry and its slot until it
/// ends, however it ends.
async fn transfer_task(
    active: ActiveGuard,
    _slot: Slot,
    from: IpAddr,
    (req, write): (Request, bool),
    cancel: CancellationToken,
) {
    let peer = active.peer;
    if let Err(e) = run_transfer(&active.shared, peer, from, req, write, &cancel).await {
        log_failure(peer, &e);
    }
}

/// A running transfer's hold on a global slot and on its source's share.
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self.shared.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// A slot for a new transfer from `peer`, when one is free both overall and
/// for its source address. No waiting queue: a flood of requests that
/// never answer would fill it and keep real clients waiting behind it.
fn admit(shared: &Arc<Shared>, slots: &Arc<Semaphore>, peer: SocketAddr) -> Option<Slot> {
    let ip = peer.ip();
    let mut per_ip = shared.per_ip.lock().unwrap_or_else(|e| e.into_inner());
    let n = per_ip.entry(ip).or_insert(0);
    if *n >= shared.config.tftp.max_per_client {
        return None;
    }
    let permit = slots.clone().try_acquire_owned().ok()?;
    *n += 1;
    Some(Slot {
        shared: shared.clone(),
        ip,
        _permit: permit,
    })
}

/// Refusals a flood repeats: a few lines, then a count.
static BUSY_LOG: Throttle = Throttle::new(10, Duration::from_secs(10));
static MALFORMED_LOG: Throttle = Throttle::new(10, Duration::from_secs(10));

/// ERROR 0 "Server busy" at once: the client tries again later (or another
/// server) instead of waiting on a silent one.
async fn busy(sock: &UdpSocket, peer: SocketAddr) {
    if let Some(held_back) = BUSY_LOG.admit(Instant::now()) {
        tracing::warn!(%peer, held_back, "TFTP busy (all slots, or this address's share, taken): request refused");
    }
    let err = wire::error_bytes(code::NOT_DEFINED, "Server busy");
    let _ = sock.send_to(&err, peer).await;
}

/// A transfer's I/O error; the peer's ICMP port unreachable is routine (a
/// client gone, or a forged source) and not worth a warning.
fn log_failure(peer: SocketAddr, e: &io::Error) {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        tracing::info!(%peer, "TFTP transfer ended: the peer's port is unreachable");
    } else {
        tracing::warn!(%peer, "TFTP transfer: {e}");
    }
}

/// The request (and whether it is a WRQ) in a datagram to the listener;
/// `None` for anything else, after answering a malformed one with an ERROR
/// (but never an ERROR with an ERROR).
async fn request_of(sock: &UdpSocket, pkt: &[u8], peer: SocketAddr) -> Option<(Request, bool)> {
    match Packet::parse(pkt) {
        Ok(Packet::Rrq(r)) => Some((r, false)),
        Ok(Packet::Wrq(r)) => Some((r, true)),
        Ok(Packet::Error { .. }) => None,
        Ok(other) => {
            tracing::debug!(%peer, "not a request on the TFTP port: {other:?}");
            None
        }
        Err(e) => {
            if let Some(held_back) = MALFORMED_LOG.admit(Instant::now()) {
                tracing::warn!(%peer, held_back, "malformed TFTP request: {e}");
            }
            if pkt[..pkt.len().min(2)] != [0, wire::OP_ERROR as u8] {
                let err = wire::error_bytes(code::ILLEGAL_OPERATION, &e.to_string());
                let _ = sock.send_to(&err, peer).await;
            }
            None
        }
    }
}

/// Removes a peer from the active set when its task ends, however it ends.
struct ActiveGuard {
    shared: Arc<Shared>,
    peer: SocketAddr,
    generation: u64,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let mut active = self.shared.active.lock().unwrap_or_else(|e| e.into_inner());
        // A newer request from the same peer owns the entry now.
        if active
            .get(&self.peer)
            .is_some_and(|(_, g)| *g == self.generation)
        {
            active.remove(&self.peer);
        }
    }
}

/// A fresh socket for one transfer, on the address the request came to
/// when the listener has one (replies come from where the client sent).
fn transfer_socket(local_ip: IpAddr) -> io::Result<UdpSocket> {
    let s = std::net::UdpSocket::bind(SocketAddr::new(local_ip, 0))?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

async fn run_transfer(
    shared: &Shared,
    peer: SocketAddr,
    from: IpAddr,
    req: Request,
    write: bool,
    cancel: &CancellationToken,
) -> io::Result<()> {
    use tracing::Instrument;
    let span = tracing::info_span!("tftp", %peer, file = %Untrusted(&req.filename));
    transfer_in_span(shared, peer, from, req, write, cancel)
        .instrument(span)
        .await
}

async fn transfer_in_span(
    shared: &Shared,
    peer: SocketAddr,
    from: IpAddr,
    req: Request,
    write: bool,
    cancel: &CancellationToken,
) -> io::Result<()> {
    let sock = transfer_socket(from)?;
    // Connected: strangers are dropped by the kernel, and an ICMP port
    // unreachable from the peer ends the transfer (see `Link`).
    sock.connect(peer).await?;
    let link = Link {
        sock: &sock,
        peer,
        retries: shared.config.tftp.retries,
        cancel,
    };
    if write {
        return upload::run_upload(shared, &link, &req).await;
    }
    let started = Instant::now();
    let src = match open(shared, peer, &req.filename).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(code = e.code, "RRQ refused: {}", e.message);
            link.send_error(&e).await;
            return Ok(());
        }
    };
    let end = match req.mode {
        Mode::Octet => {
            let mut src = src;
            let neg = match negotiate(&link, &req, &shared.config, src.size(), false).await {
                Some(n) => n,
                None => return Ok(()),
            };
            log_start(&req, &neg);
            transfer::send_file(&link, &mut src, &neg).await?
        }
        Mode::Netascii => {
            let mut src = NetasciiOut::new(src);
            let neg = match negotiate(&link, &req, &shared.config, src.size(), false).await {
                Some(n) => n,
                None => return Ok(()),
            };
            log_start(&req, &neg);
            transfer::send_file(&link, &mut src, &neg).await?
        }
    };
    log_end(&end, started.elapsed(), "sent");
    Ok(())
}

fn log_start(req: &Request, neg: &Negotiated) {
    tracing::debug!(
        mode = req.mode.as_str(),
        blksize = neg.blksize,
        windowsize = neg.window,
        "RRQ: sending"
    );
}

fn log_end(end: &End, took: Duration, verb: &str) {
    let secs = took.as_secs_f64();
    match end {
        End::Done { bytes } => {
            let rate = if secs > 0.0 {
                *bytes as f64 / secs / 1e6
            } else {
                0.0
            };
            tracing::info!(
                bytes,
                secs = format!("{secs:.3}"),
                "{verb} {bytes} bytes in {secs:.3} s ({rate:.1} MB/s)"
            );
        }
        // EDK2 aborts after reading tsize from the OACK: normal, quiet.
        End::ClientError { code, message } if *code == code::OPTION_REFUSED => {
            tracing::debug!(
                code,
                "client ended the transfer after the OACK: {}",
                Untrusted(message)
            )
        }
        End::ClientError { code, message } => {
            tracing::info!(code, "client aborted: {}", Untrusted(message))
        }
        End::TimedOut => tracing::warn!("no answer from the client: transfer abandoned"),
        End::Cancelled => tracing::info!("transfer stopped: server shutting down"),
        End::SourceFailed(e) => tracing::warn!("transfer failed: {e}"),
        End::Refused(e) => tracing::info!("transfer refused: {}", e.message),
    }
}

async fn negotiate(
    link: &Link<'_>,
    req: &Request,
    config: &Config,
    size: Option<u64>,
    write: bool,
) -> Option<Negotiated> {
    match transfer::negotiate(req, &config.tftp, size, write) {
        Ok(n) => Some(n),
        Err(e) => {
            link.send_error(&e).await;
            None
        }
    }
}

/// The source for a request: the `{client_file}` variable looked up (only
/// when a filter could use it), then the file layer.
async fn open(shared: &Shared, peer: SocketAddr, name: &str) -> Result<AnySource, TftpError> {
    let client_file = match (&shared.leases, peer.ip()) {
        (Some(l), IpAddr::V4(ip)) if shared.files.has_filters() => l.client_file(ip),
        _ => None,
    };
    let vars = Vars {
        client_file: client_file.as_deref(),
    };
    Ok(shared.files.open(name, &vars).await?)
}
