//! Arbitrary ACKs and timeouts against a `SendWindow` driven as
//! `send_file` drives it, for an arbitrary file size, blksize, windowsize
//! and retry count: it never panics, never sends a block past the end or
//! a block other than the one its slot holds, and afterwards a client that
//! hears everything finishes the transfer while silence gives up after
//! at most `retries` more resends.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pybootd::tftp::window::{Acked, Expired, SendWindow};

/// The driver, with the buffer's slots modelled by the (unwrapped) block
/// each holds.
#[derive(Clone)]
struct Sim {
    w: SendWindow,
    window: usize,
    bs: usize,
    size: u64,
    read: u64,
    next: u64,
    slots: Vec<u64>,
    /// The last burst's header numbers, and its first block unwrapped.
    sent: Vec<u16>,
    first: u64,
}

impl Sim {
    fn blocks(&self) -> u64 {
        self.size / self.bs as u64 + 1
    }

    fn send(&mut self) {
        if let Some(keep) = self.w.compact() {
            self.slots.copy_within(keep, 0);
        }
        while let Some(r) = self.w.read_slots() {
            let got = ((r.len() * self.bs) as u64).min(self.size - self.read);
            self.read += got;
            let f = self.w.on_read(got as usize);
            assert_eq!(f.first_block, self.next as u16);
            for i in f.slots {
                self.slots[i] = self.next;
                self.next += 1;
            }
        }
        let b = self.w.to_send();
        let n = b.slots.len();
        assert!(n >= 1, "an empty burst");
        assert!(n <= self.window, "a burst longer than the window");
        self.first = b.first_block;
        self.sent.clear();
        for (k, i) in b.slots.enumerate() {
            let abs = self.slots[i];
            assert_eq!(abs, b.first_block + k as u64, "slot holds another block");
            assert!(abs <= self.blocks(), "block {abs} past the end");
            let want = (self.size - (abs - 1) * self.bs as u64).min(self.bs as u64);
            let len = if k + 1 == n { b.tail_len } else { self.bs };
            assert_eq!(len as u64, want, "length of block {abs}");
            self.sent.push(abs as u16);
        }
    }

    /// One ACK; `true` when the transfer is over.
    fn ack(&mut self, block: u16) -> bool {
        match self.w.on_ack(block) {
            Acked::Ignored => false,
            Acked::Moved => {
                // Only progress moves the window (no Sorcerer's Apprentice).
                let before = self.first;
                self.send();
                assert!(self.first > before, "an ACK moved nothing");
                false
            }
            Acked::Done => {
                assert_eq!(block, self.blocks() as u16, "done before the last block");
                assert_eq!(self.w.bytes(), self.size);
                true
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let size = u64::from(u32::from_le_bytes(data[0..4].try_into().unwrap()) % (1 << 20));
    let bs = 8 + usize::from(u16::from_le_bytes([data[4], data[5]])) % (65464 - 8 + 1);
    // windowsize as `negotiate` grants it: 1..=64, at most 128 KiB.
    let window = (1 + usize::from(data[6]) % 64).min(((128 << 10) / bs).max(1));
    let retries = u32::from(data[7] % 8);
    let w = SendWindow::new(bs, window, retries);
    let slots = vec![0; w.cap()];
    let mut sim = Sim {
        w,
        window,
        bs,
        size,
        read: 0,
        next: 1,
        slots,
        sent: Vec::new(),
        first: 0,
    };
    sim.send();
    for ev in data[8..].chunks(3) {
        let ack = match ev {
            [0, ..] | [_] => {
                if sim.w.on_timeout() == Expired::GiveUp {
                    return;
                }
                sim.send();
                continue;
            }
            // One of the last burst's blocks (or the one before it).
            [1, k, ..] => {
                let k = usize::from(*k) % (sim.sent.len() + 1);
                if k == 0 {
                    sim.sent[0].wrapping_sub(1)
                } else {
                    sim.sent[k - 1]
                }
            }
            // Any number at all (stale, future, garbage).
            [_, hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
            [_, k] => sim.sent[usize::from(*k) % sim.sent.len()],
            [] => unreachable!(),
        };
        if sim.ack(ack) {
            return;
        }
    }
    // Silence: at most `retries` more resends, then give up.
    let mut silent = sim.clone();
    let gave_up = (0..=retries).any(|_| silent.w.on_timeout() == Expired::GiveUp);
    assert!(gave_up, "silence never gave up");
    // A client that hears everything: done within one window per block.
    for _ in 0..=sim.blocks() {
        let last = *sim.sent.last().unwrap();
        if sim.ack(last) {
            return;
        }
    }
    panic!("a perfect client never finished");
});
