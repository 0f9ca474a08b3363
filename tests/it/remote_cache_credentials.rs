//! `--cache-from`/`--cache-to type=gha` with `--addr`: the GitHub Actions cache token and
//! service URL come from the environment as buildx takes them (`ACTIONS_RUNTIME_TOKEN`,
//! `ACTIONS_CACHE_URL`, `ACTIONS_RESULTS_URL`, `ACTIONS_CACHE_SERVICE_V2`), an attribute the
//! user gave winning, and an entry with no token is left out as buildx leaves it out.
//! Compared with buildx 0.29 on Docker 28.5 with the containerd image store (whose BuildKit
//! has the gha cache; Docker's own store has none), both reaching a fake cache service in
//! the test: the daemon's requests, their paths and Authorization headers, are the same.
//!
//! The s3 cache cannot be compared so: neither reference daemon's BuildKit has it (its
//! import fails with "unknown cache importer: s3" before any request), so bud's filling in
//! of AWS credentials is checked by the unit tests of `remotecache::credentials` alone.

use crate::support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use support::*;

/// One request the fake service received.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
}

/// A cache service that has nothing: every request is recorded and answered
/// `204 No Content` (a miss for the v1 API), each on its own connection. Dropping it stops
/// its thread.
struct FakeCacheService {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeCacheService {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn
                        && let Some(request) = answer(conn)
                    {
                        requests.lock().unwrap().push(request);
                    }
                }
            })
        };
        FakeCacheService {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The requests so far, and none kept for the next.
    fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

impl Drop for FakeCacheService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request, answers it and closes the connection.
fn answer(conn: TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next()?.to_owned(), words.next()?.to_owned());
    let (mut authorization, mut length) = (None, 0usize);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(value.trim().to_owned()),
                "content-length" => length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let request = Request {
        method,
        path,
        authorization,
    };
    let mut conn = conn;
    conn.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        .ok()?;
    Some(request)
}

/// A runtime token as GitHub's runner gives it, in the shape BuildKit's gha client reads
/// (a JWT with access scopes and a validity it checks; the signature is not checked).
fn runtime_token(name: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.{}",
        b64(r#"{"alg":"HS256","typ":"JWT"}"#),
        b64(
            r#"{"ac":"[{\"Scope\":\"refs/heads/main\",\"Permission\":3}]","nbf":0,"exp":4102444800}"#
        ),
        b64(name)
    )
}

/// The variables of this area either client would read, none inherited from the test's.
const CACHE_VARIABLES: &[&str] = &[
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_CACHE_URL",
    "ACTIONS_RESULTS_URL",
    "ACTIONS_CACHE_SERVICE_V2",
];

fn with_env(mut command: Command, env: &[(&str, &str)]) -> Command {
    for name in CACHE_VARIABLES {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command
}

/// A context whose step no daemon has run before.
fn context() -> tempfile::TempDir {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM bud-test/busybox\nRUN echo h-credentials-{}-{nanos}\n",
            std::process::id()
        ),
    )
    .unwrap();
    dir
}

/// Where a build's result goes: a directory of its own, so that the daemon stores no image.
fn local_output() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = format!("type=local,dest={}", dir.path().join("out").display());
    (dir, output)
}

/// `docker buildx build` (the reference) with `env`, its result in a directory.
fn buildx(docker: &Docker28, env: &[(&str, &str)], args: &[&str], context: &Path) -> Output {
    let (_dir, output) = local_output();
    with_env(docker.command(), env)
        .args([
            "buildx",
            "build",
            "--progress",
            "plain",
            "--output",
            &output,
        ])
        .args(args)
        .arg(context)
        .output()
        .expect("run docker buildx build")
}

/// `bud --addr docker://` on the same daemon, with `env`.
fn bud(docker: &Docker28, env: &[(&str, &str)], args: &[&str], context: &Path) -> Output {
    let root = tempfile::tempdir().unwrap();
    let (_dir, output) = local_output();
    with_env(Command::new(env!("CARGO_BIN_EXE_bud")), env)
        .arg("--root")
        .arg(root.path())
        .args([
            "--addr",
            "docker://",
            "build",
            "--progress",
            "plain",
            "--output",
            &output,
        ])
        .args(args)
        .arg(context)
        .env("DOCKER_HOST", docker.host())
        .output()
        .expect("run bud")
}

fn succeeded(who: &str, out: &Output) -> String {
    let text = stderr_of(out);
    assert!(out.status.success(), "{who} failed:\n{text}");
    text
}

