//! Generates the Rust types from bud's .proto files under `proto/`.
//!
//! protox parses the files in-process (no system `protoc`) and supplies the
//! `google/protobuf/*` well-known types itself. With the `grpc` feature the
//! services also get tonic clients and servers.

use std::path::Path;

/// Every file that declares messages or services; imports are resolved from `proto/`.
const PROTOS: &[&str] = &[
    "pb/ops.proto",
    "moby/buildkit/v1/control.proto",
    "moby/buildkit/v1/types/worker.proto",
    "moby/buildkit/v1/frontend/gateway.proto",
    "moby/buildkit/v1/apicaps/caps.proto",
    "moby/buildkit/v1/sourcepolicy/policy.proto",
    "moby/filesync/v1/filesync.proto",
    "moby/filesync/v1/auth.proto",
    "moby/buildkit/secrets/v1/secrets.proto",
    "moby/sshforward/v1/ssh.proto",
    "fsutil/types/stat.proto",
    "fsutil/types/wire.proto",
    "google/rpc/status.proto",
    "errdefs/errdefs.proto",
    "grpc/health/v1/health.proto",
    "containerd/services/content/v1/content.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("proto");
    println!("cargo:rerun-if-changed={}", root.display());

    let files: Vec<_> = PROTOS.iter().map(|p| root.join(p)).collect();
    let descriptors = protox::compile(&files, [root])?;

    let mut config = prost_build::Config::new();
    // Go marshals maps with sorted keys; BTreeMap gives prost the same order, so an
    // op's bytes, and therefore its digest, do not depend on insertion order.
    config.btree_map(["."]);

    generate(descriptors, config)?;
    Ok(())
}

#[cfg(feature = "grpc")]
fn generate(
    descriptors: prost_types::FileDescriptorSet,
    config: prost_build::Config,
) -> std::io::Result<()> {
    // No `transport`: callers bring their own channel (bud talks h2c over an
    // upgraded HTTP/1.1 connection), so the generated code needs only tonic's codegen.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .compile_fds_with_config(descriptors, config)
}

#[cfg(not(feature = "grpc"))]
fn generate(
    descriptors: prost_types::FileDescriptorSet,
    mut config: prost_build::Config,
) -> std::io::Result<()> {
    config.compile_fds(descriptors)
}
