//! `bud --addr unix://…` and `--addr tcp://…` (TLS): the standalone-buildkitd code paths —
//! plain HTTP/2 gRPC, the session tunnelled through Control.Session — against a real
//! BuildKit, the one inside the test environment's dockerd, reached through
//! support/daemon_proxy.rs.

use crate::support;
use crate::support::daemon_proxy;

use std::path::Path;
use std::process::{Command, Output};

use daemon_proxy::{DaemonProxy, TestPki};
use support::*;

fn bud(addr: &str, args: &[&str]) -> Output {
    let root = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args(["--addr", addr])
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
    remove_images(&[tag]);
}

fn tls_args<'a>(pki: &'a TestPki, ca: &'a Path) -> Vec<&'a str> {
    vec![
        "--tlscacert",
        ca.to_str().unwrap(),
        "--tlscert",
        pki.client_cert.to_str().unwrap(),
        "--tlskey",
        pki.client_key.to_str().unwrap(),
    ]
}

#[test]
fn tcp_with_tls_and_a_client_certificate_builds() {
    if !require_base_image() {
        return;
    }
    let pki = TestPki::generate();
    let proxy = DaemonProxy::tls(&pki);
    let context = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let secret = files.path().join("token");
    std::fs::write(&secret, "over tls\n").unwrap();
    let app = format!("tls {}\n", nonce());
    secret_context(context.path(), &app);
    let tag = "bud-test/remote-buildkitd:tls";
    let mut args = tls_args(&pki, &pki.ca);
    let secret_arg = format!("id=tok,src={}", secret.display());
    args.extend(["-t", tag, "--secret", &secret_arg]);
    args.push(context.path().to_str().unwrap());
    ok(&bud(&proxy.addr, &args));
    assert_eq!(
        docker_ok(&["run", "--rm", tag]),
        format!("{app}over tls\nran").trim()
    );
    remove_images(&[tag]);

    // The name checked defaults to the address's host; --tlsservername replaces it.
    let mut args = tls_args(&pki, &pki.ca);
    args.extend(["--tlsservername", "localhost", "debug", "workers"]);
    let out = ok_stdout(&bud(&proxy.addr, &args));
    assert!(out.contains("Platforms:\tlinux/"), "{out}");
    let mut args = tls_args(&pki, &pki.ca);
    args.extend(["--tlsservername", "elsewhere.example", "debug", "workers"]);
    let err = failure(&bud(&proxy.addr, &args));
    assert!(
        err.contains("elsewhere.example") || err.contains("NotValidForName"),
        "{err}"
    );
}

#[test]
fn tls_failures_name_the_address() {
    if !require_docker() {
        return;
    }
    let pki = TestPki::generate();
    let other = TestPki::generate();
    let proxy = DaemonProxy::tls(&pki);

    // A CA that did not sign the daemon's certificate.
    let mut args = tls_args(&pki, &other.ca);
    args.extend(["debug", "workers"]);
    let err = failure(&bud(&proxy.addr, &args));
    assert!(err.contains(&proxy.addr), "{err}");
    assert!(err.contains("invalid peer certificate"), "{err}");

    // Without a client certificate the daemon ends the connection. With TLS 1.3 it says why
    // only after the client's handshake is done, so the client may first see its own write
    // fail (a broken pipe): the daemon's alert is named when it was read in time.
    let args = ["--tlscacert", pki.ca.to_str().unwrap(), "debug", "workers"];
    let err = failure(&bud(&proxy.addr, &args));
    assert!(err.contains(&proxy.addr), "{err}");
    assert!(
        err.contains("CertificateRequired") || err.contains("ended: connection error"),
        "{err}"
    );

    // TLS settings on a non-TCP address are a mistake, not ignored.
    let unix = DaemonProxy::unix();
    let mut args = tls_args(&pki, &pki.ca);
    args.extend(["debug", "workers"]);
    let err = failure(&bud(&unix.addr, &args));
    assert!(err.contains("tcp:// addresses only"), "{err}");
}

