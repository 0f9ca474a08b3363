//! bud: a drop-in for `docker build`. The binary (`main.rs`) only wires these modules.

pub mod cache;
pub mod cli;
pub mod executor;
pub mod fileop;
pub mod progress;
pub mod snapshot;
pub mod source;
pub mod state;
pub mod userdb;
