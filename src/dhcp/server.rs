//! The DHCP socket loop: receive, parse, decide (`dhcp::Engine`), store,
//! reply, notify. The only DHCP code that does I/O (with `sizes.rs`).
//!
//! Replies: to the relay (`giaddr`:67) when relayed, to `ciaddr`:68 when
//! the client has an address, else to 255.255.255.255:68. On port 67 `main`
//! binds the socket to the serving interface (SO_BINDTODEVICE, before root
//! is dropped), so the limited broadcast leaves through that interface and
//! not the default route (UEFI firmware hears nothing else); a server on
//! another port (tests on 127.0.0.1:0) answers the sender's address:port.
//!
//! Durability: a decision with records goes to the store thread, which
//! appends a whole batch with one fdatasync (group commit) and hands the
//! batch back to the delivery task; only then are its log line, reply and
//! notice sent. A decision without records is delivered at once by the
//! receive loop. Both go through [`deliver`], the one place replies leave.
//! The receive loops never wait for the disk.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::acl::http::{HttpAcl, HttpAnswer, HttpQuery};
use crate::config::{BootpConfig, Config, Dns};
use crate::dhcp::{sizes, Decision, Dest, Engine, Outcome, Reply, Silence, ESSENTIAL};
use crate::files::FileRoot;
use crate::leases::{unix_now, LeaseStore, Leases, Record};
use crate::logging::{Throttle, Untrusted};
use crate::netif::ServerNet;
use crate::wire::dhcp::Packet;
use crate::wire::MacAddr;

/// The most HTTP ACL questions in flight at once; more requests are
/// dropped (the client retransmits).
const MAX_HTTP_CHECKS: usize = 256;
/// The most decisions one store batch (one fdatasync) carries.
const MAX_BATCH: usize = 4096;

pub struct DhcpServer {
    config: Arc<Config>,
    bootp: BootpConfig,
    net: ServerNet,
    socket: UdpSocket,
    engine: Engine,
    /// Where leases are made durable; `None`: memory only.
    store: Option<Box<dyn LeaseStore>>,
    /// The TFTP root, for boot file sizes (option 13); `None`: no sizes.
    files: Option<FileRoot>,
}

/// A decision on its way out, with the address its request came from.
struct Delivery {
    decision: Decision,
    src: SocketAddr,
}

/// What delivery needs: the socket and the notice targets.
struct Out {
    sock: tokio::net::UdpSocket,
    notify_sock: Option<UdpSocket>,
    notify: Vec<SocketAddrV4>,
    /// Not on port 67: answer the sender's address and port.
    reply_to_sender: bool,
}

/// What the receive loops and the HTTP checks share.
struct Shared {
    /// Engine lock, then the leases lock inside `decide`: held for one
    /// decision (and the queueing of its records), never across an await.
    engine: Arc<Mutex<Engine>>,
    /// To the store thread; `None` when leases are in memory only.
    store: Option<mpsc::Sender<Delivery>>,
    out: Arc<Out>,
    http: Option<HttpAcl>,
    /// MACs with an HTTP question in flight (their retransmissions wait).
    checking: Mutex<HashSet<MacAddr>>,
    checks: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn checking(&self) -> MutexGuard<'_, HashSet<MacAddr>> {
        self.checking.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The threads and tasks that outlive the receive loops at shutdown.
struct Background {
    store_thread: Option<std::thread::JoinHandle<()>>,
    delivery: Option<tokio::task::JoinHandle<()>>,
}

impl DhcpServer {
    /// `leases` is the table `lib::run` built (and `store` loaded); the
    /// server decides over it and makes each change durable in `store`
    /// before the reply that promises it leaves.
    pub fn new(
        config: Arc<Config>,
        net: ServerNet,
        socket: UdpSocket,
        leases: Leases,
        store: Option<Box<dyn LeaseStore>>,
    ) -> io::Result<Self> {
        let bootp = config.bootp.clone().ok_or_else(|| {
            io::Error::other("no [bootp] section: the DHCP service needs pool_start")
        })?;
        let dns = match &bootp.dns {
            Dns::List(l) => l.clone(),
            Dns::Auto => resolv_conf_servers(),
        };
        let engine = Engine::new(config.clone(), bootp.clone(), &net, dns, leases)
            .map_err(io::Error::other)?;
        Ok(DhcpServer {
            config,
            bootp,
            net,
            socket,
            engine,
            store,
            files: None,
        })
    }

