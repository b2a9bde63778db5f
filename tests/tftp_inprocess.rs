//! TFTP server tests in-process on 127.0.0.1:0 (no root needed): sizes,
//! options, loss, duplicates, rollover, traversal, strangers, concurrency,
//! filters and uploads, each checked byte for byte.

mod common;
mod tftp_support;

use std::net::UdpSocket;
use std::time::Duration;

use common::Scratch;
use pybootd::wire::tftp::{Mode, Packet};
use tftp_support::*;

fn opt<'a>(got: &'a Got, k: &str) -> Option<&'a str> {
    got.oack
        .as_ref()?
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
}

#[test]
fn size_classes_match_by_sha256() {
    let root = Scratch::new("sizes");
    for bs in [512usize, 1468] {
        let srv = Server::start(&root.path, "");
        for (i, size) in [0, bs - 1, bs, bs + 1, 3 * bs, 10 * bs + 7]
            .into_iter()
            .enumerate()
        {
            let name = format!("f{bs}_{i}");
            let content = bytes(size, size as u64 + 1);
            root.write(&name, &content);
            let bss = bs.to_string();
            let opts: Vec<(&str, &str)> = if bs == 512 {
                vec![]
            } else {
                vec![("blksize", &bss), ("tsize", "0")]
            };
            let got = get(srv.addr, &name, &opts).unwrap();
            assert_eq!(sha(&got.data), sha(&content), "size {size} blksize {bs}");
            if bs != 512 {
                assert_eq!(opt(&got, "tsize"), Some(size.to_string().as_str()));
            } else {
                assert!(got.oack.is_none(), "no options asked: no OACK");
            }
        }
    }
}

#[test]
fn rollover_past_65535_blocks() {
    let root = Scratch::new("roll");
    // Lock-step at blksize 8: 65536 + 3 blocks, cheap to move.
    let small = bytes(8 * 65538 + 5, 7);
    root.write("small", &small);
    // A real one: > 32 MiB at 512 (windowed to keep the test quick).
    let big = bytes(512 * 65536 + 300, 9);
    root.write("big", &big);
    let srv = Server::start(&root.path, "max_windowsize = 64\n");
    let got = get(srv.addr, "small", &[("blksize", "8")]).unwrap();
    assert_eq!(sha(&got.data), sha(&small));
    let got = get(srv.addr, "big", &[("windowsize", "32"), ("tsize", "0")]).unwrap();
    assert_eq!(sha(&got.data), sha(&big));
    assert_eq!(opt(&got, "tsize"), Some(big.len().to_string().as_str()));
}

#[test]
fn every_option() {
    let root = Scratch::new("opts");
    let content = bytes(200_000, 3);
    root.write("f", &content);
    let srv = Server::start(&root.path, "max_windowsize = 16\n");
    // blksize above the max is clamped; windowsize too; timeout echoed;
    // unknown options are not answered.
    let got = get(
        srv.addr,
        "f",
        &[
            ("blksize", "65464"),
            ("tsize", "0"),
            ("timeout", "3"),
            ("windowsize", "64"),
            ("multicast", ""),
            ("foo", "1"),
        ],
    );
    let got = got.unwrap();
    assert_eq!(sha(&got.data), sha(&content));
    assert_eq!(opt(&got, "blksize"), Some("1468"));
    assert_eq!(got.first_block_len, Some(1468));
    assert_eq!(opt(&got, "tsize"), Some("200000"));
    assert_eq!(opt(&got, "timeout"), Some("3"));
    assert_eq!(opt(&got, "windowsize"), Some("16"));
    assert_eq!(opt(&got, "foo"), None);

    // The maximum is configurable: the largest block on loopback.
    drop(srv);
    let srv = Server::start(&root.path, "max_blocksize = 65464\n");
    let got = get(srv.addr, "f", &[("blksize", "65464")]).unwrap();
    assert_eq!(opt(&got, "blksize"), Some("65464"));
    assert_eq!(got.first_block_len, Some(65464));
    assert_eq!(sha(&got.data), sha(&content));

    // Netascii: LF -> CR LF on the wire, no tsize (size unknown).
    root.write("t.txt", b"a\nb\r\n");
    let got = get_with(
        srv.addr,
        "t.txt",
        Mode::Netascii,
        &[("tsize", "0")],
        &Hooks::default(),
    )
    .unwrap();
    assert_eq!(got.data, b"a\r\nb\r\0\r\n");
    assert!(got.oack.is_none());
}

