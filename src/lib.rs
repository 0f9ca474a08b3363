pub mod executor;
pub mod snapshot;
