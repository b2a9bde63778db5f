//! The binary end to end: clap usage errors, --help/--version, --check on
//! the examples, interface detection, one-line bind errors, logging to a
//! file, -d, and a graceful exit 0 on SIGTERM/SIGINT. Unprivileged tests
//! use 127.0.0.x on lo (which holds 127.0.0.1/8) and high ports; the root
//! test runs --check in a namespace whose interface holds the example's pool.

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{pybootd_bin, Daemon, Netns, Scratch};

fn run(args: &[&str]) -> Output {
    Command::new(pybootd_bin()).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// A config serving DHCP and TFTP on 127.0.0.1 (port 0: any free port).
fn lo_config(dhcp_port: u16, tftp_port: u16, logger: &str) -> String {
    format!(
        "{logger}\n[bootp]\naddress = 127.0.0.1\nport = {dhcp_port}\npool_start = 127.0.0.10\nlease_file = none\n\n[tftp]\naddress = 127.0.0.1\nport = {tftp_port}\nroot = .\n"
    )
}

#[test]
fn pxe_and_tftp_together_is_a_usage_error() {
    let out = run(&["-p", "-t"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("cannot be used with"), "{err}");
    assert!(err.contains("Usage:"), "{err}");
    let out = run(&["--pxe", "--tftp", "--check"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_lists_every_flag() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for flag in [
        "-c, --config <CONFIG>",
        "-p, --pxe",
        "-t, --tftp",
        "-H, --http",
        "-d, --debug",
        "--check",
        "-V, --version",
        "-h, --help",
        "/etc/pybootd.ini",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn version() {
    let out = run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("pybootd {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// The example's text with its pool moved to 127.0.0.100 (on lo).
fn example_on_lo(scratch: &Scratch, name: &str) -> PathBuf {
    let t = std::fs::read_to_string(example(name)).unwrap();
    let moved: Vec<String> = t
        .lines()
        .map(|l| {
            if l.starts_with("pool_start") {
                "pool_start = 127.0.0.100".to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    scratch.write(name, moved.join("\n").as_bytes())
}

#[test]
fn check_prints_what_would_be_served() {
    let s = Scratch::new("check");
    let p = example_on_lo(&s, "pybootd.ini");
    let out = run(&["--check", "-c", p.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}{stdout}", text(&out.stderr));
    for line in [
        format!("config: {} (valid)", p.display()),
        "dhcp: listen 0.0.0.0:67 on lo (server 127.0.0.1 netmask 255.0.0.0)".to_string(),
        "dhcp: pool 127.0.0.100..127.0.0.149 (50 addresses)".to_string(),
        "dhcp: leases journaled to /var/lib/pybootd/leases.jsonl".to_string(),
        "boot files: default pxelinux.0".to_string(),
        "boot files: arch 00007 -> grubnetx64.efi".to_string(),
        "boot files: arch 00009 -> grubnetx64.efi".to_string(),
        "tftp: listen 127.0.0.1:69, root /srv/tftp (local)".to_string(),
        "tftp: filter pxelinux.cfg/* -> pxelinux.cfg/default".to_string(),
    ] {
        assert!(stdout.contains(&line), "--check lacks '{line}':\n{stdout}");
    }
    // Only one service: the other is not described.
    let out = run(&["--check", "-t", "-c", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("tftp: listen") && !stdout.contains("dhcp:"),
        "{stdout}"
    );

    for name in ["debian-netboot.ini", "acl.ini"] {
        let p = example_on_lo(&s, name);
        let out = run(&["--check", "-c", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
    }
    let p = example_on_lo(&s, "debian-netboot.ini");
    let stdout = text(&run(&["--check", "-c", p.to_str().unwrap()]).stdout);
    assert!(
        stdout.contains("root http://deb.debian.org/debian/dists/bookworm/main/installer-amd64/current/images/netboot (HTTP)"),
        "{stdout}"
    );
    let p = example_on_lo(&s, "acl.ini");
    let stdout = text(&run(&["--check", "-c", p.to_str().unwrap()]).stdout);
    assert!(
        stdout.contains("2 static") && stdout.contains("access mac"),
        "{stdout}"
    );
    assert!(stdout.contains("leases in memory only"), "{stdout}");
}

#[test]
fn no_interface_holds_pool_start() {
    let s = Scratch::new("noif");
    let p = s.write("x.ini", b"[bootp]\npool_start = 203.0.113.77\n");
    let out = run(&["--check", "-c", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let head = format!(
        "Error: {}: [bootp] pool_start: unable to detect network configuration: no interface's subnet holds pool_start 203.0.113.77 (host addresses: ",
        p.display()
    );
    assert!(err.starts_with(&head), "{err}");
    assert!(err.contains("lo 127.0.0.1/8"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // TFTP alone does not need the pool's interface.
    let out = run(&["--check", "-t", "-c", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("tftp: listen 0.0.0.0:69"));
    // A pool that runs out of the subnet.
    let p = s.write(
        "y.ini",
        b"[bootp]\npool_start = 127.255.255.250\npool_count = 10\n",
    );
    let out = run(&["--check", "-c", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("Error: {}: [bootp] pool_count: the pool 127.255.255.250..128.0.0.3 runs outside 127.0.0.0/8 of lo\n", p.display())
    );
}

#[test]
fn dhcp_without_bootp_section() {
    let s = Scratch::new("nobootp");
    let p = s.write("x.ini", b"[tftp]\nroot = /srv/tftp\n");
    let out = run(&["--check", "-c", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("Error: {}: no [bootp] section: the DHCP service needs pool_start (or run with --tftp)\n", p.display())
    );
}

#[test]
fn port_in_use_is_one_line() {
    let s = Scratch::new("inuse");
    let held = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    for (cfg, service, args) in [
        (lo_config(0, port, ""), "TFTP", &[][..]),
        (lo_config(port, 0, ""), "BOOTP/DHCP", &["-p"][..]),
    ] {
        let p = s.write("x.ini", cfg.as_bytes());
        let mut cmd = Command::new(pybootd_bin());
        cmd.args(args).arg("-c").arg(&p);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            text(&out.stderr),
            format!("Error: {service}: cannot bind UDP 127.0.0.1:{port}: Address already in use (os error 98) (another server, e.g. dnsmasq, holds it)\n"),
        );
        // -d: the full chain, one cause per line.
        let out = Command::new(pybootd_bin())
            .args(args)
            .arg("-d")
            .arg("-c")
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!(
                "Error: {service}\n\nCaused by:\n    cannot bind UDP 127.0.0.1:{port}"
            )),
            "{err}"
        );
    }
    drop(held);
}

/// Waits (bounded) for the child to exit.
fn wait_exit(d: &mut Daemon, within: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + within;
    loop {
        if let Some(st) = d.child.try_wait().unwrap() {
            return st;
        }
        assert!(
            Instant::now() < end,
            "no exit within {within:?}:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn sigterm_and_sigint_exit_0() {
    let s = Scratch::new("sig");
    for sig in ["TERM", "INT"] {
        let p = s.write("x.ini", lo_config(0, 0, "").as_bytes());
        let mut cmd = Command::new(pybootd_bin());
        cmd.arg("-c").arg(&p);
        let mut d = Daemon::spawn(cmd, s.path.join(format!("{sig}.log")));
        d.wait_log("pybootd running", Duration::from_secs(10));
        // Port 0 in the config: the log names the port the kernel chose.
        assert_ne!(d.bound("BOOTP/DHCP").port(), 0);
        assert_ne!(d.bound("TFTP").port(), 0);
        kill(d.child.id(), sig);
        let st = wait_exit(&mut d, Duration::from_secs(10));
        assert_eq!(st.code(), Some(0), "SIG{sig}:\n{}", d.log_text());
        let log = d.log_text();
        assert!(
            log.contains(&format!("shutting down signal=\"SIG{sig}\"")),
            "{log}"
        );
        assert!(
            !log.contains('\u{1b}'),
            "no colour codes when not a terminal: {log}"
        );
    }
}

#[test]
fn logger_file_and_debug() {
    let s = Scratch::new("logfile");
    let logfile = s.path.join("pybootd.log");
    let logger = format!(
        "[logger]\ntype = file\nfile = {}\nlevel = info\n",
        logfile.display()
    );
    for debug in [false, true] {
        let _ = std::fs::remove_file(&logfile);
        let p = s.write("x.ini", lo_config(0, 0, &logger).as_bytes());
        let mut cmd = Command::new(pybootd_bin());
        if debug {
            cmd.arg("-d");
        }
        cmd.arg("-c").arg(&p);
        let mut d = Daemon::spawn(cmd, s.path.join("stderr.log"));
        let end = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&logfile)
            .unwrap_or_default()
            .contains("pybootd running")
        {
            assert!(
                Instant::now() < end,
                "no 'pybootd running' in {}",
                logfile.display()
            );
            assert!(d.child.try_wait().unwrap().is_none(), "{}", d.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        kill(d.child.id(), "TERM");
        assert_eq!(wait_exit(&mut d, Duration::from_secs(10)).code(), Some(0));
        let lines = std::fs::read_to_string(&logfile).unwrap();
        assert!(
            lines.contains("INFO") && lines.contains("TFTP listening"),
            "{lines}"
        );
        assert!(lines.contains("shutting down"), "{lines}");
        assert!(
            !lines.contains('\u{1b}'),
            "no colour codes in a file: {lines}"
        );
        assert_eq!(
            lines.contains("DEBUG"),
            debug,
            "-d raises the level:\n{lines}"
        );
        assert_eq!(
            d.log_text(),
            "",
            "nothing on stderr/stdout with type = file"
        );
    }
}

#[test]
fn check_in_a_netns_with_the_example_subnet() {
    if !common::require_root("check_in_a_netns_with_the_example_subnet") {
        return;
    }
    let ns = Netns::new("pbk");
    // A veth pair inside the namespace (no dummy module needed).
    ns.run(&[
        "ip", "link", "add", "lab0", "type", "veth", "peer", "name", "lab1",
    ]);
    ns.run(&["ip", "link", "set", "lab1", "up"]);
    ns.run(&["ip", "addr", "add", "10.77.0.1/24", "dev", "lab0"]);
    ns.run(&["ip", "link", "set", "lab0", "up"]);
    let ex = example("pybootd.ini");
    let out = ns
        .cmd(pybootd_bin())
        .args(["--check", "-c", ex.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}{stdout}", text(&out.stderr));
    assert!(
        stdout.contains("dhcp: listen 0.0.0.0:67 on lab0 (server 10.77.0.1 netmask 255.255.255.0)"),
        "{stdout}"
    );
    assert!(stdout.contains("tftp: listen 10.77.0.1:69"), "{stdout}");
    let ex = example("acl.ini");
    let out = ns
        .cmd(pybootd_bin())
        .args(["--check", "-c", ex.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // And run it there, on the real ports 67 and 69 (root), with the
    // journal and TFTP root moved to a scratch directory.
    let s = Scratch::new("nsrun");
    let t = std::fs::read_to_string(example("pybootd.ini"))
        .unwrap()
        .replace(
            "lease_file = /var/lib/pybootd/leases.jsonl",
            &format!("lease_file = {}", s.path.join("leases.jsonl").display()),
        )
        .replace("root = /srv/tftp", &format!("root = {}", s.path.display()));
    let p = s.write("pybootd.ini", t.as_bytes());
    let mut cmd = ns.cmd(pybootd_bin());
    cmd.arg("-c").arg(&p);
    let mut d = Daemon::spawn(cmd, s.path.join("log"));
    d.wait_log("pybootd running", Duration::from_secs(10));
    let ss = text(&ns.run(&["ss", "-lunH"]).stdout);
    // DHCP binds to the served interface (SO_BINDTODEVICE): `%lab0`.
    assert!(ss.contains("0.0.0.0%lab0:67"), "{ss}");
    assert!(ss.contains("10.77.0.1:69"), "{ss}");
    kill(d.child.id(), "TERM");
    assert_eq!(
        wait_exit(&mut d, Duration::from_secs(10)).code(),
        Some(0),
        "{}",
        d.log_text()
    );

    // The same file in a namespace without that subnet: the upstream FAQ's
    // error, clearly.
    let bare = Netns::new("pbk");
    let out = bare
        .cmd(pybootd_bin())
        .args(["--check", "-c", example("pybootd.ini").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("Error: {}: [bootpd] pool_start: unable to detect network configuration: no interface's subnet holds pool_start 10.77.0.100 (host addresses: lo 127.0.0.1/8)\n", example("pybootd.ini").display())
    );
}

// ---- forward.sh ----

fn forward_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("forward.sh")
}

#[test]
fn forward_sh_usage() {
    let out = Command::new("sh").arg(forward_sh()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("Usage: forward.sh on -i WAN_IF -j LAN_IF\n"),
        "{err}"
    );
    let out = Command::new("sh")
        .arg(forward_sh())
        .args(["sideways"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).ends_with("forward.sh: unknown mode 'sideways' (on, off or status)\n")
    );
    let out = Command::new("sh")
        .arg(forward_sh())
        .args(["on", "-i", "eth0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "forward.sh: missing -j LAN_IF\n");
    let out = Command::new("sh")
        .arg(forward_sh())
        .args(["on", "-i", "eth0", "-j"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "forward.sh: -j needs an interface name\n"
    );
    let out = Command::new("sh")
        .arg(forward_sh())
        .arg("-h")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("off      remove the rules"));
}

#[test]
fn forward_sh_on_off_in_a_netns() {
    if !common::require_root("forward_sh_on_off_in_a_netns") {
        return;
    }
    common::need_program("iptables");
    let ns = Netns::new("pbf");
    ns.run(&[
        "ip", "link", "add", "wan0", "type", "veth", "peer", "name", "lan0",
    ]);
    ns.run(&["ip", "addr", "add", "10.77.0.1/24", "dev", "lan0"]);
    let fwd = forward_sh();
    let fwd = fwd.to_str().unwrap();
    let ipfwd = |ns: &Netns| text(&ns.run(&["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout);
    let rules = |ns: &Netns| text(&ns.run(&["iptables-save"]).stdout);
    for before in ["0", "1"] {
        ns.run(&[
            "sh",
            "-c",
            &format!("echo {before} > /proc/sys/net/ipv4/ip_forward"),
        ]);
        let out = ns.cmd("sh").args([fwd, "off"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stdout).contains("Nothing to undo"));

        let out = ns
            .cmd("sh")
            .args([fwd, "on", "-i", "wan0", "-j", "nope0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            text(&out.stderr),
            "forward.sh: no interface 'nope0' (see: ip link)\n"
        );

        let out = ns
            .cmd("sh")
            .args([fwd, "on", "-i", "wan0", "-j", "lan0"])
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
        assert!(
            stdout
                .contains("+ iptables -t nat -A POSTROUTING -s 10.77.0.1/24 -o wan0 -j MASQUERADE"),
            "prints what it changes: {stdout}"
        );
        assert_eq!(ipfwd(&ns), "1\n");
        let r = rules(&ns);
        assert!(r.contains("-A POSTROUTING -s 10.77.0.0/24 -o wan0"), "{r}");
        assert!(r.contains("-A FORWARD -i lan0 -o wan0"), "{r}");
        assert_eq!(r.matches("pybootd-forward").count(), 3, "{r}");

        // Twice: refused, nothing added.
        let out = ns
            .cmd("sh")
            .args([fwd, "on", "-i", "wan0", "-j", "lan0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(rules(&ns).matches("pybootd-forward").count(), 3);
        let out = ns.cmd("sh").args([fwd, "status"]).output().unwrap();
        assert!(text(&out.stdout).contains("forwarding for netboot clients: on"));

        let out = ns.cmd("sh").args([fwd, "off"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let r = rules(&ns);
        assert!(
            !r.contains("pybootd-forward") && !r.contains("MASQUERADE"),
            "{r}"
        );
        assert_eq!(ipfwd(&ns), format!("{before}\n"), "off restores ip_forward");
    }
}
