//! DHCP test support: captured and rebuilt client packets, packet
//! builders, configs, and an in-process server on 127.0.0.1.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pybootd::config::Config;
use pybootd::netif::ServerNet;
use pybootd::wire::dhcp::{opt, Packet};
use tokio_util::sync::CancellationToken;

pub const UDHCPC_DISCOVER: &str = include_str!("../fixtures/dhcp/udhcpc_1.35_discover.hex");
pub const DHCLIENT_DISCOVER: &str = include_str!("../fixtures/dhcp/dhclient_4.4.3_discover.hex");

pub fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// QEMU's `-uuid 8e2e0000-1234-4abc-8def-0000e2e00001` in SMBIOS order,
/// as option 97 carries it (type 0 first).
pub const UUID97: [u8; 17] = [
    0, 0x00, 0x00, 0x2e, 0x8e, 0x34, 0x12, 0xbc, 0x4a, 0x8d, 0xef, 0x00, 0x00, 0xe2, 0xe0, 0x00,
    0x01,
];

fn header(mac: [u8; 6], xid: u32, flags: u16) -> Packet {
    let mut p = Packet {
        xid,
        flags,
        ..Packet::default()
    };
    p.chaddr[..6].copy_from_slice(&mac);
    p
}

/// iPXE (BIOS) DISCOVER, options as FIRMWARE.md decodes them, in wire order.
pub fn ipxe_discover(mac: [u8; 6], xid: u32) -> Packet {
    let mut p = header(mac, xid, 0);
    p.set_option(53, [1]);
    p.set_option(57, 1472u16.to_be_bytes());
    p.set_option(93, [0, 0]);
    p.set_option(94, [1, 2, 1]);
    p.set_option(60, &b"PXEClient:Arch:00000:UNDI:002001"[..]);
    p.set_option(77, &b"iPXE"[..]);
    p.set_option(
        55,
        [
            1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133, 134,
            135, 175, 203,
        ],
    );
    p.set_option(
        175,
        [
            177, 5, 1, 0x80, 0x86, 0x10, 0x0e, 235, 3, 1, 0, 0, 23, 1, 1, 34, 1, 1, 19, 1, 1, 17,
            1, 1, 39, 1, 1, 25, 1, 1, 41, 1, 1, 16, 1, 2, 33, 1, 1, 21, 1, 1, 24, 1, 1, 18, 1, 1,
        ],
    );
    let mut cid = vec![1u8];
    cid.extend_from_slice(&mac);
    p.set_option(61, cid);
    p.set_option(97, UUID97);
    p
}

/// EDK2 (OVMF) UEFI x64 DISCOVER: broadcast flag, arch 7, no 61/77.
pub fn edk2_discover(mac: [u8; 6], xid: u32) -> Packet {
    let mut p = header(mac, xid, 0x8000);
    p.set_option(53, [1]);
    p.set_option(57, 1472u16.to_be_bytes());
    p.set_option(
        55,
        [
            1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59,
            60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135,
        ],
    );
    p.set_option(97, UUID97);
    p.set_option(94, [1, 3, 0]);
    p.set_option(93, [0, 7]);
    p.set_option(60, &b"PXEClient:Arch:00007:UNDI:003000"[..]);
    p
}

/// A plain DHCP client's DISCOVER (as busybox udhcpc in an initramfs).
pub fn plain_discover(mac: [u8; 6], xid: u32) -> Packet {
    let mut p = header(mac, xid, 0);
    p.set_option(53, [1]);
    p.set_option(57, 576u16.to_be_bytes());
    p.set_option(55, [1, 3, 6, 12, 15, 28, 42]);
    p.set_option(60, &b"udhcp 1.35.0"[..]);
    p
}

/// Turns a DISCOVER into the SELECTING REQUEST for `ip` from `server`.
pub fn selecting(discover: &Packet, ip: Ipv4Addr, server: Ipv4Addr) -> Packet {
    let mut p = discover.clone();
    p.set_option(53, [3]);
    p.set_option(54, server.octets());
    p.set_option(50, ip.octets());
    p
}

/// INIT-REBOOT: no server id, requested address only.
pub fn init_reboot(discover: &Packet, ip: Ipv4Addr) -> Packet {
    let mut p = discover.clone();
    p.set_option(53, [3]);
    p.remove_option(54);
    p.set_option(50, ip.octets());
    p
}

/// RENEWING: ciaddr set, no 50/54.
pub fn renewing(discover: &Packet, ip: Ipv4Addr) -> Packet {
    let mut p = discover.clone();
    p.set_option(53, [3]);
    p.remove_option(54);
    p.remove_option(50);
    p.ciaddr = ip;
    p
}

