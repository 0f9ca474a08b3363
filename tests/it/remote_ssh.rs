//! `bud --addr … --ssh`: agents forwarded into `RUN --mount=type=ssh` by the daemon, through
//! the session (dockerd's `/session`, and the Control.Session tunnel of a buildkitd).
//!
//! The base image has no Unix-socket client, so the test builds a tiny static one with the
//! C compiler that links Rust programs here; fake agents answer a line with their name.

use crate::support;
use crate::support::daemon_proxy;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use daemon_proxy::DaemonProxy;
use support::*;

const CLIENT_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Sends one line to the agent at argv[1] (or $SSH_AUTH_SOCK) and prints its one-line reply. */
int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : getenv("SSH_AUTH_SOCK");
    if (!path) { fputs("no agent socket\n", stderr); return 2; }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror(path); return 1; }
    const char *line = "ping from the step\n";
    if (write(fd, line, strlen(line)) != (ssize_t)strlen(line)) { perror("write"); return 1; }
    char c;
    while (read(fd, &c, 1) == 1) { putchar(c); if (c == '\n') return 0; }
    fputs("the agent closed without a reply\n", stderr);
    return 1;
}
"#;

/// Builds the static client into `dir`, or says why it cannot.
fn build_client(dir: &Path) -> bool {
    let source = dir.join("agent-client.c");
    std::fs::write(&source, CLIENT_C).unwrap();
    let built = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("agent-client"))
        .arg(&source)
        .status()
        .is_ok_and(|s| s.success());
    std::fs::remove_file(&source).unwrap();
    require(
        "cc with a static libc (to build the in-step agent client)",
        built,
    )
}

/// A fake agent: answers each connection's first line with `pong NAME: LINE`, and records
/// the lines it got.
fn fake_agent(path: &Path, name: &'static str) -> Arc<Mutex<Vec<String>>> {
    let listener = UnixListener::bind(path).unwrap();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let record = heard.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let mut line = String::new();
            if BufReader::new(&conn).read_line(&mut line).is_err() {
                continue;
            }
            let _ = (&conn).write_all(format!("pong {name}: {line}").as_bytes());
            record.lock().unwrap().push(line);
        }
    });
    heard
}

fn forwards_agents_by_id(addr: &str) {
    let context = tempfile::tempdir().unwrap();
    if !build_client(context.path()) {
        return;
    }
    let nonce = format!(
        "{:?}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    );
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {BASE_IMAGE}\n\
             COPY agent-client /usr/local/bin/\n\
             RUN --mount=type=ssh agent-client > /default-reply # {nonce}\n\
             RUN --mount=type=ssh,id=deploy,target=/deploy.sock agent-client /deploy.sock > /deploy-reply\n"
        ),
    )
    .unwrap();
    let agents = tempfile::tempdir().unwrap();
    let default_sock = agents.path().join("default.sock");
    let deploy_sock = agents.path().join("deploy.sock");
    let default_heard = fake_agent(&default_sock, "default");
    let deploy_heard = fake_agent(&deploy_sock, "deploy");
    let root = tempfile::tempdir().unwrap();
    let out = agents.path().join("out");

    let run = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args([
            "--addr",
            addr,
            "--progress",
            "plain",
            "--ssh",
            "default",
            "--ssh",
        ])
        .arg(format!("deploy={}", deploy_sock.display()))
        .arg("-o")
        .arg(format!("type=local,dest={}", out.display()))
        .arg(context.path())
        .env("SSH_AUTH_SOCK", &default_sock)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "bud failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("default-reply")).unwrap(),
        "pong default: ping from the step\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("deploy-reply")).unwrap(),
        "pong deploy: ping from the step\n"
    );
    assert_eq!(*default_heard.lock().unwrap(), ["ping from the step\n"]);
    assert_eq!(*deploy_heard.lock().unwrap(), ["ping from the step\n"]);

    // A required ID that was not forwarded is refused by the daemon, naming the ID.
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {BASE_IMAGE}\nRUN --mount=type=ssh,id=absent,required=true true # {nonce}\n"),
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args(["--addr", addr, "--ssh", "default", "-o"])
        .arg(format!(
            "type=tar,dest={}",
            agents.path().join("x.tar").display()
        ))
        .arg(context.path())
        .env("SSH_AUTH_SOCK", &default_sock)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("no --ssh absent was given"), "{err}");
}

#[test]
fn docker_session_forwards_ssh_agents_by_id() {
    if require_base_image() {
        forwards_agents_by_id("docker://");
    }
}

#[test]
fn tunnelled_session_forwards_ssh_agents_by_id() {
    if require_base_image() {
        let proxy = DaemonProxy::unix();
        forwards_agents_by_id(&proxy.addr);
    }
}

/// `--ssh ID=KEYFILE`: the agent bud serves for the key is forwarded through the session
/// like any other.
fn serves_key_files(addr: &str) {
    let context = tempfile::tempdir().unwrap();
    if !build_list_identities(&context.path().join("list-identities")) {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let key_file = keys.path().join("id_ed25519");
    std::fs::write(&key_file, key.to_openssh(ssh_key::LineEnding::LF).unwrap()).unwrap();
    // The key is new each run, so the step is never a cache hit on the daemon.
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {BASE_IMAGE}\n\
             COPY list-identities /usr/local/bin/\n\
             RUN --mount=type=ssh,id=x list-identities > /identities # {}\n",
            key.public_key().fingerprint(Default::default())
        ),
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let out = keys.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args(["--addr", addr, "--progress", "plain", "--ssh"])
        .arg(format!("x={}", key_file.display()))
        .arg("-o")
        .arg(format!("type=local,dest={}", out.display()))
        .arg(context.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "bud failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let blob_len = key.public_key().to_bytes().unwrap().len();
    assert_eq!(
        std::fs::read_to_string(out.join("identities")).unwrap(),
        format!("identities 1 blob {blob_len}\n")
    );
}

#[test]
fn docker_session_serves_key_files() {
    if require_base_image() {
        serves_key_files("docker://");
    }
}

#[test]
fn tunnelled_session_serves_key_files() {
    if require_base_image() {
        let proxy = DaemonProxy::unix();
        serves_key_files(&proxy.addr);
    }
}
