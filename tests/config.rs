//! Config tests: real files (the seed README's sample, upstream-shaped
//! files of both generations, the examples/), the parser compared with
//! python3's configparser, and bad files whose exact error text names the
//! file, section and key (line for syntax errors), also through the binary.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pybootd::config::{Access, Config, Dns, LogKind, LogLevel, RawIni, Root};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(rel)
}

fn load(rel: &str) -> Config {
    let p = fixture(rel);
    Config::load(&p).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn seed_readme_debian_sample() {
    let c = load("good/seed-debian.ini");
    assert_eq!(c.logger.kind, LogKind::Stderr);
    assert_eq!(c.logger.level, LogLevel::Info);
    let b = c.bootp.as_ref().unwrap();
    assert!(b.allow_simple_dhcp);
    assert_eq!(b.pool_start, Ipv4Addr::new(192, 168, 1, 100));
    assert_eq!(b.pool_count, 10);
    assert_eq!(b.dns, Dns::List(vec![Ipv4Addr::new(8, 8, 8, 8)]));
    assert_eq!(b.boot_file.as_deref(), Some("pxelinux.0"));
    assert_eq!(c.boot_file_for(Some(7)), Some("pxelinux.0"));
    assert_eq!(
        c.tftp.root,
        Root::Http(
            "http://http.us.debian.org/debian/dists/squeeze/main/installer-amd64/current/images/netboot"
                .into()
        )
    );
    assert_eq!(c.filters.len(), 1);
    assert_eq!(c.filters[0].pattern, "pxelinux.cfg/*");
    assert_eq!(c.filters[0].value, "pybootd/etc/pxe.cfg");
}

#[test]
fn upstream_later_generation() {
    let c = load("good/upstream-later.ini");
    let b = c.bootp.as_ref().unwrap();
    assert_eq!(b.servername, "netboot");
    assert_eq!(b.domain, "lab.example");
    assert!(b.set_gateway);
    assert_eq!(b.access, Access::Mac);
    assert_eq!(b.lease_time, 3600);
    assert_eq!(
        b.dns,
        Dns::List(vec![
            Ipv4Addr::new(172, 31, 40, 1),
            Ipv4Addr::new(9, 9, 9, 9)
        ])
    );
    assert_eq!(c.boot_file_for(None), Some("pxelinux.0"));
    assert_eq!(c.boot_file_for(Some(0)), Some("pxelinux.0"));
    assert_eq!(c.boot_file_for(Some(7)), Some("grubnetx64.efi"));
    assert_eq!(c.boot_file_for(Some(6)), Some("bootia32.efi"));
    assert_eq!(c.boot_file_for(Some(11)), Some("pxelinux.0"));
    assert_eq!(c.buggy_clients.len(), 1, "a '= no' entry is not buggy");
    assert_eq!(c.mac_rules.len(), 3);
    assert_eq!(
        c.mac_rules.iter().filter(|r| r.allow).count(),
        2,
        "disable is a deny rule"
    );
    assert_eq!(c.uuid_rules.len(), 2);
    let h = c.http_acl.as_ref().unwrap();
    assert_eq!(h.location, "http://127.0.0.1:13400");
    assert_eq!((h.pxe.as_str(), h.dhcp.as_str()), ("/boot", "/linux"));
    assert!(!h.always_check);
    assert_eq!(c.tftp.root, Root::Local("./images".into()));
    assert_eq!(c.tftp.timeout, Duration::from_millis(2500));
    let d = c.httpd.as_ref().unwrap();
    assert_eq!((d.port, d.check_ip), (8000, true));
    assert_eq!(c.filters[0].value, "[{filename}]");
}

#[test]
fn upstream_2011_generation() {
    let c = load("good/upstream-2011.ini");
    assert_eq!(c.logger.kind, LogKind::None);
    let b = c.bootp.as_ref().unwrap();
    assert_eq!(b.access, Access::Uuid);
    assert!(b.allow_simple_dhcp, "2011's 'ok' is true");
    assert_eq!(b.dns, Dns::Auto);
    assert_eq!(b.notify.len(), 2);
    assert_eq!(b.notify[1].port(), 12346);
    assert_eq!(c.uuid_rules.iter().filter(|r| r.allow).count(), 1);
    assert_eq!(c.static_dhcp.len(), 1);
    assert_eq!(c.static_dhcp[0].1, Ipv4Addr::new(10, 113, 116, 200));
    assert_eq!(c.static_dhcp[0].0, "00:1E:4F:C4:95:EE".parse().unwrap());
    assert_eq!(c.tftp.root, Root::Local("/srv/tftp".into()));
    assert_eq!(c.tftp.port, 69);
    assert_eq!(c.boot_file_for(Some(7)), Some("pxelinux.0"));
}

#[test]
fn tricky_values() {
    let c = load("good/tricky.ini");
    assert_eq!(
        c.logger.level,
        LogLevel::Debug,
        "values are case-insensitive here"
    );
    let b = c.bootp.as_ref().unwrap();
    assert_eq!(b.pool_start, Ipv4Addr::new(127, 0, 0, 10));
    assert_eq!(b.domain, "", "an empty value is kept empty");
    assert_eq!(b.servername, "a=b:c", "only the first delimiter splits");
    assert_eq!(b.boot_file.as_deref(), Some("[not a section]"));
    assert_eq!(b.notify.len(), 2, "the indented line continues notify");
    assert_eq!(c.filters.len(), 3);
    assert_eq!(c.filters[1].pattern, "*.efi", "keys are lowercased");
}

#[test]
fn defaults_of_new_keys() {
    let c = Config::parse("[bootp]\npool_start = 127.0.0.10\n", Path::new("x.ini")).unwrap();
    let b = c.bootp.unwrap();
    assert_eq!(
        b.lease_file.as_deref(),
        Some(Path::new("/var/lib/pybootd/leases.jsonl"))
    );
    assert_eq!((b.port, b.pool_count, b.lease_time), (67, 10, 86400));
    assert_eq!(c.tftp.port, 69);
    assert_eq!((c.tftp.blocksize, c.tftp.max_blocksize), (512, 1468));
    assert_eq!(c.tftp.upload_dir, None);
    let c = Config::parse(
        "[bootp]\npool_start = 127.0.0.10\nlease_file = none\n[tftp]\nblocksize = 8192\nmax_transfers = 3\nupload_dir = /srv/up\nupload_max = 1000\nretries = 9\nmax_windowsize = 16\n",
        Path::new("x.ini"),
    )
    .unwrap();
    assert_eq!(c.bootp.unwrap().lease_file, None);
    assert_eq!((c.tftp.blocksize, c.tftp.max_blocksize), (8192, 8192));
    assert_eq!(c.tftp.max_transfers, 3);
    assert_eq!(c.tftp.upload_dir.as_deref(), Some(Path::new("/srv/up")));
    assert_eq!(
        (c.tftp.upload_max, c.tftp.retries, c.tftp.max_windowsize),
        (1000, 9, 16)
    );
}

#[test]
fn every_example_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "ini") {
            Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(
        n >= 3,
        "examples/ should hold at least 3 .ini files, found {n}"
    );
}

