//! Any bytes -> `wire::dhcp::Packet::parse` returns, never panics; what
//! parses re-emits without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = pybootd::wire::dhcp::Packet::parse(data) {
        let mut buf = Vec::new();
        p.emit(&mut buf);
    }
});
