//! The TFTP windows without I/O: which blocks an RRQ's sender reads and
//! (re)sends, what each ACK or timeout does to them ([`SendWindow`]), and
//! which DATA a WRQ's receiver stores or re-ACKs ([`RecvWindow`]). The
//! drivers in `transfer` own the sockets, the timer, the reads and the one
//! packet buffer; these types only say what to do with them.

use std::ops::Range;

/// Most window slots filled by one read (one `IoSliceMut` array).
pub const READ_BATCH: usize = 64;

/// File data read at once ahead of a small window (lock-step: one read
/// call per this many bytes instead of one per block).
pub const READ_AHEAD_BYTES: usize = 32 << 10;

/// What an ACK did to a send window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acked {
    /// A duplicate, stale or future ACK: nothing changes, nothing is sent
    /// (only a timeout retransmits: no Sorcerer's Apprentice).
    Ignored,
    /// The window moved: read, then send from the new first block.
    Moved,
    /// The last block is acknowledged: the transfer is complete.
    Done,
}

/// What a timeout does to a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    /// Send the same packets again.
    Resend,
    /// Every retry is spent: abandon the transfer.
    GiveUp,
}

/// Blocks the driver just read: their slots get headers for these numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filled {
    pub slots: Range<usize>,
    /// The block number of the first slot (wraps past 65535 to 0).
    pub first_block: u16,
}

/// The packets to send now: slots `slots`, each a whole block except the
/// last one, whose data is `tail_len` bytes long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Burst {
    pub slots: Range<usize>,
    pub tail_len: usize,
    /// The first block's number without wrapping (1 is the file's first).
    pub first_block: u64,
}

/// The sender's side of RFC 1350 lock-step (`window` = 1) and RFC 7440
/// windows, over a buffer of [`cap`](Self::cap) slots of one block each,
/// owned by the driver. The driver loop: [`compact`](Self::compact), then
/// [`read_slots`](Self::read_slots) / [`on_read`](Self::on_read) until
/// `read_slots` says `None`, then [`to_send`](Self::to_send), then wait for
/// [`on_ack`](Self::on_ack) to say `Moved` or `Done`, or the timer for
/// [`on_timeout`](Self::on_timeout).
#[derive(Clone, Debug)]
pub struct SendWindow {
    blksize: usize,
    window: usize,
    cap: usize,
    retries: u32,
    /// The first unacknowledged block, unwrapped (starts at 1).
    base: u64,
    /// Blocks base..base+nbuf are read, in slots off..off+nbuf.
    off: usize,
    nbuf: usize,
    /// Blocks from `base` sent in the current window: what an ACK may
    /// acknowledge.
    in_flight: usize,
    /// The last block (shorter than blksize, maybe empty) and its length,
    /// once read.
    last: Option<(u64, usize)>,
    tries: u32,
    bytes: u64,
    /// Retries while no ACK has moved the window yet (the peer unproven).
    first_retries: u32,
}

impl SendWindow {
    /// `retries` timeouts in a row are resent, the next one gives up.
    pub fn new(blksize: usize, window: usize, retries: u32) -> Self {
        assert!(blksize > 0 && window > 0, "empty blocks or window");
        SendWindow {
            blksize,
            window,
            // Whole windows, as many as fit in READ_AHEAD_BYTES (at least
            // one): small windows and lock-step transfers read that much
            // of the file per read call, not one window.
            cap: window * (READ_AHEAD_BYTES / (window * blksize)).max(1),
            retries,
            base: 1,
            off: 0,
            nbuf: 0,
            in_flight: 0,
            last: None,
            tries: 0,
            bytes: 0,
            first_retries: retries,
        }
    }

    /// Fewer resends until the first ACK moves the window (a peer that may
    /// be a forged source); `retries` applies after.
    pub fn set_first_retries(&mut self, n: u32) {
        self.first_retries = n.min(self.retries);
    }

