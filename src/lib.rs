//! bud: a drop-in for `docker build`. The binary (`main.rs`) only wires these modules.

//! bud's library: the parts of the binary that tests and other crates reach directly.
pub mod build;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod config;
pub mod content;
pub mod executor;
pub mod exporter;
pub mod fileop;
pub mod gc;
pub mod progress;
pub mod registry;
pub mod remote;
pub mod snapshot;
pub mod solver;
pub mod source;
pub mod state;
pub mod timefmt;
pub mod userdb;
