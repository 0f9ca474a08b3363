//! The embedded solver's persistent cache: metadata (`meta`) over snapshot directories kept
//! under the state root.

pub mod build_history;
mod gc_queries;
pub mod http_cache;
pub mod meta;
pub mod reserve;
