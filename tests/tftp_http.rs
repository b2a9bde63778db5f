//! HTTP roots against a real HTTP server (python3 -m http.server on
//! 127.0.0.1): files match, 404 -> ERROR 1, the server killed mid-transfer
//! -> ERROR, and the daemon's peak RSS (VmHWM) does not grow with the file
//! size. Runs the real binary; no root needed.

mod common;
mod tftp_support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{need_program, pybootd_bin, Daemon, Scratch};
use pybootd::wire::tftp::Mode;
use tftp_support::{bytes, get, get_with, sha, Fail, Hooks};

struct HttpServer {
    child: Child,
    port: u16,
}

impl HttpServer {
    fn start(dir: &std::path::Path) -> HttpServer {
        need_program("python3");
        // Port 0: the server prints the port the kernel chose.
        const SERVE: &str = "import functools, http.server, sys\n\
            h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])\n\
            s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), h)\n\
            print(s.server_address[1], flush=True)\n\
            s.serve_forever()\n";
        let mut child = Command::new("python3")
            .args(["-c", SERVE])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let port = line.trim().parse().expect("python prints its port");
        HttpServer { child, port }
    }
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start_daemon(work: &Scratch, root_url: &str) -> (Daemon, SocketAddr) {
    start_daemon_env(work, root_url, &[])
}

fn start_daemon_env(work: &Scratch, root_url: &str, env: &[(&str, &str)]) -> (Daemon, SocketAddr) {
    let ini = work.write(
        "pybootd.ini",
        format!(
            "[logger]\nlevel = info\n[tftp]\naddress = 127.0.0.1\nport = 0\nroot = {root_url}\n\
             timeout = 0.5\nretries = 4\nmax_windowsize = 16\n"
        )
        .as_bytes(),
    );
    let mut cmd = Command::new(pybootd_bin());
    cmd.args(["-t", "-c"]).arg(&ini);
    cmd.envs(env.iter().copied());
    let mut d = Daemon::spawn(cmd, work.path.join("daemon.log"));
    let addr = d.bound("TFTP");
    (d, addr)
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn http_root_serves_streams_and_fails_cleanly() {
    let web = Scratch::new("web");
    let work = Scratch::new("httpw");
    let small = bytes(100_000, 1);
    let mid = bytes(8 << 20, 2);
    web.write("boot/small.bin", &small);
    web.write("boot/mid.bin", &mid);
    web.write("boot/dir with space/x.cfg", b"cfg");
    let mut http = HttpServer::start(&web.path);
    let (daemon, addr) = start_daemon(&work, &format!("http://127.0.0.1:{}/boot", http.port));

    let got = get(addr, "small.bin", &[("tsize", "0"), ("blksize", "1468")]).unwrap();
    assert_eq!(sha(&got.data), sha(&small));
    let tsize = got
        .oack
        .as_ref()
        .unwrap()
        .iter()
        .find(|(k, _)| k == "tsize");
    assert_eq!(
        tsize.map(|(_, v)| v.as_str()),
        Some("100000"),
        "tsize from Content-Length"
    );
    let got = get(addr, "/dir with space/x.cfg", &[]).unwrap();
    assert_eq!(got.data, b"cfg");
    let got = get(
        addr,
        "mid.bin",
        &[("blksize", "1468"), ("windowsize", "16")],
    )
    .unwrap();
    assert_eq!(sha(&got.data), sha(&mid));
    assert!(matches!(
        get(addr, "missing.bin", &[]),
        Err(Fail::Error(1, _))
    ));
    assert!(matches!(
        get(addr, "../etc/passwd", &[]),
        Err(Fail::Error(2, _))
    ));

    // The HTTP server dies mid-transfer (lock-step at 512 keeps it slow):
    // the client gets an ERROR, not a hang and not a short "success".
    let big = bytes(64 << 20, 3);
    web.write("boot/big.bin", &big);
    let killer = {
        let pid = http.child.id();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        })
    };
    let t0 = Instant::now();
    let r = get_with(addr, "big.bin", Mode::Octet, &[], &Hooks::default());
    killer.join().unwrap();
    http.kill();
    match r {
        Err(Fail::Error(_, _)) => {}
        Ok(g) => panic!(
            "transfer 'succeeded' with {} of {} bytes\n{}",
            g.data.len(),
            big.len(),
            daemon.log_text()
        ),
        Err(e) => panic!("{e:?}\n{}", daemon.log_text()),
    }
    assert!(t0.elapsed() < Duration::from_secs(30));
    // With no HTTP server at all: an ERROR too, within the timeouts.
    let t0 = Instant::now();
    assert!(matches!(
        get(addr, "small.bin", &[]),
        Err(Fail::Error(_, _))
    ));
    assert!(t0.elapsed() < Duration::from_secs(15));
}