#[test]
fn edk2_size_probe_then_transfer() {
    let root = Scratch::new("edk2");
    let content = bytes(100_000, 5);
    root.write("grubnetx64.efi", &content);
    let srv = Server::start(&root.path, "");
    let hooks = Hooks {
        abort_after_oack: true,
        ..Hooks::default()
    };
    let probe = get_with(
        srv.addr,
        "grubnetx64.efi",
        Mode::Octet,
        &[("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")],
        &hooks,
    )
    .unwrap();
    assert_eq!(opt(&probe, "tsize"), Some("100000"));
    assert_eq!(opt(&probe, "windowsize"), Some("4"));
    let got = get(
        srv.addr,
        "grubnetx64.efi",
        &[("blksize", "1468"), ("windowsize", "4")],
    )
    .unwrap();
    assert_eq!(sha(&got.data), sha(&content));
}

#[test]
fn edk2_probe_then_new_rrq_from_the_same_port_starts_at_once() {
    let root = Scratch::new("edk2same");
    let content = bytes(5000, 31);
    root.write("g.efi", &content);
    let srv = Server::start(&root.path, "");
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 2048];
    s.send_to(
        b"\x00\x01g.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00",
        srv.addr,
    )
    .unwrap();
    let (n, tid) = s.recv_from(&mut buf).unwrap();
    assert!(matches!(Packet::parse(&buf[..n]), Ok(Packet::Oack { .. })));
    s.send_to(b"\x00\x05\x00\x08User aborted the transfer\x00", tid)
        .unwrap();
    // The same RRQ again would be a retransmission; this one differs.
    s.send_to(b"\x00\x01g.efi\x00octet\x00blksize\x001468\x00", srv.addr)
        .unwrap();
    let (n, tid2) = s.recv_from(&mut buf).expect("an answer, not silence");
    assert_ne!(tid, tid2);
    assert!(matches!(Packet::parse(&buf[..n]), Ok(Packet::Oack { .. })));
    s.send_to(&[0, 4, 0, 0], tid2).unwrap();
    let (n, _) = s.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..4], &[0, 3, 0, 1]);
    assert!(buf[4..n] == content[..1468], "first block's bytes");
}

#[test]
fn lost_ack_is_retransmitted_and_duplicate_acks_send_nothing_twice() {
    let root = Scratch::new("loss");
    let content = bytes(50_000, 11);
    root.write("f", &content);
    let srv = Server::start(&root.path, "timeout = 0.2\n");
    // The ACK of block 5 is lost: the server resends block 6 after its
    // timeout (the client sees a repeat).
    let hooks = Hooks {
        drop_ack: Some(5),
        ..Hooks::default()
    };
    let got = get_with(srv.addr, "f", Mode::Octet, &[], &hooks).unwrap();
    assert_eq!(sha(&got.data), sha(&content));
    assert!(got.repeats >= 1, "a retransmission was expected");

    // Every ACK twice: no window is sent twice (Sorcerer's Apprentice).
    for w in ["1", "4"] {
        let hooks = Hooks {
            dup_acks: true,
            ..Hooks::default()
        };
        let got = get_with(srv.addr, "f", Mode::Octet, &[("windowsize", w)], &hooks).unwrap();
        assert_eq!(sha(&got.data), sha(&content));
        assert_eq!(got.repeats, 0, "windowsize {w}: repeated DATA");
    }
}

#[test]
fn lost_data_in_a_window_is_resent_from_the_gap() {
    let root = Scratch::new("gap");
    let content = bytes(100_000, 23);
    root.write("f", &content);
    let srv = Server::start(&root.path, "timeout = 0.3\n");
    let hooks = Hooks {
        drop_data: Some(10),
        ..Hooks::default()
    };
    let got = get_with(srv.addr, "f", Mode::Octet, &[("windowsize", "8")], &hooks).unwrap();
    assert_eq!(sha(&got.data), sha(&content));
    assert!(got.repeats >= 1, "blocks after the gap arrive out of order");
}

