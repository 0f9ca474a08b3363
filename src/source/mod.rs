//! Where a build's inputs come from: the local context (`context`), base images (`image`),
//! URLs (`http`), git repositories (`git`) and OCI layout directories (`oci_layout`).

pub mod context;
pub mod git;
pub mod http;
pub mod image;
pub mod oci_layout;
