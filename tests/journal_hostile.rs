//! The lease journal against a full disk and a hostile or mistaken
//! `lease_file` (issue 12, items 4 and 10): a write cut short by ENOSPC is
//! cut back (after a restart exactly the ACKed leases are bound); a nearly
//! full disk still starts; a file that is not a journal is refused and left
//! as it is; the previous journal is kept as `<file>.bak`; a symlink at the
//! temp path is not followed; a corrupt middle record is warned about with
//! its line number. The full disks are small tmpfs mounts made here (root).

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{pybootd_bin, require_root, sh, Daemon, Scratch};
use pybootd::leases::{Journal, LeaseState, LeaseStore, LeaseTable, Record};
use pybootd::wire::MacAddr;

fn mac(n: u32) -> MacAddr {
    let b = n.to_be_bytes();
    MacAddr([2, 0, b[0], b[1], b[2], b[3]])
}

fn ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + 10 + n)
}

fn table() -> LeaseTable {
    LeaseTable::new(ip(0), 1000, &[], vec![])
}

/// Binds MAC `n` to address `n` in `t`: the record the DHCP server stores.
fn bind(t: &mut LeaseTable, n: u32) -> Record {
    Record::Lease(t.bind(mac(n), ip(n), 1_000_000, 0).unwrap())
}

/// The (MAC, address) pairs bound after loading the journal at `path`.
fn reload(path: &Path) -> BTreeSet<(MacAddr, Ipv4Addr)> {
    let mut t = table();
    Journal::new(path).load(&mut t, 0).unwrap();
    t.leases()
        .filter(|l| l.state == LeaseState::Bound)
        .map(|l| (l.mac, l.ip))
        .collect()
}

/// A 64 KiB tmpfs on a scratch directory, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
    _dir: Scratch,
}

impl Tmpfs {
    fn new(tag: &str) -> Tmpfs {
        let dir = Scratch::new(tag);
        let path = dir.path.join("fs");
        std::fs::create_dir(&path).unwrap();
        sh(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&path));
        Tmpfs { path, _dir: dir }
    }

    /// Fills the file system with a file (bounded: 64 KiB); returns it.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        for _ in 0..64 {
            if let Err(e) = f.write_all(&[0u8; 4096]) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                return filler;
            }
        }
        panic!("64 KiB tmpfs not full after 256 KiB");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[test]
fn an_append_cut_short_by_enospc_leaves_exactly_the_acked_leases() {
    if !require_root("an_append_cut_short_by_enospc_leaves_exactly_the_acked_leases") {
        return;
    }
    let fs = Tmpfs::new("jenospc");
    let path = fs.path.join("leases.jsonl");
    let mut t = table();
    let mut j = Journal::new(&path);
    j.load(&mut t, 0).unwrap();
    let a = bind(&mut t, 1);
    j.append(std::slice::from_ref(&a)).unwrap();
    // The disk fills; a batch of ~15 KB gets part way into the journal's
    // page and fails: none of it is ACKed.
    let filler = fs.fill();
    let batch: Vec<Record> = (2..200).map(|n| bind(&mut t, n)).collect();
    let e = j.append(&batch).expect_err("the disk is full");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    // Space comes back; the next batch is stored and ACKed.
    std::fs::remove_file(filler).unwrap();
    j.append(&[bind(&mut t, 500)]).unwrap();
    drop(j);
    let text = std::fs::read_to_string(&path).unwrap();
    let want = BTreeSet::from([(mac(1), ip(1)), (mac(500), ip(500))]);
    assert_eq!(reload(&path), want, "journal:\n{text}");
}

#[test]
fn a_nearly_full_disk_still_starts_and_appends() {
    if !require_root("a_nearly_full_disk_still_starts_and_appends") {
        return;
    }
    let fs = Tmpfs::new("jfull");
    let path = fs.path.join("leases.jsonl");
    let mut t = table();
    let mut j = Journal::new(&path);
    j.load(&mut t, 0).unwrap();
    j.append(&[bind(&mut t, 1), bind(&mut t, 2)]).unwrap();
    drop(j);
    // A crash tore the last line; then the disk filled.
    let torn = b"{\"mac\":\"02-00-00-00-00-03\",\"ip\":\"10.0.0.1";
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(torn).unwrap();
    drop(f);
    let filler = fs.fill();
    // No room for a compacted copy: the journal is used as it is.
    let mut t = table();
    let mut j = Journal::new(&path);
    let loaded = j.load(&mut t, 0).expect("starts on a full disk");
    assert_eq!((loaded.records, loaded.skipped), (2, 1));
    let tmp = path.with_extension("jsonl.tmp");
    assert!(!tmp.exists(), "the partial copy is removed");
    j.append(&[bind(&mut t, 3)]).unwrap();
    drop(j);
    std::fs::remove_file(filler).unwrap();
    let want: BTreeSet<_> = [1, 2, 3].map(|n| (mac(n), ip(n))).into();
    assert_eq!(reload(&path), want);
}