/// The token and URL of the cache service from the runner's variables, for the v1 and v2
/// services, and a `token=` given wins over the variable: the daemon makes the same requests
/// (path and bearer token) for bud as for buildx.
#[test]
fn gha_token_and_url_come_from_the_environment_as_with_buildx() {
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    let service = FakeCacheService::start();
    let url = service.url();
    let (from_env, given) = (runtime_token("from-env"), runtime_token("given"));
    let given_attr = format!("type=gha,scope=h-credentials,token={given}");
    let v1 = [
        ("ACTIONS_RUNTIME_TOKEN", from_env.as_str()),
        ("ACTIONS_CACHE_URL", url.as_str()),
    ];
    let v2 = [
        ("ACTIONS_RUNTIME_TOKEN", from_env.as_str()),
        ("ACTIONS_RESULTS_URL", url.as_str()),
        ("ACTIONS_CACHE_SERVICE_V2", "true"),
    ];
    // (case, environment, --cache-from, the token the daemon is to send)
    let cases = [
        ("v1", &v1[..], "type=gha,scope=h-credentials", &from_env),
        ("v2", &v2[..], "type=gha,scope=h-credentials", &from_env),
        ("token= given", &v1[..], given_attr.as_str(), &given),
    ];
    for (case, env, cache_from, token) in cases {
        let context = context();
        succeeded(
            "docker buildx build",
            &buildx(&docker, env, &["--cache-from", cache_from], context.path()),
        );
        let reference = service.take();
        succeeded(
            "bud",
            &bud(&docker, env, &["--cache-from", cache_from], context.path()),
        );
        let ours = service.take();
        let bearer = format!("Bearer {token}");
        assert!(
            !reference.is_empty()
                && reference
                    .iter()
                    .all(|r| r.authorization.as_deref() == Some(bearer.as_str())),
            "{case}: buildx's requests: {reference:#?}"
        );
        assert_eq!(ours, reference, "{case}: bud's requests, then buildx's");
    }
}

/// With no token anywhere, buildx leaves a gha cache out (the build succeeds, nothing is
/// exported); so does bud, saying so, where the daemon would fail the build for the token.
#[test]
fn a_gha_cache_without_a_token_is_left_out_as_buildx_leaves_it_out() {
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    let service = FakeCacheService::start();
    let cache_to = format!("type=gha,scope=h-credentials,url={}", service.url());
    let context = context();
    let reference = succeeded(
        "docker buildx build",
        &buildx(&docker, &[], &["--cache-to", &cache_to], context.path()),
    );
    assert!(!reference.contains("exporting cache"), "{reference}");
    let ours = succeeded(
        "bud",
        &bud(&docker, &[], &["--cache-to", &cache_to], context.path()),
    );
    assert!(!ours.contains("exporting cache"), "{ours}");
    assert!(
        ours.contains("--cache-to type=gha: no token (token= or ACTIONS_RUNTIME_TOKEN)"),
        "{ours}"
    );
    assert_eq!(service.take(), Vec::new());
}

/// A token from the environment shows nowhere: not in bud's output with --debug and
/// rawjson progress, not in its state root or --metadata-file.
#[test]
fn a_gha_token_from_the_environment_is_never_shown_or_kept() {
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    let service = FakeCacheService::start();
    let token = runtime_token("never-shown");
    let url = service.url();
    let env = [
        ("ACTIONS_RUNTIME_TOKEN", token.as_str()),
        ("ACTIONS_CACHE_URL", url.as_str()),
    ];
    let context = context();
    let root = tempfile::tempdir().unwrap();
    let metadata = root.path().join("metadata.json");
    let (_dir, output) = local_output();
    let out = with_env(Command::new(env!("CARGO_BIN_EXE_bud")), &env)
        .arg("--root")
        .arg(root.path())
        .args([
            "--debug",
            "--addr",
            "docker://",
            "build",
            "--progress",
            "rawjson",
        ])
        .args(["--output", &output, "--metadata-file"])
        .arg(&metadata)
        .args(["--cache-from", "type=gha,scope=h-credentials"])
        .args([
            "--cache-to",
            "type=gha,scope=h-credentials,ignore-error=true",
        ])
        .arg(context.path())
        .env("DOCKER_HOST", docker.host())
        .output()
        .expect("run bud");
    succeeded("bud", &out);
    // The daemon was sent it.
    assert!(
        service
            .take()
            .iter()
            .any(|r| r.authorization == Some(format!("Bearer {token}"))),
        "the daemon did not use the token"
    );
    let secret = token.as_str();
    for (what, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !String::from_utf8_lossy(bytes).contains(secret),
            "the token is in bud's {what}"
        );
    }
    let mut kept = Vec::new();
    let mut dirs = vec![root.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                dirs.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|b| String::from_utf8_lossy(&b).contains(secret))
            {
                kept.push(path);
            }
        }
    }
    assert!(std::fs::metadata(&metadata).is_ok(), "no metadata file");
    assert_eq!(
        kept,
        Vec::<std::path::PathBuf>::new(),
        "files holding the token"
    );
}
