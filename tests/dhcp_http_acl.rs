//! The HTTP ACL against a real HTTP server (python3 http.server): 200 with
//! `Client:`/`File:` lines grants (option 12 sent), 401 denies, a server
//! that never answers denies after the timeout, and while it hangs every
//! other client is still answered. The PXE -> OS phase change asks again
//! on the `dhcp` path with the leased ip.

mod common;
mod dhcp_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{need_program, Scratch};
use dhcp_support::*;
use pybootd::wire::dhcp::opt;

const SERVER: &str = r#"
import http.server, socketserver, sys, time, urllib.parse
log = open(sys.argv[1], "a")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        log.write(self.path + "\n"); log.flush()
        mac = q.get("mac", [""])[0]
        if mac.endswith("-01"):
            body = b"Client: boxA\nFile: boxA.cfg\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif mac.endswith("-02"):
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            time.sleep(3600)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

struct Py(Child);
impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_acl_grants_denies_times_out_and_never_blocks_others() {
    need_program("python3");
    let dir = Scratch::new("dhcphttp");
    let script = dir.write("acl.py", SERVER.as_bytes());
    let qlog = dir.path.join("queries.log");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(&qlog)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _py = Py(child);
    let port: u16 = line.trim().parse().expect("python prints its port");

    let ini = format!(
        "[bootp]\npool_start = 10.9.0.100\npool_count = 20\nlease_file = none\naccess = http\n\
         [http]\nlocation = 127.0.0.1:{port}\npxe = /boot\ndhcp = /linux\ntimeout = 6\n\
         [bootfile]\ndefault = pxelinux.0\n"
    );
    let srv = Loopback::start(config(&ini));
    let c = Client::new(srv.addr).await;

    // MAC 3's question hangs for the whole timeout...
    let hang = ipxe_discover(mac(3), 0x33);
    let hang_sent = tokio::time::Instant::now();
    c.send(&hang).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...while MAC 1 is granted and answered, with its host name.
    let a = ipxe_discover(mac(1), 0x11);
    let o = c
        .recv_after_send(&a, Duration::from_secs(4))
        .await
        .expect("answered while another client's question hangs");
    assert_eq!(msg_type(&o), 2);
    assert_eq!(o.option(opt::HOST_NAME), Some(&b"boxA"[..]));
    let ack = c.ask(&selecting(&a, o.yiaddr, ip(1))).await.unwrap();
    assert_eq!(msg_type(&ack), 5);
    assert_eq!(ack.option(opt::HOST_NAME), Some(&b"boxA"[..]));
    // The File: line, for TFTP's {client_file}.
    assert_eq!(
        srv.leases.client_file(ack.yiaddr).as_deref(),
        Some("boxA.cfg")
    );
    // An address nobody holds has no file.
    assert_eq!(srv.leases.client_file(ip(99)), None);
    // 401: nothing.
    let b = ipxe_discover(mac(2), 0x22);
    c.send(&b).await;
    assert!(c.recv(0x22, Duration::from_millis(800)).await.is_none());
    // The hanging one gets nothing; once its 6 s timeout has passed, a
    // retransmission asks the server again (the first question ended).
    tokio::time::sleep_until(hang_sent + Duration::from_millis(6500)).await;
    assert!(c.recv(0x33, Duration::from_millis(10)).await.is_none());
    c.send(&hang).await;
    // The booted OS of MAC 1: a phase change, asked on /linux with its ip.
    let os = plain_discover(mac(1), 0x44);
    let o2 = c.ask(&os).await.expect("same phase: no question");
    let ack2 = c.ask(&selecting(&os, o2.yiaddr, ip(1))).await.unwrap();
    assert_eq!(msg_type(&ack2), 5);
    srv.shutdown().await;

    let q = std::fs::read_to_string(&qlog).unwrap();
    let lines: Vec<&str> = q.lines().collect();
    assert!(
        lines.contains(&"/boot?mac=52-54-00-00-00-01&uuid=00002E8E-3412-BC4A-8DEF-0000E2E00001"),
        "{q}"
    );
    assert!(
        lines.contains(
            &"/linux?mac=52-54-00-00-00-01&uuid=00002E8E-3412-BC4A-8DEF-0000E2E00001&ip=10.9.0.100"
        ),
        "{q}"
    );
    assert!(
        lines.iter().any(|l| l.contains("mac=52-54-00-00-00-02")),
        "{q}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("mac=52-54-00-00-00-01"))
            .count(),
        2,
        "asked once per phase: {q}"
    );
}

