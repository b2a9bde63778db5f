//! BOOTP/DHCP/PXE decisions, pure: a parsed request, the lease table and
//! the time in; a reply (or silence, with the reason) out. `server.rs`
//! owns the socket loop.

pub mod server;
