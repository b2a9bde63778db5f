//! tftpload: the benchmarks' load client. `get` runs N concurrent TFTP RRQs
//! (blksize/tsize/windowsize, RFC 2347/2348/2349/7440) from one process and
//! hashes every byte; `pingpong` and `echo` measure the lock-step UDP
//! ceiling; `startup` times a server from exec to its first answer. Every
//! mode prints one JSON object on stdout.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket as StdUdp};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};
use tokio::net::UdpSocket;

#[derive(Parser)]
#[command(
    name = "tftpload",
    about = "TFTP load client and UDP ceilings for pybootd's benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// N concurrent downloads of one file; prints a JSON summary.
    Get(GetArgs),
    /// Lock-step UDP round trips of blksize+4 bytes against `echo`.
    Pingpong(PingArgs),
    /// Answers every datagram with a 4-byte ACK-like reply (the zero-work server).
    Echo(EchoArgs),
    /// Starts a server command and times its first answer; then its idle RSS.
    Startup(StartupArgs),
}

#[derive(clap::Args, Clone)]
struct GetArgs {
    /// Server address, e.g. 10.77.0.1:69.
    #[arg(long)]
    server: SocketAddrV4,
    /// File name to request.
    #[arg(long)]
    file: String,
    /// blksize option to ask for (none: no option, 512-byte blocks).
    #[arg(long)]
    blksize: Option<u16>,
    /// windowsize option to ask for (none: no option, lock-step).
    #[arg(long)]
    windowsize: Option<u16>,
    /// Do not send the tsize option.
    #[arg(long)]
    no_tsize: bool,
    /// Concurrent transfers, all started at once.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Expected SHA-256 (hex) of the file; a mismatch fails the transfer.
    #[arg(long)]
    sha256: Option<String>,
    /// Expected size in bytes.
    #[arg(long)]
    size: Option<u64>,
    /// Retransmission timeout (ms).
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Retransmissions of one packet before a transfer fails.
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// Transfers not finished this many seconds after the start fail.
    #[arg(long, default_value_t = 120.0)]
    deadline_s: f64,
    /// Local address to bind.
    #[arg(long)]
    bind: Option<Ipv4Addr>,
    /// Write one line per transfer (index, ok, seconds, bytes, error) here.
    #[arg(long)]
    times: Option<PathBuf>,
}

#[derive(clap::Args)]
struct PingArgs {
    #[arg(long)]
    server: SocketAddrV4,
    #[arg(long)]
    blksize: usize,
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
}

#[derive(clap::Args)]
struct EchoArgs {
    #[arg(long)]
    bind: SocketAddrV4,
}

#[derive(clap::Args)]
struct StartupArgs {
    /// Address to probe: a TFTP server (port 69) or, with --dhcp, a DHCP server.
    #[arg(long)]
    server: SocketAddrV4,
    /// File to ask for (TFTP probe).
    #[arg(long, default_value = "probe")]
    file: String,
    /// Probe with a relayed DHCPDISCOVER from --bind:67 instead of a TFTP RRQ.
    #[arg(long)]
    dhcp: bool,
    /// Local address (the relay's giaddr with --dhcp).
    #[arg(long)]
    bind: Option<Ipv4Addr>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout_s: f64,
    /// Seconds to wait after the first answer before reading the idle RSS.
    #[arg(long, default_value_t = 1.0)]
    idle_s: f64,
    /// Server stderr/stdout go here.
    #[arg(long)]
    log: Option<PathBuf>,
    /// The server command (its pid must be the server's: exec, no fork).
    #[arg(trailing_var_arg = true, required = true)]
    cmd: Vec<String>,
}

