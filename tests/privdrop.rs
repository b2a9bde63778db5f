//! `[daemon] user`: the daemon binds its sockets as root, then becomes the
//! configured account for good, and serves only what that account may
//! read. Root tests (CI runs them as root), on 127.0.0.1 with port 0.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use common::{pybootd_bin, Daemon, Scratch};

/// `id -u NAME`.
fn id_of(flag: &str, name: &str) -> u32 {
    let out = Command::new("id").args([flag, name]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The values of one `/proc/PID/status` line, e.g. `Uid`.
fn status_field(pid: u32, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// One RRQ; the first packet back (DATA or ERROR).
fn rrq(server: SocketAddr, name: &str) -> Vec<u8> {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = vec![0, 1];
    req.extend_from_slice(name.as_bytes());
    req.extend_from_slice(b"\0octet\0");
    c.send_to(&req, server).unwrap();
    let mut buf = [0u8; 600];
    let (n, _) = c.recv_from(&mut buf).expect("an answer to the RRQ");
    buf[..n].to_vec()
}

fn start(s: &Scratch, daemon: &str) -> Daemon {
    let ini = s.write(
        "pybootd.ini",
        format!(
            "{daemon}\n[bootp]\naddress = 127.0.0.1\nport = 0\npool_start = 127.0.0.10\n\
             lease_file = {dir}/state/leases.jsonl\n\
             [tftp]\naddress = 127.0.0.1\nport = 0\nroot = {dir}/root\n",
            dir = s.path.display()
        )
        .as_bytes(),
    );
    let mut cmd = Command::new(pybootd_bin());
    cmd.arg("-c").arg(ini);
    Daemon::spawn(cmd, s.path.join("daemon.log"))
}

#[test]
fn drops_to_the_configured_user_and_serves_only_what_it_may_read() {
    if !common::require_root("drops_to_the_configured_user_and_serves_only_what_it_may_read") {
        return;
    }
    let s = Scratch::new("drop");
    std::fs::set_permissions(&s.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let open = s.write("root/open.txt", b"for anyone\n");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let secret = s.write("root/secret.txt", b"root only\n");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut d = start(&s, "[daemon]\nuser = nobody\ngroup = nogroup");
    d.wait_log("privileges dropped", Duration::from_secs(10));
    let tftp = d.bound("TFTP");
    d.wait_log("pybootd running", Duration::from_secs(10));

    let uid = id_of("-u", "nobody");
    let gid = nogroup_gid().expect("the group nogroup exists (Debian)");
    let pid = d.child.id();
    assert_eq!(status_field(pid, "Uid"), format!("{uid} {uid} {uid} {uid}"));
    assert_eq!(status_field(pid, "Gid"), format!("{gid} {gid} {gid} {gid}"));
    assert_eq!(
        status_field(pid, "Groups"),
        "",
        "supplementary groups cleared"
    );
    assert_eq!(status_field(pid, "NoNewPrivs"), "1", "no new privileges");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(status_field(pid, cap), "0000000000000000", "{cap}");
    }
    // The lease directory, made for the service user before the drop.
    assert_eq!(std::fs::metadata(s.path.join("state")).unwrap().uid(), uid);

    let got = rrq(tftp, "open.txt");
    assert_eq!(&got[..4], &[0, 3, 0, 1], "DATA 1: {got:?}");
    assert_eq!(&got[4..], b"for anyone\n");
    // Root could read it; the service user cannot, so it is not served.
    let got = rrq(tftp, "secret.txt");
    assert_eq!(&got[..2], &[0, 5], "an ERROR, not the file: {got:?}");
}

/// The gid of the group `nogroup`, where it exists.
fn nogroup_gid() -> Option<u32> {
    let out = Command::new("getent")
        .args(["group", "nogroup"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split(':')
        .nth(2)?
        .trim()
        .parse()
        .ok()
}

#[test]
fn an_unknown_user_is_a_config_error_and_nothing_is_served() {
    let s = Scratch::new("dropbad");
    std::fs::create_dir_all(s.path.join("root")).unwrap();
    let mut d = start(&s, "[daemon]\nuser = no-such-user-pybootd");
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = d.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            std::time::Instant::now() < end,
            "still running:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1), "{}", d.log_text());
    let log = d.log_text();
    assert!(
        log.contains("[daemon] user: no such user 'no-such-user-pybootd'"),
        "{log}"
    );
    assert!(!log.contains("listening on"), "nothing bound: {log}");
}

/// 512 transfers hold 1,024 descriptors: under systemd's default soft
/// limit (1,024) a flood hit EMFILE. The daemon raises its soft limit to
/// the hard one at start.
#[test]
fn the_open_file_soft_limit_is_raised_to_the_hard_one() {
    let s = Scratch::new("nofile");
    std::fs::create_dir_all(s.path.join("root")).unwrap();
    let ini = s.write(
        "pybootd.ini",
        format!(
            "[tftp]\naddress = 127.0.0.1\nport = 0\nroot = {}/root\n",
            s.path.display()
        )
        .as_bytes(),
    );
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=256:4096", pybootd_bin(), "-t", "-c"])
        .arg(ini);
    let mut d = Daemon::spawn(cmd, s.path.join("daemon.log"));
    d.wait_log("pybootd running", Duration::from_secs(10));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums, ["4096", "4096"], "{line}");
}