/// The whole binary: the HTTP ACL's `File:` line for a PXE client reaches
/// the TFTP side's `{client_file}` filter. The client leased 127.0.0.10 gets
/// its own file for `boot.cfg`; an address holding no lease gets the plain
/// `boot.cfg` (the rule is skipped). The daemon runs on one CPU
/// (`taskset -c 0`): its current-thread runtime carries all three at once.
#[test]
fn acl_file_line_reaches_tftp_client_file_filter() {
    need_program("python3");
    let taskset = need_program("taskset");
    let dir = Scratch::new("clientfile");
    let script = dir.write("acl.py", SERVER.as_bytes());
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(dir.path.join("queries.log"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _py = Py(child);
    let http_port: u16 = line.trim().parse().expect("python prints its port");
    let root = dir.path.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("boxA.cfg"), b"for boxA\n").unwrap();
    std::fs::write(root.join("boot.cfg"), b"for anyone\n").unwrap();
    let ini = dir.write(
        "pybootd.ini",
        format!(
            "[bootp]\naddress = 127.0.0.1\nport = 0\npool_start = 127.0.0.10\npool_count = 5\n\
             lease_file = none\naccess = http\n\
             [http]\nlocation = 127.0.0.1:{http_port}\npxe = /boot\ndhcp = /linux\ntimeout = 5\n\
             [bootfile]\ndefault = pxelinux.0\n\
             [tftp]\naddress = 127.0.0.1\nport = 0\nroot = {}\n\
             [filters]\nboot.cfg = {{client_file}}\n",
            root.display()
        )
        .as_bytes(),
    );
    let mut cmd = Command::new(taskset);
    cmd.args(["-c", "0", common::pybootd_bin(), "-c"]).arg(&ini);
    let mut d = common::Daemon::spawn(cmd, dir.path.join("daemon.log"));
    d.wait_log("pybootd running", Duration::from_secs(10));
    let (server, tftp) = (d.bound("BOOTP/DHCP"), d.bound("TFTP"));
    assert!(
        d.log_text().contains("flavor=\"current-thread\""),
        "{}",
        d.log_text()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let leased = rt.block_on(async {
        let c = Client::new(server).await;
        let disc = ipxe_discover(mac(1), 0x51);
        let o = c.ask(&disc).await.expect("OFFER");
        let ack = c
            .ask(&selecting(&disc, o.yiaddr, std::net::Ipv4Addr::LOCALHOST))
            .await
            .expect("ACK");
        assert_eq!(msg_type(&ack), 5, "{}", d.log_text());
        ack.yiaddr
    });
    assert_eq!(leased.to_string(), "127.0.0.10");

    // One-block TFTP read of boot.cfg from `from`.
    let fetch = |from: &str| -> Vec<u8> {
        let s = std::net::UdpSocket::bind((from, 0)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send_to(b"\x00\x01boot.cfg\x00octet\x00", tftp).unwrap();
        let mut buf = [0u8; 600];
        let (n, peer) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..2], &[0, 3], "DATA: {:?}", &buf[..n]);
        s.send_to(&[0, 4, buf[2], buf[3]], peer).unwrap();
        buf[4..n].to_vec()
    };
    assert_eq!(fetch("127.0.0.10"), b"for boxA\n", "{}", d.log_text());
    assert_eq!(fetch("127.0.0.11"), b"for anyone\n", "{}", d.log_text());
}
