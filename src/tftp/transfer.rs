//! One transfer on its own socket: option negotiation (pure), and the
//! drivers of `window`'s state machines: the RRQ send loop (reads into the
//! one packet buffer, GSO sends, the one timer) and the WRQ receive loop.

use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::config::TftpConfig;
use crate::tftp::gso;
use crate::tftp::source::{Source, TftpError};
use crate::tftp::window::{Acked, Burst, Expired, Received, RecvWindow, SendWindow, READ_BATCH};
use crate::wire::tftp::{self as wire, code, Packet, Request};

/// A window never holds more than this many bytes of data (memory bound
/// per transfer, whatever blksize x windowsize a client asks for).
/// 128 KiB: a window that overflows the client's default socket buffer
/// (about 208 KiB of truesize) is lost whole, so bigger ones only slow.
pub const MAX_WINDOW_BYTES: usize = 128 << 10;

/// The largest `timeout` option (RFC 2349) granted, in seconds. RFC 2349
/// has the OACK echo the client's value exactly, so a larger one is not
/// lowered but left out of the OACK (refused): the configured timeout
/// applies. A client asking 255 s would otherwise hold a slot for
/// 255 s x retries after going quiet (issue 12: a 51-minute outage).
pub const MAX_OPTION_TIMEOUT: u64 = 5;

/// Resends of the first packet (OACK, or DATA 1) before the client's first
/// ACK shows it exists: a forged request holds a slot, and sends at the
/// forged source, for at most this many timeouts more.
pub const UNPROVEN_RETRIES: u32 = 2;

/// What was agreed for one transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: usize,
    pub window: usize,
    pub timeout: Duration,
    /// The OACK's options in the order asked; empty = no OACK (RFC 1350).
    pub oack: Vec<(String, String)>,
}

/// RFC 2347/2348/2349/7440 negotiation. Unknown or invalid options are
/// left out of the OACK (ignored), never an error; `size` is the file's
/// size for `tsize` (RRQ), `None` when unknown (then `tsize` is left out).
/// For a WRQ, `tsize` is the upload's size and one above `upload_max` is
/// refused; windowsize is not granted for uploads.
pub fn negotiate(
    req: &Request,
    cfg: &TftpConfig,
    size: Option<u64>,
    write: bool,
) -> Result<Negotiated, TftpError> {
    let mut n = Negotiated {
        // Without a blksize option: RFC 1350's 512, or the configured
        // `blocksize` (upstream's meaning of the key).
        blksize: cfg.blocksize as usize,
        window: 1,
        timeout: cfg.timeout,
        oack: Vec::new(),
    };
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in &req.options {
        if seen.contains(&k.as_str()) {
            continue;
        }
        seen.push(k);
        let num = v.trim().parse::<u64>().ok();
        match (k.as_str(), num) {
            ("blksize", Some(b)) if b >= wire::MIN_BLKSIZE as u64 => {
                let b = b
                    .min(wire::MAX_BLKSIZE as u64)
                    .min(cfg.max_blocksize as u64);
                n.blksize = b as usize;
                n.oack.push((k.clone(), b.to_string()));
            }
            ("tsize", Some(t)) => {
                if write {
                    if t > cfg.upload_max {
                        return Err(TftpError::new(code::DISK_FULL, "File too large"));
                    }
                    n.oack.push((k.clone(), t.to_string()));
                } else if let Some(s) = size {
                    n.oack.push((k.clone(), s.to_string()));
                }
            }
            ("timeout", Some(t)) if (1..=MAX_OPTION_TIMEOUT).contains(&t) => {
                n.timeout = Duration::from_secs(t);
                n.oack.push((k.clone(), t.to_string()));
            }
            ("windowsize", Some(w)) if !write && (1..=65535).contains(&w) => {
                let w = w.min(cfg.max_windowsize as u64) as usize;
                n.window = w;
                n.oack.push((k.clone(), w.to_string()));
            }
            _ => {}
        }
    }
    // Bound the window's memory; the OACK carries the reduced value.
    let cap = (MAX_WINDOW_BYTES / n.blksize).max(1);
    if n.window > cap {
        n.window = cap;
        for (k, v) in n.oack.iter_mut() {
            if k == "windowsize" {
                *v = cap.to_string();
            }
        }
    }
    Ok(n)
}