#[test]
fn http_root_memory_flat_in_file_size() {
    let web = Scratch::new("webrss");
    let work = Scratch::new("rssw");
    let small = bytes(4 << 20, 5);
    let huge = bytes(200 << 20, 6);
    web.write("small.bin", &small);
    web.write("huge.bin", &huge);
    let http = HttpServer::start(&web.path);
    let (daemon, addr) = start_daemon(&work, &format!("http://127.0.0.1:{}", http.port));
    let opts = [("blksize", "1468"), ("windowsize", "16")];
    let got = get(addr, "small.bin", &opts).unwrap();
    assert_eq!(sha(&got.data), sha(&small));
    let after_small = vm_hwm_kib(daemon.child.id());
    let got = get(addr, "huge.bin", &opts).unwrap();
    assert_eq!(sha(&got.data), sha(&huge));
    let after_huge = vm_hwm_kib(daemon.child.id());
    eprintln!("VmHWM after 4 MiB: {after_small} KiB, after 200 MiB: {after_huge} KiB");
    assert!(
        after_huge < after_small + 8 * 1024,
        "peak RSS grew from {after_small} KiB to {after_huge} KiB"
    );
    assert!(after_huge < 64 * 1024, "peak RSS {after_huge} KiB");
}

/// A listener that answers each request by `answer(path)` and counts the
/// connections it accepted.
fn tiny_http(
    answer: impl Fn(&str) -> String + Send + 'static,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut line = String::new();
            let mut r = BufReader::new(c.try_clone().unwrap());
            let _ = r.read_line(&mut line);
            // The rest of the head, up to the blank line.
            let mut rest = String::new();
            while r.read_line(&mut rest).is_ok_and(|n| n > 2) {
                rest.clear();
            }
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            let _ = c.write_all(answer(&path).as_bytes());
        }
    });
    (port, hits)
}

/// The HTTP root follows the one fetch policy: no proxy from the
/// environment (the file and its size must come from the same host), and
/// no redirects (a mirror's 302 to a loopback address is an error for that
/// file, never a fetch the daemon makes on a client's behalf).
#[test]
fn http_root_ignores_proxies_and_follows_no_redirect() {
    let (trap, trapped) = tiny_http(|_| "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ntrap".into());
    let (up, _) = tiny_http(move |path| {
        match path {
        "/boot/ok.bin" => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".into(),
        _ => format!(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{trap}/ok.bin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    }
    });
    let work = Scratch::new("policy");
    let proxy = format!("http://127.0.0.1:{trap}");
    let env = [
        ("HTTP_PROXY", proxy.as_str()),
        ("http_proxy", proxy.as_str()),
        ("ALL_PROXY", proxy.as_str()),
    ];
    let (daemon, addr) = start_daemon_env(&work, &format!("http://127.0.0.1:{up}/boot"), &env);
    let got = get(addr, "ok.bin", &[]).unwrap_or_else(|e| panic!("{e:?}\n{}", daemon.log_text()));
    assert_eq!(got.data, b"hello", "fetched through the proxy");
    match get(addr, "moved.bin", &[]) {
        Err(Fail::Error(0, m)) => assert_eq!(m, "Upstream HTTP 302"),
        other => panic!("a redirect: {other:?}\n{}", daemon.log_text()),
    }
    // Sizes (DHCP option 13) follow the same policy: a HEAD, no redirect.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ok, moved) = rt.block_on(async {
        let root = pybootd::config::Root::Http(format!("http://127.0.0.1:{up}/boot"));
        let timeout = Duration::from_secs(5);
        let client = pybootd::fetch::client(timeout).unwrap();
        let files =
            pybootd::files::FileRoot::new(&root, Default::default(), client, timeout).unwrap();
        (files.size("ok.bin").await, files.size("moved.bin").await)
    });
    assert_eq!((ok, moved), (Some(5), None));
    assert_eq!(
        trapped.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the proxy or the redirect target was contacted"
    );
}
