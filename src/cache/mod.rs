//! The embedded solver's persistent cache: metadata (`meta`) over snapshot directories kept
//! under the state root.

pub mod http_cache;
pub mod meta;