/// How a transfer ended.
#[derive(Debug)]
pub enum End {
    /// Every block acknowledged (or, for uploads, received).
    Done { bytes: u64 },
    /// The client sent an ERROR (EDK2's code 8 after a size probe is the
    /// common, normal one).
    ClientError { code: u16, message: String },
    /// No answer after every retransmission.
    TimedOut,
    /// The server is stopping.
    Cancelled,
    /// Reading the source (or writing an upload) failed; an ERROR went out.
    SourceFailed(io::Error),
    /// The upload broke a rule (size cap); an ERROR went out.
    Refused(TftpError),
}

/// One transfer's socket, connected to its peer: the kernel drops packets
/// from anyone else (no ERROR 5 answer: RFC 1350's courtesy is one more
/// packet a forged source gets), and the peer's ICMP port unreachable
/// comes back as ECONNREFUSED, which ends the transfer (no DATA keeps
/// going at a host that never asked).
pub struct Link<'a> {
    pub sock: &'a UdpSocket,
    pub peer: SocketAddr,
    pub retries: u32,
    pub cancel: &'a CancellationToken,
}

/// What a wait for the peer returned.
enum Heard {
    /// A packet from the peer, `len` bytes at the start of the buffer.
    Packet(usize),
    Timeout,
}

impl Link<'_> {
    pub async fn send_error(&self, e: &TftpError) {
        let _ = self
            .sock
            .send_to(&wire::error_bytes(e.code, &e.message), self.peer)
            .await;
    }

    /// Receives the next packet from the peer before `deadline`. ECONNREFUSED
    /// (the peer's port is unreachable) is an error: the transfer ends.
    async fn hear(&self, buf: &mut [u8], deadline: tokio::time::Instant) -> io::Result<Heard> {
        loop {
            let (n, from) = match tokio::time::timeout_at(deadline, self.sock.recv_from(buf)).await
            {
                Err(_) => return Ok(Heard::Timeout),
                Ok(Err(e)) if is_transient(&e) => continue,
                Ok(r) => r?,
            };
            // Connected: only the peer's packets arrive; checked anyway.
            if from == self.peer {
                return Ok(Heard::Packet(n));
            }
        }
    }
}

