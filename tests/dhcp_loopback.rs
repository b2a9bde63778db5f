//! The DHCP server in-process on 127.0.0.1 (a non-default port: replies go
//! unicast to the sender), over real sockets: DORA with PXE options and
//! option 13 from a local root, the journal written before the ACK, leases
//! kept across a restart, malformed datagrams dropped while others are
//! served; through the `LeaseStore` trait, an ACK waits for its store
//! (while other clients are offered) and a failing store sends none.

mod common;
mod dhcp_support;

use std::sync::{mpsc, Mutex};
use std::time::Duration;

use common::Scratch;
use dhcp_support::*;
use pybootd::leases::{LeaseStore, LeaseTable, Leases, Loaded, Record};
use pybootd::wire::dhcp::opt;

fn ini(dir: &Scratch, extra: &str) -> String {
    format!(
        "[bootp]\npool_start = 10.9.0.100\npool_count = 20\nlease_file = {}/leases.jsonl\n{extra}\
         [tftp]\nroot = {}/root\n[bootfile]\ndefault = pxelinux.0\n00007 = /efi/grubnetx64.efi\n",
        dir.path.display(),
        dir.path.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pxe_dora_on_loopback_with_journal_and_restart() {
    let dir = Scratch::new("dhcplo");
    dir.write("root/pxelinux.0", &vec![7u8; 1025]);
    dir.write("root/efi/grubnetx64.efi", &vec![7u8; 512 * 9]);
    let cfg = config(&ini(&dir, ""));
    let srv = Loopback::start(cfg.clone());
    let c = Client::new(srv.addr).await;

    let disc = ipxe_discover(mac(1), 0x1111);
    let offer = c.ask(&disc).await.expect("OFFER");
    assert_eq!(msg_type(&offer), 2);
    assert_eq!(offer.yiaddr, ip(100));
    assert_eq!(offer.file, b"pxelinux.0");
    assert_eq!(
        offer.option(opt::BOOT_FILE_SIZE),
        Some(&3u16.to_be_bytes()[..]),
        "1025 bytes = 3 blocks"
    );
    assert_eq!(offer.option(opt::CLIENT_UUID), Some(&UUID97[..]));
    let ack = c
        .ask(&selecting(&disc, offer.yiaddr, ip(1)))
        .await
        .expect("ACK");
    assert_eq!(msg_type(&ack), 5);
    assert_eq!(ack.yiaddr, ip(100));
    // The lease is on disk once the ACK is out.
    let journal = std::fs::read_to_string(dir.path.join("leases.jsonl")).unwrap();
    assert!(
        journal.contains("\"mac\":\"52-54-00-00-00-01\",\"ip\":\"10.9.0.100\""),
        "{journal}"
    );

    // EDK2: arch 7 file with a leading '/', size from under the root.
    let e = edk2_discover(mac(2), 0x2222);
    let o = c.ask(&e).await.expect("OFFER");
    assert_eq!(o.file, b"/efi/grubnetx64.efi");
    assert_eq!(o.option(opt::BOOT_FILE_SIZE), Some(&9u16.to_be_bytes()[..]));
    assert_eq!(o.yiaddr, ip(101));

    // Garbage is dropped and the next client is still served.
    c.sock.send_to(&[1, 2, 3], srv.addr).await.unwrap();
    let mut bad = vec![0u8; 300];
    bad[0] = 1;
    bad[2] = 6;
    c.sock.send_to(&bad, srv.addr).await.unwrap();
    assert!(c.ask(&ipxe_discover(mac(3), 0x3333)).await.is_some());

    // A plain client gets nothing without allow_simple_dhcp.
    c.send(&plain_discover(mac(9), 0x9999)).await;
    assert!(c.recv(0x9999, Duration::from_millis(400)).await.is_none());

    srv.shutdown().await;
    // Restart: the lease of MAC 1 is still its own.
    let srv = Loopback::start(cfg);
    let c = Client::new(srv.addr).await;
    let other = c.ask(&ipxe_discover(mac(7), 0x7777)).await.unwrap();
    assert_ne!(other.yiaddr, ip(100), "100 stays MAC 1's");
    let again = c.ask(&init_reboot(&disc, ip(100))).await.unwrap();
    assert_eq!(msg_type(&again), 5);
    assert_eq!(again.yiaddr, ip(100));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_dhcp_client_full_cycle_with_notices() {
    let dir = Scratch::new("dhcplo");
    let notify = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let extra = format!(
        "allow_simple_dhcp = yes\nnotify = {}\n",
        notify.local_addr().unwrap()
    );
    let srv = Loopback::start(config(&ini(&dir, &extra)));
    let c = Client::new(srv.addr).await;
    let d = plain_discover(mac(5), 5);
    let o = c.ask(&d).await.unwrap();
    assert_eq!(o.option(opt::VENDOR_CLASS), None);
    let a = c.ask(&selecting(&d, o.yiaddr, ip(1))).await.unwrap();
    assert_eq!(msg_type(&a), 5);
    let mut buf = [0u8; 200];
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"LEASE,52-54-00-00-00-05,10.9.0.100");
    // Renew (unicast in real life; here to the sender).
    let r = c.ask(&renewing(&d, o.yiaddr)).await.unwrap();
    assert_eq!(msg_type(&r), 5);
    let _ = notify.recv(&mut buf).unwrap();
    // Release: no reply, a notice, and the journal says released.
    let mut rel = with_type(&d, 7);
    rel.ciaddr = o.yiaddr;
    // A RELEASE must come from the address it releases or through a
    // relay (issue 12); this client sends from 127.0.0.1, so as a relay.
    rel.giaddr = std::net::Ipv4Addr::LOCALHOST;
    c.send(&rel).await;
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"RELEASE,52-54-00-00-00-05,10.9.0.100");
    srv.shutdown().await;
    let journal = std::fs::read_to_string(dir.path.join("leases.jsonl")).unwrap();
    assert!(
        journal
            .lines()
            .last()
            .unwrap()
            .contains("\"state\":\"released\""),
        "{journal}"
    );
}

const FILE_SERVER: &str = r#"
import http.server, socketserver, sys
class H(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=sys.argv[1], **k)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn option_13_from_an_http_root_and_a_dead_root_stalls_nobody() {
    use std::io::BufRead;
    common::need_program("python3");
    let dir = Scratch::new("dhcplo");
    dir.write("www/boot/pxelinux.0", &vec![1u8; 5000]);
    let script = dir.write("files.py", FILE_SERVER.as_bytes());
    let mut py = std::process::Command::new("python3")
        .arg(&script)
        .arg(dir.path.join("www"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(py.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().unwrap();
    let ini = |root: String| {
        format!(
            "[bootp]\npool_start = 10.9.0.100\nlease_file = none\n[tftp]\nroot = {root}\n\
             [bootfile]\ndefault = pxelinux.0\n"
        )
    };
    let srv = Loopback::start(config(&ini(format!("http://127.0.0.1:{port}/boot"))));
    let c = Client::new(srv.addr).await;
    // The size arrives from a HEAD off the request path: ask until it shows.
    let mut blocks = None;
    for xid in 0..50 {
        let o = c.ask(&ipxe_discover(mac(1), xid)).await.expect("OFFER");
        if let Some(v) = o.option(opt::BOOT_FILE_SIZE) {
            blocks = Some(u16::from_be_bytes([v[0], v[1]]));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = py.kill();
    let _ = py.wait();
    assert_eq!(
        blocks,
        Some(10),
        "5000 bytes = 10 blocks, from Content-Length"
    );
    srv.shutdown().await;

    // A root whose server accepts and never answers: offers still go out
    // at once, without option 13.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let root = format!("http://{}/boot", dead.local_addr().unwrap());
    let srv = Loopback::start(config(&ini(root)));
    let c = Client::new(srv.addr).await;
    let o = c
        .recv_after_send(&ipxe_discover(mac(2), 77), Duration::from_secs(1))
        .await
        .expect("answered while the size lookup hangs");
    assert_eq!(o.option(opt::BOOT_FILE_SIZE), None);
    srv.shutdown().await;
}

/// A store whose `append` waits for a go from the test, then fails or
/// succeeds as told; it reports each batch it was given.
struct GatedStore {
    go: Mutex<mpsc::Receiver<bool>>,
    seen: mpsc::Sender<Vec<Record>>,
}

impl LeaseStore for GatedStore {
    fn describe(&self) -> String {
        "gated test store".into()
    }
    fn load(&mut self, _: &mut LeaseTable, _: u64) -> std::io::Result<Loaded> {
        Ok(Loaded::default())
    }
    fn append(&mut self, records: &[Record]) -> std::io::Result<()> {
        let _ = self.seen.send(records.to_vec());
        match self.go.lock().unwrap().recv() {
            Ok(true) => Ok(()),
            _ => Err(std::io::Error::other("disk on fire")),
        }
    }
    fn wants_compaction(&self) -> bool {
        false
    }
    fn compact(&mut self, _: &[Record]) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_waits_for_its_store_and_a_failing_store_sends_none() {
    let cfg = config(
        "[bootp]\npool_start = 10.9.0.100\npool_count = 20\nallow_simple_dhcp = yes\n\
         lease_file = none\n",
    );
    let b = cfg.bootp.clone().unwrap();
    let table = LeaseTable::new(b.pool_start, b.pool_count, &[], vec![net().ip]);
    let leases = Leases::new(table);
    let (go, go_rx) = mpsc::channel();
    let (seen_tx, seen) = mpsc::channel();
    let store = GatedStore {
        go: Mutex::new(go_rx),
        seen: seen_tx,
    };
    let srv = Loopback::start_with(cfg, leases.clone(), Some(Box::new(store)));
    let c = Client::new(srv.addr).await;
    let a = plain_discover(mac(1), 0x51);
    assert_eq!(c.ask(&a).await.expect("OFFER").yiaddr, ip(100));
    c.send(&selecting(&a, ip(100), ip(1))).await;
    // The store has the lease, and has not said it is durable: no ACK,
    // while another client is still offered (the loop does not wait).
    let batch = tokio::task::spawn_blocking(move || {
        let b = seen.recv_timeout(Duration::from_secs(3));
        (b, seen)
    });
    let (batch, seen) = batch.await.unwrap();
    assert!(matches!(&batch.unwrap()[..], [Record::Lease(l)] if l.ip == ip(100)));
    assert!(c.recv(0x51, Duration::from_millis(300)).await.is_none());
    let other = plain_discover(mac(2), 0x52);
    assert_eq!(c.ask(&other).await.expect("OFFER").yiaddr, ip(101));
    go.send(true).unwrap();
    let ack = c
        .recv(0x51, Duration::from_secs(3))
        .await
        .expect("ACK once durable");
    assert_eq!(msg_type(&ack), 5);
    assert!(leases.holds(ip(100), pybootd::leases::unix_now()));
    // A store that fails: the ACK is withheld.
    c.send(&selecting(&other, ip(101), ip(1))).await;
    let seen = tokio::task::spawn_blocking(move || seen.recv_timeout(Duration::from_secs(3)));
    assert!(seen.await.unwrap().is_ok(), "the store was asked");
    go.send(false).unwrap();
    assert!(c.recv(0x52, Duration::from_millis(500)).await.is_none());
    drop(go);
    srv.shutdown().await;
}
