//! UDP generic segmentation offload (`UDP_SEGMENT`, Linux >= 4.18) for TFTP
//! windows: one `send` hands the kernel a whole window of DATA packets laid
//! out back to back, and the stack cuts it into one datagram per block.
//! This is the one module with `unsafe`: `setsockopt` calls, and reading
//! the bytes `recvmsg` wrote (IP_PKTINFO, for a listener on 0.0.0.0).
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

/// `UDP_SEGMENT` from `<linux/udp.h>` (not in the libc crate for glibc).
const UDP_SEGMENT: libc::c_int = 103;

/// Most segments one send may carry (the kernel's UDP_MAX_SEGMENTS).
pub const MAX_SEGMENTS: usize = 64;
/// Most payload bytes one UDP send may carry.
pub const MAX_SEND: usize = 65507;

/// Sets the segment size for every later send on `sock` (0 turns it off).
/// `false` when the kernel refuses (old kernel, not UDP).
pub fn set_segment(sock: &impl AsRawFd, size: u16) -> bool {
    let v: libc::c_int = size.into();
    // SAFETY: `sock` is a live socket borrowed for the call; setsockopt
    // reads exactly `size_of::<c_int>()` bytes from `&v`, a local that
    // outlives the call; no memory is written.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    r == 0
}

/// Asks for `IP_PKTINFO` on every datagram `sock` receives (the local
/// address it was sent to). `false` when the kernel refuses.
pub fn set_pktinfo(sock: &impl AsRawFd) -> bool {
    let v: libc::c_int = 1;
    // SAFETY: as in `set_segment`: a live socket, a local int read for the
    // call's duration, nothing written.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    r == 0
}

/// One `recvmsg` on a non-blocking socket with `IP_PKTINFO` on: the bytes
/// into `buf`, the sender, and the local address the datagram was sent to
/// (`ipi_spec_dst`: for a broadcast, the receiving interface's address),
/// when the kernel said.
pub fn recv_with_local(
    sock: &impl std::os::fd::AsFd,
    buf: &mut [u8],
) -> std::io::Result<(usize, std::net::SocketAddr, Option<std::net::Ipv4Addr>)> {
    use std::mem::MaybeUninit;
    let sref = socket2::SockRef::from(sock);
    // Room for the IPv4 sender (the listener is IPv4); recvmsg fills it.
    let mut addr = socket2::SockAddr::from(std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut control = [MaybeUninit::<u8>::uninit(); 128];
    // SAFETY: `u8` and `MaybeUninit<u8>` have the same layout; recvmsg only
    // writes initialised bytes into it, so `buf` stays initialised.
    let data = unsafe {
        std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<MaybeUninit<u8>>(), buf.len())
    };
    let mut ubufs = [socket2::MaybeUninitSlice::new(data)];
    let mut msg = socket2::MsgHdrMut::new()
        .with_addr(&mut addr)
        .with_buffers(&mut ubufs)
        .with_control(&mut control);
    let n = sref.recvmsg(&mut msg, 0)?;
    let clen = msg.control_len();
    // SAFETY: recvmsg initialised the first `control_len` bytes of the
    // control buffer (msg_controllen on return), at most its size.
    let control: &[u8] =
        unsafe { std::slice::from_raw_parts(control.as_ptr().cast::<u8>(), clen.min(128)) };
    let peer = addr
        .as_socket()
        .ok_or_else(|| std::io::Error::other("recvmsg: no IPv4/IPv6 sender"))?;
    Ok((n, peer, pktinfo_spec_dst(control)))
}

/// The `ipi_spec_dst` of an `IP_PKTINFO` control message in `control`
/// (the raw `cmsghdr` sequence, Linux layout), parsed as plain bytes.
fn pktinfo_spec_dst(control: &[u8]) -> Option<std::net::Ipv4Addr> {
    const HDR: usize = std::mem::size_of::<libc::cmsghdr>();
    const ALIGN: usize = std::mem::size_of::<usize>();
    let word = std::mem::size_of::<usize>();
    let mut at = 0;
    while at + HDR <= control.len() {
        let len = usize::from_ne_bytes(control[at..at + word].try_into().ok()?);
        let level = i32::from_ne_bytes(control[at + word..at + word + 4].try_into().ok()?);
        let kind = i32::from_ne_bytes(control[at + word + 4..at + word + 8].try_into().ok()?);
        if len < HDR || at + len > control.len() {
            return None;
        }
        if level == libc::IPPROTO_IP && kind == libc::IP_PKTINFO && len >= HDR + 12 {
            // struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
            let d = &control[at + HDR + 4..at + HDR + 8];
            let ip = std::net::Ipv4Addr::new(d[0], d[1], d[2], d[3]);
            // 0.0.0.0: queued before the option was on; no answer.
            return Some(ip).filter(|ip| !ip.is_unspecified());
        }
        at += len.div_ceil(ALIGN) * ALIGN;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real datagram to 127.0.0.1 on a 0.0.0.0 socket: the kernel's own
    /// control message names 127.0.0.1.
    #[test]
    fn pktinfo_names_the_local_address() {
        let rx = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        assert!(set_pktinfo(&rx));
        let port = rx.local_addr().unwrap().port();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"hello", ("127.0.0.1", port)).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from, local) = recv_with_local(&rx, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(from, tx.local_addr().unwrap());
        assert_eq!(local, Some(std::net::Ipv4Addr::LOCALHOST));
        tx.send_to(b"again", ("127.0.0.2", port)).unwrap();
        let (n, _, local) = recv_with_local(&rx, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"again");
        assert_eq!(local, Some(std::net::Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(pktinfo_spec_dst(&[0u8; 7]), None);
        assert_eq!(pktinfo_spec_dst(&[0xffu8; 40]), None);
    }
}