pub fn with_type(base: &Packet, t: u8) -> Packet {
    let mut p = base.clone();
    p.set_option(53, [t]);
    p
}

pub fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x52, 0x54, b[0], b[1], b[2], b[3]]
}

pub fn config(ini: &str) -> Arc<Config> {
    Arc::new(Config::parse(ini, Path::new("test.ini")).unwrap_or_else(|e| panic!("{e}")))
}

/// The served network of the pure and loopback tests: 10.9.0.1/24.
pub fn net() -> ServerNet {
    ServerNet {
        ifname: "lo".into(),
        ifindex: 1,
        ip: Ipv4Addr::new(10, 9, 0, 1),
        netmask: Ipv4Addr::new(255, 255, 255, 0),
    }
}

pub fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 9, 0, last)
}

/// A DHCP server running in this process on 127.0.0.1:<random> (replies
/// unicast to the sender). Stops when dropped.
pub struct Loopback {
    pub addr: SocketAddr,
    /// The lease table the server decides over.
    pub leases: pybootd::leases::Leases,
    pub stop: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Loopback {
    /// A server over the store `lease_file` names (as `lib::run` does).
    pub fn start(config: Arc<Config>) -> Loopback {
        let bootp = config.bootp.as_ref().expect("a [bootp] section");
        let now = pybootd::leases::unix_now();
        let (leases, store) =
            pybootd::leases::open(bootp, &config.static_dhcp, net().ip, now).unwrap();
        Loopback::start_with(config, leases, store)
    }

    /// A server over the given leases and store (a test's own store).
    pub fn start_with(
        config: Arc<Config>,
        leases: pybootd::leases::Leases,
        store: Option<Box<dyn pybootd::leases::LeaseStore>>,
    ) -> Loopback {
        let sock = pybootd::bind_udp(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = sock.local_addr().unwrap();
        let mut server = pybootd::dhcp::server::DhcpServer::new(
            config.clone(),
            net(),
            sock,
            leases.clone(),
            store,
        )
        .unwrap();
        // Option 13 from the TFTP root, as `lib::run` wires it.
        if let Ok(files) = pybootd::files::FileRoot::from_config(&config) {
            server = server.with_files(files);
        }
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.serve(stop.clone()));
        Loopback {
            addr,
            leases,
            stop,
            task: Some(task),
        }
    }

    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A test client socket.
pub struct Client {
    pub sock: tokio::net::UdpSocket,
    pub server: SocketAddr,
}

impl Client {
    pub async fn new(server: SocketAddr) -> Client {
        Client {
            sock: tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
        }
    }

    pub async fn send(&self, p: &Packet) {
        let mut b = Vec::new();
        p.emit(&mut b);
        self.sock.send_to(&b, self.server).await.unwrap();
    }

    /// The next reply with this xid, or `None` within `wait`.
    pub async fn recv(&self, xid: u32, wait: Duration) -> Option<Packet> {
        let end = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 2048];
        loop {
            let left = end.checked_duration_since(tokio::time::Instant::now())?;
            let (n, _) = tokio::time::timeout(left, self.sock.recv_from(&mut buf))
                .await
                .ok()?
                .unwrap();
            let p = Packet::parse(&buf[..n]).expect("the server's reply parses");
            if p.xid == xid {
                return Some(p);
            }
        }
    }

    pub async fn recv_after_send(&self, p: &Packet, wait: Duration) -> Option<Packet> {
        self.send(p).await;
        self.recv(p.xid, wait).await
    }

    pub async fn ask(&self, p: &Packet) -> Option<Packet> {
        self.send(p).await;
        self.recv(p.xid, Duration::from_secs(3)).await
    }
}

pub fn msg_type(p: &Packet) -> u8 {
    p.option(opt::MESSAGE_TYPE).map_or(0, |v| v[0])
}

/// An engine over a fresh in-memory lease table, as the server builds it
/// (the server's own address excluded from the pool).
pub fn engine_for(config: Arc<Config>, dns: Vec<Ipv4Addr>) -> pybootd::dhcp::Engine {
    use pybootd::leases::{LeaseTable, Leases};
    let b = config.bootp.clone().expect("a [bootp] section");
    let table = LeaseTable::new(
        b.pool_start,
        b.pool_count,
        &config.static_dhcp,
        vec![net().ip],
    );
    pybootd::dhcp::Engine::new(config, b, &net(), dns, Leases::new(table)).unwrap()
}
