//! A hostile peer on the HTTP side: an ACL server whose answer never ends
//! or redirects, and (against `-H`, the daemon's HTTP server) idle
//! connection floods, slow readers and forged log lines.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pybootd::acl::http::{HttpAcl, HttpAnswer};

/// A raw HTTP server on 127.0.0.1 port 0: each connection reads the request
/// head, then `answer` writes whatever it likes. Returns the address and
/// a count of connections accepted.
fn raw_server<F>(answer: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(&mut TcpStream) + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            h.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            std::thread::spawn(move || {
                read_head(&mut s);
                answer(&mut s);
            });
        }
    });
    (addr, hits)
}

fn read_head(s: &mut TcpStream) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
        head.push(b[0]);
    }
}

/// 200, then `Client:` lines without end (256 MiB at most, so that the old
/// code's failure stays bounded too), then the connection is held open.
fn endless(s: &mut TcpStream) {
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
    let chunk = b"Client: x\n".repeat(6554);
    for _ in 0..(256 << 20) / chunk.len() {
        if s.write_all(&chunk).is_err() {
            return;
        }
    }
    std::thread::sleep(Duration::from_secs(60));
}

fn vm_hwm_kib() -> u64 {
    let st = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = st.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Item 7: an endless 200 answer is denied once it passes 64 KiB, long
/// before the timeout, and the memory it costs stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_endless_answer_is_denied_and_memory_stays_small() {
    let (addr, _) = raw_server(endless);
    let before = vm_hwm_kib();
    let timeout = Duration::from_secs(8);
    let acl = HttpAcl::new(timeout).unwrap();
    let t0 = Instant::now();
    let a = acl.check(&format!("http://{addr}/boot?mac=x")).await;
    let took = t0.elapsed();
    let grown = vm_hwm_kib().saturating_sub(before);
    eprintln!("denied in {took:?}; VmHWM grew {grown} KiB: {a:?}");
    match &a {
        HttpAnswer::Denied(why) => assert!(why.contains("over 65536 bytes"), "{why}"),
        other => panic!("an endless answer was granted: {other:?}"),
    }
    assert!(took < timeout + Duration::from_secs(2), "{took:?}");
    assert!(grown < 32 * 1024, "VmHWM grew {grown} KiB");
}

/// Item 3: a 302 from the ACL server is a denial, and its target is never
/// asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_redirect_is_a_denial() {
    let (trap, trap_hits) = raw_server(|_| {});
    let (addr, _) = raw_server(move |s| {
        let _ = write!(
            s,
            "HTTP/1.1 302 Found\r\nLocation: http://{trap}/ok\r\nContent-Length: 0\r\n\r\n"
        );
    });
    let acl = HttpAcl::new(Duration::from_secs(5)).unwrap();
    let a = acl.check(&format!("http://{addr}/boot?mac=x")).await;
    match &a {
        HttpAnswer::Denied(why) => assert!(why.contains("302"), "{why}"),
        other => panic!("a redirect was granted: {other:?}"),
    }
    assert_eq!(trap_hits.load(Ordering::SeqCst), 0);
}
