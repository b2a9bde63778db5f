//! Shared test support: root checks, network namespaces joined by veth,
//! scratch directories and a daemon process that is killed on drop.
//! Every namespace, link and process a test makes is removed when its
//! handle drops, also when the test panics.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `<tag><pid%10000>x<n>` (short:
/// interface names are limited to 15 bytes).
pub fn unique(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{tag}{}x{n}", std::process::id() % 10000)
}

/// Root-only tests call this first. Not root: the test fails, telling how
/// to run it, unless PYBOOTD_NO_ROOT_TESTS=1 says to skip these tests (it
/// then prints that it skipped, loudly). CI runs as root and never sets it.
pub fn require_root(test: &str) -> bool {
    // SAFETY-free: read the effective uid from /proc.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("1");
    if euid == "0" {
        return true;
    }
    if std::env::var("PYBOOTD_NO_ROOT_TESTS").as_deref() == Ok("1") {
        eprintln!("SKIPPED {test}: needs root (PYBOOTD_NO_ROOT_TESTS=1)");
        return false;
    }
    panic!("{test} needs root (network namespaces): run `sudo -E cargo test --release`, or set PYBOOTD_NO_ROOT_TESTS=1 to skip root tests");
}

/// Runs a command, panicking with its output when it fails.
pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Checks that a program is installed; CI installs them all, so a missing
/// one is a failure, not a skip.
pub fn need_program(name: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} is not installed (.ci/run installs it: see its apt-get line)");
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = unique(tag);
        sh(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A command that runs inside the namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs argv inside the namespace; panics on failure.
    pub fn run(&self, argv: &[&str]) -> Output {
        let mut c = self.cmd(argv[0]);
        c.args(&argv[1..]);
        sh(&mut c)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill what still runs inside, then delete the namespace.
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            });
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Two namespaces joined by a veth pair (MTU 1500): `server` holds
/// `10.<net>.0.1/24` on `srv0`; `client` has `cli0`, up, with
/// `10.<net>.0.2/24` only when `client_addr` is true (DHCP tests leave it
/// bare). Nothing routes out of it.
pub struct Lab {
    pub server: Netns,
    pub client: Netns,
    pub net: u8,
}

impl Lab {
    pub fn new(client_addr: bool) -> Lab {
        let server = Netns::new("pbs");
        let client = Netns::new("pbc");
        // A subnet per lab so parallel tests never share one.
        let net = 100 + (COUNTER.fetch_add(1, Ordering::SeqCst) % 150) as u8;
        let a = unique("va");
        let b = unique("vb");
        sh(Command::new("ip").args(["link", "add", &a, "type", "veth", "peer", "name", &b]));
        sh(Command::new("ip").args(["link", "set", &a, "netns", &server.name]));
        sh(Command::new("ip").args(["link", "set", &b, "netns", &client.name]));
        server.run(&["ip", "link", "set", &a, "name", "srv0"]);
        client.run(&["ip", "link", "set", &b, "name", "cli0"]);
        server.run(&["ip", "link", "set", "srv0", "mtu", "1500", "up"]);
        client.run(&["ip", "link", "set", "cli0", "mtu", "1500", "up"]);
        server.run(&[
            "ip",
            "addr",
            "add",
            &format!("10.{net}.0.1/24"),
            "dev",
            "srv0",
        ]);
        if client_addr {
            client.run(&[
                "ip",
                "addr",
                "add",
                &format!("10.{net}.0.2/24"),
                "dev",
                "cli0",
            ]);
        }
        Lab {
            server,
            client,
            net,
        }
    }

    pub fn server_ip(&self) -> String {
        format!("10.{}.0.1", self.net)
    }

    pub fn client_ip(&self) -> String {
        format!("10.{}.0.2", self.net)
    }
}

/// A scratch directory under the target dir, removed on drop.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let path = std::env::temp_dir().join(unique(&format!("pybootd-{tag}-")));
        // A kept directory of an earlier run (same pid) is not reused.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch { path }
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path.join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // PYBOOTD_KEEP_SCRATCH=1 keeps configs and daemon logs for a look.
        if std::env::var_os("PYBOOTD_KEEP_SCRATCH").is_some() {
            eprintln!("kept {}", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A child process killed (SIGKILL) on drop; its stderr goes to `log`.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts the pybootd binary with `args` through `cmd` (e.g. a
    /// `Netns::cmd`), logging to `log`.
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Daemon {
        let f = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Daemon { child, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address a service bound, read back from its `SERVICE listening
    /// on ADDR` log line (configs use port 0: the kernel picks a free one,
    /// so tests never race each other for a port). Waits for it, bounded.
    pub fn bound(&mut self, service: &str) -> std::net::SocketAddr {
        let needle = format!("{service} listening on ");
        self.wait_log(&needle, Duration::from_secs(10));
        let log = self.log_text();
        let at = log.find(&needle).expect("just seen") + needle.len();
        let addr = log[at..].split_whitespace().next().unwrap_or_default();
        addr.parse()
            .unwrap_or_else(|e| panic!("'{addr}' after '{needle}': {e}\n{log}"))
    }

    /// Waits (bounded) until the log contains `needle`; panics with the log
    /// when it does not appear in time or the process died.
    pub fn wait_log(&mut self, needle: &str, within: Duration) {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.log_text().contains(needle) {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "daemon exited ({st}) before '{needle}':\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "'{needle}' not in the daemon log after {within:?}:\n{}",
            self.log_text()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pybootd binary cargo built for these tests.
pub fn pybootd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_pybootd")
}
