//! Where a build's inputs come from: the local context (`context`); images and URLs follow.

pub mod context;