    /// Sizes boot files for option 13 under this root (the TFTP root).
    pub fn with_files(mut self, files: FileRoot) -> Self {
        self.files = Some(files);
        self
    }

    pub async fn serve(mut self, shutdown: CancellationToken) -> io::Result<()> {
        let tracker = TaskTracker::new();
        let (config, files) = (self.config.clone(), self.files.take());
        let (shared, background) = self.prepare()?;
        if let Some(files) = files {
            let engine = shared.engine.clone();
            let sink: sizes::SizeSink = Arc::new(move |name, size| {
                let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
                e.set_file_size(name, size);
            });
            sizes::watch(&config, files, &tracker, &shutdown, sink).await;
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
        stop(shared, background).await;
        Ok(())
    }

    /// Everything before the loop: the socket's options, the store thread
    /// and the delivery task, the HTTP ACL client, the boot file sizes.
    fn prepare(self) -> io::Result<(Arc<Shared>, Background)> {
        let local = self.socket.local_addr()?;
        let reply_to_sender = self.configure_socket(local);
        let out = Arc::new(Out {
            sock: tokio::net::UdpSocket::from_std(self.socket)?,
            notify_sock: notify_socket(&self.bootp)?,
            notify: self.bootp.notify.clone(),
            reply_to_sender,
        });
        let leases = self.engine.leases().clone();
        let (store, background) = match self.store {
            Some(s) => start_store(s, leases, out.clone())?,
            None => (None, Background::none()),
        };
        let http = match &self.config.http_acl {
            Some(h) if self.bootp.access == crate::config::Access::Http => {
                Some(HttpAcl::new(h.timeout).map_err(io::Error::other)?)
            }
            _ => None,
        };
        let engine = Arc::new(Mutex::new(self.engine));
        let b = &self.bootp;
        info!(%local, ifname = %self.net.ifname, server = %self.net.ip,
            pool_start = %b.pool_start, pool_count = b.pool_count, "DHCP serving");
        let shared = Arc::new(Shared {
            engine,
            store,
            out,
            http,
            checking: Mutex::new(HashSet::new()),
            checks: Arc::new(tokio::sync::Semaphore::new(MAX_HTTP_CHECKS)),
        });
        Ok((shared, background))
    }

    /// Interface binding (port 67) and buffer size; returns whether replies
    /// go to the sender (any other port).
    fn configure_socket(&self, local: SocketAddr) -> bool {
        let b = &self.bootp;
        if !b.address.is_unspecified() && !b.address.is_loopback() {
            warn!(address = %b.address, "bound to one address: broadcast DISCOVERs from clients without an address never reach it (use address = 0.0.0.0)");
        }
        let sock = socket2::SockRef::from(&self.socket);
        // On port 67 the socket is bound to the served interface by `main`
        // (`crate::bind_device`, before root is dropped), so that broadcast
        // replies leave through it; elsewhere (tests) replies go to the
        // sender.
        let reply_to_sender = local.port() != 67;
        // Room for bursts (hundreds of clients booting at once); the
        // kernel caps it at net.core.rmem_max.
        let _ = sock.set_recv_buffer_size(4 << 20);
        reply_to_sender
    }
}

impl Background {
    fn none() -> Background {
        Background {
            store_thread: None,
            delivery: None,
        }
    }
}

fn notify_socket(b: &BootpConfig) -> io::Result<Option<UdpSocket>> {
    if b.notify.is_empty() {
        return Ok(None);
    }
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.set_nonblocking(true)?;
    Ok(Some(s))
}

/// Starts the store thread and the delivery task it hands durable batches
/// to; returns the thread's queue.
fn start_store(
    store: Box<dyn LeaseStore>,
    leases: Leases,
    out: Arc<Out>,
) -> io::Result<(Option<mpsc::Sender<Delivery>>, Background)> {
    let (tx, rx) = mpsc::channel();
    let (done_tx, done_rx) = unbounded_channel();
    let thread = std::thread::Builder::new()
        .name("lease-store".into())
        .spawn(move || store_loop(store, rx, done_tx, leases))?;
    let delivery = tokio::spawn(delivery_loop(out, done_rx));
    let background = Background {
        store_thread: Some(thread),
        delivery: Some(delivery),
    };
    Ok((Some(tx), background))
}

/// After the receive loops and checks have ended: closing the store's
/// queue ends its thread once it has stored (and handed over) what it
/// holds; the delivery task ends when the thread has.
async fn stop(shared: Arc<Shared>, background: Background) {
    if Arc::try_unwrap(shared).is_err() {
        warn!("DHCP tasks still hold the lease store at shutdown");
        return;
    }
    if let Some(h) = background.store_thread {
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    if let Some(d) = background.delivery {
        let _ = d.await;
    }
}

async fn receive_loop(shared: Arc<Shared>, tracker: TaskTracker, shutdown: CancellationToken) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, src) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = shared.out.sock.recv_from(&mut buf) => match r {
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
                warn_malformed(src, n, &e);
                continue;
            }
        };
        match decide(&shared, &packet, None, src) {
            Next::Ask(q, d) => {
                log_decision(&d);
                start_check(&shared, &tracker, packet, q, src);
            }
            Next::Deliver(d) => deliver(&shared.out, d).await,
            Next::Queued => {}
        }
    }
}

