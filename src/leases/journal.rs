//! The JSON-lines journal, the first [`LeaseStore`]: one record a line,
//! appended and fdatasynced per batch, compacted at load and when it has
//! grown well past the live table (temp file, fsync, rename, fsync of the
//! directory: a crash leaves the old file or the new one; the old one is
//! kept as `<file>.bak`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{Lease, LeaseState, LeaseStore, LeaseTable, Loaded, Record};
use crate::logging::Untrusted;
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
    /// else: a torn line, garbage, or two records glued together by a
    /// write cut short (the line must be exactly one record, as written).
    pub fn from_json(line: &str) -> Option<Record> {
        let line = line.trim();
        let record = Record::fields(line)?;
        (record.to_json() == line).then_some(record)
    }

    /// The values of the fields `to_json` writes, wherever they are in
    /// `line` (lenient: [`Record::from_json`] checks the whole line).
    fn fields(line: &str) -> Option<Record> {
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

/// Unreadable lines warned about one by one at load; past this, a count.
const WARN_LINES: usize = 10;

/// What [`Journal::replay`] found besides the records.
#[derive(Default)]
struct Scan {
    loaded: Loaded,
    /// Bytes up to the end of the last complete line (what is kept when
    /// the file is appended to as it is).
    complete: u64,
    /// Unreadable complete lines (a torn last line excepted), and the
    /// first few as (line number, text).
    bad: usize,
    first_bad: Vec<(usize, String)>,
}

/// The append-only journal file.
pub struct Journal {
    path: PathBuf,
    /// Open for appending once [`LeaseStore::load`] has run.
    file: Option<File>,
    /// The file's length after the last durable append: a failed write is
    /// cut back to it, so no partial line is left for the next to glue to.
    good_len: u64,
    /// A cut back failed: retried before the next append.
    dirty: bool,
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
            good_len: 0,
            dirty: false,
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

    /// `<file>` with `suffix` appended to its name.
    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    }

    fn tmp_path(&self) -> PathBuf {
        self.path.with_extension("jsonl.tmp")
    }

    /// Applies every readable line of the file (if any) to `table`.
    /// Bytes, not text: a crash may leave any garbage at the end. A last
    /// line without its newline is a write torn by a crash (never ACKed:
    /// the ACKs wait for the whole batch to be synced): skipped, counted.
    fn replay(&self, table: &mut LeaseTable) -> io::Result<Scan> {
        let mut scan = Scan::default();
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(scan),
            Err(e) => return Err(self.err(e, "cannot read")),
        };
        scan.complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) as u64;
        let pieces: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        for (i, piece) in pieces.iter().enumerate() {
            let line = String::from_utf8_lossy(piece);
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            let complete = i + 1 < pieces.len();
            match Record::from_json(text).filter(|_| complete) {
                Some(r) => {
                    table.apply(&r);
                    scan.loaded.records += 1;
                }
                None => scan.unreadable(i + 1, text, complete),
            }
        }
        Ok(scan)
    }

    /// Refuses a file that is not a lease journal: unreadable lines (a
    /// torn last line excepted) at least as many as the records, so that a
    /// `lease_file` naming some other file is not compacted to nothing.
    /// Otherwise warns about each unreadable line (the first few).
    fn judge(&self, scan: &Scan) -> io::Result<()> {
        let file = self.path.display();
        if scan.bad > 0 && scan.bad >= scan.loaded.records {
            let (n, text) = &scan.first_bad[0];
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "lease file {file} is not a lease journal ({} unreadable lines, {} records; \
                     line {n}: {}): left as it is; point lease_file at a journal or remove the file",
                    scan.bad,
                    scan.loaded.records,
                    Untrusted(text)
                ),
            ));
        }
        for (n, text) in &scan.first_bad {
            tracing::warn!(%file, line = n, text = %Untrusted(text), "unreadable lease record skipped");
        }
        if scan.bad > scan.first_bad.len() {
            let more = scan.bad - scan.first_bad.len();
            tracing::warn!(%file, more, "more unreadable lease records skipped");
        }
        Ok(())
    }

    /// Writes `records` to a fresh temp file, fsyncs it, keeps the journal
    /// as `<file>.bak`, renames the temp file over the journal, fsyncs the
    /// directory, and opens the result for appending (with its length).
    fn write_compacted(&self, records: &[Record]) -> io::Result<(File, u64)> {
        let tmp = self.tmp_path();
        let text = lines(records);
        let written = create_new(&tmp).and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
        if let Err(e) = written {
            // A full disk: the partial copy would only take more space.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        self.backup();
        if let Err(e) = std::fs::rename(&tmp, &self.path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        if let Ok(d) = File::open(self.dir()) {
            let _ = d.sync_all();
        }
        let file = OpenOptions::new().append(true).open(&self.path)?;
        Ok((file, text.len() as u64))
    }

    /// Keeps the journal about to be replaced as `<file>.bak`: a hard
    /// link, which takes no space (a nearly full disk still compacts).
    fn backup(&self) {
        let bak = self.sibling(".bak");
        match std::fs::remove_file(&bak) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return tracing::warn!(file = %bak.display(), "no journal backup: {e}"),
        }
        match std::fs::hard_link(&self.path, &bak) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = %bak.display(), "no journal backup: {e}"),
        }
    }

    /// The journal as it is, for appending (when no compacted copy can be
    /// written): a torn last line is cut off first, else the next record
    /// would be glued to it.
    fn reopen(&self, complete: u64) -> io::Result<(File, u64)> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)?;
        if file.metadata()?.len() > complete {
            file.set_len(complete)?;
            file.sync_data()?;
        }
        Ok((file, complete))
    }
}

