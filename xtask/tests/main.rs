//! The integration tests: one binary, so the suite links once. Each module runs the real `xtask`
//! binary on temporary repositories.

mod support;

mod author;
mod corpus;
mod deploy;
mod dist;
mod engage;
mod errors;
mod python;
mod reproducible;
mod tidy;

mod incremental;
mod inputs;