/// "dropped: malformed", throttled: a flood of junk datagrams gives a
/// few lines a minute with the count held back, not one line each.
fn warn_malformed(src: SocketAddr, len: usize, e: &crate::wire::dhcp::ParseError) {
    static MALFORMED: Throttle = Throttle::new(10, Duration::from_secs(60));
    if let Some(held_back) = MALFORMED.admit(std::time::Instant::now()) {
        warn!(%src, len, held_back, "dropped: {e}");
    }
}

/// What follows a decision.
enum Next {
    /// Ask the HTTP ACL, then decide again.
    Ask(HttpQuery, Decision),
    /// Nothing to store: deliver now.
    Deliver(Delivery),
    /// Handed to the store thread; delivered once durable.
    Queued,
}

/// Decides under the engine lock and, for a decision with records to
/// store, queues it before the lock is released: the store then gets
/// records in decision order, whatever task decided them.
fn decide(shared: &Shared, packet: &Packet, http: Option<&HttpAnswer>, src: SocketAddr) -> Next {
    let mut engine = shared.engine();
    let from = match src {
        SocketAddr::V4(a) => *a.ip(),
        SocketAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    let decision = engine.decide(packet, unix_now(), http, from);
    if let Outcome::AskHttp(q) = &decision.outcome {
        return Next::Ask(q.clone(), decision);
    }
    let delivery = Delivery { decision, src };
    match &shared.store {
        Some(tx) if !delivery.decision.effects.journal.is_empty() => {
            let sent = tx.send(delivery);
            drop(engine);
            if sent.is_err() {
                error!("the lease store thread is gone: reply not sent");
            }
            Next::Queued
        }
        _ => Next::Deliver(delivery),
    }
}

fn start_check(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    packet: Packet,
    q: HttpQuery,
    src: SocketAddr,
) {
    let Some(http) = shared.http.clone() else {
        return;
    };
    if !shared.checking().insert(q.mac) {
        debug!(mac = %q.mac, xid = %format_args!("{:08x}", packet.xid), "HTTP ACL question already in flight: retransmission dropped");
        return;
    }
    let Ok(permit) = shared.checks.clone().try_acquire_owned() else {
        shared.checking().remove(&q.mac);
        warn!(mac = %q.mac, "too many HTTP ACL questions in flight: request dropped");
        return;
    };
    let shared = shared.clone();
    tracker.spawn(async move {
        info!(mac = %q.mac, url = %q.url, "HTTP ACL query");
        let answer = http.check(&q.url).await;
        drop(permit);
        shared.checking().remove(&q.mac);
        if let HttpAnswer::Granted { client, file } = &answer {
            // The ACL server's text, escaped: it may be as hostile as a client.
            let show = |t: &Option<String>| t.as_deref().map(|t| Untrusted(t).to_string());
            info!(mac = %q.mac, client = ?show(client), file = ?show(file), "HTTP ACL granted");
        }
        match decide(&shared, &packet, Some(&answer), src) {
            Next::Deliver(d) => deliver(&shared.out, d).await,
            // The engine never asks twice for one request; logged if so.
            Next::Ask(_, d) => log_decision(&d),
            Next::Queued => {}
        }
    });
}

fn log_decision(d: &Decision) {
    if let Outcome::Silent(
        s @ (Silence::ClientIdMismatch(_) | Silence::ReleaseFromElsewhere { .. }),
    ) = &d.outcome
    {
        warn_forged(d, s);
        return;
    }
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    let mac = d.mac.map_or_else(|| "-".to_string(), |m| m.to_string());
    let ip = d.ip.map_or_else(|| "-".to_string(), |i| i.to_string());
    let file = d.effects.client_file.as_ref().map(|(_, f)| f.as_str());
    info!(
        kind = %d.kind,
        %mac,
        %ip,
        xid = %format_args!("{:08x}", d.xid),
        file,
        "{}",
        d.outcome
    );
}

/// A RELEASE/DECLINE that looks forged (another source, another client
/// identifier): a warning, throttled, since a flood can repeat it.
fn warn_forged(d: &Decision, why: &Silence) {
    static FORGED: Throttle = Throttle::new(10, Duration::from_secs(60));
    if let Some(held_back) = FORGED.admit(std::time::Instant::now()) {
        let mac = d.mac.map_or_else(|| "-".to_string(), |m| m.to_string());
        warn!(kind = %d.kind, %mac, held_back, "possibly forged: {why}");
    }
}

/// The one place a decision leaves: its log line, its reply, its notice.
/// A decision with records reaches it only once they are durable.
async fn deliver(out: &Out, Delivery { decision: d, src }: Delivery) {
    log_decision(&d);
    if let Some(r) = d.reply() {
        let buf = emit(r);
        let to = reply_addr(out, r.dest, src);
        let sent = match out.sock.try_send_to(&buf, to) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => out.sock.send_to(&buf, to).await,
            r => r,
        };
        if let Err(e) = sent {
            warn!(%to, "reply not sent: {e}");
        }
    }
    if let (Some(text), Some(s)) = (&d.effects.notice, &out.notify_sock) {
        for t in &out.notify {
            match s.send_to(text.as_bytes(), t) {
                Ok(_) => info!(target = %t, notice = %text, "notified"),
                Err(e) => warn!(target = %t, "notice not sent: {e}"),
            }
        }
    }
}

