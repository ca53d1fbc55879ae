//! The integration tests: one binary, so the suite links once. Each module runs the real `xtask`
//! binary on temporary repositories.

mod support;

mod ansible;
mod author;
mod corpus;
mod crash;
mod deploy;
mod dist;
mod engage;
mod errors;
mod fuzz;
mod journey;
mod nodes;
mod placement;
mod python;
mod readme;
mod release;
mod reproducible;
mod run;
mod tidy;
mod writer;

mod incremental;
mod inputs;
mod properties;
