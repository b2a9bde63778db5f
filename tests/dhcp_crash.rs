//! Lease durability: the real binary on 127.0.0.1 is killed with SIGKILL
//! in the middle of a burst of DORAs from thousands of MACs; after a
//! restart every lease whose ACK reached a client is still there, bound to
//! the same MAC, and no address belongs to two MACs. (DORA/s with the
//! journal on is measured by `benches/run.sh`, section dhcp, not here.)

mod common;
mod dhcp_support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{pybootd_bin, Daemon, Scratch};
use dhcp_support::*;
use pybootd::leases::{LeaseState, Record};
use pybootd::wire::dhcp::Packet;

/// Starts the daemon on a port the kernel picks; returns it with its
/// address once it answers.
fn start(dir: &Scratch, tag: &str) -> (Daemon, SocketAddr) {
    let ini = dir.write(
        "pybootd.ini",
        format!(
            "[logger]\nlevel = info\n[bootp]\naddress = 127.0.0.1\nport = 0\n\
             pool_start = 127.1.0.1\npool_count = 200000\nallow_simple_dhcp = yes\n\
             lease_file = {}/leases.jsonl\n",
            dir.path.display()
        )
        .as_bytes(),
    );
    let mut cmd = Command::new(pybootd_bin());
    cmd.args(["-p", "-c"]).arg(ini);
    let mut d = Daemon::spawn(cmd, dir.path.join(format!("daemon-{tag}.log")));
    let server = d.bound("BOOTP/DHCP");
    // Ready when a probe DISCOVER is offered (an offer is not journaled).
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 2048];
    loop {
        assert!(
            Instant::now() < end,
            "daemon not answering:\n{}",
            d.log_text()
        );
        if let Ok(Some(st)) = d.child.try_wait() {
            panic!("daemon exited ({st}):\n{}", d.log_text());
        }
        let _ = probe.send_to(&bytes(&plain_discover(mac(0xffff_fff0), 1)), server);
        if probe.recv_from(&mut buf).is_ok() {
            return (d, server);
        }
    }
}

fn bytes(p: &Packet) -> Vec<u8> {
    let mut b = Vec::new();
    p.emit(&mut b);
    b
}

/// Runs DORAs for MACs `0..n` with at most `window` in flight; calls
/// `on_ack(count)` after each ACK (it may kill the server). Stops after
/// `idle` without a packet. Returns the ACKed (mac index, ip) and the time.
fn burst(
    server: SocketAddr,
    n: u32,
    window: usize,
    idle: Duration,
    mut on_ack: impl FnMut(usize),
) -> (HashMap<u32, Ipv4Addr>, Duration) {
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
    let _ = socket2::SockRef::from(&*sock).set_recv_buffer_size(8 << 20);
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let sender = {
        let (sock, in_flight, stop) = (sock.clone(), in_flight.clone(), stop.clone());
        std::thread::spawn(move || {
            for i in 0..n {
                while in_flight.load(Ordering::Relaxed) >= window {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::yield_now();
                }
                in_flight.fetch_add(1, Ordering::Relaxed);
                let _ = sock.send_to(&bytes(&plain_discover(mac(i), i)), server);
            }
        })
    };
    let mut acked = HashMap::new();
    let mut buf = [0u8; 2048];
    let mut last = Instant::now();
    while last.elapsed() < idle {
        let Ok((len, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        last = Instant::now();
        let Ok(p) = Packet::parse(&buf[..len]) else {
            continue;
        };
        match msg_type(&p) {
            2 => {
                let d = plain_discover(mac(p.xid), p.xid);
                let r = selecting(&d, p.yiaddr, Ipv4Addr::LOCALHOST);
                let _ = sock.send_to(&bytes(&r), server);
            }
            5 => {
                if acked.insert(p.xid, p.yiaddr).is_none() {
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    on_ack(acked.len());
                }
                if acked.len() == n as usize {
                    break;
                }
            }
            _ => {}
        }
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    (acked, took)
}

#[test]
fn kill_9_during_a_dora_burst_loses_no_acked_lease() {
    let dir = Scratch::new("dhcpcrash");
    let (mut d, server) = start(&dir, "1");
    let mut killed = false;
    let (acked, _) = burst(server, 20_000, 256, Duration::from_secs(3), |count| {
        if count == 3000 && !killed {
            // SIGKILL: no chance to flush anything.
            d.child.kill().unwrap();
            killed = true;
        }
    });
    let _ = d.child.wait();
    assert!(
        killed,
        "the server was killed mid-burst ({} ACKs)",
        acked.len()
    );
    assert!(
        acked.len() >= 3000 && acked.len() < 20_000,
        "{} ACKs",
        acked.len()
    );

    // A record torn by a crash mid-write, whatever the kill left: the
    // restart must skip it, keep everything before it, and compact it away.
    let journal = dir.path.join("leases.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"lease\":{\"mac\":\"02:00:").unwrap();
    drop(f);
    let (_d2, server) = start(&dir, "2");
    // The journal, compacted by the restart, holds every ACKed lease and
    // nothing torn.
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut by_mac = HashMap::new();
    let mut by_ip: HashMap<Ipv4Addr, [u8; 6]> = HashMap::new();
    for line in text.lines() {
        let rec = Record::from_json(line);
        assert!(rec.is_some(), "not a record after compaction: {line:?}");
        if let Some(Record::Lease(l)) = rec {
            assert_eq!(l.state, LeaseState::Bound);
            if let Some(other) = by_ip.insert(l.ip, l.mac.0) {
                panic!("{} held by {:?} and {}", l.ip, other, l.mac);
            }
            by_mac.insert(l.mac.0, l.ip);
        }
    }
    for (i, ip) in &acked {
        assert_eq!(
            by_mac.get(&mac(*i)),
            Some(ip),
            "ACKed lease of MAC {i} lost"
        );
    }
    // And the live server honours them: ACKed MACs get their own address
    // back, a new MAC gets none of them.
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 2048];
    for (i, ip) in acked.iter().take(50) {
        let r = init_reboot(&plain_discover(mac(*i), *i), *ip);
        c.send_to(&bytes(&r), server).unwrap();
        let (n, _) = c.recv_from(&mut buf).expect("an answer after restart");
        let p = Packet::parse(&buf[..n]).unwrap();
        assert_eq!((msg_type(&p), p.yiaddr), (5, *ip), "MAC {i}");
    }
    c.send_to(&bytes(&plain_discover(mac(999_999), 999_999)), server)
        .unwrap();
    let (n, _) = c.recv_from(&mut buf).unwrap();
    let o = Packet::parse(&buf[..n]).unwrap();
    assert!(!by_ip.contains_key(&o.yiaddr), "{} offered twice", o.yiaddr);
}
