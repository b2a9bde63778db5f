//! The JSON-lines journal, the first [`LeaseStore`]: one record a line,
//! appended and fdatasynced per batch, compacted at load and when it has
//! grown well past the live table (temp file, fsync, rename, fsync of the
//! directory: a crash leaves the old file or the new one).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::{Lease, LeaseState, LeaseStore, LeaseTable, Loaded, Record};
use crate::wire::MacAddr;

impl Record {
    /// One JSON object, no newline.
    pub fn to_json(&self) -> String {
        match self {
            Record::Lease(l) => format!(
                "{{\"mac\":\"{}\",\"ip\":\"{}\",\"expires\":{},\"state\":\"{}\"}}",
                l.mac,
                l.ip,
                l.expires,
                match l.state {
                    LeaseState::Bound => "bound",
                    LeaseState::Released => "released",
                    LeaseState::Offered => "offered",
                }
            ),
            Record::Declined { ip, expires } => {
                format!("{{\"ip\":\"{ip}\",\"expires\":{expires},\"state\":\"declined\"}}")
            }
        }
    }

    /// Reads one line written by [`Record::to_json`]; `None` for anything
    /// else (a torn last line after a crash, say).
    pub fn from_json(line: &str) -> Option<Record> {
        let line = line.trim();
        if !line.starts_with('{') || !line.ends_with('}') {
            return None;
        }
        let field = |name: &str| -> Option<&str> {
            let key = format!("\"{name}\":");
            let at = line.find(&key)? + key.len();
            let rest = &line[at..];
            if let Some(r) = rest.strip_prefix('"') {
                r.split('"').next()
            } else {
                rest.split([',', '}']).next().map(str::trim)
            }
        };
        let ip: Ipv4Addr = field("ip")?.parse().ok()?;
        let expires: u64 = field("expires")?.parse().ok()?;
        let state = match field("state")? {
            "declined" => return Some(Record::Declined { ip, expires }),
            "bound" => LeaseState::Bound,
            "released" => LeaseState::Released,
            _ => return None,
        };
        let mac: MacAddr = field("mac")?.parse().ok()?;
        Some(Record::Lease(Lease {
            mac,
            ip,
            expires,
            state,
        }))
    }
}

/// The append-only journal file.
pub struct Journal {
    path: PathBuf,
    /// Open for appending once [`LeaseStore::load`] has run.
    file: Option<File>,
    /// Records written since the last compaction, and how many the
    /// compacted copy held: past 4x (and 10,000), it is compacted again.
    appended: usize,
    compacted: usize,
}

impl Journal {
    /// A journal at `path`; nothing is read or written until `load`.
    pub fn new(path: &Path) -> Journal {
        Journal {
            path: path.to_path_buf(),
            file: None,
            appended: 0,
            compacted: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: io::Error, what: &str) -> io::Error {
        let path = self.path.display();
        io::Error::new(e.kind(), format!("lease file {path}: {what}: {e}"))
    }

    fn dir(&self) -> &Path {
        self.path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    /// Applies every readable line of the file (if any) to `table`.
    /// Bytes, not text: a crash may leave any garbage at the end.
    fn replay(&self, table: &mut LeaseTable) -> io::Result<Loaded> {
        let mut loaded = Loaded::default();
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(loaded),
            Err(e) => return Err(self.err(e, "cannot read")),
        };
        for line in bytes.split(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(line);
            if line.trim().is_empty() {
                continue;
            }
            match Record::from_json(&line) {
                Some(r) => {
                    table.apply(&r);
                    loaded.records += 1;
                }
                None => loaded.skipped += 1,
            }
        }
        Ok(loaded)
    }

    /// Writes `records` to a temp file, fsyncs it, renames it over the
    /// journal, fsyncs the directory, and opens the result for appending.
    fn write_compacted(&self, records: &[Record]) -> io::Result<File> {
        let tmp = self.path.with_extension("jsonl.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(lines(records).as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Ok(d) = File::open(self.dir()) {
            let _ = d.sync_all();
        }
        OpenOptions::new().append(true).open(&self.path)
    }
}

/// Records as JSON lines, each ended by a newline.
fn lines(records: &[Record]) -> String {
    let mut text = String::with_capacity(records.len() * 96);
    for r in records {
        text.push_str(&r.to_json());
        text.push('\n');
    }
    text
}

impl LeaseStore for Journal {
    fn describe(&self) -> String {
        format!("lease file {}", self.path.display())
    }

