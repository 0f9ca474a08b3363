//! bud: a drop-in for `docker build`. The binary (`main.rs`) only wires these modules.

/// Prints a line on stderr like `eprintln!`, except that a closed stderr (`2>&-`, a reader
/// that went away) loses the line instead of panicking in the middle of a build.
#[macro_export]
macro_rules! report {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod attest;
pub mod build;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod config;
pub mod content;
pub mod docker_host;
pub mod emulation;
pub mod error_chain;
pub mod executor;
pub mod exporter;
pub mod fileop;
pub mod gc;
pub mod privilege;
pub mod progress;
pub mod registry;
pub mod remote;
pub mod remotecache;
pub mod sbom;
pub mod signals;
pub mod snapshot;
pub mod solver;
pub mod source;
pub mod state;
pub mod timefmt;
pub mod timeouts;
pub mod userdb;
