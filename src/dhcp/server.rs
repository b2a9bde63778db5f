//! The DHCP socket loop: receive, parse, decide (`dhcp::Engine`), journal,
//! reply, notify. The only DHCP code that does I/O.
//!
//! Replies: to the relay (`giaddr`:67) when relayed, to `ciaddr`:68 when
//! the client has an address, else to 255.255.255.255:68. The socket is
//! bound to the serving interface with SO_BINDTODEVICE when the server runs
//! on port 67, so the limited broadcast leaves through that interface and
//! not the default route (UEFI firmware hears nothing else); a server on
//! another port (tests on 127.0.0.1:0) answers the sender's address:port.
//!
//! Durability: ACK records go to a journal thread that appends a whole
//! batch, fdatasyncs once (group commit) and only then sends the batch's
//! replies, so an ACK never leaves before its lease is on disk.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::acl::http::HttpAcl;
use crate::config::{Config, Dns, Root};
use crate::dhcp::{Decision, Dest, Engine, HttpAnswer, ESSENTIAL};
use crate::leases::Journal;
use crate::netif::ServerNet;
use crate::wire::dhcp::Packet;
use crate::wire::MacAddr;

/// The most HTTP ACL questions in flight at once; more requests are
/// dropped (the client retransmits).
const MAX_HTTP_CHECKS: usize = 256;
/// How often boot file sizes (option 13) are looked up again.
const SIZE_REFRESH: Duration = Duration::from_secs(10);

pub struct DhcpServer {
    config: Arc<Config>,
    net: ServerNet,
    socket: UdpSocket,
    /// The engine once `serve` built it, for [`DhcpServer::lease_holders`].
    engine_slot: Arc<std::sync::OnceLock<Arc<Mutex<Engine>>>>,
}

/// Seconds since the epoch: the decisions' clock.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One batch item for the journal thread.
struct Job {
    lines: Vec<String>,
    reply: Option<(Vec<u8>, SocketAddr)>,
}

struct Shared {
    engine: Arc<Mutex<Engine>>,
    sock: tokio::net::UdpSocket,
    /// Present when leases are journaled.
    journal: Option<mpsc::Sender<Job>>,
    notify_sock: Option<UdpSocket>,
    notify: Vec<SocketAddrV4>,
    http: Option<HttpAcl>,
    /// MACs with an HTTP question in flight (their retransmissions wait).
    checking: Mutex<HashSet<MacAddr>>,
    checks: Arc<tokio::sync::Semaphore>,
    /// Not on port 67: answer the sender's address and port.
    reply_to_sender: bool,
}

impl DhcpServer {
    pub fn new(config: Arc<Config>, net: ServerNet, socket: UdpSocket) -> io::Result<Self> {
        if config.bootp.is_none() {
            return Err(io::Error::other(
                "no [bootp] section: the DHCP service needs pool_start",
            ));
        }
        Ok(DhcpServer {
            config,
            net,
            socket,
            engine_slot: Arc::default(),
        })
    }

    /// The file the HTTP ACL's `File:` line named for the client that
    /// holds an address now (TFTP's `{client_file}`). None until the
    /// server runs.
    pub fn client_files(&self) -> Arc<dyn Fn(Ipv4Addr) -> Option<String> + Send + Sync> {
        let slot = self.engine_slot.clone();
        Arc::new(move |ip| {
            let engine = slot.get()?.lock().unwrap_or_else(|p| p.into_inner());
            engine.client_file(ip).map(str::to_string)
        })
    }

    /// Whether an address is leased (bound and not expired) to some client
    /// right now: `[httpd] check_ip`. False until the server runs.
    pub fn lease_holders(&self) -> Arc<dyn Fn(Ipv4Addr) -> bool + Send + Sync> {
        let slot = self.engine_slot.clone();
        Arc::new(move |ip| {
            let Some(engine) = slot.get() else {
                return false;
            };
            let engine = engine.lock().unwrap_or_else(|p| p.into_inner());
            engine.leases.holds(ip, unix_now())
        })
    }

