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

/// An in-process `-H` server on 127.0.0.1 port 0, serving `root`, with a
/// whole-response bound of `floor` + size / `rate`.
struct Httpd {
    _rt: tokio::runtime::Runtime,
    stop: tokio_util::sync::CancellationToken,
    addr: SocketAddr,
}

impl Httpd {
    fn start(root: &std::path::Path, floor: Duration, rate: u64) -> Httpd {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let server = {
            let _guard = rt.enter();
            pybootd::httpd::HttpServer::new(root, listener, None)
                .unwrap()
                .with_send_bound(floor, rate)
        };
        rt.spawn(server.serve(stop.clone()));
        Httpd {
            _rt: rt,
            stop,
            addr,
        }
    }
}

impl Drop for Httpd {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A TCP connection from `from` (a 127.0.0.0/8 address) to `to`, with a
/// receive buffer of `rcvbuf` bytes when given.
fn connect_from(from: [u8; 4], to: SocketAddr, rcvbuf: Option<usize>) -> socket2::Socket {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    if let Some(n) = rcvbuf {
        s.set_recv_buffer_size(n).unwrap();
    }
    s.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    s.connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap();
    s
}

/// Item 6: 300 idle connections from 127.0.0.2 (no request ever sent) do
/// not keep 127.0.0.3 out: that address holds 16 at most, the rest are
/// closed at once, and a GET from 127.0.0.3 is answered within 5 s (the
/// old code: after the idle ones' 10 s head timeout, the 256 slots full).
#[test]
fn idle_flood_from_one_address_keeps_no_one_out() {
    let dir = common::Scratch::new("idleflood");
    std::fs::write(dir.path.join("f.txt"), b"hello").unwrap();
    let srv = Httpd::start(&dir.path, Duration::from_secs(30), 64 * 1024);
    let idle: Vec<_> = (0..300)
        .map(|_| connect_from([127, 0, 0, 2], srv.addr, None))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let s = connect_from([127, 0, 0, 3], srv.addr, None);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s: TcpStream = s.into();
    s.write_all(b"GET /f.txt HTTP/1.1\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let r = s.read_to_end(&mut out);
    eprintln!("answered in {:?}: {r:?}", t0.elapsed());
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("hello"),
        "{r:?} {text:?}"
    );
    // 16 of the idle ones are still open, the rest were closed.
    let closed = idle
        .iter()
        .filter(|s| {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let mut b = [std::mem::MaybeUninit::new(0u8); 1];
            matches!(s.recv(&mut b), Ok(0))
        })
        .count();
    assert_eq!(closed, 300 - pybootd::httpd::MAX_PER_ADDRESS);
}

/// Item 6: a reader taking 1 byte a second is cut off (reset) once the
/// whole-response bound has passed (here 2 s + 8 MiB at 1 MiB/s = 10 s);
/// the old code's per-write timeout let it stay as long as each write
/// moved, and closed it with a FIN behind megabytes of queued data.
#[test]
fn slow_reader_is_cut_off_within_the_bound() {
    let dir = common::Scratch::new("slowreader");
    std::fs::write(dir.path.join("big.bin"), vec![7u8; 8 << 20]).unwrap();
    let srv = Httpd::start(&dir.path, Duration::from_secs(2), 1 << 20);
    let s = connect_from([127, 0, 0, 4], srv.addr, Some(4096));
    let t0 = Instant::now();
    (&s).write_all(b"GET /big.bin HTTP/1.1\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let cut = loop {
        let mut b = [std::mem::MaybeUninit::new(0u8); 1];
        let r = s.recv(&mut b);
        if matches!(r, Ok(0) | Err(_)) && !is_timeout(&r) || s.take_error().unwrap().is_some() {
            break t0.elapsed();
        }
        assert!(t0.elapsed() < Duration::from_secs(25), "still connected");
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!("cut off after {cut:?}");
    assert!(
        cut >= Duration::from_secs(2),
        "cut before the bound: {cut:?}"
    );
}

fn is_timeout(r: &std::io::Result<usize>) -> bool {
    matches!(r, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}
