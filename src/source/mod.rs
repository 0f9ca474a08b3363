//! Where a build's inputs come from: the local context (`context`), base images (`image`),
//! URLs (`http`) and git repositories (`git`).

pub mod context;
pub mod git;
pub mod http;
pub mod image;