    /// Slots (of blksize + 4 bytes) the driver's buffer holds.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Bytes of the file read so far (all of it once `Done`).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn needs_read(&self) -> bool {
        self.nbuf < self.window && self.last.is_none()
    }

    /// Before reading: the slots of the unacknowledged blocks, to move to
    /// the front of the buffer (so the free slots follow them), when the
    /// window is short and the file not all read. `None`: nothing to move.
    pub fn compact(&mut self) -> Option<Range<usize>> {
        if !self.needs_read() || self.off == 0 {
            return None;
        }
        let keep = self.off..self.off + self.nbuf;
        self.off = 0;
        (!keep.is_empty()).then_some(keep)
    }

    /// The slots the next read fills (their data parts, in one vectored
    /// read), or `None` when the window has its blocks or the file ended.
    pub fn read_slots(&self) -> Option<Range<usize>> {
        if !self.needs_read() {
            return None;
        }
        let start = self.off + self.nbuf;
        let count = (self.cap - start).min(READ_BATCH);
        Some(start..start + count)
    }

    /// `got` bytes were read into the slots `read_slots` named: every slot
    /// is full up to the first short one, which is the file's last block.
    pub fn on_read(&mut self, got: usize) -> Filled {
        let slots = self.read_slots().expect("on_read without read_slots");
        let count = slots.len();
        assert!(got <= count * self.blksize, "read past the slots");
        self.bytes += got as u64;
        let full = got / self.blksize;
        let filled = if got < count * self.blksize {
            self.last = Some((
                self.base + (self.nbuf + full) as u64,
                got - full * self.blksize,
            ));
            full + 1
        } else {
            count
        };
        let first = self.base + self.nbuf as u64;
        self.nbuf += filled;
        Filled {
            slots: slots.start..slots.start + filled,
            first_block: first as u16,
        }
    }

    /// The window to send (again): its blocks from the first unacknowledged
    /// one. Every call starts a new window: ACKs count from its blocks.
    pub fn to_send(&mut self) -> Burst {
        self.in_flight = self.nbuf.min(self.window);
        let end = self.base + self.in_flight as u64;
        let tail_len = match self.last {
            Some((b, len)) if b + 1 == end => len,
            _ => self.blksize,
        };
        Burst {
            slots: self.off..self.off + self.in_flight,
            tail_len,
            first_block: self.base,
        }
    }

    /// An ACK from the peer. Only one for a block sent in this window moves
    /// it; the block number is compared modulo 65536 (rollover).
    pub fn on_ack(&mut self, block: u16) -> Acked {
        let rel = block.wrapping_sub((self.base - 1) as u16) as usize;
        if rel == 0 || rel > self.in_flight {
            return Acked::Ignored;
        }
        self.tries = 0;
        let acked = self.base - 1 + rel as u64;
        if self.last.is_some_and(|(b, _)| b == acked) {
            return Acked::Done;
        }
        self.off += rel;
        self.nbuf -= rel;
        self.in_flight -= rel;
        self.base = acked + 1;
        Acked::Moved
    }

    /// The timer fired with no ACK that moved the window.
    pub fn on_timeout(&mut self) -> Expired {
        self.tries += 1;
        let limit = if self.base == 1 {
            self.first_retries
        } else {
            self.retries
        };
        if self.tries > limit {
            Expired::GiveUp
        } else {
            Expired::Resend
        }
    }
}

/// What to do with a DATA packet of an upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// The expected block: store it (then, when `last`, make it durable),
    /// then ACK it.
    Store { last: bool },
    /// The block before the expected one (our ACK was lost): send the last
    /// ACK (or the OACK) again.
    Repeat,
    /// Anything else: ignored.
    Ignore,
    /// More data than blksize: ERROR 4, the upload ends.
    TooLong,
    /// Past the size cap: ERROR 3, the upload ends.
    TooLarge,
}

