//! bud's library: the parts of the binary that tests and other crates reach directly.

pub mod content;
pub mod exporter;