/// The reply's bytes, shrunk to the client's size when needed.
fn emit(r: &Reply) -> Vec<u8> {
    let mut buf = Vec::with_capacity(400);
    let dropped = r.packet.emit_within(r.max_len, ESSENTIAL, &mut buf);
    if !dropped.is_empty() {
        debug!(
            ?dropped,
            max = r.max_len,
            "options dropped to fit the client's size"
        );
    }
    buf
}

fn reply_addr(out: &Out, dest: Dest, src: SocketAddr) -> SocketAddr {
    if out.reply_to_sender {
        return src;
    }
    match dest {
        Dest::Relay(ip) => SocketAddr::V4(SocketAddrV4::new(ip, 67)),
        Dest::Unicast(ip) => SocketAddr::V4(SocketAddrV4::new(ip, 68)),
        Dest::Broadcast => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, 68)),
    }
}

/// Delivers each durable batch the store thread hands over, in order.
async fn delivery_loop(out: Arc<Out>, mut batches: UnboundedReceiver<Vec<Delivery>>) {
    while let Some(batch) = batches.recv().await {
        for d in batch {
            deliver(&out, d).await;
        }
    }
}

/// The store thread: takes every decision waiting (up to [`MAX_BATCH`]),
/// stores their records in one append (one fdatasync), then hands the
/// batch to the delivery task. Compacts the store when it has grown well
/// past the live table.
fn store_loop(
    mut store: Box<dyn LeaseStore>,
    rx: mpsc::Receiver<Delivery>,
    durable: UnboundedSender<Vec<Delivery>>,
    leases: Leases,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let records: Vec<Record> = batch
            .iter()
            .flat_map(|d| d.decision.effects.journal.iter().cloned())
            .collect();
        if let Err(e) = store.append(&records) {
            let store = store.describe();
            error!(%store, "cannot store leases: {e}; {} replies withheld", batch.len());
            continue;
        }
        // The delivery task is gone only when the runtime is: nothing
        // left to tell.
        let _ = durable.send(batch);
        if store.wants_compaction() {
            // The table holds everything stored so far (and maybe more,
            // still queued: stored twice then, which replays the same).
            let snapshot = leases.snapshot(unix_now());
            let what = store.describe();
            match store.compact(&snapshot) {
                Ok(()) => info!(store = %what, leases = snapshot.len(), "lease store compacted"),
                Err(e) => error!(store = %what, "cannot compact the lease store: {e}"),
            }
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
