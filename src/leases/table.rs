//! The MAC -> IP lease table, pure: time is passed in, nothing is stored
//! here (`LeaseStore` does that).
//!
//! Rules: a MAC keeps its address (sticky, also after RELEASE or expiry);
//! `[static_dhcp]` addresses are reserved for their MAC; pool addresses are
//! handed out in order; when none is left, the longest-expired lease of
//! another MAC is reused, then the oldest offer another MAC has not
//! requested (a burst of made-up MACs cannot hold the pool for an offer's
//! hold time); when none can be, allocation fails (the caller
//! warns and stays silent). Only bound, released and declined states are
//! journaled: an offer is a short in-memory reservation.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::wire::MacAddr;

/// How long an offered address is held for the MAC it was offered to.
pub const OFFER_HOLD_SECS: u64 = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Offered, not yet requested: held for [`OFFER_HOLD_SECS`].
    Offered,
    /// ACKed until `expires`.
    Bound,
    /// Released by the client (or forgotten offer): free to reuse, but
    /// still the MAC's address the next time it asks.
    Released,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    /// Unix seconds.
    pub expires: u64,
    pub state: LeaseState,
}

impl Lease {
    /// Whether another MAC may take this address at `now`.
    fn reusable(&self, now: u64) -> bool {
        self.state == LeaseState::Released || self.expires <= now
    }
}

/// Why no address could be given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// Every pool address is held by a live lease of another MAC.
    PoolExhausted,
}

impl std::fmt::Display for AllocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllocError::PoolExhausted => write!(
                f,
                "no address left: every pool address has a live lease of another MAC"
            ),
        }
    }
}

/// Why `mac` may not hold `ip` (a REQUEST for it is NAKed with this text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindError {
    /// The MAC has a `[static_dhcp]` address, and it is another.
    HasStatic { mac: MacAddr, ip: Ipv4Addr },
    /// `ip` is the `[static_dhcp]` address of another MAC.
    ReservedForOther(Ipv4Addr),
    /// `ip` is outside the pool, or the server's own address.
    NotInPool(Ipv4Addr),
    /// `ip` was declined and the decline has not run out.
    Declined(Ipv4Addr),
    /// A live lease of another MAC holds `ip`.
    LeasedToOther(Ipv4Addr),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::HasStatic { mac, ip } => write!(f, "{mac} has the static address {ip}"),
            BindError::ReservedForOther(ip) => write!(f, "{ip} is reserved for another MAC"),
            BindError::NotInPool(ip) => write!(f, "{ip} is not in the pool"),
            BindError::Declined(ip) => write!(f, "{ip} was declined (in use on the network)"),
            BindError::LeasedToOther(ip) => write!(f, "{ip} is leased to another MAC"),
        }
    }
}

/// One stored change: what the `LeaseStore` keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// `mac` holds `ip` (bound or released) until `expires`.
    Lease(Lease),
    /// `ip` was declined (in use on the network) until `expires`.
    Declined { ip: Ipv4Addr, expires: u64 },
}

/// The most MACs whose `File:` is remembered at once.
pub const MAX_FILES: usize = 1 << 16;

/// The lease table. Pure: every method takes `now` (unix seconds).
#[derive(Clone, Debug)]
pub struct LeaseTable {
    pool_start: u32,
    pool_count: u32,
    /// Never handed out from the pool (the server's own address).
    excluded: Vec<Ipv4Addr>,
    statics: HashMap<MacAddr, Ipv4Addr>,
    static_ips: HashMap<Ipv4Addr, MacAddr>,
    by_mac: HashMap<MacAddr, Lease>,
    by_ip: HashMap<Ipv4Addr, MacAddr>,
    declined: HashMap<Ipv4Addr, u64>,
    /// The HTTP ACL's `File:` per MAC (not stored: asked again after a
    /// restart). Kept by MAC, answered by address, so that an address's
    /// next holder never gets the previous holder's file.
    files: HashMap<MacAddr, String>,
    /// Option 61 of each MAC's last binding (RELEASE/DECLINE must match).
    client_ids: HashMap<MacAddr, Vec<u8>>,
    /// The order offers were made in, per address (seconds are too
    /// coarse to tell the oldest of a burst); at most one per address.
    offer_order: HashMap<Ipv4Addr, u64>,
    offers_made: u64,
    /// Pool offsets below this have been looked at by the linear scan;
    /// addresses past it have never been handed out.
    cursor: u32,
}