/// The receiver's side of an upload (lock-step): the expected block, the
/// size cap, the last (short) block, retries.
#[derive(Clone, Debug)]
pub struct RecvWindow {
    blksize: usize,
    max: u64,
    retries: u32,
    /// The next block wanted, unwrapped (starts at 1).
    expect: u64,
    bytes: u64,
    tries: u32,
    done: bool,
}

impl RecvWindow {
    pub fn new(blksize: usize, max: u64, retries: u32) -> Self {
        RecvWindow {
            blksize,
            max,
            retries,
            expect: 1,
            bytes: 0,
            tries: 0,
            done: false,
        }
    }

    /// Bytes stored so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The last block is stored and ACKed: linger for its repeats only.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// A DATA packet of `len` bytes numbered `block`.
    pub fn on_data(&mut self, block: u16, len: usize) -> Received {
        if self.done || block != self.expect as u16 {
            if block == (self.expect - 1) as u16 {
                return Received::Repeat;
            }
            return Received::Ignore;
        }
        if len > self.blksize {
            return Received::TooLong;
        }
        self.bytes += len as u64;
        if self.bytes > self.max {
            return Received::TooLarge;
        }
        self.expect += 1;
        self.tries = 0;
        self.done = len < self.blksize;
        Received::Store { last: self.done }
    }

