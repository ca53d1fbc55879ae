//! Fuzz target: the manifest reader never panics (`RUSTC_BOOTSTRAP=1 cargo fuzz run manifest`).
#![no_main]

#[path = "../bodies.rs"]
#[allow(dead_code)] // each target uses one of the bodies
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::manifest(data));
