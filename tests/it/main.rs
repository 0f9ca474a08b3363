//! The integration tests, in one binary: each module below was a test binary of its own,
//! and each linked all of bud. Run one with `cargo test --test it MODULE::` (a filter).
//!
//! All of them run as threads of one process. So no test changes what the process shares:
//! its environment (`std::env::set_var`), its current directory, its signal dispositions,
//! its umask; a child gets its own through `Command`. A test counts only what it made
//! (its own state root, its own tags), never all processes, mounts or images; a file
//! descriptor a test opens is close-on-exec (the standard library's are), so that no other
//! test's child holds it; and a test that runs this binary again names its helper with its
//! module (`gc_collect::lease_holder`).

#![allow(
    unreachable_pub,
    reason = "a test binary exports nothing: `pub` is how its modules share"
)]
#![allow(
    clippy::print_stderr,
    reason = "a test's notes (what it skipped or measured) go to its captured output"
)]

mod support;

mod build_caches;
mod build_entitlements;
mod build_oci_layout_contexts;
mod build_outputs;
mod build_platforms;
mod build_platforms_containerd;
mod build_run_options;
mod cli;
mod completions;
mod differential;
mod docker_endpoints;
mod docs;
mod du_prune_commands;
mod environment;
mod executor_run;
mod exporter_archive;
mod exporter_docker;
mod fileop_copy;
mod fileop_ops;
mod fileop_unpack;
mod fileop_userdb;
mod gc_blobs;
mod gc_collect;
mod image_metadata;
mod progress_otel;
mod progress_renderers;
mod progress_tty_resize;
mod registry_pull;
mod registry_push;
mod remote_buildkitd;
mod remote_cache_credentials;
mod remote_container;
mod remote_daemon_release;
mod remote_docker;
mod remote_local_cache;
mod remote_ssh;
mod rootless;
mod snapshot_copy_mode;
mod snapshot_layers;
mod snapshot_overlay;
mod solver_embedded;
mod solver_robustness;
mod source_git;
mod source_http;
