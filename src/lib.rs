//! pybootd: a BOOTP/DHCP/PXE and TFTP netboot daemon, compatible with the
//! Python pybootd's `.ini` files and command line.
//!
//! # Code map
//! Data flows one way: config -> sockets -> wire -> decision -> wire -> socket.
//!
//! | module | owns | I/O |
//! | --- | --- | --- |
//! | [`cli`] | the command line (clap) | none |
//! | [`config`] | `.ini` text -> validated [`config::Config`] | reads the file |
//! | [`netif`] | which host interface serves `pool_start` | lists interfaces |
//! | [`wire`] | DHCP and TFTP bytes <-> typed packets | none |
//! | [`dhcp`] | DHCP decisions (pure); `dhcp::server`, the socket loop | server.rs only |
//! | [`leases`] | MAC -> IP lease table and its journal | the journal file |
//! | [`acl`] | `[mac]`/`[uuid]` rules (pure); `acl::http`, the HTTP check | http.rs only |
//! | [`filters`] | `[filters]` name rewriting (pure) | none |
//! | [`files`] | file roots for every service: confinement, local dir and HTTP, sizes, filters applied | files, HTTP |
//! | [`fetch`] | the one HTTP client configuration (no proxy, no redirects) | none |
//! | [`tftp`] | TFTP listener, one task per transfer, sources | sockets, files, HTTP |
//! | [`httpd`] | `[httpd]` static files over HTTP (`-H`); request parsing pure | TCP, files |
//! | [`logging`] | `[logger]` -> tracing subscriber | the log sink |
//! | [`privdrop`] | `[daemon] user`/`group`: the drop after binding | set*id, the lease directory |
//! | [`shutdown`] | the grace period and the wait every service does on stop | none |
//!
//! [`run`] loads the leases, then starts the enabled services on sockets
//! that `main` has bound (sharing the [`leases::Leases`] handle), and stops
//! them when the shutdown token is cancelled.

pub mod acl;
pub mod cli;
pub mod config;
pub mod dhcp;
pub mod fetch;
pub mod files;
pub mod filters;
pub mod httpd;
pub mod leases;
pub mod logging;
pub mod netif;
pub mod privdrop;
pub mod shutdown;
pub mod tftp;
pub mod wire;

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::netif::ServerNet;

/// How long in-flight work may take to finish once shutdown is asked for.
pub const SHUTDOWN_GRACE: Duration = shutdown::GRACE;

/// The sockets `main` (or a test) bound before anything runs.
#[derive(Debug, Default)]
pub struct Sockets {
    /// The BOOTP/DHCP socket (`[bootp] address:port`), when DHCP runs.
    pub dhcp: Option<UdpSocket>,
    /// The TFTP listening socket (`[tftp] address:port`), when TFTP runs.
    pub tftp: Option<UdpSocket>,
    /// The HTTP listener (`[httpd] address:port`), with `-H`.
    pub http: Option<std::net::TcpListener>,
}

/// Runs every service that has a socket until `shutdown` is cancelled, then
/// gives in-flight work [`SHUTDOWN_GRACE`] to end. `net` is the served
/// network (required when DHCP runs).
pub async fn run(
    config: Arc<Config>,
    net: Option<ServerNet>,
    sockets: Sockets,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    // The lease table exists when this daemon hands out addresses; it is
    // loaded before any service starts, so `check_ip` and `{client_file}`
    // answer from the first request on.
    let mut leases = None;
    if let Some(sock) = sockets.dhcp {
        let net = net.clone().ok_or_else(|| {
            std::io::Error::other(
                "the DHCP service needs the served network (pool_start's interface)",
            )
        })?;
        let bootp = config.bootp.as_ref().ok_or_else(|| {
            std::io::Error::other("no [bootp] section: the DHCP service needs pool_start")
        })?;
        let (table, store) = leases::open(bootp, &config.static_dhcp, net.ip, leases::unix_now())?;
        leases = Some(table.clone());
        let mut server = dhcp::server::DhcpServer::new(config.clone(), net, sock, table, store)?;
        // Option 13 sizes the boot files TFTP serves, through the same
        // file layer; a root TFTP cannot open here (DHCP alone, the files
        // elsewhere) means no sizes, not an error.
        match files::FileRoot::from_config(&config) {
            Ok(files) => server = server.with_files(files),
            Err(e) => tracing::debug!("boot file sizes (option 13) unknown: TFTP {e}"),
        }
        tasks.spawn(server.serve(shutdown.clone()));
    }
    if let Some(listener) = sockets.http {
        let h = config.httpd.as_ref().ok_or_else(|| {
            std::io::Error::other("the HTTP file server needs an [httpd] section")
        })?;
        // As upstream, check_ip applies when this daemon hands out the
        // addresses: then only clients holding a lease may fetch.
        let check = leases.clone().filter(|_| h.check_ip);
        let server = httpd::HttpServer::new(&h.root, listener, check)?;
        tasks.spawn(server.serve(shutdown.clone()));
    }
    if let Some(sock) = sockets.tftp {
        let mut server = tftp::TftpServer::new(config.clone(), sock)?;
        if let Some(l) = leases {
            // `{client_file}` filters: the file the HTTP ACL named for the
            // client holding the requesting address.
            server = server.with_leases(l);
        }
        tasks.spawn(server.serve(shutdown.clone()));
    }
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // One service failing stops the others: a half-running
                // netboot server is worse than a clear exit.
                shutdown.cancel();
                if result.is_ok() {
                    result = Err(e);
                }
            }
            Err(e) => {
                shutdown.cancel();
                if result.is_ok() {
                    result = Err(std::io::Error::other(format!("service task failed: {e}")));
                }
            }
        }
    }
    result
}

/// Binds a TCP listener (SO_REUSEADDR: a restart does not wait for
/// TIME_WAIT; Linux still refuses a second listener on the port).
pub fn bind_tcp(addr: std::net::SocketAddrV4) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&std::net::SocketAddr::V4(addr).into())
        .and_then(|()| s.listen(128))
        .map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
                }
                std::io::ErrorKind::AddrInUse => " (another server holds it)",
                _ => "",
            };
            std::io::Error::new(e.kind(), format!("cannot bind TCP {addr}: {e}{hint}"))
        })?;
    Ok(s.into())
}

/// Ties the DHCP socket to the served interface (SO_BINDTODEVICE), so that
/// its limited broadcasts (255.255.255.255) leave through that interface
/// and not the default route: UEFI firmware hears nothing else. Needs
/// CAP_NET_RAW: `main` calls it before the privilege drop.
pub fn bind_device(sock: &UdpSocket, ifname: &str) -> std::io::Result<()> {
    socket2::SockRef::from(sock).bind_device(Some(ifname.as_bytes()))
}

/// Binds a UDP socket the way the services need it: SO_BROADCAST (DHCP
/// replies), non-blocking (for tokio). Not SO_REUSEADDR: UDP has no
/// TIME_WAIT to skip, and on Linux it would let a second server (another
/// pybootd, a dnsmasq) share the port silently instead of failing here.
/// Errors say which address could not be bound and why.
pub fn bind_udp(addr: std::net::SocketAddrV4) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_broadcast(true)?;
    s.set_nonblocking(true)?;
    s.bind(&std::net::SocketAddr::V4(addr).into())
        .map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
                }
                std::io::ErrorKind::AddrInUse => " (another server, e.g. dnsmasq, holds it)",
                _ => "",
            };
            std::io::Error::new(e.kind(), format!("cannot bind UDP {addr}: {e}{hint}"))
        })?;
    Ok(s.into())
}
