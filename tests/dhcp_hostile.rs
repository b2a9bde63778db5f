//! A hostile neighbour against the DHCP server in-process on 127.0.0.1
//! (issue 12): a burst of DISCOVERs from made-up MACs must not keep a
//! real client from an offer (offers are taken back oldest-first), and a
//! flood of malformed datagrams gives a bounded number of warning lines.
//! Floods are bounded in count and stay on loopback.

mod common;
mod dhcp_support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::Scratch;
use dhcp_support::*;

fn ini(dir: &Scratch) -> String {
    format!(
        "[bootp]\npool_start = 10.9.0.100\npool_count = 20\nlease_file = {}/leases.jsonl\n\
         [bootfile]\ndefault = pxelinux.0\n",
        dir.path.display()
    )
}

/// A made-up MAC per attacker packet (locally administered, unicast).
fn random_mac(n: u32) -> [u8; 6] {
    let [a, b, c, d] = n.wrapping_mul(0x9e37_79b9).to_be_bytes();
    [0x02, a, b, c, d, 0x5a]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_burst_from_random_macs_does_not_starve_a_real_client() {
    let dir = Scratch::new("dhcpstarve");
    let srv = Loopback::start(config(&ini(&dir)));
    let attacker = Client::new(srv.addr).await;
    // 25 DISCOVERs (more than the pool of 20), each answered before the
    // next, so that every offer is held when the real client comes.
    let mut offered = 0;
    for n in 0..25u32 {
        let xid = 0x4000_0000 + n;
        if attacker
            .ask(&ipxe_discover(random_mac(n), xid))
            .await
            .is_some()
        {
            offered += 1;
        }
    }
    assert!(
        offered >= 20,
        "the burst filled the pool ({offered} offers)"
    );
    // A real client: an offer at once (before: silence for 60 s), and the
    // whole exchange completes.
    let c = Client::new(srv.addr).await;
    let disc = ipxe_discover(mac(1), 0x1111);
    let offer = c
        .recv_after_send(&disc, Duration::from_secs(3))
        .await
        .expect("an OFFER while the burst's offers are held");
    assert_eq!(msg_type(&offer), 2);
    // Another burst between its OFFER and its REQUEST takes the offer
    // back; its REQUEST still wins (an offer nobody requested yields).
    for n in 100..125u32 {
        attacker
            .ask(&ipxe_discover(random_mac(n), 0x4000_0000 + n))
            .await;
    }
    let ack = c.ask(&selecting(&disc, offer.yiaddr, ip(1))).await;
    assert_eq!(ack.map(|a| msg_type(&a)), Some(5), "ACK");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_macs_bind_nothing_by_init_reboot_renewing_or_bootp() {
    let dir = Scratch::new("dhcpbind");
    let text = ini(&dir).replace(
        "pool_count = 20\n",
        "pool_count = 20\nallow_simple_dhcp = yes\n",
    );
    let srv = Loopback::start(config(&text));
    let c = Client::new(srv.addr).await;
    // 3 x 200 requests from made-up MACs that never DISCOVERed.
    for n in 0..200u32 {
        let pxe = ipxe_discover(random_mac(n), 0x5000_0000 + n);
        c.send(&init_reboot(&pxe, ip(100 + (n % 20) as u8))).await;
        let plain = plain_discover(random_mac(n + 1000), 0x6000_0000 + n);
        c.send(&renewing(&plain, ip(100 + (n % 20) as u8))).await;
        let mut bootp = plain_discover(random_mac(n + 2000), 0x7000_0000 + n);
        bootp.options.clear();
        c.send(&bootp).await;
        if n % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    // The real client on a socket of its own: the flood's 200 NAKs may
    // overflow the flooding socket's receive buffer and drop its OFFER.
    let real = Client::new(srv.addr).await;
    let offer = real.ask(&ipxe_discover(mac(1), 0x1111)).await;
    assert!(offer.is_some(), "a real client is still offered");
    // Whatever the receive loops still hold is decided within this wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let now = pybootd::leases::unix_now();
    let bound = srv
        .leases
        .with(|t| (100..120).filter(|&i| t.holds(ip(i), now)).count());
    assert_eq!(bound, 0, "no address bound for a client never offered one");
    srv.shutdown().await;
}

/// Every log line of this test binary, as text.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let writer = move || Sink(sink.clone());
        tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .init();
        buf
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_flood_gives_a_bounded_number_of_warnings() {
    let log = captured();
    let dir = Scratch::new("dhcpjunk");
    let srv = Loopback::start(config(&ini(&dir)));
    let c = Client::new(srv.addr).await;
    // 10,000 malformed datagrams (too short, bad op), paced in batches so
    // that most reach the server rather than an overflowing socket buffer.
    for batch in 0..100u32 {
        for i in 0..100u32 {
            let junk = [(batch + i) as u8 | 0x10, 2, 3];
            c.sock.send_to(&junk, srv.addr).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The server still answers, so the flood has been read.
    let offer = c.ask(&ipxe_discover(mac(1), 0x2222)).await;
    assert!(offer.is_some(), "served after the flood");
    let text = String::from_utf8_lossy(&log.lock().unwrap()).to_string();
    let lines = text.lines().filter(|l| l.contains("dropped:")).count();
    assert!(
        lines >= 1,
        "the first malformed datagram is reported:\n{text}"
    );
    assert!(lines <= 20, "{lines} warning lines for 10,000 datagrams");
    srv.shutdown().await;
}