/// A file with no lease record in it (a copy of /etc/services, say).
fn not_a_journal() -> Vec<u8> {
    std::fs::read("/etc/services").unwrap_or_else(|_| {
        b"# Network services\ntcpmux\t\t1/tcp\necho\t\t7/tcp\necho\t\t7/udp\n\
          ftp\t\t21/tcp\nssh\t\t22/tcp\ntftp\t\t69/udp\nhttp\t\t80/tcp\n"
            .to_vec()
    })
}

#[test]
fn a_file_that_is_not_a_journal_is_refused_and_left_alone() {
    let dir = Scratch::new("jnotj");
    let services = not_a_journal();
    let path = dir.write("services", &services);
    let e = Journal::new(&path)
        .load(&mut table(), 0)
        .expect_err("not a journal");
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("not a lease journal"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), services, "left as it was");
    // Mostly torn lines: refused too; one corrupt line among records: read.
    let mut t = table();
    let recs: Vec<String> = (1..=3).map(|n| bind(&mut t, n).to_json()).collect();
    let mostly = format!("{}\n{}\nx\ny\nz\n", recs[0], recs[1]);
    let path = dir.write("mostly.jsonl", mostly.as_bytes());
    assert!(Journal::new(&path).load(&mut table(), 0).is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), mostly);
    let one = format!("{}\ngarbage\n{}\n{}\n", recs[0], recs[1], recs[2]);
    let path = dir.write("one.jsonl", one.as_bytes());
    let loaded = Journal::new(&path).load(&mut table(), 0).unwrap();
    assert_eq!((loaded.records, loaded.skipped), (3, 1));
}

fn daemon_ini(dir: &Scratch, lease_file: &Path) -> PathBuf {
    let ini = format!(
        "[logger]\nlevel = info\n[bootp]\naddress = 127.0.0.1\nport = 0\n\
         pool_start = 127.1.0.1\npool_count = 100\nallow_simple_dhcp = yes\n\
         lease_file = {}\n",
        lease_file.display()
    );
    dir.write("pybootd.ini", ini.as_bytes())
}

#[test]
fn the_daemon_refuses_to_start_on_a_file_that_is_not_a_journal() {
    let dir = Scratch::new("jnotjd");
    let services = not_a_journal();
    let path = dir.write("services", &services);
    let mut cmd = Command::new(pybootd_bin());
    cmd.args(["-p", "-c"]).arg(daemon_ini(&dir, &path));
    let mut d = Daemon::spawn(cmd, dir.path.join("daemon.log"));
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = d.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "still running:\n{}", d.log_text());
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = d.log_text();
    assert!(!status.success(), "{log}");
    assert!(log.contains("not a lease journal"), "{log}");
    assert!(log.contains(&path.display().to_string()), "{log}");
    assert_eq!(std::fs::read(&path).unwrap(), services, "left as it was");
}

#[test]
fn a_corrupt_middle_record_is_warned_about_with_its_line_number() {
    let dir = Scratch::new("jwarn");
    let mut t = table();
    let (a, b) = (bind(&mut t, 1).to_json(), bind(&mut t, 2).to_json());
    let path = dir.write("leases.jsonl", format!("{a}\n{a}x\n{b}\n").as_bytes());
    let mut cmd = Command::new(pybootd_bin());
    cmd.args(["-p", "-c"]).arg(daemon_ini(&dir, &path));
    let mut d = Daemon::spawn(cmd, dir.path.join("daemon.log"));
    d.wait_log("lease journal loaded", Duration::from_secs(10));
    let log = d.log_text();
    let warn = log
        .lines()
        .find(|l| l.contains("unreadable lease record skipped"))
        .unwrap_or_else(|| panic!("no warning:\n{log}"));
    assert!(warn.contains("WARN") && warn.contains("line=2"), "{warn}");
}

#[test]
fn the_previous_journal_is_kept_as_bak() {
    let dir = Scratch::new("jbak");
    let path = dir.path.join("leases.jsonl");
    let mut t = table();
    let mut j = Journal::new(&path);
    j.load(&mut t, 0).unwrap();
    j.append(&[bind(&mut t, 1)]).unwrap();
    j.append(&[bind(&mut t, 2)]).unwrap();
    drop(j);
    let before = std::fs::read(&path).unwrap();
    assert_eq!(reload(&path).len(), 2);
    let bak = dir.path.join("leases.jsonl.bak");
    assert_eq!(std::fs::read(&bak).ok(), Some(before));
}

#[test]
fn a_symlink_planted_at_the_temp_path_is_not_followed() {
    let dir = Scratch::new("jsymlink");
    let victim = dir.write("victim.txt", b"precious\n");
    let path = dir.path.join("leases.jsonl");
    let mut t = table();
    let mut j = Journal::new(&path);
    j.load(&mut t, 0).unwrap();
    j.append(&[bind(&mut t, 1)]).unwrap();
    drop(j);
    let tmp = path.with_extension("jsonl.tmp");
    std::os::unix::fs::symlink(&victim, &tmp).unwrap();
    assert_eq!(reload(&path), BTreeSet::from([(mac(1), ip(1))]));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_file(), "the journal is a plain file");
    assert!(std::fs::symlink_metadata(&tmp).is_err(), "no temp left");
}
