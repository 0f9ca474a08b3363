//! Which Docker bud builds into, chosen as the docker CLI chooses it: `DOCKER_HOST` in its
//! `unix://`, `tcp://` and `ssh://` forms, with TLS from `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`, and
//! docker's contexts (`DOCKER_CONTEXT`, the config's `currentContext`, the context's own TLS
//! files). Each daemon here is the test environment's dockerd behind a proxy that counts its
//! connections, so a build that went through it can be told from one that used the default
//! socket.

use crate::support;
use crate::support::daemon_proxy;

use std::path::Path;
use std::process::{Command, Output};

use daemon_proxy::{DaemonProxy, TestPki};
use sha2::{Digest as _, Sha256};
use support::*;

/// Every variable that chooses a Docker for the docker CLI.
const DOCKER_VARS: [&str; 6] = [
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_TLS_VERIFY",
    "DOCKER_TLS",
    "DOCKER_CERT_PATH",
];

/// `bud -t TAG testdata/hello` with exactly `env` of the Docker variables set.
fn build(root: &Path, tag: &str, env: &[(&str, &str)]) -> Output {
    let iid = root.join("iid");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bud"));
    cmd.arg("--root")
        .arg(root)
        .args(["--progress", "plain", "-t", tag, "--iidfile"])
        .arg(&iid)
        .arg(testdata("hello"));
    for var in DOCKER_VARS {
        cmd.env_remove(var);
    }
    // A config directory of its own, so that the machine's docker config does not choose.
    cmd.env("HOME", root);
    cmd.envs(env.iter().copied());
    cmd.output().expect("run bud")
}

/// Asserts the build succeeded and Docker (asked on its own socket) has its image by `tag`.
fn assert_loaded(out: &Output, root: &Path, tag: &str) {
    assert!(
        out.status.success(),
        "bud failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let iid = std::fs::read_to_string(root.join("iid")).unwrap();
    let id = docker_ok(&["image", "inspect", "--format", "{{.Id}}", tag]);
    assert_eq!(id.trim(), iid.trim(), "{tag} is not the image bud built");
    remove_images(&[tag]);
}

fn ready() -> bool {
    require_base_image() && require_runc()
}

#[test]
fn docker_host_on_tcp_with_and_without_tls() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();

    let plain = DaemonProxy::docker_api_tcp();
    let out = build(
        root.path(),
        "bud-test/endpoint-tcp",
        &[("DOCKER_HOST", &plain.addr)],
    );
    assert_loaded(&out, root.path(), "bud-test/endpoint-tcp");
    assert!(
        plain.connections() > 0,
        "the build did not go through {}",
        plain.addr
    );

    // dockerd --tlsverify: the CA and a client certificate from DOCKER_CERT_PATH, under the
    // names docker gives them.
    let pki = TestPki::generate();
    let tls = DaemonProxy::docker_api_tls(&pki);
    let certs = tempfile::tempdir().unwrap();
    for (from, to) in [
        (&pki.ca, "ca.pem"),
        (&pki.client_cert, "cert.pem"),
        (&pki.client_key, "key.pem"),
    ] {
        std::fs::copy(from, certs.path().join(to)).unwrap();
    }
    let tls_env = [
        ("DOCKER_HOST", tls.addr.as_str()),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", certs.path().to_str().unwrap()),
    ];
    let out = build(root.path(), "bud-test/endpoint-tls", &tls_env);
    assert_loaded(&out, root.path(), "bud-test/endpoint-tls");

    // A daemon whose certificate another CA signed is refused, and bud says why. (Without
    // Docker the base image is looked for in a registry, which is not reachable here.)
    let other = TestPki::generate();
    std::fs::copy(&other.ca, certs.path().join("ca.pem")).unwrap();
    let before = tls.connections();
    let out = build(root.path(), "bud-test/endpoint-tls-wrong-ca", &tls_env);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let warning = err
        .lines()
        .find(|l| l.starts_with("warning: building without Docker"))
        .unwrap_or_else(|| panic!("no warning about Docker: {err}"));
    assert!(
        warning.contains(&format!("DOCKER_HOST={}", tls.addr)),
        "{warning}"
    );
    assert!(warning.to_lowercase().contains("certificate"), "{warning}");
    assert!(tls.connections() > before);
}

