//! The embedded solver's persistent cache: metadata (`meta`, SQLite) over the snapshot
//! directories kept under the state root, what the last build of each target was made of
//! (`build_history`, for the reasons a step ran), the validators of downloaded URLs
//! (`http_cache`), and the space kept back so a full disk can still be pruned (`reserve`).

pub mod build_history;
mod gc_queries;
pub mod http_cache;
pub mod meta;
pub mod reserve;
