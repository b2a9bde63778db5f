//! Issue 12, TFTP under a hostile neighbour (all on 127.0.0.0/8, bounded in
//! count and time): a flood of never-answered RRQs asking `timeout=255`
//! does not lock a normal client out; a busy server says so at once; a
//! forged request (its source port unreachable) draws no DATA after the
//! ICMP; an unproven peer gets few resends; client names are escaped in
//! the log and malformed packets do not flood it.

mod common;
mod tftp_support;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{pybootd_bin, Daemon, Scratch};
use pybootd::wire::tftp::{Mode, Packet};
use tftp_support::*;

fn rrq(name: &str, opts: &[(&str, &str)]) -> Vec<u8> {
    request(false, name, Mode::Octet, opts)
}

/// `count` RRQs for `name` asking `timeout=255`, from a few sockets on
/// 127.0.0.1 that stay open (no ICMP) and never ACK. Each request differs
/// (its blksize) so none is a mere repeat. The sockets are returned: the
/// flood's "clients" stay alive for the test.
fn flood(server: SocketAddr, name: &str, count: usize) -> Vec<UdpSocket> {
    let socks: Vec<UdpSocket> = (0..11)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for i in 0..count {
        let blk = (512 + i).to_string();
        let pkt = rrq(name, &[("timeout", "255"), ("blksize", &blk)]);
        socks[i % socks.len()].send_to(&pkt, server).unwrap();
        if i % 100 == 99 {
            // Bounded pace: the listener's socket buffer is not the test.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    socks
}

/// Fetches `name` from `bind`, again and again, until it comes or `within`
/// passes: the time it took, or `None`.
fn served_within(server: SocketAddr, bind: &str, name: &str, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if get_from(server, bind, name, Mode::Octet, &[], &Hooks::default()).is_ok() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn a_flood_of_timeout_255_requests_does_not_lock_out_another_client() {
    let root = Scratch::new("hostile-flood");
    let content = bytes(3000, 7);
    root.write("f", &content);
    // Defaults: max_transfers 512, timeout 2, retries 5.
    let srv = Server::start(&root.path, "");
    let _hostile = flood(srv.addr, "f", 1100);
    let took = served_within(srv.addr, "127.0.0.2:0", "f", Duration::from_secs(10));
    eprintln!("normal client after the flood: served in {took:?} (None: not within 10 s)");
    assert!(took.is_some(), "the normal client was locked out");
    let got = get_from(
        srv.addr,
        "127.0.0.2:0",
        "f",
        Mode::Octet,
        &[],
        &Hooks::default(),
    );
    assert_eq!(sha(&got.unwrap().data), sha(&content));
}

#[test]
fn all_slots_taken_answers_server_busy_at_once() {
    let root = Scratch::new("hostile-busy");
    root.write("f", &bytes(3000, 8));
    let srv = Server::start(&root.path, "max_transfers = 2\n");
    let _hostile = flood(srv.addr, "f", 2);
    std::thread::sleep(Duration::from_millis(200));
    let sock = UdpSocket::bind("127.0.0.3:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    sock.send_to(&rrq("f", &[]), srv.addr).unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = sock
        .recv_from(&mut buf)
        .expect("no answer within 1 s: the request waits in a queue");
    match Packet::parse(&buf[..n]) {
        Ok(Packet::Error { code: 0, message }) => assert_eq!(message, "Server busy"),
        other => panic!("expected ERROR 0 Server busy, got {other:?}"),
    }
}

#[test]
fn one_source_gets_at_most_max_per_client_transfers() {
    let root = Scratch::new("hostile-per-ip");
    root.write("f", &bytes(3000, 11));
    // Plenty of global slots: only the per-source share (default 8) limits.
    let srv = Server::start(&root.path, "");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..20 {
        let blk = (600 + i).to_string();
        sock.send_to(&rrq("f", &[("blksize", &blk)]), srv.addr)
            .unwrap();
    }
    // Before the first resend (2 s): one answer per request.
    let (mut started, mut busy) = (0, 0);
    let mut buf = [0u8; 2048];
    sock.set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        match Packet::parse(&buf[..n]) {
            Ok(Packet::Oack { .. }) => started += 1,
            Ok(Packet::Error { code: 0, .. }) => busy += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((started, busy), (8, 12));
}

/// Counts the packets `sock` receives within `window`.
fn count_packets(sock: &UdpSocket, window: Duration) -> (usize, usize) {
    let end = Instant::now() + window;
    let (mut n, mut bytes) = (0, 0);
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok((len, _)) = sock.recv_from(&mut buf) {
            n += 1;
            bytes += len + 28; // IPv4 + UDP headers: what reaches the victim
        }
    }
    (n, bytes)
}

#[test]
fn an_unproven_peer_gets_at_most_two_resends() {
    let root = Scratch::new("hostile-resend");
    root.write("f", &bytes(3000, 9));
    let srv = Server::start(&root.path, "timeout = 0.3\nretries = 5\n");
    for opts in [&[][..], &[("tsize", "0"), ("windowsize", "16")][..]] {
        // Open, silent: the server hears no ICMP, only silence.
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.send_to(&rrq("f", opts), srv.addr).unwrap();
        let (n, _) = count_packets(&sock, Duration::from_secs(3));
        // The first packet (DATA 1, or the OACK alone: no window before
        // the first ACK) and 2 resends; the configured 5 wait for an ACK.
        assert_eq!(n, 3, "options {opts:?}: {n} packets to a silent peer");
    }
}

#[test]
fn a_forged_request_stops_at_the_icmp_port_unreachable() {
    let root = Scratch::new("hostile-reflect");
    root.write("f", &bytes(20_000, 10));
    let srv = Server::start(&root.path, "timeout = 1\nretries = 5\n");
    // The "victim": a port that sent the request and is closed at once, so
    // the first DATA draws an ICMP port unreachable on loopback.
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = a.local_addr().unwrap();
    let request = rrq("f", &[]);
    a.send_to(&request, srv.addr).unwrap();
    drop(a);
    std::thread::sleep(Duration::from_millis(500));
    // Listening again on the victim's port: what else comes?
    let victim = UdpSocket::bind(port).unwrap();
    let (n, sent) = count_packets(&victim, Duration::from_secs(3));
    let first = 512 + 4 + 28;
    eprintln!(
        "reflection: {} DATA ({} bytes) for a {}-byte request: {:.0}x",
        n + 1,
        sent + first,
        request.len() + 28,
        (sent + first) as f64 / (request.len() + 28) as f64
    );
    assert_eq!(n, 0, "{n} DATA packets after the ICMP port unreachable");
}

fn daemon(work: &Scratch, root: &Scratch) -> (Daemon, SocketAddr) {
    let ini = work.write(
        "pybootd.ini",
        format!(
            "[logger]\nlevel = info\n[tftp]\naddress = 127.0.0.1\nport = 0\nroot = {}\n\
             timeout = 0.3\nretries = 1\n",
            root.path.display()
        )
        .as_bytes(),
    );
    let mut cmd = Command::new(pybootd_bin());
    cmd.args(["-t", "-c"]).arg(&ini);
    let mut d = Daemon::spawn(cmd, work.path.join("daemon.log"));
    let addr = d.bound("TFTP");
    (d, addr)
}

#[test]
fn a_file_name_with_a_newline_is_escaped_in_the_log() {
    let work = Scratch::new("hostile-log");
    let root = Scratch::new("hostile-log-root");
    root.write("f", b"x");
    let (mut d, addr) = daemon(&work, &root);
    let forged = "f\nFORGED INFO pybootd: lease granted\x1b[31m";
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(&rrq(forged, &[]), addr).unwrap();
    d.wait_log("RRQ refused", Duration::from_secs(5));
    let log = d.log_text();
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "a raw newline forged a line:\n{log}"
    );
    assert!(
        !log.contains('\x1b'),
        "a raw escape reached the log:\n{log}"
    );
    assert!(log.contains("FORGED INFO"), "the name is not shown:\n{log}");
}

#[test]
fn ten_thousand_malformed_datagrams_give_a_few_warnings_with_a_count() {
    let work = Scratch::new("hostile-malformed");
    let root = Scratch::new("hostile-malformed-root");
    let (d, addr) = daemon(&work, &root);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..10_000u32 {
        // Opcode 1 without a NUL-terminated name: malformed.
        sock.send_to(&[0, 1, b'a', b'b'], addr).unwrap();
        if i % 500 == 499 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // One more after the throttle's 10 s window: its line reports how
    // many were held back.
    std::thread::sleep(Duration::from_millis(10_500));
    sock.send_to(&[0, 1, b'a', b'b'], addr).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while held_back(&d.log_text()) == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = d.log_text();
    let held = held_back(&log);
    // Not all 10,000: the socket buffer drops some of a loopback burst.
    assert!(held > 100, "held_back {held}:\n{log}");
    let warnings = log
        .lines()
        .filter(|l| l.contains("malformed TFTP request"))
        .count();
    eprintln!("10,000 malformed datagrams: {warnings} warning lines");
    assert!(warnings < 50, "{warnings} warning lines");
}

/// The largest `held_back=N` on a "malformed TFTP request" line.
fn held_back(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("malformed TFTP request"))
        .filter_map(|l| l.split("held_back=").nth(1))
        .filter_map(|v| v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .max()
        .unwrap_or(0)
}
