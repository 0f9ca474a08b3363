//! Where a build's inputs come from: the local context (`context`), base images (`image`);
//! URLs follow.

pub mod context;
pub mod image;
