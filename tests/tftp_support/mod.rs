//! TFTP test support: an in-process server on 127.0.0.1:0 and a small
//! blocking TFTP client with hooks to lose or repeat ACKs and to count
//! repeated DATA blocks.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pybootd::config::Config;
use pybootd::tftp::TftpServer;
use pybootd::wire::tftp::{Mode, Packet, Request};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

pub fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// A server running in its own runtime; stopped on drop.
pub struct Server {
    pub addr: SocketAddr,
    stop: CancellationToken,
    rt: Option<tokio::runtime::Runtime>,
}

impl Server {
    /// `ini` is the rest of the file after `[tftp]\nroot = <root>`.
    pub fn start(root: &Path, ini: &str) -> Server {
        Server::start_on(root, ini, "127.0.0.1:0")
    }

    /// The same, listening on `bind` (e.g. `0.0.0.0:0`).
    pub fn start_on(root: &Path, ini: &str, bind: &str) -> Server {
        let text = format!("[tftp]\nroot = {}\n{ini}", root.display());
        let config = Config::parse(&text, Path::new("test.ini")).expect("test config");
        let sock = pybootd::bind_udp(bind.parse().unwrap()).unwrap();
        let addr = sock.local_addr().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let stop = CancellationToken::new();
        let server = TftpServer::new(Arc::new(config), sock).expect("server starts");
        rt.spawn(server.serve(stop.clone()));
        Server {
            addr,
            stop,
            rt: Some(rt),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

#[derive(Default, Clone)]
pub struct Hooks {
    /// Do not send the first ACK for this block number (wire value).
    pub drop_ack: Option<u16>,
    /// Send every ACK twice.
    pub dup_acks: bool,
    /// Send an ERROR 8 in answer to the OACK (EDK2's size probe).
    pub abort_after_oack: bool,
    /// Ignore the first DATA packet with this block number (lost on the
    /// way): the rest of its window arrives out of order.
    pub drop_data: Option<u16>,
}

#[derive(Debug, Default)]
pub struct Got {
    pub data: Vec<u8>,
    /// The OACK's options, when one came.
    pub oack: Option<Vec<(String, String)>>,
    /// DATA packets received for a block already received.
    pub repeats: usize,
    /// Size of the first DATA packet's payload.
    pub first_block_len: Option<usize>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Fail {
    Error(u16, String),
    Timeout,
}

pub fn get(server: SocketAddr, name: &str, opts: &[(&str, &str)]) -> Result<Got, Fail> {
    get_with(server, name, Mode::Octet, opts, &Hooks::default())
}

/// Fetches `name`. Windows: ACKs after `windowsize` blocks (or the last),
/// and re-ACKs the last good block on a timeout, as RFC 7440 clients do.
pub fn get_with(
    server: SocketAddr,
    name: &str,
    mode: Mode,
    opts: &[(&str, &str)],
    hooks: &Hooks,
) -> Result<Got, Fail> {
    get_from(server, "127.0.0.1:0", name, mode, opts, hooks)
}

/// [`get_with`] from a socket bound on `bind` (e.g. `127.0.0.2:0`: another
/// source address on loopback).
pub fn get_from(
    server: SocketAddr,
    bind: &str,
    name: &str,
    mode: Mode,
    opts: &[(&str, &str)],
    hooks: &Hooks,
) -> Result<Got, Fail> {
    let sock = UdpSocket::bind(bind).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let rrq = request(false, name, mode, opts);
    sock.send_to(&rrq, server).unwrap();
    let mut blksize = 512usize;
    let mut window = 1usize;
    let mut got = Got::default();
    let mut tid: Option<SocketAddr> = None;
    let mut last_good: u64 = 0; // blocks received in order
    let mut since_ack = 0usize;
    let mut dropped = false;
    let mut dropped_data = false;
    let mut timeouts = 0;
    let mut buf = vec![0u8; 65536 + 8];
    let send_ack = |block: u16, tid: SocketAddr, dropped: &mut bool| {
        if hooks.drop_ack == Some(block) && !*dropped {
            *dropped = true;
            return;
        }
        let a = [0, 4, (block >> 8) as u8, block as u8];
        sock.send_to(&a, tid).unwrap();
        if hooks.dup_acks {
            sock.send_to(&a, tid).unwrap();
        }
    };
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => {
                timeouts += 1;
                if timeouts > 20 {
                    return Err(Fail::Timeout);
                }
                match tid {
                    None => {
                        sock.send_to(&rrq, server).unwrap();
                    }
                    Some(t) => send_ack(last_good as u16, t, &mut dropped),
                }
                continue;
            }
        };
        if let Some(t) = tid {
            if from != t {
                continue;
            }
        } else {
            tid = Some(from);
        }
        let t = from;
        match Packet::parse(&buf[..n]) {
            Ok(Packet::Oack { options }) => {
                if got.oack.is_some() {
                    continue;
                }
                for (k, v) in &options {
                    match k.as_str() {
                        "blksize" => blksize = v.parse().unwrap(),
                        "windowsize" => window = v.parse().unwrap(),
                        _ => {}
                    }
                }
                got.oack = Some(options);
                if hooks.abort_after_oack {
                    let mut e = Vec::new();
                    Packet::Error {
                        code: 8,
                        message: "User aborted the transfer".into(),
                    }
                    .emit(&mut e);
                    sock.send_to(&e, t).unwrap();
                    return Ok(got);
                }
                send_ack(0, t, &mut dropped);
            }
            Ok(Packet::Data { block, data }) => {
                if hooks.drop_data == Some(block) && !dropped_data {
                    dropped_data = true;
                    continue;
                }
                got.first_block_len.get_or_insert(data.len());
                if block == (last_good + 1) as u16 {
                    got.data.extend_from_slice(data);
                    last_good += 1;
                    since_ack += 1;
                    timeouts = 0;
                    let end = data.len() < blksize;
                    if end || since_ack >= window {
                        since_ack = 0;
                        send_ack(block, t, &mut dropped);
                    }
                    if end {
                        return Ok(got);
                    }
                } else {
                    // A repeat: our ACK was lost; say again where we are.
                    got.repeats += 1;
                    since_ack = 0;
                    send_ack(last_good as u16, t, &mut dropped);
                }
            }
            Ok(Packet::Error { code, message }) => return Err(Fail::Error(code, message)),
            other => panic!("unexpected packet {other:?}"),
        }
    }
}

/// The bytes of an RRQ (or, `write`, a WRQ) for `name` with `opts`.
pub fn request(write: bool, name: &str, mode: Mode, opts: &[(&str, &str)]) -> Vec<u8> {
    let req = Request {
        filename: name.into(),
        mode,
        options: opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let mut out = Vec::new();
    if write {
        Packet::Wrq(req).emit(&mut out);
    } else {
        Packet::Rrq(req).emit(&mut out);
    }
    out
}

/// Uploads `data` as `name`.
pub fn put(server: SocketAddr, name: &str, data: &[u8], opts: &[(&str, &str)]) -> Result<(), Fail> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let wrq = request(true, name, Mode::Octet, opts);
    sock.send_to(&wrq, server).unwrap();
    let mut buf = [0u8; 1024];
    let mut blksize = 512;
    let mut block: u16 = 0;
    let mut sent = 0usize;
    let mut tid = None;
    let mut last = wrq.clone();
    let mut tries = 0;
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => {
                tries += 1;
                if tries > 10 {
                    return Err(Fail::Timeout);
                }
                sock.send_to(&last, tid.unwrap_or(server)).unwrap();
                continue;
            }
        };
        tid.get_or_insert(from);
        let acked = match Packet::parse(&buf[..n]) {
            Ok(Packet::Oack { options }) => {
                for (k, v) in options {
                    if k == "blksize" {
                        blksize = v.parse().unwrap();
                    }
                }
                0
            }
            Ok(Packet::Ack { block }) => block,
            Ok(Packet::Error { code, message }) => return Err(Fail::Error(code, message)),
            other => panic!("unexpected {other:?}"),
        };
        if acked != block {
            continue;
        }
        if block > 0 && (last.len() - 4) < blksize {
            return Ok(());
        }
        let chunk = &data[sent..(sent + blksize).min(data.len())];
        sent += chunk.len();
        block = block.wrapping_add(1);
        last = vec![0, 3, (block >> 8) as u8, block as u8];
        last.extend_from_slice(chunk);
        sock.send_to(&last, from).unwrap();
    }
}
