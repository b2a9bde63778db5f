//! Real TFTP clients (curl, tftp-hpa, atftp) against the pybootd binary
//! (`pybootd -t -c <ini>`) across a veth between two network namespaces
//! (MTU 1500). Root only. Every fetched file is compared by SHA-256.

mod common;
mod tftp_support;

use std::path::Path;
use std::time::Duration;

use common::{need_program, pybootd_bin, Daemon, Lab, Scratch};
use tftp_support::{bytes, sha};

struct Setup {
    lab: Lab,
    root: Scratch,
    out: Scratch,
    daemon: Daemon,
}

fn setup(test: &str, files: &[(&str, Vec<u8>)]) -> Setup {
    setup_with(test, files, "")
}

fn setup_with(test: &str, files: &[(&str, Vec<u8>)], extra: &str) -> Setup {
    let lab = Lab::new(true);
    let root = Scratch::new(&format!("{test}-root"));
    let out = Scratch::new(&format!("{test}-out"));
    for (name, content) in files {
        root.write(name, content);
    }
    let ini = out.write(
        "pybootd.ini",
        format!(
            "[logger]\nlevel = debug\n[tftp]\naddress = {}\nroot = {}\nmax_windowsize = 64\n{extra}",
            lab.server_ip(),
            root.path.display()
        )
        .as_bytes(),
    );
    let mut cmd = lab.server.cmd(pybootd_bin());
    cmd.args(["-t", "-c"]).arg(&ini);
    let mut daemon = Daemon::spawn(cmd, out.path.join("daemon.log"));
    daemon.wait_log("TFTP listening", Duration::from_secs(10));
    Setup {
        lab,
        root,
        out,
        daemon,
    }
}

/// Runs a client command in the client namespace (bounded by `timeout`),
/// then checks the fetched file against the served one.
fn fetch_and_compare(s: &Setup, argv: &[&str], local: &Path, served: &str) {
    let mut c = s.lab.client.cmd("timeout");
    c.arg("60").args(argv);
    let out = c.output().unwrap();
    let got = std::fs::read(local).unwrap_or_else(|e| {
        panic!(
            "{argv:?}: no output file ({e}); status {}\nstderr: {}\ndaemon log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            s.daemon.log_text()
        )
    });
    let want = std::fs::read(s.root.path.join(served)).unwrap();
    assert_eq!(
        sha(&got),
        sha(&want),
        "{argv:?}: {} bytes, want {}\ndaemon log:\n{}",
        got.len(),
        want.len(),
        s.daemon.log_text()
    );
    let _ = std::fs::remove_file(local);
}

fn sizes() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for (i, n) in [0usize, 511, 512, 513, 1467, 1468, 1469, 3_000_001]
        .into_iter()
        .enumerate()
    {
        v.push((format!("f{n}"), bytes(n, i as u64 + 1)));
    }
    v
}

#[test]
fn curl_fetches_every_size_class() {
    if !common::require_root("curl_fetches_every_size_class") {
        return;
    }
    need_program("curl");
    let files = sizes();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    let s = setup("curl", &refs);
    let ip = s.lab.server_ip();
    // curl 7.88 fails on empty files with every server (tftpd-hpa too:
    // "getpeername() failed"); size 0 is covered by tftp-hpa and atftp.
    for (name, _) in files.iter().filter(|(n, _)| n != "f0") {
        for bs in ["512", "1468"] {
            let local = s.out.path.join(format!("{name}.{bs}"));
            let url = format!("tftp://{ip}/{name}");
            let l = local.to_str().unwrap();
            fetch_and_compare(
                &s,
                &["curl", "-s", "-S", &url, "--tftp-blksize", bs, "-o", l],
                &local,
                name,
            );
        }
    }
    // A name anchored at the root (GRUB's style).
    s.root.write("grub/grub.cfg", b"set timeout=1\n");
    let local = s.out.path.join("grub.cfg");
    let url = format!("tftp://{ip}//grub/grub.cfg");
    fetch_and_compare(
        &s,
        &["curl", "-s", "-S", &url, "-o", local.to_str().unwrap()],
        &local,
        "grub/grub.cfg",
    );
}