    pub async fn serve(self, shutdown: CancellationToken) -> io::Result<()> {
        let b = self.config.bootp.clone().expect("checked in new");
        let dns = match &b.dns {
            Dns::List(l) => l.clone(),
            Dns::Auto => resolv_conf_servers(),
        };
        let mut engine =
            Engine::new(self.config.clone(), &self.net, dns).map_err(io::Error::other)?;
        let journal = match &b.lease_file {
            Some(path) => {
                let (j, read, skipped) = Journal::open(path, &mut engine.leases, unix_now())?;
                info!(
                    file = %path.display(),
                    records = read,
                    torn = skipped,
                    leases = engine.leases.leases().count(),
                    "lease journal loaded and compacted"
                );
                Some(j)
            }
            None => {
                info!("leases kept in memory only (lease_file = none)");
                None
            }
        };
        for (name, size) in local_sizes(&self.config) {
            engine.set_file_size(&name, size);
        }

        let local = self.socket.local_addr()?;
        if !b.address.is_unspecified() && !b.address.is_loopback() {
            warn!(address = %b.address, "bound to one address: broadcast DISCOVERs from clients without an address never reach it (use address = 0.0.0.0)");
        }
        let reply_to_sender = local.port() != 67;
        if !reply_to_sender {
            // Broadcast replies must leave through the served interface.
            match socket2::SockRef::from(&self.socket).bind_device(Some(self.net.ifname.as_bytes()))
            {
                Ok(()) => {
                    info!(ifname = %self.net.ifname, "DHCP socket bound to the served interface")
                }
                Err(e) => {
                    warn!(ifname = %self.net.ifname, "cannot bind the DHCP socket to its interface ({e}): broadcast replies follow the routing table")
                }
            }
        }
        // Room for bursts (hundreds of clients booting at once); the
        // kernel caps it at net.core.rmem_max.
        let _ = socket2::SockRef::from(&self.socket).set_recv_buffer_size(4 << 20);
        let send_clone = self.socket.try_clone()?;
        let sock = tokio::net::UdpSocket::from_std(self.socket)?;
        let engine = Arc::new(Mutex::new(engine));
        let _ = self.engine_slot.set(engine.clone());
        let (tx, journal_thread) = match journal {
            Some(j) => {
                let (tx, rx) = mpsc::channel();
                let eng = engine.clone();
                let h = std::thread::Builder::new()
                    .name("lease-journal".into())
                    .spawn(move || journal_loop(j, rx, send_clone, eng))?;
                (Some(tx), Some(h))
            }
            None => (None, None),
        };
        let notify_sock = if b.notify.is_empty() {
            None
        } else {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.set_nonblocking(true)?;
            Some(s)
        };
        let http = match &self.config.http_acl {
            Some(h) if b.access == crate::config::Access::Http => {
                Some(HttpAcl::new(h.timeout).map_err(io::Error::other)?)
            }
            _ => None,
        };
        let shared = Arc::new(Shared {
            engine,
            sock,
            journal: tx,
            notify_sock,
            notify: b.notify.clone(),
            http,
            checking: Mutex::new(HashSet::new()),
            checks: Arc::new(tokio::sync::Semaphore::new(MAX_HTTP_CHECKS)),
            reply_to_sender,
        });
        info!(
            %local,
            ifname = %self.net.ifname,
            server = %self.net.ip,
            pool_start = %b.pool_start,
            pool_count = b.pool_count,
            "DHCP serving"
        );

        let tracker = TaskTracker::new();
        if let Root::Http(prefix) = &self.config.tftp.root {
            tracker.spawn(refresh_http_sizes(
                shared.clone(),
                prefix.clone(),
                boot_files(&self.config),
                shutdown.clone(),
            ));
        } else {
            tracker.spawn(refresh_local_sizes(
                shared.clone(),
                self.config.clone(),
                shutdown.clone(),
            ));
        }

        // A few receive loops share the socket: parsing, logging and
        // sending run in parallel; decisions are serialised by the engine
        // lock, held briefly.
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4);
        for _ in 0..workers {
            tracker.spawn(receive_loop(
                shared.clone(),
                tracker.clone(),
                shutdown.clone(),
            ));
        }
        shutdown.cancelled().await;

