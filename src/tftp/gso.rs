//! UDP generic segmentation offload (`UDP_SEGMENT`, Linux >= 4.18) for TFTP
//! windows: one `send` hands the kernel a whole window of DATA packets laid
//! out back to back, and the stack cuts it into one datagram per block.
//! This is the one module with `unsafe` (a `setsockopt` call).
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