fn main() {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Get(a) => runtime().block_on(get(a)),
        Cmd::Pingpong(a) => runtime().block_on(pingpong(a)),
        Cmd::Echo(a) => echo(a),
        Cmd::Startup(a) => startup(a),
    };
    if let Err(e) = res {
        eprintln!("tftpload: {e}");
        std::process::exit(2);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

const OP_RRQ: u16 = 1;
const OP_DATA: u16 = 3;
const OP_ACK: u16 = 4;
const OP_ERROR: u16 = 5;
const OP_OACK: u16 = 6;

fn rrq(file: &str, blksize: Option<u16>, windowsize: Option<u16>, tsize: bool) -> Vec<u8> {
    let mut p = OP_RRQ.to_be_bytes().to_vec();
    for s in [file, "octet"] {
        p.extend_from_slice(s.as_bytes());
        p.push(0);
    }
    let mut opt = |k: &str, v: String| {
        p.extend_from_slice(k.as_bytes());
        p.push(0);
        p.extend_from_slice(v.as_bytes());
        p.push(0);
    };
    if let Some(b) = blksize {
        opt("blksize", b.to_string());
    }
    if tsize {
        opt("tsize", "0".into());
    }
    if let Some(w) = windowsize {
        opt("windowsize", w.to_string());
    }
    p
}

fn ack(block: u16) -> [u8; 4] {
    let b = block.to_be_bytes();
    [0, OP_ACK as u8, b[0], b[1]]
}

fn op(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[0], p[1]])
}

fn error_text(p: &[u8]) -> String {
    let code = if p.len() >= 4 {
        u16::from_be_bytes([p[2], p[3]])
    } else {
        0
    };
    let msg = p.get(4..).unwrap_or(&[]);
    let msg = msg.split(|&b| b == 0).next().unwrap_or(&[]);
    format!("server ERROR {code}: {}", String::from_utf8_lossy(msg))
}

/// Options of an OACK, names lowercased.
fn oack_options(p: &[u8]) -> Vec<(String, String)> {
    let mut parts = p[2..]
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        if k.is_empty() {
            break;
        }
        out.push((k.to_ascii_lowercase(), v));
    }
    out
}

struct Fetched {
    bytes: u64,
    sha256: String,
    blksize: usize,
    windowsize: u16,
    retransmits: u32,
}

struct Outcome {
    ok: bool,
    secs: f64,
    end: Instant,
    bytes: u64,
    /// Bytes received, also by a transfer that failed.
    received: u64,
    blksize: usize,
    windowsize: u16,
    retransmits: u32,
    err: String,
}

