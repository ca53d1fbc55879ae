//! Datablox's build pipeline: manifests -> checked model -> plan -> archives and Engage extension.
//!
//! `main.rs` is a thin shell around the entry points defined here; the stages live in their own
//! modules, listed in reading order.

pub mod archive;
pub mod error;
pub mod hash;
pub mod tree;