impl Scan {
    fn unreadable(&mut self, number: usize, text: &str, complete: bool) {
        self.loaded.skipped += 1;
        // A crash tears the last line of a record, which starts as one.
        if !complete && text.starts_with('{') {
            return;
        }
        self.bad += 1;
        if self.first_bad.len() < WARN_LINES {
            self.first_bad.push((number, text.to_string()));
        }
    }
}

/// A new file at `path`, never through a symlink or over an existing file
/// (`O_EXCL|O_NOFOLLOW`); a stale one (a crash mid-compaction) is removed
/// first: unlink removes a symlink itself, not what it points at.
fn create_new(path: &Path) -> io::Result<File> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
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
    /// it for appending. Unreadable lines are skipped, counted and warned
    /// about; a file that is mostly unreadable is refused, untouched. When
    /// no compacted copy can be written (a full disk), the journal is
    /// appended to as it is.
    fn load(&mut self, table: &mut LeaseTable, now: u64) -> io::Result<Loaded> {
        std::fs::create_dir_all(self.dir())
            .map_err(|e| self.err(e, "cannot create its directory"))?;
        let scan = self.replay(table)?;
        self.judge(&scan)?;
        let snapshot = table.snapshot(now);
        let (file, len) = match self.write_compacted(&snapshot) {
            Ok(done) => done,
            Err(e) => {
                let file = self.path.display();
                tracing::warn!(%file, "cannot write the compacted copy: {e}; appending to the journal as it is");
                self.reopen(scan.complete)
                    .map_err(|e| self.err(e, "cannot open for appending"))?
            }
        };
        self.file = Some(file);
        self.good_len = len;
        self.dirty = false;
        self.appended = 0;
        self.compacted = snapshot.len();
        Ok(scan.loaded)
    }

    /// One write, one fdatasync for the whole batch (group commit). A
    /// failed one (ENOSPC, EIO) is cut back to the last durable length.
    fn append(&mut self, records: &[Record]) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("the lease journal was not loaded"));
        };
        if self.dirty {
            file.set_len(self.good_len)?;
            self.dirty = false;
        }
        let text = lines(records);
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            self.dirty = file.set_len(self.good_len).is_err();
            return Err(e);
        }
        self.good_len += text.len() as u64;
        self.appended += records.len();
        Ok(())
    }

    fn wants_compaction(&self) -> bool {
        self.appended > 10_000 && self.appended > 4 * self.compacted
    }

    fn compact(&mut self, snapshot: &[Record]) -> io::Result<()> {
        let (file, len) = self.write_compacted(snapshot)?;
        self.file = Some(file);
        self.good_len = len;
        self.dirty = false;
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

    /// A write cut short by ENOSPC leaves part of a line; the next record
    /// is glued to it. Such a line, or any line with more or less than one
    /// record, is not read as the first record's values.
    #[test]
    fn glued_and_garbage_lines_are_not_records() {
        let rec = |m: u8, i: u8| {
            Record::Lease(Lease {
                mac: mac(m),
                ip: ip(i),
                expires: 42,
                state: LeaseState::Bound,
            })
            .to_json()
        };
        let (a, b) = (rec(1, 10), rec(2, 11));
        let cut = &a[..a.find("\"expires").unwrap()];
        for bad in [
            format!("{cut}{b}"),
            format!("{a}{b}"),
            format!("{a} x"),
            format!("{a},{{}}"),
            a.replace("}", ",\"more\":1}"),
            a.replacen("{", "{\"junk\":\"\",", 1),
        ] {
            assert_eq!(Record::from_json(&bad), None, "{bad}");
        }
        assert!(
            Record::from_json(&format!("  {a}\r")).is_some(),
            "whitespace"
        );
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