impl LeaseTable {
    pub fn new(
        pool_start: Ipv4Addr,
        pool_count: u32,
        statics: &[(MacAddr, Ipv4Addr)],
        excluded: Vec<Ipv4Addr>,
    ) -> LeaseTable {
        LeaseTable {
            pool_start: u32::from(pool_start),
            pool_count,
            excluded,
            statics: statics.iter().copied().collect(),
            static_ips: statics.iter().map(|(m, i)| (*i, *m)).collect(),
            by_mac: HashMap::new(),
            by_ip: HashMap::new(),
            declined: HashMap::new(),
            files: HashMap::new(),
            client_ids: HashMap::new(),
            offer_order: HashMap::new(),
            offers_made: 0,
            cursor: 0,
        }
    }

    pub fn in_pool(&self, ip: Ipv4Addr) -> bool {
        let i = u32::from(ip);
        i >= self.pool_start
            && u64::from(i) < u64::from(self.pool_start) + u64::from(self.pool_count)
    }

    /// Whether `ip` is one this table hands out (pool or `[static_dhcp]`):
    /// the server may then tell a client that it does not hold it.
    pub fn manages(&self, ip: Ipv4Addr) -> bool {
        self.in_pool(ip) || self.static_ips.contains_key(&ip)
    }

    /// Whether the table has any record of `mac` (a lease in any state,
    /// or a `[static_dhcp]` address): RFC 2131 4.3.2's "record of this
    /// client".
    pub fn knows(&self, mac: &MacAddr) -> bool {
        self.by_mac.contains_key(mac) || self.statics.contains_key(mac)
    }

    /// The client identifier (option 61) `mac` was bound with, if any.
    pub fn client_id(&self, mac: &MacAddr) -> Option<&[u8]> {
        self.client_ids.get(mac).map(Vec::as_slice)
    }

    /// Remembers (or forgets) the client identifier `mac` was bound
    /// with. In memory only (asked again after a restart) and bounded
    /// like the `File:` memory.
    pub fn set_client_id(&mut self, mac: MacAddr, id: Option<&[u8]>) {
        match id {
            Some(id) => {
                if self.client_ids.len() >= MAX_FILES && !self.client_ids.contains_key(&mac) {
                    self.client_ids.clear();
                }
                self.client_ids.insert(mac, id.to_vec());
            }
            None => {
                self.client_ids.remove(&mac);
            }
        }
    }

    pub fn static_for(&self, mac: &MacAddr) -> Option<Ipv4Addr> {
        self.statics.get(mac).copied()
    }

    pub fn get(&self, mac: &MacAddr) -> Option<&Lease> {
        self.by_mac.get(mac)
    }

