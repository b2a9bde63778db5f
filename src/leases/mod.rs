//! Leases: the pure [`LeaseTable`] (`table.rs`), the [`Leases`] handle
//! every service shares, and where leases are kept between runs, behind
//! [`LeaseStore`] (the JSON-lines [`Journal`] is the first store).
//!
//! Lock order: the DHCP server takes its engine lock, then this handle's;
//! nothing takes them the other way round.

mod journal;
mod table;

use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::BootpConfig;
use crate::wire::MacAddr;

pub use journal::Journal;
pub use table::{
    AllocError, BindError, Lease, LeaseState, LeaseTable, Record, MAX_FILES, OFFER_HOLD_SECS,
};

/// Seconds since the epoch: the leases' clock (decisions take it as an
/// argument; only the loops read it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The lease table shared by DHCP (which changes it), `[httpd] check_ip`
/// and TFTP's `{client_file}` (which read it). Clones share one table.
///
/// Every method locks a `std::sync::Mutex` for a few map lookups and
/// returns: the guard never lives across an `.await` (the closures of
/// [`Leases::with`] are synchronous, so it cannot).
#[derive(Clone)]
pub struct Leases {
    table: Arc<Mutex<LeaseTable>>,
}

impl Leases {
    pub fn new(table: LeaseTable) -> Leases {
        Leases {
            table: Arc::new(Mutex::new(table)),
        }
    }

    /// A poisoned lock still holds a consistent table (every change is one
    /// map update), so it is used as is.
    fn lock(&self) -> MutexGuard<'_, LeaseTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the table under the lock (the DHCP engine's access).
    pub fn with<R>(&self, f: impl FnOnce(&mut LeaseTable) -> R) -> R {
        f(&mut self.lock())
    }

    /// Whether `ip` is bound to some client at `now` (an ACKed lease that
    /// has not expired): `[httpd] check_ip`.
    pub fn holds(&self, ip: Ipv4Addr, now: u64) -> bool {
        self.lock().holds(ip, now)
    }

    /// The HTTP ACL's `File:` of the client holding `ip` now: TFTP's
    /// `{client_file}`.
    pub fn client_file(&self, ip: Ipv4Addr) -> Option<String> {
        self.lock().client_file(ip).map(str::to_string)
    }

    /// The live state as records (what a compaction writes).
    pub fn snapshot(&self, now: u64) -> Vec<Record> {
        self.lock().snapshot(now)
    }
}

/// What [`LeaseStore::load`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Records applied to the table.
    pub records: usize,
    /// Unreadable entries skipped (a torn write at a crash).
    pub skipped: usize,
}

/// Where leases are kept between runs. Called from one thread (the DHCP
/// server's store thread), in order; blocking is expected.
pub trait LeaseStore: Send {
    /// What and where, for the log (`lease file /var/lib/...`).
    fn describe(&self) -> String;
    /// Reads every stored record into `table` and makes the store ready to
    /// append. Called once, before any other method.
    fn load(&mut self, table: &mut LeaseTable, now: u64) -> io::Result<Loaded>;
    /// Stores `records`, in order; when this returns `Ok` they survive a
    /// crash (the DHCP server sends the ACKs only then). One call per
    /// batch: the cost of durability is shared by the batch.
    fn append(&mut self, records: &[Record]) -> io::Result<()>;
    /// Whether the store has grown enough to be worth a [`compact`].
    ///
    /// [`compact`]: LeaseStore::compact
    fn wants_compaction(&self) -> bool;
    /// Replaces the stored state with `snapshot` (the live table, which
    /// holds everything appended so far), atomically.
    fn compact(&mut self, snapshot: &[Record]) -> io::Result<()>;
}