#[test]
fn tftp_hpa_fetches() {
    if !common::require_root("tftp_hpa_fetches") {
        return;
    }
    need_program("tftp");
    let files = sizes();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    let s = setup("hpa", &refs);
    let ip = s.lab.server_ip();
    for (name, _) in &files {
        let local = s.out.path.join(format!("{name}.hpa"));
        let l = local.to_str().unwrap();
        fetch_and_compare(
            &s,
            &["tftp", &ip, "-m", "binary", "-c", "get", name, l],
            &local,
            name,
        );
    }
}

#[test]
fn atftp_fetches_with_blksize_windowsize_and_rollover() {
    if !common::require_root("atftp_fetches_with_blksize_windowsize_and_rollover") {
        return;
    }
    need_program("atftp");
    let mut files = sizes();
    // Past 65535 blocks of 512 bytes: block numbers roll over.
    files.push(("big".into(), bytes(512 * 65536 + 777, 99)));
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    let s = setup("atftp", &refs);
    let ip = s.lab.server_ip();
    let option_sets: [&[&str]; 3] = [
        &[],
        &["--option", "blksize 1468", "--option", "tsize 0"],
        &["--option", "blksize 1468", "--option", "windowsize 16"],
    ];
    for (name, _) in files.iter().filter(|(n, _)| n != "big") {
        for (k, opts) in option_sets.iter().enumerate() {
            let local = s.out.path.join(format!("{name}.{k}"));
            let l = local.to_str().unwrap();
            let mut argv = vec!["atftp"];
            argv.extend_from_slice(opts);
            argv.extend_from_slice(&["-g", "-r", name, "-l", l, &ip]);
            fetch_and_compare(&s, &argv, &local, name);
        }
    }
    let local = s.out.path.join("big.out");
    let l = local.to_str().unwrap();
    fetch_and_compare(
        &s,
        &[
            "atftp",
            "--option",
            "windowsize 16",
            "-g",
            "-r",
            "big",
            "-l",
            l,
            &ip,
        ],
        &local,
        "big",
    );
    // Traversal through a real client: an error, no file content.
    let local = s.out.path.join("passwd");
    let mut c = s.lab.client.cmd("timeout");
    c.args(["20", "atftp", "-g", "-r", "../../../../etc/passwd", "-l"])
        .arg(&local)
        .arg(&ip);
    let st = c.output().unwrap();
    assert!(!st.status.success(), "traversal must fail");
    let leaked = std::fs::read(&local).unwrap_or_default();
    assert!(leaked.is_empty(), "{} bytes leaked", leaked.len());
}

#[test]
fn tftp_hpa_uploads_only_when_enabled_and_never_overwrites() {
    if !common::require_root("tftp_hpa_uploads_only_when_enabled_and_never_overwrites") {
        return;
    }
    need_program("tftp");
    let up = Scratch::new("upload");
    let s = setup_with(
        "up",
        &[],
        &format!("upload_dir = {}\nupload_max = 1000000\n", up.path.display()),
    );
    let ip = s.lab.server_ip();
    let content = bytes(300_001, 77);
    let local = s.out.write("to-send.bin", &content);
    let put = |name: &str| {
        let mut c = s.lab.client.cmd("timeout");
        c.args(["30", "tftp", &ip, "-m", "binary", "-c", "put"])
            .arg(&local)
            .arg(name);
        let o = c.output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    put("new.bin");
    let stored = std::fs::read(up.path.join("new.bin")).unwrap_or_default();
    assert_eq!(sha(&stored), sha(&content), "{}", s.daemon.log_text());
    // A second upload to the same name is refused; the first stays.
    let out = put("new.bin");
    assert!(out.contains("exists") || out.contains("Error"), "{out}");
    assert_eq!(
        sha(&std::fs::read(up.path.join("new.bin")).unwrap()),
        sha(&content)
    );
    assert!(!s.root.path.join("new.bin").exists());
}