/// EINTR only. ECONNREFUSED is not retried: on a connected socket it is
/// the peer's ICMP port unreachable, and the transfer stops there.
fn is_transient(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// Sends `oack` and waits for its ACK 0. `Ok(None)`: go on with the data.
async fn oack_handshake(
    link: &Link<'_>,
    oack: &[u8],
    timeout: Duration,
) -> io::Result<Option<End>> {
    let mut rbuf = [0u8; 1024];
    let mut tries = 0;
    link.sock.send_to(oack, link.peer).await?;
    let mut deadline = tokio::time::Instant::now() + timeout;
    loop {
        match link.hear(&mut rbuf, deadline).await? {
            Heard::Timeout => {
                if link.cancel.is_cancelled() {
                    return Ok(Some(End::Cancelled));
                }
                tries += 1;
                if tries > link.retries.min(UNPROVEN_RETRIES) {
                    return Ok(Some(End::TimedOut));
                }
                link.sock.send_to(oack, link.peer).await?;
                deadline = tokio::time::Instant::now() + timeout;
            }
            Heard::Packet(n) => match Packet::parse(&rbuf[..n]) {
                Ok(Packet::Ack { block: 0 }) => return Ok(None),
                Ok(Packet::Error { code, message }) => {
                    return Ok(Some(End::ClientError { code, message }))
                }
                // Anything else (a stray ACK, a DATA) is ignored.
                _ => {}
            },
        }
    }
}

/// Sends the file: OACK first when options were agreed, then windows of
/// `neg.window` blocks ([`SendWindow`] decides which). Block numbers wrap
/// past 65535 to 0.
pub async fn send_file<S: Source>(
    link: &Link<'_>,
    src: &mut S,
    neg: &Negotiated,
) -> io::Result<End> {
    if !neg.oack.is_empty() {
        let mut o = Vec::with_capacity(64);
        Packet::Oack {
            options: neg.oack.clone(),
        }
        .emit(&mut o);
        if let Some(end) = oack_handshake(link, &o, neg.timeout).await? {
            return Ok(end);
        }
    }
    let mut w = SendWindow::new(neg.blksize, neg.window, link.retries);
    if neg.oack.is_empty() {
        // DATA 1 is the first packet: nobody has answered yet.
        w.set_first_retries(link.retries.min(UNPROVEN_RETRIES));
    }
    let slot = neg.blksize + 4;
    // The packets, header and data, built in place: the only buffer of the
    // transfer, allocated once.
    let mut win = vec![0u8; w.cap() * slot];
    let mut out = Sender::new(link, slot, neg.window);
    let mut rbuf = [0u8; 1024];
    // One timer for the whole transfer: re-armed only when it fires early
    // (progress moved the deadline), not once per block.
    let timer = tokio::time::sleep(neg.timeout);
    tokio::pin!(timer);
    loop {
        if link.cancel.is_cancelled() {
            link.send_error(&TftpError::new(code::NOT_DEFINED, "Server shutting down"))
                .await;
            return Ok(End::Cancelled);
        }
        if let Err(e) = fill(&mut w, &mut win, slot, src).await {
            link.send_error(&TftpError::new(code::NOT_DEFINED, "Read error"))
                .await;
            return Ok(End::SourceFailed(e));
        }
        out.send(&win, &w.to_send()).await?;
        match wait_ack(link, &mut w, &mut rbuf, timer.as_mut(), neg.timeout).await? {
            Waited::Ack(Acked::Done) => return Ok(End::Done { bytes: w.bytes() }),
            Waited::Ack(_) => {}
            Waited::Expired => {
                if w.on_timeout() == Expired::GiveUp {
                    return Ok(End::TimedOut);
                }
            }
            Waited::Error(code, message) => return Ok(End::ClientError { code, message }),
        }
    }
}

/// Reads what the window lacks: the unacknowledged tail moves to the front,
/// then the data parts of up to READ_BATCH free slots in one (vectored)
/// read each, and their DATA headers.
async fn fill<S: Source>(
    w: &mut SendWindow,
    win: &mut [u8],
    slot: usize,
    src: &mut S,
) -> io::Result<()> {
    if let Some(keep) = w.compact() {
        win.copy_within(keep.start * slot..keep.end * slot, 0);
    }
    while let Some(slots) = w.read_slots() {
        let region = &mut win[slots.start * slot..slots.end * slot];
        let mut iov: [IoSliceMut<'_>; READ_BATCH] =
            std::array::from_fn(|_| IoSliceMut::new(&mut []));
        for (s, chunk) in iov.iter_mut().zip(region.chunks_mut(slot)) {
            *s = IoSliceMut::new(&mut chunk[4..]);
        }
        let got = src.read_full(&mut iov[..slots.len()]).await?;
        let filled = w.on_read(got);
        for (k, i) in filled.slots.enumerate() {
            let block = filled.first_block.wrapping_add(k as u16);
            wire::write_data_header(&mut win[i * slot..i * slot + 4], block);
        }
    }
    Ok(())
}

/// Sends bursts from the packet buffer: with UDP GSO, runs of up to
/// `per_send` blocks in one call, while the kernel agrees.
struct Sender<'a> {
    link: &'a Link<'a>,
    slot: usize,
    per_send: usize,
    gso: bool,
}

impl<'a> Sender<'a> {
    /// Whole windows in one send each (UDP GSO), when the kernel agrees.
    fn new(link: &'a Link<'a>, slot: usize, window: usize) -> Self {
        let per_send = gso::MAX_SEGMENTS.min(gso::MAX_SEND / slot);
        let gso = window > 1
            && per_send > 1
            && u16::try_from(slot).is_ok_and(|s| gso::set_segment(link.sock, s));
        Sender {
            link,
            slot,
            per_send,
            gso,
        }
    }

    async fn send(&mut self, win: &[u8], burst: &Burst) -> io::Result<()> {
        let (slot, n) = (self.slot, burst.slots.len());
        let mut i = 0;
        while i < n {
            let j = if self.gso {
                (i + self.per_send).min(n)
            } else {
                i + 1
            };
            // Every packet is a whole slot but the burst's last one.
            let tail = if j == n { 4 + burst.tail_len } else { slot };
            let start = burst.slots.start + i;
            let range = start * slot..(start + j - i - 1) * slot + tail;
            match self.link.sock.send_to(&win[range], self.link.peer).await {
                Ok(_) => i = j,
                Err(e) if self.gso => {
                    // The path refuses segmentation (MTU, offload): send
                    // packet by packet from now on.
                    tracing::debug!("UDP GSO refused ({e}): one send per block");
                    self.gso = false;
                    gso::set_segment(self.link.sock, 0);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// How a wait for an ACK ended.
enum Waited {
    /// An ACK that moved the window (or ended the transfer).
    Ack(Acked),
    /// The timeout passed without one.
    Expired,
    /// The peer sent an ERROR.
    Error(u16, String),
}

/// Waits for an ACK that moves the window. Duplicates and old ACKs change
/// nothing: only a timeout retransmits (no Sorcerer's Apprentice). The
/// transfer's one timer is moved only when it fires before this wait's
/// deadline.
async fn wait_ack(
    link: &Link<'_>,
    w: &mut SendWindow,
    rbuf: &mut [u8],
    mut timer: std::pin::Pin<&mut tokio::time::Sleep>,
    timeout: Duration,
) -> io::Result<Waited> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = tokio::select! {
            biased;
            r = link.sock.recv_from(rbuf) => match r {
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(e),
                Ok((n, from)) if from == link.peer => n,
                Ok(_) => continue,
            },
            () = &mut timer => {
                if tokio::time::Instant::now() < deadline {
                    // Armed for an earlier wait: move it, keep waiting.
                    timer.as_mut().reset(deadline);
                    continue;
                }
                // Re-armed by the next wait's progress check.
                timer.as_mut().reset(deadline + timeout);
                return Ok(Waited::Expired);
            }
        };
        if let Some(ack) = wire::parse_ack(&rbuf[..n]) {
            match w.on_ack(ack) {
                Acked::Ignored => continue,
                a => return Ok(Waited::Ack(a)),
            }
        }
        if let Ok(Packet::Error { code, message }) = Packet::parse(&rbuf[..n]) {
            return Ok(Waited::Error(code, message));
        }
    }
}

/// Where an upload's bytes go. Both calls may block on a disk: an
/// implementation does that work off the runtime's threads.
pub trait Sink: Send {
    fn write(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// Called before the last block's ACK: the bytes must be stored then.
    fn finish(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

/// Receives an upload: ACK 0 (or the OACK), then DATA blocks in order, each
/// ACKed ([`RecvWindow`] decides); stops past `max` bytes with ERROR 3.
/// After the last block it lingers one timeout to re-ACK a repeated last
/// block (its ACK was lost).
pub async fn receive_file<K: Sink>(
    link: &Link<'_>,
    sink: &mut K,
    neg: &Negotiated,
    max: u64,
) -> io::Result<End> {
    let mut last_sent = Vec::with_capacity(64);
    if neg.oack.is_empty() {
        Packet::Ack { block: 0 }.emit(&mut last_sent);
    } else {
        Packet::Oack {
            options: neg.oack.clone(),
        }
        .emit(&mut last_sent);
    }
    let mut rbuf = vec![0u8; neg.blksize + 4 + 1];
    let mut r = RecvWindow::new(neg.blksize, max, link.retries);
    link.sock.send_to(&last_sent, link.peer).await?;
    let mut deadline = tokio::time::Instant::now() + neg.timeout;
    loop {
        let n = match link.hear(&mut rbuf, deadline).await? {
            Heard::Packet(n) => n,
            Heard::Timeout if r.is_done() => return Ok(End::Done { bytes: r.bytes() }),
            Heard::Timeout if link.cancel.is_cancelled() => return Ok(End::Cancelled),
            Heard::Timeout => {
                if r.on_timeout() == Expired::GiveUp {
                    return Ok(End::TimedOut);
                }
                link.sock.send_to(&last_sent, link.peer).await?;
                deadline = tokio::time::Instant::now() + neg.timeout;
                continue;
            }
        };
        let (block, data) = match Packet::parse(&rbuf[..n]) {
            Ok(Packet::Data { block, data }) => (block, data),
            Ok(Packet::Error { .. }) if r.is_done() => return Ok(End::Done { bytes: r.bytes() }),
            Ok(Packet::Error { code, message }) => return Ok(End::ClientError { code, message }),
            _ => continue,
        };
        let last = match r.on_data(block, data.len()) {
            Received::Store { last } => last,
            Received::Repeat => {
                // Our ACK was lost: send it again.
                link.sock.send_to(&last_sent, link.peer).await?;
                continue;
            }
            Received::Ignore => continue,
            Received::TooLong => {
                return refuse(link, code::ILLEGAL_OPERATION, "Block too large").await
            }
            Received::TooLarge => return refuse(link, code::DISK_FULL, "Upload too large").await,
        };
        let stored = match sink.write(data).await {
            Ok(()) if last => sink.finish().await,
            w => w,
        };
        if let Err(e) = stored {
            link.send_error(&TftpError::new(code::DISK_FULL, "Write failed"))
                .await;
            return Ok(End::SourceFailed(e));
        }
        last_sent.clear();
        Packet::Ack { block }.emit(&mut last_sent);
        link.sock.send_to(&last_sent, link.peer).await?;
        deadline = tokio::time::Instant::now() + neg.timeout;
    }
}

/// Ends an upload that broke a rule: ERROR to the peer.
async fn refuse(link: &Link<'_>, code: u16, message: &str) -> io::Result<End> {
    let e = TftpError::new(code, message);
    link.send_error(&e).await;
    Ok(End::Refused(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::wire::tftp::Mode;
    use std::path::Path;

    fn cfg() -> TftpConfig {
        Config::parse("[tftp]\nmax_windowsize = 32\n", Path::new("t.ini"))
            .unwrap()
            .tftp
    }

    fn req(opts: &[(&str, &str)]) -> Request {
        Request {
            filename: "f".into(),
            mode: Mode::Octet,
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn no_options_no_oack() {
        let n = negotiate(&req(&[]), &cfg(), Some(10), false).unwrap();
        assert_eq!(n.blksize, 512);
        assert_eq!(n.window, 1);
        assert!(n.oack.is_empty());
    }

    #[test]
    fn edk2_probe_and_clamps() {
        let r = req(&[
            ("tsize", "0"),
            ("blksize", "65464"),
            ("windowsize", "64"),
            ("timeout", "3"),
            ("foo", "bar"),
            ("blksize", "8"),
        ]);
        let n = negotiate(&r, &cfg(), Some(123), false).unwrap();
        assert_eq!(n.blksize, 1468);
        assert_eq!(n.window, 32);
        assert_eq!(n.timeout, Duration::from_secs(3));
        let o: Vec<(&str, &str)> = n
            .oack
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            o,
            [
                ("tsize", "123"),
                ("blksize", "1468"),
                ("windowsize", "32"),
                ("timeout", "3")
            ]
        );
    }

    #[test]
    fn invalid_options_ignored() {
        let r = req(&[
            ("blksize", "7"),
            ("timeout", "0"),
            ("windowsize", "x"),
            ("tsize", "0"),
        ]);
        let n = negotiate(&r, &cfg(), None, false).unwrap();
        assert_eq!(n.blksize, 512);
        assert!(n.oack.is_empty(), "{:?}", n.oack);
    }

    #[test]
    fn timeout_above_the_cap_is_left_out_not_granted() {
        for t in ["6", "255"] {
            let n = negotiate(&req(&[("timeout", t)]), &cfg(), Some(1), false).unwrap();
            assert_eq!(n.timeout, Duration::from_secs(2), "timeout={t}");
            assert!(n.oack.is_empty(), "timeout={t}: {:?}", n.oack);
        }
        let n = negotiate(&req(&[("timeout", "5")]), &cfg(), Some(1), false).unwrap();
        assert_eq!(n.timeout, Duration::from_secs(5));
    }

    #[test]
    fn upload_tsize_cap() {
        let mut c = cfg();
        c.upload_max = 100;
        let r = req(&[("tsize", "101"), ("windowsize", "4")]);
        assert_eq!(
            negotiate(&r, &c, None, true).unwrap_err().code,
            code::DISK_FULL
        );
        let r = req(&[("tsize", "100"), ("windowsize", "4")]);
        let n = negotiate(&r, &c, None, true).unwrap();
        assert_eq!(n.window, 1);
        assert_eq!(n.oack, vec![("tsize".to_string(), "100".to_string())]);
    }

    #[test]
    fn window_memory_capped() {
        let mut c = cfg();
        c.max_blocksize = 65464;
        c.max_windowsize = 1024;
        let r = req(&[("blksize", "65464"), ("windowsize", "1024")]);
        let n = negotiate(&r, &c, None, false).unwrap();
        assert!(n.window * n.blksize <= MAX_WINDOW_BYTES);
        assert_eq!(n.oack[1].1, n.window.to_string());
    }
}