    /// Every lease (any state), for tests and compaction.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.by_mac.values()
    }

    pub fn owner(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.by_ip.get(&ip).copied()
    }

    /// Whether `ip` is bound to some client at `now` (an ACKed lease that
    /// has not expired).
    pub fn holds(&self, ip: Ipv4Addr, now: u64) -> bool {
        self.owner(ip)
            .and_then(|mac| self.get(&mac))
            .is_some_and(|l| l.ip == ip && l.state == LeaseState::Bound && l.expires > now)
    }

    /// The HTTP ACL's `File:` for the client that holds `ip` now (any
    /// state: the TFTP request follows the ACK within seconds).
    pub fn client_file(&self, ip: Ipv4Addr) -> Option<&str> {
        let mac = self.owner(ip)?;
        self.files.get(&mac).map(String::as_str)
    }

    /// Remembers `mac`'s `File:` line. Bounded: past [`MAX_FILES`] MACs
    /// the memory starts over (a flood of MACs must not grow it forever).
    pub fn set_client_file(&mut self, mac: MacAddr, file: String) {
        if self.files.len() >= MAX_FILES && !self.files.contains_key(&mac) {
            self.files.clear();
        }
        self.files.insert(mac, file);
    }

    fn declined_at(&self, ip: Ipv4Addr, now: u64) -> bool {
        self.declined.get(&ip).is_some_and(|&until| until > now)
    }

    /// Whether `mac` may hold `ip` at `now`: its static address, or a
    /// pool address that no live lease of another MAC holds, not declined,
    /// not reserved for another MAC.
    pub fn available_for(&self, mac: &MacAddr, ip: Ipv4Addr, now: u64) -> bool {
        if let Some(s) = self.statics.get(mac) {
            return *s == ip;
        }
        if !self.in_pool(ip) || self.excluded.contains(&ip) || self.static_ips.contains_key(&ip) {
            return false;
        }
        if self.declined_at(ip, now) {
            return false;
        }
        match self.by_ip.get(&ip) {
            None => true,
            Some(m) if m == mac => true,
            Some(m) => self.by_mac.get(m).is_none_or(|l| l.reusable(now)),
        }
    }

    fn set(&mut self, lease: Lease) {
        // The MAC's previous address, if another, is let go.
        if let Some(old) = self.by_mac.get(&lease.mac) {
            if old.ip != lease.ip {
                self.by_ip.remove(&old.ip);
            }
        }
        // The address's previous holder, if another MAC, loses it.
        if let Some(prev) = self.by_ip.insert(lease.ip, lease.mac) {
            if prev != lease.mac {
                self.by_mac.remove(&prev);
            }
        }
        self.by_mac.insert(lease.mac, lease);
    }

    /// Picks the address to offer `mac`: its static address; its current
    /// (sticky) address while still usable; the `requested` one when free;
    /// a never-used pool address; the longest-expired address of another
    /// MAC. The choice is held for [`OFFER_HOLD_SECS`].
    pub fn offer(
        &mut self,
        mac: MacAddr,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> Result<Ipv4Addr, AllocError> {
        let ip = self.choose(mac, requested, now)?;
        let hold = now + OFFER_HOLD_SECS;
        let lease = match self.by_mac.get(&mac) {
            // Offering a bound client its own address changes nothing.
            Some(l) if l.ip == ip && l.state == LeaseState::Bound && l.expires > now => *l,
            Some(l) if l.ip == ip => Lease {
                expires: l.expires.max(hold),
                state: LeaseState::Offered,
                ..*l
            },
            _ => Lease {
                mac,
                ip,
                expires: hold,
                state: LeaseState::Offered,
            },
        };
        self.set(lease);
        self.offers_made += 1;
        self.offer_order.insert(ip, self.offers_made);
        Ok(ip)
    }

    fn choose(
        &mut self,
        mac: MacAddr,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> Result<Ipv4Addr, AllocError> {
        if let Some(s) = self.statics.get(&mac) {
            return Ok(*s);
        }
        if let Some(l) = self.by_mac.get(&mac) {
            if self.available_for(&mac, l.ip, now) {
                return Ok(l.ip);
            }
        }
        if let Some(r) = requested {
            if self.available_for(&mac, r, now) {
                return Ok(r);
            }
        }
        // Never-used addresses first, in order.
        while self.cursor < self.pool_count {
            let ip = Ipv4Addr::from(self.pool_start + self.cursor);
            self.cursor += 1;
            if !self.by_ip.contains_key(&ip) && self.available_for(&mac, ip, now) {
                return Ok(ip);
            }
        }
        // Then free addresses the cursor passed (declines that ran out,
        // leases dropped), then the longest-expired of another MAC.
        let mut best: Option<(u64, Ipv4Addr)> = None;
        for off in 0..self.pool_count {
            let ip = Ipv4Addr::from(self.pool_start + off);
            if !self.available_for(&mac, ip, now) {
                continue;
            }
            let since = match self.by_ip.get(&ip).and_then(|m| self.by_mac.get(m)) {
                None => 0,
                Some(l) if l.state == LeaseState::Released => l.expires.min(now),
                Some(l) => l.expires,
            };
            if best.is_none_or(|(b, _)| since < b) {
                best = Some((since, ip));
                if since == 0 {
                    break;
                }
            }
        }
        match best {
            Some((_, ip)) => Ok(ip),
            None => self
                .oldest_offer(&mac, now)
                .ok_or(AllocError::PoolExhausted),
        }
    }

    /// The pool address whose offer (to another MAC, never requested) is
    /// the oldest: taken back when nothing else is free, so that a burst
    /// of DISCOVERs from made-up MACs cannot hold the whole pool for an
    /// offer's hold time (RFC 2131 4.3.1 lets the server reuse an offered
    /// address; the oldest offer is the least likely to be requested).
    fn oldest_offer(&self, mac: &MacAddr, now: u64) -> Option<Ipv4Addr> {
        self.by_mac
            .values()
            .filter(|l| l.state == LeaseState::Offered && l.mac != *mac && l.expires > now)
            .filter(|l| self.in_pool(l.ip) && !self.static_ips.contains_key(&l.ip))
            .filter(|l| !self.excluded.contains(&l.ip) && !self.declined_at(l.ip, now))
            .min_by_key(|l| (l.expires, self.offer_order.get(&l.ip).copied()))
            .map(|l| l.ip)
    }

    /// Binds `ip` to `mac` until `now + lease_time` when it may hold it;
    /// returns the journal record, or why not (the caller NAKs).
    pub fn bind(
        &mut self,
        mac: MacAddr,
        ip: Ipv4Addr,
        lease_time: u32,
        now: u64,
    ) -> Result<Lease, BindError> {
        if !self.available_for(&mac, ip, now) {
            return Err(if let Some(s) = self.statics.get(&mac) {
                BindError::HasStatic { mac, ip: *s }
            } else if self.static_ips.contains_key(&ip) {
                BindError::ReservedForOther(ip)
            } else if !self.in_pool(ip) || self.excluded.contains(&ip) {
                BindError::NotInPool(ip)
            } else if self.declined_at(ip, now) {
                BindError::Declined(ip)
            } else {
                BindError::LeasedToOther(ip)
            });
        }
        let lease = Lease {
            mac,
            ip,
            expires: now + u64::from(lease_time),
            state: LeaseState::Bound,
        };
        self.set(lease);
        Ok(lease)
    }

    /// A SELECTING REQUEST for `ip` from `mac`: when another MAC only
    /// holds `ip` as an offer it never requested, that offer ends, so the
    /// first REQUEST wins. Without it, a burst of DISCOVERs that took back
    /// a real client's offer between its OFFER and REQUEST would NAK it.
    pub fn take_offered(&mut self, mac: MacAddr, ip: Ipv4Addr, now: u64) {
        let Some(other) = self.by_ip.get(&ip).copied().filter(|m| *m != mac) else {
            return;
        };
        if let Some(l) = self.by_mac.get_mut(&other) {
            if l.state == LeaseState::Offered {
                l.state = LeaseState::Released;
                l.expires = l.expires.min(now);
            }
        }
    }

    /// Ends `mac`'s lease on `ip` (RELEASE); the address stays sticky to
    /// the MAC. Returns the journal record when something changed.
    pub fn release(&mut self, mac: MacAddr, ip: Ipv4Addr, now: u64) -> Option<Lease> {
        let l = self.by_mac.get_mut(&mac)?;
        if l.ip != ip || l.state == LeaseState::Released {
            return None;
        }
        l.state = LeaseState::Released;
        l.expires = l.expires.min(now);
        Some(*l)
    }

    /// Forgets an outstanding offer (the client chose another server).
    pub fn forget_offer(&mut self, mac: MacAddr, now: u64) {
        if let Some(l) = self.by_mac.get_mut(&mac) {
            if l.state == LeaseState::Offered {
                l.state = LeaseState::Released;
                l.expires = l.expires.min(now);
            }
        }
    }

    /// DECLINE: `ip` is in use on the network; skip it until `until`, and
    /// drop `mac`'s claim on it.
    pub fn decline(&mut self, mac: MacAddr, ip: Ipv4Addr, until: u64) -> Option<Record> {
        if self.by_ip.get(&ip) != Some(&mac) {
            return None;
        }
        self.by_ip.remove(&ip);
        self.by_mac.remove(&mac);
        self.declined.insert(ip, until);
        Some(Record::Declined { ip, expires: until })
    }

    /// Replays one journal record (start-up). A record that conflicts with
    /// `[static_dhcp]` (the config changed) is skipped.
    pub fn apply(&mut self, r: &Record) {
        match r {
            Record::Lease(l) => {
                if self.statics.get(&l.mac).is_some_and(|s| *s != l.ip) {
                    return;
                }
                if self.static_ips.get(&l.ip).is_some_and(|m| *m != l.mac) {
                    return;
                }
                self.declined.remove(&l.ip);
                self.set(*l);
            }
            Record::Declined { ip, expires } => {
                if let Some(m) = self.by_ip.remove(ip) {
                    self.by_mac.remove(&m);
                }
                self.declined.insert(*ip, *expires);
            }
        }
    }

    /// The live state as records (compaction): every non-offered lease and
    /// every decline not yet over.
    pub fn snapshot(&self, now: u64) -> Vec<Record> {
        let mut out: Vec<Record> = self
            .by_mac
            .values()
            .filter(|l| l.state != LeaseState::Offered)
            .map(|l| Record::Lease(*l))
            .collect();
        out.sort_by_key(|r| match r {
            Record::Lease(l) => u32::from(l.ip),
            Record::Declined { ip, .. } => u32::from(*ip),
        });
        let mut declined: Vec<_> = self
            .declined
            .iter()
            .filter(|(_, &u)| u > now)
            .map(|(ip, u)| Record::Declined {
                ip: *ip,
                expires: *u,
            })
            .collect();
        declined.sort_by_key(|r| match r {
            Record::Declined { ip, .. } => u32::from(*ip),
            Record::Lease(l) => u32::from(l.ip),
        });
        out.extend(declined);
        out
    }
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
    fn sticky_static_and_pool_order() {
        let mut t = LeaseTable::new(ip(10), 3, &[(mac(9), ip(11))], vec![]);
        assert_eq!(t.offer(mac(1), None, 100), Ok(ip(10)));
        // 11 is reserved for mac 9.
        assert_eq!(t.offer(mac(2), None, 100), Ok(ip(12)));
        assert_eq!(t.offer(mac(9), None, 100), Ok(ip(11)));
        assert_eq!(t.offer(mac(1), None, 100), Ok(ip(10)), "sticky");
        t.bind(mac(1), ip(10), 1000, 100).unwrap();
        assert!(t.bind(mac(2), ip(10), 1000, 100).is_err());
        assert!(
            t.bind(mac(2), ip(11), 1000, 100).is_err(),
            "static of another"
        );
        assert!(
            t.bind(mac(2), ip(20), 1000, 100).is_err(),
            "outside the pool"
        );
        // Released: still mac 1's next time.
        t.release(mac(1), ip(10), 200).unwrap();
        assert_eq!(t.offer(mac(1), None, 300), Ok(ip(10)));
    }

    #[test]
    fn full_pool_reuses_longest_expired_then_fails() {
        let mut t = LeaseTable::new(ip(10), 2, &[], vec![]);
        t.bind(mac(1), ip(10), 100, 0).unwrap(); // expires 100
        t.bind(mac(2), ip(11), 50, 0).unwrap(); // expires 50
        assert_eq!(t.offer(mac(3), None, 10), Err(AllocError::PoolExhausted));
        assert_eq!(t.offer(mac(3), None, 200), Ok(ip(11)), "longest expired");
        assert!(t.get(&mac(2)).is_none(), "mac 2 lost its expired lease");
        assert_eq!(t.offer(mac(4), None, 200), Ok(ip(10)));
    }

    #[test]
    fn full_pool_takes_back_the_oldest_offer_not_a_bound_lease() {
        let mut t = LeaseTable::new(ip(10), 3, &[], vec![]);
        t.bind(mac(1), ip(10), 1000, 0).unwrap();
        assert_eq!(t.offer(mac(2), None, 5), Ok(ip(11)));
        assert_eq!(t.offer(mac(3), None, 7), Ok(ip(12)));
        assert_eq!(t.offer(mac(4), None, 8), Ok(ip(11)), "mac 2's, the oldest");
        assert_eq!(t.offer(mac(5), None, 9), Ok(ip(12)), "then mac 3's");
        assert_eq!(t.get(&mac(1)).unwrap().ip, ip(10), "bound stays");
        assert!(t.get(&mac(2)).is_none());
        t.bind(mac(4), ip(11), 1000, 9).unwrap();
        t.bind(mac(5), ip(12), 1000, 9).unwrap();
        assert_eq!(t.offer(mac(6), None, 10), Err(AllocError::PoolExhausted));
        // Within one second, still the oldest first (not the lowest address).
        let mut t = LeaseTable::new(ip(10), 2, &[], vec![]);
        assert_eq!(t.offer(mac(1), None, 5), Ok(ip(10)));
        assert_eq!(t.offer(mac(2), None, 5), Ok(ip(11)));
        assert_eq!(t.offer(mac(3), None, 5), Ok(ip(10)));
        assert_eq!(t.offer(mac(4), None, 5), Ok(ip(11)));
        assert_eq!(t.offer(mac(5), None, 5), Ok(ip(10)));
    }

    #[test]
    fn decline_skips_address() {
        let mut t = LeaseTable::new(ip(10), 3, &[], vec![]);
        assert_eq!(t.offer(mac(1), None, 0), Ok(ip(10)));
        assert!(t.decline(mac(1), ip(10), 1000).is_some());
        assert_eq!(t.offer(mac(1), None, 1), Ok(ip(11)));
        assert!(!t.available_for(&mac(2), ip(10), 500));
        assert!(t.available_for(&mac(2), ip(10), 1000));
    }
}
