//! The embedded solver's persistent cache: metadata (`meta`) over snapshot directories kept
//! under the state root.

mod gc_queries;
pub mod http_cache;
pub mod meta;
pub mod reserve;