    /// The timer fired. After the last block the driver ends the upload
    /// instead of calling this.
    pub fn on_timeout(&mut self) -> Expired {
        self.tries += 1;
        if self.tries > self.retries {
            Expired::GiveUp
        } else {
            Expired::Resend
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A driver without sockets: a file of `size` bytes, the buffer's slots
    /// modelled by the unwrapped block each holds and the number its header
    /// carries, and what each burst put on the wire.
    struct Sim {
        w: SendWindow,
        bs: usize,
        size: u64,
        read: u64,
        /// Blocks read so far (the next one read is `next`).
        next: u64,
        slots: Vec<(u64, u16)>,
    }

    impl Sim {
        fn new(size: u64, bs: usize, window: usize, retries: u32) -> Sim {
            let w = SendWindow::new(bs, window, retries);
            let slots = vec![(0, 0); w.cap()];
            Sim {
                w,
                bs,
                size,
                read: 0,
                next: 1,
                slots,
            }
        }

        /// Blocks in the file: the last one short, maybe empty.
        fn blocks(&self) -> u64 {
            self.size / self.bs as u64 + 1
        }

        fn fill(&mut self) {
            if let Some(keep) = self.w.compact() {
                self.slots.copy_within(keep, 0);
            }
            while let Some(r) = self.w.read_slots() {
                let room = (r.len() * self.bs) as u64;
                let got = room.min(self.size - self.read);
                self.read += got;
                let f = self.w.on_read(got as usize);
                for (k, i) in f.slots.enumerate() {
                    self.slots[i] = (self.next, f.first_block.wrapping_add(k as u16));
                    self.next += 1;
                }
            }
        }

        /// Fills, then sends: each packet as (unwrapped block, header
        /// number, data length), checked against the file.
        fn send(&mut self) -> Vec<(u64, u16, usize)> {
            self.fill();
            let b = self.w.to_send();
            let n = b.slots.len();
            let out: Vec<_> = b
                .slots
                .clone()
                .enumerate()
                .map(|(k, i)| {
                    let len = if k + 1 == n { b.tail_len } else { self.bs };
                    (self.slots[i].0, self.slots[i].1, len)
                })
                .collect();
            for (k, &(abs, hdr, len)) in out.iter().enumerate() {
                assert_eq!(abs, b.first_block + k as u64, "slot holds another block");
                assert_eq!(hdr, abs as u16, "header number");
                assert!(abs <= self.blocks(), "block {abs} past the end");
                let want = (self.size - (abs - 1) * self.bs as u64).min(self.bs as u64);
                assert_eq!(len as u64, want, "length of block {abs}");
            }
            out
        }

        /// A client that hears everything and ACKs each window's last
        /// block: the blocks it got, in order, and the sends it took.
        fn run_clean(&mut self) -> (Vec<u64>, usize) {
            let (mut got, mut sends) = (Vec::new(), 0);
            loop {
                let burst = self.send();
                sends += 1;
                got.extend(burst.iter().map(|p| p.0));
                match self.w.on_ack(burst.last().unwrap().1) {
                    Acked::Done => return (got, sends),
                    Acked::Moved => {}
                    Acked::Ignored => panic!("the window's own last ACK ignored"),
                }
            }
        }
    }

    #[test]
    fn every_window_size_delivers_every_block_once() {
        for window in 1..=64 {
            for bs in [8, 512, 1468] {
                let w = window as u64 * bs as u64;
                for size in [0, 1, bs as u64 - 1, bs as u64, w, w + 1, 3 * w - 1, 40_000] {
                    let mut sim = Sim::new(size, bs, window, 3);
                    let (got, sends) = sim.run_clean();
                    let want: Vec<u64> = (1..=sim.blocks()).collect();
                    assert_eq!(got, want, "window {window} bs {bs} size {size}");
                    assert_eq!(sends as u64, sim.blocks().div_ceil(window as u64));
                    assert_eq!(sim.w.bytes(), size);
                }
            }
        }
    }

    #[test]
    fn block_numbers_roll_over_past_65535() {
        let blocks = 70_000u64;
        let mut sim = Sim::new(blocks * 8 + 3, 8, 16, 0);
        let mut headers = Vec::new();
        loop {
            let burst = sim.send();
            headers.extend(burst.iter().map(|p| p.1));
            let last = burst.last().unwrap();
            // The ACK carries the wrapped number only.
            match sim.w.on_ack(last.1) {
                Acked::Done => break,
                Acked::Moved => {}
                Acked::Ignored => panic!("ACK {} of block {} ignored", last.1, last.0),
            }
        }
        assert_eq!(headers.len() as u64, blocks + 1);
        assert_eq!(&headers[65533..65537], &[65534, 65535, 0, 1]);
        assert_eq!(*headers.last().unwrap(), (blocks + 1) as u16);
    }

    #[test]
    fn lost_data_resent_from_the_first_block_missing() {
        let mut sim = Sim::new(10 * 512, 512, 4, 5);
        let first = sim.send();
        assert_eq!(first.iter().map(|p| p.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
        // Block 3 lost: the client ACKs 2, the window restarts at 3.
        assert_eq!(sim.w.on_ack(2), Acked::Moved);
        let next = sim.send();
        assert_eq!(next.iter().map(|p| p.0).collect::<Vec<_>>(), [3, 4, 5, 6]);
        // The whole window lost: nothing comes back; the timeout resends it.
        assert_eq!(sim.w.on_timeout(), Expired::Resend);
        assert_eq!(sim.send(), next);
    }

    #[test]
    fn lost_ack_resent_after_the_timeout_only() {
        let mut sim = Sim::new(5 * 512 + 1, 512, 1, 5);
        let one = sim.send();
        // The ACK of block 1 is lost: a timeout resends block 1.
        assert_eq!(sim.w.on_timeout(), Expired::Resend);
        assert_eq!(sim.send(), one);
        assert_eq!(sim.w.on_ack(1), Acked::Moved);
        assert_eq!(sim.send()[0].0, 2);
    }

    #[test]
    fn duplicate_stale_and_future_acks_change_nothing() {
        let mut sim = Sim::new(100 * 512, 512, 4, 5);
        sim.send();
        assert_eq!(sim.w.on_ack(4), Acked::Moved);
        let window = sim.send();
        // Sorcerer's Apprentice: the duplicate ACK 4 (the client got block
        // 4 twice) must not resend blocks 5..8.
        for ack in [4, 4, 3, 0, 65535, 9, 100] {
            assert_eq!(sim.w.on_ack(ack), Acked::Ignored, "ACK {ack}");
        }
        assert_eq!(sim.send(), window);
        assert_eq!(sim.w.on_ack(8), Acked::Moved);
        // An ACK before any window was sent is ignored too.
        let mut fresh = Sim::new(100, 512, 4, 5);
        assert_eq!(fresh.w.on_ack(1), Acked::Ignored);
    }

    #[test]
    fn exactly_full_last_block_then_an_empty_one_and_the_empty_file() {
        for window in [1, 2, 3, 8] {
            let mut sim = Sim::new(3 * 512, 512, window, 0);
            let (got, _) = sim.run_clean();
            assert_eq!(got, [1, 2, 3, 4], "window {window}");
        }
        let mut sim = Sim::new(3 * 512, 512, 1, 0);
        for _ in 0..3 {
            let p = sim.send();
            assert_eq!(p[0].2, 512);
            assert_eq!(sim.w.on_ack(p[0].1), Acked::Moved);
        }
        assert_eq!(sim.send(), [(4, 4, 0)]);
        assert_eq!(sim.w.on_ack(4), Acked::Done);
        let mut empty = Sim::new(0, 512, 8, 0);
        assert_eq!(empty.send(), [(1, 1, 0)]);
        assert_eq!(empty.w.on_ack(1), Acked::Done);
    }

    #[test]
    fn gives_up_after_retries_in_a_row() {
        let mut sim = Sim::new(10 * 512, 512, 2, 3);
        sim.send();
        for _ in 0..3 {
            assert_eq!(sim.w.on_timeout(), Expired::Resend);
        }
        // Progress starts the count again.
        assert_eq!(sim.w.on_ack(2), Acked::Moved);
        sim.send();
        for _ in 0..3 {
            assert_eq!(sim.w.on_timeout(), Expired::Resend);
        }
        assert_eq!(sim.w.on_timeout(), Expired::GiveUp);
        let mut none = Sim::new(1, 512, 1, 0);
        none.send();
        assert_eq!(none.w.on_timeout(), Expired::GiveUp);
    }

    #[test]
    fn receive_in_order_repeat_rollover_and_last_block() {
        let mut r = RecvWindow::new(512, u64::MAX, 2);
        assert_eq!(r.on_data(1, 512), Received::Store { last: false });
        // Our ACK 1 was lost: block 1 again is re-ACKed, not stored.
        assert_eq!(r.on_data(1, 512), Received::Repeat);
        assert_eq!(r.on_data(3, 512), Received::Ignore);
        for b in 2..=70_000u64 {
            assert_eq!(r.on_data(b as u16, 512), Received::Store { last: false });
        }
        assert_eq!(
            r.on_data(70_001u64 as u16, 0),
            Received::Store { last: true }
        );
        assert!(r.is_done());
        assert_eq!(r.bytes(), 70_000 * 512);
        // After the end: the last block repeated is re-ACKed, others not.
        assert_eq!(r.on_data(70_001u64 as u16, 0), Received::Repeat);
        assert_eq!(r.on_data(70_002u64 as u16, 0), Received::Ignore);
    }

    #[test]
    fn receive_caps_size_and_block_length_and_gives_up() {
        let mut r = RecvWindow::new(512, 1000, 1);
        assert_eq!(r.on_data(1, 513), Received::TooLong);
        assert_eq!(r.on_data(1, 512), Received::Store { last: false });
        assert_eq!(r.on_data(2, 488), Received::Store { last: true });
        let mut r = RecvWindow::new(512, 1000, 1);
        assert_eq!(r.on_data(1, 512), Received::Store { last: false });
        assert_eq!(r.on_data(2, 489), Received::TooLarge);
        assert_eq!(r.on_timeout(), Expired::Resend);
        assert_eq!(r.on_timeout(), Expired::GiveUp);
    }
}