// ---- python3 configparser as an oracle ----

const ORACLE: &str = r#"
import configparser, sys
for path in sys.argv[1:]:
    print("F\t" + path)
    cp = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            cp.read_file(f)
    except configparser.Error as e:
        line = getattr(e, "lineno", None)
        if line is None and getattr(e, "errors", None):
            line = e.errors[0][0]
        print("E\t%s" % line)
        continue
    for s in cp.sections():
        print("S\t" + s.strip().lower())
        for k in cp.options(s):
            v = cp.get(s, k, raw=True)
            print("K\t%s\t%s" % (k, v.replace("\\", "\\\\").replace("\n", "\\n")))
"#;

/// python3's view of each file, in one run (python starts slowly).
fn python_views(paths: &[PathBuf]) -> Vec<String> {
    let out = Command::new("python3")
        .args(["-c", ORACLE])
        .args(paths)
        .output()
        .expect("python3 is needed for the configparser comparison");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut views: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("F\t") {
            views.push(String::new());
        } else {
            let v = views.last_mut().expect("F line first");
            v.push_str(line);
            v.push('\n');
        }
    }
    assert_eq!(views.len(), paths.len());
    views
}

fn our_view(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match RawIni::parse(&text) {
        Err((line, _)) => format!("E\t{line}\n"),
        Ok(ini) => {
            let mut s = String::new();
            for sec in &ini.sections {
                s += &format!("S\t{}\n", sec.name);
                for (k, v, _) in &sec.entries {
                    s += &format!("K\t{k}\t{}\n", v.replace('\\', "\\\\").replace('\n', "\\n"));
                }
            }
            s
        }
    }
}

