//! `--cache-from`/`--cache-to type=gha` with `--addr`: the GitHub Actions cache token and
//! service URL come from the environment as buildx takes them (`ACTIONS_RUNTIME_TOKEN`,
//! `ACTIONS_CACHE_URL`, `ACTIONS_RESULTS_URL`, `ACTIONS_CACHE_SERVICE_V2`), an attribute the
//! user gave winning, and an entry with no token is left out as buildx leaves it out.
//! Compared with buildx 0.29 on Docker 28.5 with the containerd image store (whose BuildKit
//! has the gha cache; Docker's own store has none), both reaching a fake cache service in
//! the test: the daemon's requests, their paths and Authorization headers, are the same.
//!
//! The s3 cache cannot be compared so: neither reference daemon's BuildKit has it (its
//! import fails with "unknown cache importer: s3" before any request). What is compared
//! instead is what each client sends the daemon: the `access_key_id`, `secret_access_key`
//! and `session_token` of the cache entries in the gRPC requests, read from the bytes bud
//! and buildx (its remote driver, in a client configuration of the test's own) send through
//! a recording proxy to the same daemon. That the daemon signs with them is not verified.

use crate::support;
use crate::support::daemon_proxy;

use std::collections::BTreeSet;
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
/// exported); so does bud, saying so, where the daemon would fail the build for the token
/// (or, on Docker's own image store, bud refuse the export up front).
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

    // On Docker's own image store, which exports no gha cache, the cache is left out before
    // buildx's docker driver would refuse it: the build succeeds.
    let Some(classic) = require_docker28() else {
        return;
    };
    succeeded(
        "docker buildx build (Docker's own store)",
        &buildx(&classic, &[], &["--cache-to", &cache_to], context.path()),
    );
    let ours = succeeded(
        "bud (Docker's own store)",
        &bud(&classic, &[], &["--cache-to", &cache_to], context.path()),
    );
    assert!(ours.contains("--cache-to type=gha: no token"), "{ours}");
}

/// A token from the environment shows nowhere: not in bud's output with --debug and
/// rawjson progress, not in its state root, --metadata-file or the image archive with its
/// max-mode provenance (the daemon's BuildKit writes it).
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
    let image = root.path().join("image.tar");
    let output = format!("type=oci,dest={}", image.display());
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
        .args([
            "--output",
            &output,
            "--provenance",
            "mode=max",
            "--metadata-file",
        ])
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
    let archive = String::from_utf8_lossy(&std::fs::read(&image).unwrap()).into_owned();
    assert!(
        archive.contains("https://slsa.dev/provenance/"),
        "no provenance in the image archive"
    );
    assert_eq!(
        kept,
        Vec::<std::path::PathBuf>::new(),
        "files holding the token"
    );
}

/// The AWS variables either client's credential chain would read, none inherited; instance
/// metadata turned off for buildx's (bud never asks it).
const AWS_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_ACCESS_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

fn with_aws_env(mut command: Command, home: &Path, env: &[(&str, &str)]) -> Command {
    for name in AWS_VARIABLES {
        command.env_remove(name);
    }
    command
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied());
    command
}

