//! bud: a drop-in for `docker build`. The binary (`main.rs`) only wires these modules.

pub mod cli;
