//! `cargo xtask import`: a legacy Engage extension tree -> TOML manifests.
