//! `bud --addr unix://…` and `--addr tcp://…` (TLS): the standalone-buildkitd code paths —
//! plain HTTP/2 gRPC, the session tunnelled through Control.Session — against a real
//! BuildKit, the one inside the test environment's dockerd, reached through
//! support/daemon_proxy.rs.

#[path = "support/daemon_proxy.rs"]
mod daemon_proxy;
mod support;

use std::path::Path;
use std::process::{Command, Output};

use daemon_proxy::DaemonProxy;
use support::*;

fn bud(addr: &str, args: &[&str]) -> Output {
    let root = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args(["--addr", addr, "--progress", "plain"])
        .args(args)
        .output()
        .expect("run bud")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "bud failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A value unique to this run, so the daemon's cache cannot answer for the build.
fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}-{}", std::process::id(), t.as_nanos())
}

/// A context whose image shows the copied file, the secret and a RUN's output.
fn secret_context(dir: &Path, app: &str) {
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {BASE_IMAGE}\n\
             COPY app.txt /app/\n\
             RUN --mount=type=secret,id=tok cp /run/secrets/tok /app/secret && echo ran > /app/ran\n\
             CMD [\"cat\", \"/app/app.txt\", \"/app/secret\", \"/app/ran\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("app.txt"), app).unwrap();
    std::fs::write(dir.join("unchanged.txt"), "stays\n").unwrap();
}

fn build_with_secret(addr: &str, tag: &str, context: &Path, secret: &Path) -> String {
    ok(&bud(
        addr,
        &[
            "-t",
            tag,
            "--secret",
            &format!("id=tok,src={}", secret.display()),
            context.to_str().unwrap(),
        ],
    ))
}

#[test]
fn unix_socket_builds_copy_run_and_secret_then_rebuilds_a_change() {
    if !require_base_image() {
        return;
    }
    let proxy = DaemonProxy::unix();
    let context = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let secret = files.path().join("token");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let tag = "bud-test/remote-buildkitd:unix";

    let first = format!("first {}\n", nonce());
    secret_context(context.path(), &first);
    build_with_secret(&proxy.addr, tag, context.path(), &secret);
    assert_eq!(
        docker_ok(&["run", "--rm", tag]),
        format!("{first}s3cret\nran").trim()
    );

    let second = format!("second {}\n", nonce());
    std::fs::write(context.path().join("app.txt"), &second).unwrap();
    build_with_secret(&proxy.addr, tag, context.path(), &secret);
    assert_eq!(
        docker_ok(&["run", "--rm", tag]),
        format!("{second}s3cret\nran").trim()
    );
    docker_ok(&["image", "rm", tag]);
}