    /// Reads the file into `table`, then rewrites it compacted and opens
    /// it for appending. Unreadable lines (a torn write at a crash) are
    /// skipped and counted.
    fn load(&mut self, table: &mut LeaseTable, now: u64) -> io::Result<Loaded> {
        std::fs::create_dir_all(self.dir())
            .map_err(|e| self.err(e, "cannot create its directory"))?;
        let loaded = self.replay(table)?;
        let snapshot = table.snapshot(now);
        let file = self
            .write_compacted(&snapshot)
            .map_err(|e| self.err(e, "cannot write the compacted copy"))?;
        self.file = Some(file);
        self.appended = 0;
        self.compacted = snapshot.len();
        Ok(loaded)
    }

    /// One write, one fdatasync for the whole batch (group commit).
    fn append(&mut self, records: &[Record]) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("the lease journal was not loaded"));
        };
        file.write_all(lines(records).as_bytes())?;
        file.sync_data()?;
        self.appended += records.len();
        Ok(())
    }

    fn wants_compaction(&self) -> bool {
        self.appended > 10_000 && self.appended > 4 * self.compacted
    }

    fn compact(&mut self, snapshot: &[Record]) -> io::Result<()> {
        self.file = Some(self.write_compacted(snapshot)?);
        self.appended = 0;
        self.compacted = snapshot.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_lines_skip() {
        let r = Record::Lease(Lease {
            mac: mac(1),
            ip: ip(10),
            expires: 42,
            state: LeaseState::Bound,
        });
        assert_eq!(Record::from_json(&r.to_json()), Some(r.clone()));
        let d = Record::Declined {
            ip: ip(3),
            expires: 7,
        };
        assert_eq!(Record::from_json(&d.to_json()), Some(d));
        let j = r.to_json();
        assert_eq!(Record::from_json(&j[..j.len() - 3]), None);
    }

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }
    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }

    /// A scratch directory removed on drop.
    struct Dir(PathBuf);
    impl Dir {
        fn new(tag: &str) -> Dir {
            let d = std::env::temp_dir().join(format!("pybootd-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            Dir(d)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Through the trait, as the DHCP server sees it.
    fn store(path: &Path) -> Box<dyn LeaseStore> {
        Box::new(Journal::new(path))
    }

    #[test]
    fn journal_compacts_and_replays() {
        let dir = Dir::new("leases");
        let path = dir.0.join("l.jsonl");
        let mut t = LeaseTable::new(ip(10), 5, &[], vec![]);
        let mut j = store(&path);
        assert!(j.append(&[]).is_err(), "not loaded yet");
        assert_eq!(j.load(&mut t, 0).unwrap(), Loaded::default());
        let a = t.bind(mac(1), ip(10), 100, 0).unwrap();
        let b = t.bind(mac(1), ip(11), 100, 0).unwrap();
        let c = t.bind(mac(2), ip(12), 100, 0).unwrap();
        let recs: Vec<Record> = [a, b, c].iter().map(|l| Record::Lease(*l)).collect();
        j.append(&recs).unwrap();
        // A torn line at the end, as after kill -9 mid-write.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"mac\":\"02-00")
            .unwrap();
        drop(j);
        let mut t2 = LeaseTable::new(ip(10), 5, &[], vec![]);
        let loaded = store(&path).load(&mut t2, 0).unwrap();
        assert_eq!(
            loaded,
            Loaded {
                records: 3,
                skipped: 1
            }
        );
        assert_eq!(t2.get(&mac(1)).unwrap().ip, ip(11));
        assert_eq!(t2.get(&mac(2)).unwrap().ip, ip(12));
        assert_eq!(t2.owner(ip(10)), None);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "compacted: {text}");
    }

    #[test]
    fn journal_compacts_at_run_time_when_it_grows() {
        let dir = Dir::new("leases-rt");
        let path = dir.0.join("l.jsonl");
        let mut t = LeaseTable::new(ip(10), 5, &[], vec![]);
        let mut j = store(&path);
        j.load(&mut t, 0).unwrap();
        assert!(j.describe().contains("l.jsonl"), "{}", j.describe());
        // One client renewing over and over.
        let recs: Vec<Record> = (0..10_001u64)
            .map(|now| Record::Lease(t.bind(mac(1), ip(10), 100, now).unwrap()))
            .collect();
        j.append(&recs).unwrap();
        assert!(j.wants_compaction());
        j.compact(&t.snapshot(10_001)).unwrap();
        assert!(!j.wants_compaction());
        j.append(&[Record::Lease(t.bind(mac(2), ip(11), 100, 5).unwrap())])
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        let mut t2 = LeaseTable::new(ip(10), 5, &[], vec![]);
        store(&path).load(&mut t2, 0).unwrap();
        assert_eq!(t2.get(&mac(1)).unwrap().expires, 10_100);
        assert_eq!(t2.get(&mac(2)).unwrap().ip, ip(11));
    }
}