/// The lease table `[bootp]` and `[static_dhcp]` describe (the server's
/// own address excluded), loaded from its store: the journal when
/// `lease_file` is set, else nothing (memory only).
pub fn open(
    bootp: &BootpConfig,
    statics: &[(MacAddr, Ipv4Addr)],
    server_ip: Ipv4Addr,
    now: u64,
) -> io::Result<(Leases, Option<Box<dyn LeaseStore>>)> {
    let mut table = LeaseTable::new(bootp.pool_start, bootp.pool_count, statics, vec![server_ip]);
    let store: Option<Box<dyn LeaseStore>> = match &bootp.lease_file {
        Some(path) => {
            let mut j = Journal::new(path);
            let loaded = j.load(&mut table, now)?;
            tracing::info!(
                file = %path.display(),
                records = loaded.records,
                torn = loaded.skipped,
                leases = table.leases().count(),
                "lease journal loaded and compacted"
            );
            Some(Box::new(j))
        }
        None => {
            tracing::info!("leases kept in memory only (lease_file = none)");
            None
        }
    };
    Ok((Leases::new(table), store))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }
    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }

    #[test]
    fn clones_share_one_table_and_answer_holds() {
        let leases = Leases::new(LeaseTable::new(ip(10), 5, &[], vec![]));
        let reader = leases.clone();
        assert!(!reader.holds(ip(10), 0));
        // An offer is not a lease: check_ip still says no.
        leases.with(|t| t.offer(mac(1), None, 0)).unwrap();
        assert!(!reader.holds(ip(10), 0));
        leases.with(|t| t.bind(mac(1), ip(10), 100, 0)).unwrap();
        assert!(reader.holds(ip(10), 99));
        assert!(!reader.holds(ip(10), 100), "expired");
        assert!(!reader.holds(ip(11), 0));
        leases.with(|t| t.release(mac(1), ip(10), 50));
        assert!(!reader.holds(ip(10), 50), "released");
        assert_eq!(reader.snapshot(50).len(), 1);
    }

    #[test]
    fn client_file_follows_the_address_holder() {
        let leases = Leases::new(LeaseTable::new(ip(10), 1, &[], vec![]));
        leases.with(|t| {
            t.set_client_file(mac(1), "a.cfg".into());
            t.bind(mac(1), ip(10), 100, 0).unwrap();
        });
        let reader = leases.clone();
        assert_eq!(reader.client_file(ip(10)).as_deref(), Some("a.cfg"));
        assert_eq!(reader.client_file(ip(11)), None);
        // Released, then taken by a MAC the ACL named no file for: the
        // previous holder's file must not follow the address.
        leases.with(|t| {
            t.release(mac(1), ip(10), 10);
            t.bind(mac(2), ip(10), 100, 20).unwrap();
        });
        assert_eq!(reader.client_file(ip(10)), None);
        // The first MAC's file is still its own, wherever it goes next.
        leases.with(|t| t.set_client_file(mac(2), "b.cfg".into()));
        assert_eq!(reader.client_file(ip(10)).as_deref(), Some("b.cfg"));
    }

    #[test]
    fn open_loads_the_journal_named_by_lease_file() {
        let dir = std::env::temp_dir().join(format!("pybootd-open-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("leases.jsonl");
        let ini = format!(
            "[bootp]\npool_start = 10.0.0.10\npool_count = 5\nlease_file = {}\n",
            path.display()
        );
        let config = crate::config::Config::parse(&ini, std::path::Path::new("t.ini")).unwrap();
        let b = config.bootp.as_ref().unwrap();
        let (leases, store) = open(b, &[], ip(1), 0).unwrap();
        let mut store = store.expect("lease_file names a journal");
        let lease = leases.with(|t| t.bind(mac(1), ip(12), 100, 0)).unwrap();
        store.append(&[Record::Lease(lease)]).unwrap();
        drop(store);
        let (again, _) = open(b, &[], ip(1), 0).unwrap();
        assert!(again.holds(ip(12), 1), "reloaded from the journal");
        let memory = ini.replace(&path.display().to_string(), "none");
        let config = crate::config::Config::parse(&memory, std::path::Path::new("t.ini")).unwrap();
        let (_, none) = open(config.bootp.as_ref().unwrap(), &[], ip(1), 0).unwrap();
        assert!(none.is_none(), "lease_file = none: memory only");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