#[test]
fn silent_client_is_abandoned_after_bounded_retries_and_frees_its_slot() {
    let root = Scratch::new("silent");
    root.write("f", &bytes(10_000, 29));
    let srv = Server::start(
        &root.path,
        "timeout = 0.2\nretries = 2\nmax_transfers = 1\n",
    );
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    s.send_to(b"\x00\x01f\x00octet\x00", srv.addr).unwrap();
    let mut buf = [0u8; 1024];
    let mut copies = 0;
    while let Ok((n, _)) = s.recv_from(&mut buf) {
        assert_eq!(&buf[..4], &[0, 3, 0, 1], "{n} bytes");
        copies += 1;
        assert!(copies <= 3, "more than 1 + retries copies");
    }
    assert_eq!(copies, 3, "block 1 once, then retries = 2 retransmissions");
    // The only slot is free again.
    assert_eq!(get(srv.addr, "f", &[]).unwrap().data.len(), 10_000);
}

#[test]
fn traversal_refused_without_a_byte() {
    let root = Scratch::new("trav");
    let outside = Scratch::new("outside");
    outside.write("secret", b"secret");
    root.write("a/inside", b"inside");
    std::os::unix::fs::symlink(outside.path.join("secret"), root.path.join("link")).unwrap();
    std::os::unix::fs::symlink(&outside.path, root.path.join("dirlink")).unwrap();
    std::os::unix::fs::symlink("a/inside", root.path.join("goodlink")).unwrap();
    let srv = Server::start(&root.path, "");
    for name in [
        "../x",
        "a/../../x",
        "a/..",
        "link",
        "dirlink/secret",
        "../outside/secret",
    ] {
        match get(srv.addr, name, &[]) {
            Err(Fail::Error(code, _)) => assert!(code == 2 || code == 1, "{name}: code {code}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    for name in ["../x", "a/../../x", "link", "dirlink/secret"] {
        assert!(
            matches!(get(srv.addr, name, &[]), Err(Fail::Error(2, _))),
            "{name} must be an access violation"
        );
    }
    // Links that stay inside, and root-anchored names, work.
    assert_eq!(get(srv.addr, "goodlink", &[]).unwrap().data, b"inside");
    assert_eq!(get(srv.addr, "/a/inside", &[]).unwrap().data, b"inside");
    // /etc/passwd is never the host's: missing under the root -> ERROR 1.
    assert!(matches!(
        get(srv.addr, "/etc/passwd", &[]),
        Err(Fail::Error(1, _))
    ));
    root.write("etc/passwd", b"root's own");
    assert_eq!(
        get(srv.addr, "/etc/passwd", &[]).unwrap().data,
        b"root's own"
    );
    assert!(matches!(
        get(srv.addr, "missing", &[]),
        Err(Fail::Error(1, _))
    ));
    assert!(matches!(get(srv.addr, "a", &[]), Err(Fail::Error(1, _))));
}

#[test]
fn fifty_concurrent_transfers() {
    let root = Scratch::new("conc");
    let files: Vec<Vec<u8>> = (0..5)
        .map(|i| bytes(300_000 + i * 1001, i as u64 + 20))
        .collect();
    for (i, f) in files.iter().enumerate() {
        root.write(&format!("f{i}"), f);
    }
    // Each client from its own address (a source gets `max_per_client`
    // transfers), and a slot for each: beyond `max_transfers` a request
    // is now answered "Server busy" instead of waiting (issue 12).
    let srv = Server::start(&root.path, "max_transfers = 50\n");
    let addr = srv.addr;
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let want = sha(&files[i % 5]);
            std::thread::spawn(move || {
                let bs = ["512", "1024", "1468"][i % 3];
                let w = ["1", "8"][i % 2];
                let got = get_from(
                    addr,
                    &format!("127.0.0.{}:0", 10 + i),
                    &format!("f{}", i % 5),
                    Mode::Octet,
                    &[("blksize", bs), ("windowsize", w)],
                    &Hooks::default(),
                )
                .unwrap_or_else(|e| panic!("client {i}: {e:?}"));
                assert_eq!(sha(&got.data), want, "client {i}");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// RFC 1350 answers a stranger with ERROR 5; the transfer socket is now
/// connected to its peer (issue 12: ICMP port unreachable must end a
/// transfer, which needs connect()), so the kernel drops a stranger's
/// packet: no answer (one less packet a forged source can draw), and the
/// transfer goes on untouched.
#[test]
fn stranger_is_dropped_silently_and_transfer_goes_on() {
    let root = Scratch::new("tid");
    let content = bytes(20_000, 13);
    root.write("f", &content);
    let srv = Server::start(&root.path, "");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    client.send_to(b"\x00\x01f\x00octet\x00", srv.addr).unwrap();
    let mut buf = [0u8; 1024];
    let (n, tid) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..4], &[0, 3, 0, 1]);
    let mut data = buf[4..n].to_vec();
    let first_len = n;
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    stranger.send_to(&[0, 4, 0, 1], tid).unwrap();
    let heard = stranger.recv_from(&mut buf);
    assert!(heard.is_err(), "a stranger got an answer: {heard:?}");
    // The real client finishes.
    let mut block = 1u16;
    let mut last_len = first_len - 4;
    loop {
        client
            .send_to(&[0, 4, (block >> 8) as u8, block as u8], tid)
            .unwrap();
        if last_len < 512 {
            break;
        }
        let (n, _) = client.recv_from(&mut buf).unwrap();
        block += 1;
        assert_eq!(&buf[..4], &[0, 3, (block >> 8) as u8, block as u8]);
        data.extend_from_slice(&buf[4..n]);
        last_len = n - 4;
    }
    assert_eq!(sha(&data), sha(&content));
}

#[test]
fn filters_name_indirect_text() {
    let root = Scratch::new("filt");
    root.write("pxe.cfg", b"DEFAULT linux\n");
    root.write("dir/startup.cfg", b"\n  real/kernel \n");
    root.write("real/kernel", b"KERNEL");
    let ini = "[filters]\n\
               pxelinux.cfg/* = pxe.cfg\n\
               startup = [dir/{filename}.cfg]\n\
               menu.txt = <hello {filename}\\nbye>\n\
               boot = {client_file}\n\
               *.alias = /real/kernel\n";
    let srv = Server::start(&root.path, ini);
    assert_eq!(
        get(srv.addr, "pxelinux.cfg/01-52-54-00-e2-e0-01", &[])
            .unwrap()
            .data,
        b"DEFAULT linux\n"
    );
    assert_eq!(get(srv.addr, "./startup", &[]).unwrap().data, b"KERNEL");
    let got = get(srv.addr, "menu.txt", &[("tsize", "0")]).unwrap();
    assert_eq!(got.data, b"hello menu.txt\nbye");
    assert_eq!(opt(&got, "tsize"), Some("18"));
    assert_eq!(get(srv.addr, "x.alias", &[]).unwrap().data, b"KERNEL");
    // No HTTP ACL file known: the {client_file} rule is skipped.
    assert!(matches!(get(srv.addr, "boot", &[]), Err(Fail::Error(1, _))));
}

#[test]
fn uploads_off_by_default_then_capped_and_never_overwriting() {
    let root = Scratch::new("wrq");
    let srv = Server::start(&root.path, "");
    assert!(matches!(
        put(srv.addr, "x", b"data", &[]),
        Err(Fail::Error(2, _))
    ));
    assert!(!root.path.join("x").exists());
    drop(srv);
    let up = Scratch::new("updir");
    let srv = Server::start(
        &root.path,
        &format!("upload_dir = {}\nupload_max = 100000\n", up.path.display()),
    );
    let content = bytes(70_000, 17);
    put(srv.addr, "u.bin", &content, &[("blksize", "1468")]).unwrap();
    assert_eq!(
        sha(&std::fs::read(up.path.join("u.bin")).unwrap()),
        sha(&content)
    );
    assert!(matches!(
        put(srv.addr, "u.bin", b"other", &[]),
        Err(Fail::Error(6, _))
    ));
    assert_eq!(
        sha(&std::fs::read(up.path.join("u.bin")).unwrap()),
        sha(&content)
    );
    // Over the cap, announced (tsize) or not: refused, nothing left behind.
    let big = bytes(100_001, 19);
    assert!(matches!(
        put(srv.addr, "big1", &big, &[("tsize", "100001")]),
        Err(Fail::Error(3, _))
    ));
    assert!(matches!(
        put(srv.addr, "big2", &big, &[]),
        Err(Fail::Error(3, _))
    ));
    std::thread::sleep(Duration::from_millis(100));
    assert!(!up.path.join("big1").exists());
    assert!(!up.path.join("big2").exists());
    assert!(matches!(
        put(srv.addr, "../esc", b"x", &[]),
        Err(Fail::Error(2, _))
    ));
}

#[test]
fn malformed_requests_answered_not_fatal() {
    let root = Scratch::new("bad");
    root.write("f", b"ok");
    let srv = Server::start(&root.path, "");
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    for bad in [
        &b"\x00\x01f\x00mail\x00"[..],
        b"\x00\x01f",
        b"\x00\x09",
        b"x",
    ] {
        s.send_to(bad, srv.addr).unwrap();
        let mut buf = [0u8; 600];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        assert!(matches!(
            Packet::parse(&buf[..n]),
            Ok(Packet::Error { code: 4, .. })
        ));
    }
    assert_eq!(get(srv.addr, "f", &[]).unwrap().data, b"ok");
}

/// A listener on 0.0.0.0 answers each request from the address it was sent
/// to (IP_PKTINFO): a client asking 127.0.0.2 gets its DATA from 127.0.0.2,
/// not from the routed source 127.0.0.1, and the whole file arrives.
#[test]
fn wildcard_listener_answers_from_the_address_asked() {
    let root = Scratch::new("pktinfo");
    let content = bytes(3000, 5);
    root.write("f", &content);
    let srv = Server::start_on(&root.path, "", "0.0.0.0:0");
    let port = srv.addr.port();
    for target in ["127.0.0.2", "127.0.0.1"] {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let rrq = request(false, "f", Mode::Octet, &[]);
        sock.send_to(&rrq, (target, port)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 600];
        loop {
            let (n, from) = sock.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..2], &[0, 3], "a DATA packet: {:?}", &buf[..n]);
            assert_eq!(from.ip().to_string(), target, "DATA's source address");
            got.extend_from_slice(&buf[4..n]);
            sock.send_to(&[0, 4, buf[2], buf[3]], from).unwrap();
            if n - 4 < 512 {
                break;
            }
        }
        assert_eq!(sha(&got), sha(&content), "via {target}");
    }
}

/// A disk whose every read waits (a cold disk, a hung NFS server): nothing
/// is in the page cache, and a read takes `SLOW`.
struct SlowDisk;

const SLOW: Duration = Duration::from_secs(2);

impl pybootd::files::ReadAt for SlowDisk {
    fn read_at_nowait(&self, _: &mut [std::io::IoSliceMut<'_>], _: u64) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::WouldBlock.into())
    }
    fn read_at(&self, buf: &mut [u8], _: u64) -> std::io::Result<usize> {
        std::thread::sleep(SLOW);
        buf.fill(b'z');
        Ok(buf.len())
    }
}

/// On the one-CPU (current-thread) runtime, a file read that waits for the
/// disk must not stall the other work: while one read is stuck on the
/// slow disk, a TFTP request is answered at once. (A read done on the
/// runtime thread would hold every task for `SLOW`.)
#[test]
fn a_slow_disk_read_does_not_stall_the_runtime() {
    use pybootd::files::{LocalFile, Source};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let root = Scratch::new("slowdisk");
    std::fs::write(root.path.join("a"), bytes(2000, 5)).unwrap();
    let text = format!("[tftp]\nroot = {}\n", root.path.display());
    let config = pybootd::config::Config::parse(&text, std::path::Path::new("t.ini")).unwrap();
    let sock = pybootd::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = sock.local_addr().unwrap();
    let server = pybootd::tftp::TftpServer::new(Arc::new(config), sock).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let read_done = Arc::new(AtomicBool::new(false));
    let (stop2, done2) = (stop.clone(), read_done.clone());
    let runtime = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            tokio::spawn(server.serve(stop2.clone()));
            tokio::spawn(async move {
                let mut f = LocalFile::from_reader(Arc::new(SlowDisk), 1 << 20);
                let mut buf = [0u8; 512];
                f.read(&mut buf).await.unwrap();
                done2.store(true, Ordering::SeqCst);
            });
            stop2.cancelled().await;
        });
    });
    // Let the slow read start (and, done wrong, take the only thread).
    std::thread::sleep(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let got = get(addr, "a", &[]).expect("answered");
    let took = started.elapsed();
    assert_eq!(sha(&got.data), sha(&bytes(2000, 5)));
    assert!(
        !read_done.load(Ordering::SeqCst),
        "the slow read ended first"
    );
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    stop.cancel();
    runtime.join().unwrap();
}
