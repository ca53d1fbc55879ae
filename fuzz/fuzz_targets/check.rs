//! Fuzz target: `check` and `plan` never panic on arbitrary manifests
//! (`RUSTC_BOOTSTRAP=1 cargo fuzz run check`).
#![no_main]

#[path = "../bodies.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::check(data));
