//! Arbitrary text into the configuration parser and checker. It must return
//! a `Config` or a list of located errors, never panic; each error must
//! render (`FILE:LINE:COL: message`).
//!
//! Run: `cd fuzz && cargo +nightly fuzz run config -- -max_total_time=60`
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match twinwall::config::parse(&text, "fuzz.toml") {
        Ok(cfg) => {
            std::hint::black_box(cfg);
        }
        Err(errors) => {
            for e in &errors {
                std::hint::black_box(e.to_string());
            }
        }
    }
});