        crate::shutdown::drain(&tracker, "DHCP tasks (HTTP ACL checks)").await;
        // Closing the channel ends the journal thread once it has written
        // (and answered) what it holds.
        match Arc::try_unwrap(shared) {
            Ok(s) => {
                drop(s);
                if let Some(h) = journal_thread {
                    let _ = tokio::task::spawn_blocking(move || h.join()).await;
                }
            }
            Err(_) => warn!("DHCP tasks still hold the journal at shutdown"),
        }
        Ok(())
    }
}

async fn receive_loop(shared: Arc<Shared>, tracker: TaskTracker, shutdown: CancellationToken) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, src) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = shared.sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!("DHCP receive failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let packet = match Packet::parse(&buf[..n]) {
            Ok(p) => p,
            Err(e) => {
                warn!(%src, len = n, "dropped: {e}");
                continue;
            }
        };
        // Locked briefly inside, never across an await.
        let (decision, reply) = decide(&shared, &packet, None, src);
        if let Some(q) = decision.check.clone() {
            log_decision(&decision);
            start_check(&shared, &tracker, packet, q, src);
            continue;
        }
        finish(&shared, decision, reply).await;
    }
}

fn start_check(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    packet: Packet,
    q: crate::dhcp::HttpQuery,
    src: SocketAddr,
) {
    let Some(http) = shared.http.clone() else {
        return;
    };
    if !shared
        .checking
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(q.mac)
    {
        debug!(mac = %q.mac, xid = %format_args!("{:08x}", packet.xid), "HTTP ACL question already in flight: retransmission dropped");
        return;
    }
    let Ok(permit) = shared.checks.clone().try_acquire_owned() else {
        shared
            .checking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&q.mac);
        warn!(mac = %q.mac, "too many HTTP ACL questions in flight: request dropped");
        return;
    };
    let shared = shared.clone();
    tracker.spawn(async move {
        info!(mac = %q.mac, url = %q.url, "HTTP ACL query");
        let answer = http.check(&q.url).await;
        drop(permit);
        shared
            .checking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&q.mac);
        let (decision, reply) = decide(&shared, &packet, Some(&answer), src);
        if let HttpAnswer::Granted { client, file } = &answer {
            info!(mac = %q.mac, client = ?client, file = ?file, "HTTP ACL granted");
        }
        finish(&shared, decision, reply).await;
    });
}

fn log_decision(d: &Decision) {
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    let mac = d.mac.map_or_else(|| "-".to_string(), |m| m.to_string());
    let ip = d.ip.map_or_else(|| "-".to_string(), |i| i.to_string());
    info!(
        kind = %d.kind,
        %mac,
        %ip,
        xid = %format_args!("{:08x}", d.xid),
        "{}",
        d.why
    );
}

/// A reply ready for the wire.
type Outgoing = (Vec<u8>, SocketAddr);

fn emit_reply(shared: &Shared, d: &Decision, src: SocketAddr) -> Option<Outgoing> {
    let r = d.reply.as_ref()?;
    let mut buf = Vec::with_capacity(400);
    let dropped = r.packet.emit_within(r.max_len, ESSENTIAL, &mut buf);
    if !dropped.is_empty() {
        debug!(
            ?dropped,
            max = r.max_len,
            "options dropped to fit the client's size"
        );
    }
    Some((buf, reply_addr(shared, r.dest, src)))
}

