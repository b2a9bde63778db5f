//! Any text -> `Config::parse` returns Ok or a ConfigError, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pybootd::config::Config::parse(text, std::path::Path::new("fuzz.ini"));
    }
});
