//! The file layer's one unsafe call: `preadv2(RWF_NOWAIT)`, a read that
//! returns at once from the page cache or says it would have to wait for
//! the disk. (std has no safe form of it.)
#![allow(unsafe_code)]

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Most `iovec`s one call takes (Linux's `UIO_MAXIOV`).
const MAX_IOV: usize = 1024;

/// Reads into `bufs`, in order, at `offset`, only what is already in
/// memory. `Ok(0)` is the end of the file; `WouldBlock` means the bytes
/// must come from the disk; `Unsupported` means the file system cannot
/// tell (an old kernel, some FUSE or network file systems). A short count
/// may just mean the rest is not cached yet.
pub(super) fn preadv_nowait(
    fd: BorrowedFd<'_>,
    bufs: &mut [IoSliceMut<'_>],
    offset: u64,
) -> io::Result<usize> {
    let count = bufs.len().min(MAX_IOV) as libc::c_int;
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset past off_t"))?;
    // SAFETY: std guarantees `IoSliceMut` is ABI-compatible with `struct
    // iovec` on Unix; each one points to a live buffer we hold mutably for
    // the whole call, and `count` does not exceed `bufs.len()`. The kernel
    // writes at most each iovec's length into it. `fd` is borrowed, so it
    // stays open for the call.
    let n = unsafe {
        libc::preadv2(
            fd.as_raw_fd(),
            bufs.as_mut_ptr().cast::<libc::iovec>(),
            count,
            offset,
            libc::RWF_NOWAIT,
        )
    };
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // EAGAIN is WouldBlock already; these mean "cannot tell".
        Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => {
            Err(io::Error::new(io::ErrorKind::Unsupported, e))
        }
        _ => Err(e),
    }
}
