//! Any bytes -> `wire::dhcp::Packet::parse` returns, never panics; what
//! parses re-emits without a panic, and what is emitted parses again with
//! the same options (53 moves to the front: compared by code).
//!
//! Run (bounded): `cargo +nightly fuzz run wire_dhcp -- -max_total_time=60`
//! from the repository root. Without cargo-fuzz, the same build by hand:
//! `cd fuzz && RUSTFLAGS="-Cpasses=sancov-module
//! -Cllvm-args=-sanitizer-coverage-level=4
//! -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
//! -Cllvm-args=-sanitizer-coverage-pc-table
//! -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing
//! -Zsanitizer=address -Cdebug-assertions -Coverflow-checks" cargo +nightly
//! build --release --target x86_64-unknown-linux-gnu --bin wire_dhcp`, then
//! `target/x86_64-unknown-linux-gnu/release/wire_dhcp -max_total_time=60`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = pybootd::wire::dhcp::Packet::parse(data) {
        let mut buf = Vec::new();
        p.emit(&mut buf);
        let q = pybootd::wire::dhcp::Packet::parse(&buf).expect("emitted bytes parse");
        let (mut a, mut b) = (p.options.clone(), q.options);
        a.sort();
        b.sort();
        assert_eq!(a, b);
        let _ = (p.client_arch(), p.uuid(), p.max_message_size(), p.mac());
    }
});