fn ok_stdout(out: &Output) -> String {
    ok(out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The error output of a run that must fail cleanly: an error message, not a panic.
fn failure(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn base_images_are_resolved_by_the_daemon() {
    if !require_base_image() {
        return;
    }
    // A base only the registry has: built and pushed here, then removed from Docker.
    let nonce = nonce();
    let base = format!("{OPEN_REGISTRY}/bud-test/remote-base:{nonce}");
    let base_ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        base_ctx.path().join("Dockerfile"),
        format!("FROM {BASE_IMAGE}\nENV BUD_BASE={nonce}\nCMD [\"echo\", \"from the base\"]\n"),
    )
    .unwrap();
    docker_ok(&[
        "build",
        "-q",
        "-t",
        &base,
        base_ctx.path().to_str().unwrap(),
    ]);
    docker_ok(&["push", &base]);
    remove_images(&[&base]);

    let proxy = DaemonProxy::unix();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {base}\nRUN echo \"$BUD_BASE\" > /env-seen\n"),
    )
    .unwrap();
    let tag = "bud-test/remote-buildkitd:resolved";
    let log = ok(&bud(
        &proxy.addr,
        &[
            "--progress",
            "plain",
            "-t",
            tag,
            context.path().to_str().unwrap(),
        ],
    ));
    // The lookup is the daemon's: it reports it as a step of the build.
    assert!(
        log.contains(&format!("[internal] load metadata for {base}")),
        "{log}"
    );
    let config: serde_json::Value = serde_json::from_str(&docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        tag,
    ]))
    .unwrap();
    assert_eq!(config["Cmd"], serde_json::json!(["echo", "from the base"]));
    assert!(
        config["Env"]
            .as_array()
            .unwrap()
            .contains(&format!("BUD_BASE={nonce}").into()),
        "{config}"
    );
    assert_eq!(
        docker_ok(&["run", "--rm", "--entrypoint", "cat", tag, "/env-seen"]),
        nonce
    );
    remove_images(&[tag]);
}

#[test]
fn outputs_the_daemons_buildkit_cannot_export_are_refused_with_the_way_out() {
    if !require_base_image() {
        return;
    }
    // dockerd 20.10's BuildKit behind a buildkitd-like socket: it has neither the `image`
    // exporter nor several exporters per build.
    let proxy = DaemonProxy::unix();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {BASE_IMAGE}\nRUN echo {}\n", nonce()),
    )
    .unwrap();
    let ctx = context.path().to_str().unwrap();
    let tag = format!("{OPEN_REGISTRY}/bud-test/remote-buildkitd-push:{}", nonce());
    let pushed = bud(&proxy.addr, &["--push", "-t", &tag, ctx]);
    assert!(!pushed.status.success());
    let err = stderr_of(&pushed);
    assert!(err.contains("exporter \"image\""), "{err}");
    assert!(err.contains("--addr docker://"), "{err}");

    let out = tempfile::tempdir().unwrap();
    let local = format!("type=local,dest={}", out.path().join("dir").display());
    let tar = format!("type=tar,dest={}", out.path().join("fs.tar").display());
    let several = bud(&proxy.addr, &["-o", &local, "-o", &tar, ctx]);
    assert!(!several.status.success());
    let err = stderr_of(&several);
    assert!(err.contains("one exporter per build"), "{err}");
    assert!(!out.path().join("dir").exists(), "nothing was exported");
}

/// A BuildKit older than 0.11 (dockerd 20.10's, through the proxy) knows no attestations and
/// would pass over the attributes asking for them: `--provenance` and `--sbom` are refused,
/// naming why, before anything is built.
#[test]
fn attestations_on_a_buildkit_older_than_0_11_are_refused() {
    if !require_base_image() {
        return;
    }
    let proxy = DaemonProxy::unix();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {BASE_IMAGE}\nRUN echo never > /ran\n"),
    )
    .unwrap();
    let dest = tempfile::tempdir().unwrap();
    let oci = dest.path().join("image.tar");
    let output = format!("type=oci,dest={}", oci.display());
    for attest in ["--provenance=mode=max", "--sbom=true"] {
        let err = failure(&bud(
            &proxy.addr,
            &[attest, "-o", &output, context.path().to_str().unwrap()],
        ));
        assert!(
            err.contains(
                "attestations (--provenance, --sbom, --attest) with --addr need BuildKit 0.11 \
                 or later"
            ),
            "{attest}: {err}"
        );
        assert!(!oci.exists(), "{attest}");
    }
}