#[test]
fn parser_matches_python_configparser() {
    let scratch = common::Scratch::new("cfgpy");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["good", "bad"] {
        for e in std::fs::read_dir(fixture(dir)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    for e in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")).unwrap() {
        files.push(e.unwrap().path());
    }
    // CRLF line ends, and corner cases not worth a fixture file each.
    let tricky = std::fs::read_to_string(fixture("good/tricky.ini")).unwrap();
    files.push(scratch.write("crlf.ini", tricky.replace('\n', "\r\n").as_bytes()));
    let cases = [
        "[a]\nk =\n  x\n\n\n  y\n\n",
        "[a]\nk = v\n\n  x\n# c\n  y\nz:1=2\n",
        "[a]]\nk = 1\n",
        "[]\nk = 1\n",
        "[a] junk ]\nk = 1\n",
        "  [a]\n  k = 1\n    more\n  j = 2\n",
        "[a]\n\tk\t=\tv v\t\n",
        "[a]\nk = v ; not a comment\nj = # neither\n",
        "[a]\n: v\n",
        "[a]\nk v\n",
        "[a]\nk = 1\n[b]\nk = 2\n[a]\n",
        "[a]\nk = 1\nK = 2\n",
        "k = 1\n",
        "[a]\nk = [x]\n  [y]\n",
        "[a]\nk=1\n  ; c\n",
        "[A]\nÉté = ÉTÉ\n",
    ];
    for (i, text) in cases.iter().enumerate() {
        files.push(scratch.write(&format!("case{i}.ini"), text.as_bytes()));
    }
    files.retain(|f| f.extension().is_some_and(|x| x == "ini"));
    let views = python_views(&files);
    let mut checked = 0;
    for (f, py) in files.iter().zip(views) {
        let ours = our_view(f);
        assert_eq!(
            ours,
            py,
            "{} reads differently from python's configparser:\n{}",
            f.display(),
            std::fs::read_to_string(f).unwrap()
        );
        checked += 1;
    }
    assert!(checked > 30, "only {checked} files compared");
}

// ---- bad files: exact messages ----

/// (fixture, message after "<path>")
const BAD: &[(&str, &str)] = &[
    ("unknown-key.ini", ":3: [bootp] pool_cont: unknown key (known keys: address, port, pool_start, pool_count, lease_time, access, allow_simple_dhcp, bootp_dynamic, boot_file, domain, servername, server_name, dns, gateway, set_gateway, netmask, notify, timeout, lease_file)"),
    ("unknown-section.ini", ":4: [tftpx]: unknown section (known sections: logger, daemon, bootp, bootpd, bootfile, tftp, tftpd, httpd, filters, mac, uuid, http, static_dhcp, buggy_clients)"),
    ("bad-ip.ini", ":3: [bootp] pool_start: '10.0.0.256' is not an IPv4 address"),
    ("bad-ip-static.ini", ":5: [static_dhcp] 00-11-22-33-44-55: '127.0.0' is not an IPv4 address"),
    ("bad-mac-acl.ini", ":7: [mac] 00-11-22-33-44: '00-11-22-33-44' is not a MAC address or mask (AA-BB-CC-DD-EE-FF, AA-BB-CC/24) (a partial value needs /prefix)"),
    ("bad-mac-static.ini", ":5: [static_dhcp] 00-11-22-33-44-gg: '00-11-22-33-44-gg' is not a MAC address (AA-BB-CC-DD-EE-FF)"),
    ("bad-mask.ini", ":6: [mac] 00-11-22/30: '00-11-22/30': prefix /30 is longer than the 24 bits given"),
    ("bad-bool.ini", ":3: [bootp] allow_simple_dhcp: 'maybe' is not a boolean (yes/no, on/off, true/false, 1/0)"),
    ("bad-port.ini", ":5: [tftp] port: 70000 is out of range [0, 65535]"),
    ("bad-number.ini", ":3: [bootp] pool_count: 'ten' is not a whole number"),
    ("missing-pool-start.ini", ": [bootp] pool_start: missing: the first address to hand out is required"),
    ("access-mac-without-section.ini", ":3: [bootp] access: access = mac needs a [mac] section, and there is none"),
    ("netmask-not-contiguous.ini", ":3: [bootp] netmask: '255.0.255.0' is not a netmask (its one bits must be contiguous, e.g. 255.255.255.0)"),
    ("both-bootp-bootpd.ini", ":4: [bootpd]: both [bootp] and [bootpd] are present; keep one"),
    ("syntax-error.ini", ":4: syntax error: 'this line is not a key' is neither [section] nor key = value"),
    ("key-before-section.ini", ":1: 'pool_start = 127.0.0.10' comes before any [section] header"),
    ("duplicate-key.ini", ":3: [bootp] pool_start appears twice (first at line 2)"),
    ("bad-dns.ini", ":3: [bootp] dns: '8.8.4' is not an IPv4 address"),
    ("daemon-group-without-user.ini", ":2: [daemon] group: group without user: name the user too"),
    ("daemon-empty-user.ini", ":5: [daemon] user: empty: name an account, or remove the key"),
    ("bad-timeout.ini", ":2: [tftp] timeout: -1 seconds is out of range (0, 3600]"),
    ("logger-file-missing.ini", ": [logger] file: type = file needs a file = PATH"),
    ("bad-logger-type.ini", ":2: [logger] type: 'journald' is not a logger type (stderr, stdout, file, syslog, none)"),
    ("indented-key.ini", ":2: [bootp] pool_start: '127.0.0.10\\npool_count = 5' is not an IPv4 address: an indented line continues the value above it; unindent it"),
    ("bad-notify.ini", ":3: [bootp] notify: '127.0.0.1' is not an ip:port target"),
    ("tftp-https-root.ini", ":3: [tftp] root: 'https://mirror.example/boot': https:// is not supported (this build has no TLS): use an http:// URL or a local directory"),
    ("http-https-location.ini", ":5: [http] location: 'https://acl.example:8443': https:// is not supported (this build has no TLS): use an http:// URL"),
    ("bad-arch.ini", ":5: [bootfile] efi64: not an architecture: use 'default' or a number such as 00000 (BIOS) or 00007 (EFI x86-64)"),
];

#[test]
fn bad_configs_name_file_section_key() {
    let mut seen = std::collections::BTreeSet::new();
    for (name, msg) in BAD {
        let p = fixture(&format!("bad/{name}"));
        let e = Config::load(&p).expect_err(name);
        assert_eq!(e.to_string(), format!("{}{msg}", p.display()), "{name}");
        seen.insert(*name);
    }
    // Every bad fixture has an expected message.
    for e in std::fs::read_dir(fixture("bad")).unwrap() {
        let n = e.unwrap().file_name().into_string().unwrap();
        assert!(
            seen.contains(n.as_str()),
            "bad/{n} has no expected message in BAD"
        );
    }
    assert!(BAD.len() >= 10);
}

#[test]
fn bad_configs_exit_1_through_the_binary() {
    for (name, msg) in BAD {
        let p = fixture(&format!("bad/{name}"));
        for extra in [&["--check"][..], &[][..]] {
            let out = Command::new(common::pybootd_bin())
                .args(extra)
                .arg("-c")
                .arg(&p)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{name} {extra:?}: {err}");
            assert_eq!(err, format!("Error: {}{msg}\n", p.display()), "{name}");
            assert!(out.stdout.is_empty(), "{name}: nothing on stdout");
        }
    }
}

#[test]
fn missing_file_is_one_line() {
    let out = Command::new(common::pybootd_bin())
        .args(["--check", "-c", "/nonexistent/pybootd.ini"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: /nonexistent/pybootd.ini: cannot read: No such file or directory (os error 2)\n"
    );
}

/// Mutated fixtures never panic the parser or validator: every outcome is
/// a Config or a ConfigError with a message (deterministic, no I/O).
#[test]
fn mutations_never_panic() {
    let mut texts = Vec::new();
    for dir in ["good", "bad"] {
        for e in std::fs::read_dir(fixture(dir)).unwrap() {
            texts.push(std::fs::read(e.unwrap().path()).unwrap());
        }
    }
    let alphabet = b"[]=:;#\n\r\t -/0123456789abcdefABCDEF.%{}\\\"'\xc3\xa9\xff";
    let mut x: u64 = 0x2545f4914f6cdd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut ok, mut err) = (0, 0);
    for round in 0..20000 {
        let mut t = texts[round % texts.len()].clone();
        for _ in 0..1 + round % 4 {
            let r = next();
            let pos = (r as usize) % (t.len() + 1);
            let c = alphabet[(r >> 40) as usize % alphabet.len()];
            match r % 3 {
                0 if pos < t.len() => t[pos] = c,
                1 if pos < t.len() => {
                    t.remove(pos);
                }
                _ => t.insert(pos, c),
            }
        }
        let text = String::from_utf8_lossy(&t);
        match Config::parse(&text, Path::new("m.ini")) {
            Ok(_) => ok += 1,
            Err(e) => {
                let m = e.to_string();
                assert!(m.starts_with("m.ini") && m.len() > 10, "{m}");
                err += 1;
            }
        }
    }
    assert!(ok > 0 && err > 0, "ok {ok} err {err}");
}

/// The HTTP ACL's wait: upstream's `[bootp] timeout` is honoured, and
/// `[http] timeout` wins when both are given; neither: 5 s.
#[test]
fn http_acl_timeout_from_bootp_or_http() {
    let parse = |bootp: &str, http: &str| {
        let text = format!(
            "[bootp]\npool_start = 10.0.0.10\naccess = http\n{bootp}\n[http]\nlocation = 127.0.0.1:8000\n{http}\n"
        );
        Config::parse(&text, Path::new("t.ini"))
            .unwrap()
            .http_acl
            .unwrap()
            .timeout
    };
    assert_eq!(parse("", ""), Duration::from_secs(5));
    assert_eq!(parse("timeout = 2", ""), Duration::from_secs(2));
    assert_eq!(parse("timeout = 2", "timeout = 7"), Duration::from_secs(7));
    assert_eq!(parse("", "timeout = 1.5"), Duration::from_millis(1500));
}