#[test]
fn docker_host_over_ssh_runs_docker_system_dial_stdio() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = root.path().join("ssh-calls");
    // A stand-in for ssh to a host whose daemon is this machine's: it records its arguments
    // and runs what ssh would run there.
    let fake_ssh = |script: &str| {
        let path = bin.join("ssh");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    };
    fake_ssh(&format!(
        "#!/bin/sh\necho \"$*\" >> {}\nexec env -u DOCKER_HOST /usr/bin/docker system dial-stdio\n",
        calls.display()
    ));
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = build(
        root.path(),
        "bud-test/endpoint-ssh",
        &[
            ("DOCKER_HOST", "ssh://builder@build-host:2222"),
            ("PATH", &path),
        ],
    );
    assert_loaded(&out, root.path(), "bud-test/endpoint-ssh");
    let calls = std::fs::read_to_string(&calls).unwrap();
    assert!(
        calls.lines().all(|call| call
            == "-o ConnectTimeout=30 -T -l builder -p 2222 -- build-host docker system dial-stdio"),
        "{calls}"
    );

    // ssh's own error reaches the user.
    fake_ssh(
        "#!/bin/sh\necho 'builder@build-host: Permission denied (publickey).' >&2\nexit 255\n",
    );
    let out = build(
        root.path(),
        "bud-test/endpoint-ssh-denied",
        &[
            ("DOCKER_HOST", "ssh://builder@build-host:2222"),
            ("PATH", &path),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let warning = err
        .lines()
        .find(|l| l.starts_with("warning: building without Docker"))
        .unwrap_or_else(|| panic!("no warning about Docker: {err}"));
    assert!(
        warning.contains("Permission denied (publickey)"),
        "{warning}"
    );
    assert!(
        warning.contains("DOCKER_HOST=ssh://builder@build-host:2222"),
        "{warning}"
    );
}

#[test]
fn docker_contexts_choose_the_daemon() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join(".docker");
    let proxied = DaemonProxy::docker_api_unix();
    store_context(&config, "proxied", &proxied.addr, None);
    std::fs::write(
        config.join("config.json"),
        r#"{"auths": {}, "currentContext": "proxied"}"#,
    )
    .unwrap();

    // The current context of docker's config ($HOME/.docker).
    let out = build(root.path(), "bud-test/endpoint-context", &[]);
    assert_loaded(&out, root.path(), "bud-test/endpoint-context");
    assert!(
        proxied.connections() > 0,
        "the build did not use the current context"
    );

    // `--addr docker://` is dockerd's BuildKit on that same daemon.
    let before = proxied.connections();
    let mut remote = Command::new(env!("CARGO_BIN_EXE_bud"));
    remote
        .args(["--addr", "docker://", "build", "--progress", "plain"])
        .args(["-o", "type=tar,dest=/dev/null"])
        .arg(testdata("hello"))
        .env("HOME", root.path());
    for var in DOCKER_VARS {
        remote.env_remove(var);
    }
    let out = remote.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        proxied.connections() > before,
        "--addr docker:// went elsewhere"
    );
    let through_current = proxied.connections();

    // DOCKER_CONTEXT over the config; a context's TLS files and client certificate.
    let pki = TestPki::generate();
    let tls = DaemonProxy::docker_api_tls(&pki);
    store_context(&config, "secure", &tls.addr, Some(&pki));
    let out = build(
        root.path(),
        "bud-test/endpoint-context-tls",
        &[("DOCKER_CONTEXT", "secure")],
    );
    assert_loaded(&out, root.path(), "bud-test/endpoint-context-tls");
    assert!(tls.connections() > 0);
    assert_eq!(proxied.connections(), through_current);

    // DOCKER_HOST over every context.
    let direct = DaemonProxy::docker_api_unix();
    let out = build(
        root.path(),
        "bud-test/endpoint-host-wins",
        &[("DOCKER_HOST", &direct.addr), ("DOCKER_CONTEXT", "secure")],
    );
    assert_loaded(&out, root.path(), "bud-test/endpoint-host-wins");
    assert!(direct.connections() > 0);

    // A context that does not exist: the build says so and does not load elsewhere.
    let out = build(
        root.path(),
        "bud-test/endpoint-missing",
        &[("DOCKER_CONTEXT", "missing")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Docker context \"missing\" (from DOCKER_CONTEXT) does not exist"),
        "{err}"
    );
    assert!(
        !docker(&["image", "inspect", "bud-test/endpoint-missing"])
            .status
            .success()
    );
}

/// Stores a context as `docker context create NAME --docker host=HOST[,ca=…,cert=…,key=…]`
/// does.
fn store_context(config: &Path, name: &str, host: &str, tls: Option<&TestPki>) {
    let id = hex::encode(Sha256::digest(name.as_bytes()));
    let meta_dir = config.join("contexts/meta").join(&id);
    std::fs::create_dir_all(&meta_dir).unwrap();
    let meta = serde_json::json!({
        "Name": name,
        "Metadata": {},
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}},
    });
    std::fs::write(meta_dir.join("meta.json"), meta.to_string()).unwrap();
    if let Some(pki) = tls {
        let tls_dir = config.join("contexts/tls").join(&id).join("docker");
        std::fs::create_dir_all(&tls_dir).unwrap();
        std::fs::copy(&pki.ca, tls_dir.join("ca.pem")).unwrap();
        std::fs::copy(&pki.client_cert, tls_dir.join("cert.pem")).unwrap();
        std::fs::copy(&pki.client_key, tls_dir.join("key.pem")).unwrap();
    }
}