async fn fetch(a: &GetArgs, progress: &AtomicU64) -> Result<Fetched, String> {
    let sock = UdpSocket::bind(SocketAddrV4::new(
        a.bind.unwrap_or(Ipv4Addr::UNSPECIFIED),
        0,
    ))
    .await
    .map_err(|e| format!("bind: {e}"))?;
    let timeout = Duration::from_millis(a.timeout_ms);
    let req = rrq(&a.file, a.blksize, a.windowsize, !a.no_tsize);
    let mut buf = vec![0u8; 65536 + 8];
    let mut retransmits = 0u32;
    let mut tries = 0u32;
    // The first answer comes from the transfer's own port (its TID).
    let (mut pending, peer) = loop {
        sock.send_to(&req, a.server)
            .await
            .map_err(|e| format!("send RRQ: {e}"))?;
        match tokio::time::timeout(timeout, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, SocketAddr::V4(p)))) if *p.ip() == *a.server.ip() && n >= 4 => {
                break (Some(n), p)
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("recv: {e}")),
            Err(_) => {
                tries += 1;
                retransmits += 1;
                if tries > a.retries {
                    return Err("no answer to the RRQ".into());
                }
            }
        }
    };
    sock.connect(peer)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut blksize = 512usize;
    let mut ws = 1u16;
    let mut tsize: Option<u64> = None;
    if let Some(n) = pending {
        match op(&buf[..n]) {
            OP_OACK => {
                for (k, v) in oack_options(&buf[..n]) {
                    let num: u64 = v.parse().map_err(|_| format!("bad OACK value {k}={v}"))?;
                    match k.as_str() {
                        "blksize" => blksize = num as usize,
                        "windowsize" => ws = num.max(1) as u16,
                        "tsize" => tsize = Some(num),
                        _ => {}
                    }
                }
                if blksize > a.blksize.unwrap_or(512) as usize || blksize < 8 {
                    return Err(format!("OACK blksize {blksize} not what was asked"));
                }
                if ws > a.windowsize.unwrap_or(1) {
                    return Err(format!("OACK windowsize {ws} larger than asked"));
                }
                sock.send(&ack(0)).await.map_err(|e| format!("send: {e}"))?;
                pending = None;
            }
            OP_DATA => {}
            OP_ERROR => return Err(error_text(&buf[..n])),
            o => return Err(format!("unexpected opcode {o} in the first answer")),
        }
    }
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut expected: u64 = 1;
    let mut in_window = 0u16;
    let mut nak_sent = false;
    let mut tries = 0u32;
    loop {
        let n = match pending.take() {
            Some(n) => n,
            None => match tokio::time::timeout(timeout, sock.recv(&mut buf)).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(format!("recv: {e}")),
                Err(_) => {
                    tries += 1;
                    retransmits += 1;
                    if tries > a.retries {
                        return Err(format!("timeout waiting for block {expected}"));
                    }
                    sock.send(&ack((expected - 1) as u16))
                        .await
                        .map_err(|e| format!("send: {e}"))?;
                    in_window = 0;
                    continue;
                }
            },
        };
        if n < 4 {
            continue;
        }
        match op(&buf[..n]) {
            OP_DATA => {
                let blk = u16::from_be_bytes([buf[2], buf[3]]);
                if blk == expected as u16 {
                    let data = &buf[4..n];
                    if data.len() > blksize {
                        return Err(format!(
                            "block {expected} holds {} > blksize {blksize}",
                            data.len()
                        ));
                    }
                    hasher.update(data);
                    total += data.len() as u64;
                    progress.store(total, Ordering::Relaxed);
                    tries = 0;
                    nak_sent = false;
                    expected += 1;
                    in_window += 1;
                    if data.len() < blksize {
                        sock.send(&ack(blk))
                            .await
                            .map_err(|e| format!("send: {e}"))?;
                        break;
                    }
                    if in_window >= ws {
                        sock.send(&ack(blk))
                            .await
                            .map_err(|e| format!("send: {e}"))?;
                        in_window = 0;
                    }
                } else if !nak_sent {
                    // A gap or a duplicate: acknowledge what we hold, once,
                    // so the server resumes from the next block (RFC 7440).
                    sock.send(&ack((expected - 1) as u16))
                        .await
                        .map_err(|e| format!("send: {e}"))?;
                    nak_sent = true;
                    in_window = 0;
                }
            }
            OP_OACK if expected == 1 => {
                sock.send(&ack(0)).await.map_err(|e| format!("send: {e}"))?;
            }
            OP_ERROR => return Err(error_text(&buf[..n])),
            _ => {}
        }
    }
    if let Some(t) = tsize {
        if t != total {
            return Err(format!("tsize said {t}, got {total} bytes"));
        }
    }
    let sha256 = hex(&hasher.finalize());
    Ok(Fetched {
        bytes: total,
        sha256,
        blksize,
        windowsize: ws,
        retransmits,
    })
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

