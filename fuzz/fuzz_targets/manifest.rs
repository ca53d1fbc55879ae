//! Fuzz target: the manifest reader never panics (`RUSTC_BOOTSTRAP=1 cargo fuzz run manifest`).
#![no_main]

#[path = "../bodies.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::manifest(data));