/// The values of the attribute `key` in the protobuf `map<string, string>` entries found in
/// `bytes` (a cache entry's attributes in a gRPC request: field 1 the key, field 2 the value).
fn attribute_values(bytes: &[u8], key: &str) -> BTreeSet<String> {
    let mut pattern = vec![0x0a, key.len() as u8];
    pattern.extend_from_slice(key.as_bytes());
    pattern.push(0x12);
    let mut values = BTreeSet::new();
    let mut at = 0;
    while let Some(found) = bytes[at..]
        .windows(pattern.len())
        .position(|w| w == pattern.as_slice())
    {
        let mut i = at + found + pattern.len();
        let (mut len, mut shift) = (0usize, 0);
        while let Some(&b) = bytes.get(i) {
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        if let Some(value) = bytes.get(i..i + len) {
            values.insert(String::from_utf8_lossy(value).into_owned());
        }
        at = i;
    }
    values
}

/// What the s3 cache entries a client sent carry of credentials.
fn sent_credentials(bytes: &[u8]) -> [(&'static str, BTreeSet<String>); 3] {
    ["access_key_id", "secret_access_key", "session_token"].map(|k| (k, attribute_values(bytes, k)))
}

/// The AWS keys come from the environment, or from the shared credentials file's profile
/// that AWS_PROFILE names, and keys given win (the session token then left out): bud sends
/// the daemon the same s3 credentials as buildx does.
#[test]
fn s3_credentials_come_from_the_environment_as_with_buildx() {
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let credentials = home.path().join("credentials");
    std::fs::write(
        &credentials,
        "[ci]\naws_access_key_id = AKIDHCREDPROFILE\naws_secret_access_key = secret-profile\n\
         aws_session_token = session-profile\n",
    )
    .unwrap();
    // buildx's own client configuration, with a remote-driver builder for the proxy.
    let config = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        docker.config().join("cli-plugins"),
        config.path().join("cli-plugins"),
    )
    .unwrap();
    let docker_cli = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = with_aws_env(docker.command(), home.path(), env);
        command.env("DOCKER_CONFIG", config.path()).args(args);
        command.output().expect("run docker")
    };
    let env_keys = [
        ("AWS_ACCESS_KEY_ID", "AKIDHCREDENV"),
        ("AWS_SECRET_ACCESS_KEY", "secret-env"),
        ("AWS_SESSION_TOKEN", "session-env"),
    ];
    let profile = [
        ("AWS_PROFILE", "ci"),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
    ];
    let s3 = "type=s3,bucket=h-credentials,region=us-east-1,endpoint_url=http://127.0.0.1:9,\
              use_path_style=true";
    let given = format!("{s3},access_key_id=AKIDHCREDGIVEN,secret_access_key=secret-given");
    let cases = [
        ("environment", &env_keys[..], s3, "AKIDHCREDENV"),
        ("profile", &profile[..], s3, "AKIDHCREDPROFILE"),
        (
            "keys given",
            &env_keys[..],
            given.as_str(),
            "AKIDHCREDGIVEN",
        ),
    ];
    for (case, env, cache_from, access_key_id) in cases {
        let context = context();
        let (proxy, sent) = daemon_proxy::DaemonProxy::recording(docker.host());
        let builder = format!("h-credentials-{}", std::process::id());
        let addr = proxy.addr.clone();
        succeeded(
            "docker buildx create",
            &docker_cli(
                &[
                    "buildx", "create", "--name", &builder, "--driver", "remote", &addr,
                ],
                &[],
            ),
        );
        succeeded(
            "docker buildx build",
            &docker_cli(
                &[
                    "buildx",
                    "build",
                    "--builder",
                    &builder,
                    "--progress",
                    "plain",
                    "--cache-from",
                    cache_from,
                    context.path().to_str().unwrap(),
                ],
                env,
            ),
        );
        succeeded(
            "docker buildx rm",
            &docker_cli(&["buildx", "rm", &builder], &[]),
        );
        let reference = sent_credentials(&std::mem::take(&mut *sent.lock().unwrap()));
        let root = tempfile::tempdir().unwrap();
        let (_dir, output) = local_output();
        let out = with_aws_env(Command::new(env!("CARGO_BIN_EXE_bud")), home.path(), env)
            .arg("--root")
            .arg(root.path())
            .args([
                "--addr",
                &addr,
                "build",
                "--progress",
                "plain",
                "--output",
                &output,
            ])
            .args(["--cache-from", cache_from])
            .arg(context.path())
            .output()
            .expect("run bud");
        succeeded("bud", &out);
        let ours = sent_credentials(&std::mem::take(&mut *sent.lock().unwrap()));
        assert_eq!(
            reference[0].1,
            BTreeSet::from([access_key_id.to_owned()]),
            "{case}: buildx sent {reference:?}"
        );
        assert_eq!(ours, reference, "{case}: what bud sent, then buildx");
    }
}