async fn one(a: Arc<GetArgs>, deadline: tokio::time::Instant) -> Outcome {
    let t0 = Instant::now();
    let progress = AtomicU64::new(0);
    let r = tokio::time::timeout_at(deadline, fetch(&a, &progress)).await;
    let end = Instant::now();
    let secs = (end - t0).as_secs_f64();
    let mut o = Outcome {
        ok: false,
        secs,
        end,
        bytes: 0,
        received: progress.load(Ordering::Relaxed),
        blksize: 0,
        windowsize: 0,
        retransmits: 0,
        err: String::new(),
    };
    match r {
        Err(_) => o.err = "deadline".into(),
        Ok(Err(e)) => o.err = e,
        Ok(Ok(f)) => {
            o.bytes = f.bytes;
            o.blksize = f.blksize;
            o.windowsize = f.windowsize;
            o.retransmits = f.retransmits;
            if a.size.is_some_and(|s| s != f.bytes) {
                o.err = format!("size {} != expected {}", f.bytes, a.size.unwrap_or(0));
            } else if a
                .sha256
                .as_ref()
                .is_some_and(|h| !h.eq_ignore_ascii_case(&f.sha256))
            {
                o.err = format!("sha256 mismatch: got {}", f.sha256);
            } else {
                o.ok = true;
            }
        }
    }
    o
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        "null".into()
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

async fn get(a: GetArgs) -> Result<(), String> {
    let a = Arc::new(a);
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(a.deadline_s);
    let tasks: Vec<_> = (0..a.clients)
        .map(|_| tokio::spawn(one(a.clone(), deadline)))
        .collect();
    let mut outs = Vec::with_capacity(tasks.len());
    for t in tasks {
        outs.push(t.await.map_err(|e| format!("transfer task: {e}"))?);
    }
    let completed: Vec<&Outcome> = outs.iter().filter(|o| o.ok).collect();
    let failed = outs.len() - completed.len();
    let mut secs: Vec<f64> = completed.iter().map(|o| o.secs).collect();
    secs.sort_by(|x, y| x.total_cmp(y));
    let bytes: u64 = completed.iter().map(|o| o.bytes).sum();
    let wall = completed
        .iter()
        .map(|o| (o.end - start).as_secs_f64())
        .fold(0.0, f64::max);
    let mbps = if wall > 0.0 {
        bytes as f64 / wall / 1e6
    } else {
        f64::NAN
    };
    let retransmits: u32 = outs.iter().map(|o| o.retransmits).sum();
    // Goodput of everything received, finished or not (a storm in which
    // nobody finishes still moved data).
    let received: u64 = outs.iter().map(|o| o.received).sum();
    let wall_all = outs
        .iter()
        .map(|o| (o.end - start).as_secs_f64())
        .fold(0.0, f64::max);
    let mbps_all = if wall_all > 0.0 {
        received as f64 / wall_all / 1e6
    } else {
        f64::NAN
    };
    let first_err = outs
        .iter()
        .find(|o| !o.ok)
        .map(|o| o.err.clone())
        .unwrap_or_default();
    if let Some(path) = &a.times {
        let mut s = String::from("index\tok\tseconds\tbytes\terror\n");
        for (i, o) in outs.iter().enumerate() {
            let _ = writeln!(
                s,
                "{i}\t{}\t{:.4}\t{}\t{}",
                o.ok as u8, o.secs, o.bytes, o.err
            );
        }
        std::fs::write(path, s).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let g = completed.first();
    println!(
        "{{\"mode\":\"get\",\"clients\":{},\"completed\":{},\"failed\":{},\"bytes\":{},\"blksize\":{},\"windowsize\":{},\"wall_s\":{},\"p50_s\":{},\"p99_s\":{},\"max_s\":{},\"mbps\":{},\"retransmits\":{},\"received\":{},\"mbps_all\":{},\"first_error\":{}}}",
        a.clients,
        completed.len(),
        failed,
        bytes,
        g.map_or(0, |o| o.blksize),
        g.map_or(0, |o| o.windowsize),
        json_num(wall),
        json_num(percentile(&secs, 50.0)),
        json_num(percentile(&secs, 99.0)),
        json_num(secs.last().copied().unwrap_or(f64::NAN)),
        json_num(mbps),
        retransmits,
        received,
        json_num(mbps_all),
        json_str(&first_err)
    );
    Ok(())
}

async fn pingpong(a: PingArgs) -> Result<(), String> {
    let sock = UdpSocket::bind("0.0.0.0:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    sock.connect(a.server)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut payload = vec![0u8; a.blksize + 4];
    payload[1] = OP_DATA as u8;
    let mut buf = vec![0u8; 64];
    let t0 = Instant::now();
    let dur = Duration::from_secs_f64(a.seconds);
    let (mut rt, mut lost) = (0u64, 0u64);
    let mut blk: u16 = 0;
    while t0.elapsed() < dur {
        blk = blk.wrapping_add(1);
        payload[2..4].copy_from_slice(&blk.to_be_bytes());
        sock.send(&payload)
            .await
            .map_err(|e| format!("send: {e}"))?;
        match tokio::time::timeout(Duration::from_millis(200), sock.recv(&mut buf)).await {
            Ok(Ok(_)) => rt += 1,
            Ok(Err(e)) => return Err(format!("recv: {e}")),
            Err(_) => lost += 1,
        }
    }
    let el = t0.elapsed().as_secs_f64();
    if rt == 0 {
        return Err("no echo answered".into());
    }
    println!(
        "{{\"mode\":\"pingpong\",\"blksize\":{},\"round_trips\":{rt},\"lost\":{lost},\"rtt_us\":{},\"mbps\":{}}}",
        a.blksize,
        json_num(el / rt as f64 * 1e6),
        json_num(rt as f64 * a.blksize as f64 / el / 1e6)
    );
    Ok(())
}

fn echo(a: EchoArgs) -> Result<(), String> {
    let sock = StdUdp::bind(a.bind).map_err(|e| format!("bind {}: {e}", a.bind))?;
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = sock.recv_from(&mut buf).map_err(|e| format!("recv: {e}"))?;
        if n >= 4 {
            let reply = [0, OP_ACK as u8, buf[2], buf[3]];
            let _ = sock.send_to(&reply, from);
        }
    }
}

/// A relayed DHCPDISCOVER (giaddr = relay) from a fixed MAC.
fn discover(relay: Ipv4Addr, xid: u32) -> Vec<u8> {
    let mut p = vec![0u8; 240];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // ethernet
    p[2] = 6;
    p[3] = 1; // hops
    p[4..8].copy_from_slice(&xid.to_be_bytes());
    p[24..28].copy_from_slice(&relay.octets());
    p[28..34].copy_from_slice(&[0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);
    p[236..240].copy_from_slice(&[99, 130, 83, 99]);
    p.extend_from_slice(&[53, 1, 1, 255]);
    p
}

fn startup(a: StartupArgs) -> Result<(), String> {
    let bind_ip = a.bind.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let sock = if a.dhcp {
        StdUdp::bind(SocketAddrV4::new(bind_ip, 67))
    } else {
        StdUdp::bind(SocketAddrV4::new(bind_ip, 0))
    }
    .map_err(|e| format!("bind: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_millis(2)))
        .map_err(|e| e.to_string())?;
    let (out, err) = match &a.log {
        Some(p) => {
            let f = std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
            (
                Stdio::from(f.try_clone().map_err(|e| e.to_string())?),
                Stdio::from(f),
            )
        }
        None => (Stdio::null(), Stdio::null()),
    };
    let t0 = Instant::now();
    let mut child = Command::new(&a.cmd[0])
        .args(&a.cmd[1..])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", a.cmd))?;
    let pid = child.id();
    let mut buf = vec![0u8; 2048];
    let mut xid = 0x5eed_0000u32;
    let mut first = None;
    while t0.elapsed() < Duration::from_secs_f64(a.timeout_s) {
        let probe = if a.dhcp {
            xid += 1;
            discover(bind_ip, xid)
        } else {
            rrq(&a.file, None, None, false)
        };
        let _ = sock.send_to(&probe, a.server);
        if let Ok((n, SocketAddr::V4(from))) = sock.recv_from(&mut buf) {
            if from.ip() == a.server.ip() && n >= 4 {
                first = Some(t0.elapsed());
                break;
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("server exited before answering: {st}"));
        }
    }
    let Some(first) = first else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("no answer within {} s", a.timeout_s));
    };
    std::thread::sleep(Duration::from_secs_f64(a.idle_s));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (rss, hwm) = (kib("VmRSS:"), kib("VmHWM:"));
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "{{\"mode\":\"startup\",\"pid\":{pid},\"first_answer_ms\":{},\"idle_rss_kib\":{rss},\"hwm_kib\":{hwm}}}",
        json_num(first.as_secs_f64() * 1e3)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrq_layout() {
        let p = rrq("a/b", Some(1468), Some(16), true);
        assert_eq!(
            p,
            b"\x00\x01a/b\x00octet\x00blksize\x001468\x00tsize\x000\x00windowsize\x0016\x00"
                .to_vec()
        );
        assert_eq!(
            rrq("x", None, None, false),
            b"\x00\x01x\x00octet\x00".to_vec()
        );
    }

    #[test]
    fn oack_parse() {
        let o = oack_options(b"\x00\x06BLKSIZE\x001468\x00tsize\x0042\x00");
        assert_eq!(
            o,
            vec![
                ("blksize".into(), "1468".into()),
                ("tsize".into(), "42".into())
            ]
        );
    }

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
    }
}