/// Decides under the engine lock and, for a decision with journal records,
/// queues them (with the reply, sent once they are on disk) before the lock
/// is released: the journal then holds records in decision order, whatever
/// task decided them. Returns the decision and a reply to send now.
fn decide(
    shared: &Shared,
    packet: &Packet,
    http: Option<&HttpAnswer>,
    src: SocketAddr,
) -> (Decision, Option<Outgoing>) {
    let mut engine = shared.engine.lock().unwrap_or_else(|p| p.into_inner());
    let d = engine.decide(packet, unix_now(), http);
    match &shared.journal {
        Some(tx) if !d.journal.is_empty() => {
            let lines = d.journal.iter().map(|r| r.to_json()).collect();
            let reply = emit_reply(shared, &d, src);
            let sent = tx.send(Job { lines, reply });
            drop(engine);
            if sent.is_err() {
                error!("lease journal thread is gone: reply not sent");
            }
            (d, None)
        }
        _ => {
            drop(engine);
            let reply = emit_reply(shared, &d, src);
            (d, reply)
        }
    }
}
/// Logs, replies (when not left to the journal) and notifies.
async fn finish(shared: &Shared, d: Decision, reply: Option<Outgoing>) {
    log_decision(&d);
    if let Some((buf, to)) = reply {
        send(&shared.sock, &buf, to).await;
    }
    if let (Some(text), Some(s)) = (&d.notice, &shared.notify_sock) {
        for t in &shared.notify {
            match s.send_to(text.as_bytes(), t) {
                Ok(_) => info!(target = %t, notice = %text, "notified"),
                Err(e) => warn!(target = %t, "notice not sent: {e}"),
            }
        }
    }
}

fn reply_addr(shared: &Shared, dest: Dest, src: SocketAddr) -> SocketAddr {
    if shared.reply_to_sender {
        return src;
    }
    match dest {
        Dest::Relay(ip) => SocketAddr::V4(SocketAddrV4::new(ip, 67)),
        Dest::Unicast(ip) => SocketAddr::V4(SocketAddrV4::new(ip, 68)),
        Dest::Broadcast => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, 68)),
    }
}

async fn send(sock: &tokio::net::UdpSocket, buf: &[u8], to: SocketAddr) {
    let r = match sock.try_send_to(buf, to) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => sock.send_to(buf, to).await,
        r => r,
    };
    if let Err(e) = r {
        warn!(%to, "reply not sent: {e}");
    }
}

/// The journal thread: takes every job waiting, appends their lines in one
/// write, fdatasyncs once, then sends their replies. Compacts the file when
/// it has grown well past the live table.
fn journal_loop(
    mut j: Journal,
    rx: mpsc::Receiver<Job>,
    sock: UdpSocket,
    engine: Arc<Mutex<Engine>>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= 4096 {
                break;
            }
        }
        let lines: Vec<String> = batch.iter_mut().flat_map(|b| b.lines.drain(..)).collect();
        if let Err(e) = j.append_durable(&lines) {
            error!(file = %j.path().display(), "cannot write leases: {e}; {} replies withheld", batch.len());
            continue;
        }
        for (buf, to) in batch.iter().filter_map(|b| b.reply.as_ref()) {
            let mut tries = 0;
            loop {
                match sock.send_to(buf, to) {
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && tries < 200 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => {
                        warn!(%to, "reply not sent: {e}");
                        break;
                    }
                }
            }
        }
        if j.wants_compaction() {
            // The table holds everything written so far (and maybe more,
            // still queued: written twice then, which replays the same).
            let snapshot = engine
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .leases
                .snapshot(unix_now());
            match j.compact(&snapshot) {
                Ok(()) => {
                    info!(file = %j.path().display(), leases = snapshot.len(), "lease journal compacted")
                }
                Err(e) => {
                    error!(file = %j.path().display(), "cannot compact the lease journal: {e}")
                }
            }
        }
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

async fn refresh_local_sizes(
    shared: Arc<Shared>,
    config: Arc<Config>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SIZE_REFRESH) => {}
        }
        let config = config.clone();
        let sizes = tokio::task::spawn_blocking(move || local_sizes(&config))
            .await
            .unwrap_or_default();
        let mut e = shared.engine.lock().unwrap_or_else(|p| p.into_inner());
        for (name, size) in sizes {
            e.set_file_size(&name, size);
        }
    }
}

/// HEAD each boot file under an HTTP root (Content-Length), off the
/// request path, with a timeout; sizes are cached in the engine.
async fn refresh_http_sizes(
    shared: Arc<Shared>,
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
            shared
                .engine
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .set_file_size(name, size);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SIZE_REFRESH) => {}
        }
    }
}

/// `dns = auto`: the host's resolv.conf name servers (IPv4).
fn resolv_conf_servers() -> Vec<Ipv4Addr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver"))
                .then(|| w.next())
                .flatten()
                .and_then(|a| a.parse().ok())
        })
        .collect()
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
