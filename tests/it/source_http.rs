//! `ADD <URL>` against a server on 127.0.0.1 that this test runs: downloads, revalidation
//! with ETags (a `304` reuses the snapshot), pinned checksums, and failures that name the URL.

use crate::support;
use crate::support::context_servers;
use crate::support::same_image;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bud::cache::meta::MetaStore;
use bud::executor::{Runtime, RuntimeKind};
use bud::progress::ProgressSink;
use bud::solver::{ImageProvider, Ref, ResolvedImage, SolveOptions, Solver};
use bud::state::StateRoot;
use bud_frontend::llb::{self, HttpOptions};
use bud_proto::pb;
use context_servers::{Answer, FileServer, tar_of};
use futures_util::future::BoxFuture;
use same_image::{Builder, assert_same_image};

use tokio_util::sync::CancellationToken;

const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
const LAST_MODIFIED_UNIX: i64 = 1_445_412_480;

/// What the server serves at `/file`.
struct Resource {
    body: Vec<u8>,
    etag: String,
}

/// A one-thread HTTP/1.1 server: `/file` with an ETag, a Last-Modified date and `304` to a
/// matching `If-None-Match`; `404` elsewhere. Counts requests and full responses.
struct Server {
    port: u16,
    resource: Arc<Mutex<Resource>>,
    requests: Arc<AtomicUsize>,
    downloads: Arc<AtomicUsize>,
}

impl Server {
    fn start(body: &[u8], etag: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let resource = Arc::new(Mutex::new(Resource {
            body: body.to_vec(),
            etag: etag.to_string(),
        }));
        let requests = Arc::new(AtomicUsize::new(0));
        let downloads = Arc::new(AtomicUsize::new(0));
        let (res, req, dl) = (resource.clone(), requests.clone(), downloads.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                req.fetch_add(1, Ordering::SeqCst);
                if serve(stream, &res) {
                    dl.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Self {
            port,
            resource,
            requests,
            downloads,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.requests.load(Ordering::SeqCst),
            self.downloads.load(Ordering::SeqCst),
        )
    }

    fn replace(&self, body: &[u8], etag: &str) {
        let mut r = self.resource.lock().unwrap();
        r.body = body.to_vec();
        r.etag = etag.to_string();
    }
}

/// Answers one request; returns whether it sent the body.
fn serve(stream: TcpStream, resource: &Mutex<Resource>) -> bool {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let mut if_none_match = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("if-none-match")
        {
            if_none_match = Some(value.trim().to_string());
        }
    }
    let mut out = stream;
    let r = resource.lock().unwrap();
    let (status, body, sent) = if path != "/file" {
        ("404 Not Found", &b"not here"[..], false)
    } else if if_none_match.as_deref() == Some(r.etag.as_str()) {
        ("304 Not Modified", &b""[..], false)
    } else {
        ("200 OK", r.body.as_slice(), true)
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nETag: {}\r\nLast-Modified: {LAST_MODIFIED}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        r.etag,
        body.len()
    );
    out.write_all(head.as_bytes()).unwrap();
    out.write_all(body).unwrap();
    sent
}

struct NoImages;

impl ImageProvider for NoImages {
    fn resolve<'a>(
        &'a self,
        reference: &'a str,
        _platform: Option<&'a pb::Platform>,
    ) -> BoxFuture<'a, Result<ResolvedImage, bud::solver::ImageProviderError>> {
        Box::pin(async move { Err(format!("no image {reference} in this test").into()) })
    }
}

struct Env {
    _dir: tempfile::TempDir,
    state: StateRoot,
    meta: Arc<MetaStore>,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = StateRoot::open(dir.path()).unwrap();
        let meta = Arc::new(MetaStore::open(&state.db_path()).unwrap());
        Self {
            _dir: dir,
            state,
            meta,
        }
    }

    /// A solver as one build would have it; builds after it share the state.
    fn solver(&self) -> Arc<Solver> {
        let runtime = Runtime::new(RuntimeKind::Runc, self.state.tmp_dir().join("runc")).unwrap();
        Arc::new(
            Solver::new(
                self.state.clone(),
                self.meta.clone(),
                runtime,
                Arc::new(NoImages),
                ProgressSink::quiet(),
                SolveOptions::default(),
            )
            .unwrap(),
        )
    }

    async fn solve(&self, def: &pb::Definition) -> Result<(Ref, PathBuf), String> {
        let solver = self.solver();
        let r = solver
            .solve(def, &CancellationToken::new())
            .await
            .map_err(|e| bud::error_chain::error_chain(&e))?;
        let id = r.snapshot_id().expect("a committed snapshot").to_string();
        let dir = solver.snapshots().layer_dir(&id);
        Ok((r, dir))
    }
}

fn definition(url: &str, checksum: Option<String>) -> pb::Definition {
    llb::http(
        url,
        HttpOptions {
            checksum,
            filename: Some("payload.txt".into()),
            ..Default::default()
        },
    )
    .marshal()
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", support::sha256_hex(data))
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_once_then_revalidates_with_the_etag() {
    let server = Server::start(b"first version\n", "\"v1\"");
    let env = Env::new();
    let def = definition(&server.url("/file"), None);

    let (first, dir) = env.solve(&def).await.unwrap();
    let file = dir.join("payload.txt");
    assert_eq!(std::fs::read(&file).unwrap(), b"first version\n");
    let md = std::fs::metadata(&file).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o600);
    assert_eq!(md.mtime(), LAST_MODIFIED_UNIX);
    assert_eq!(server.counts(), (1, 1));

    let (second, _) = env.solve(&def).await.unwrap();
    assert_eq!(server.counts(), (2, 1), "a 304 is not downloaded again");
    assert_eq!(second.snapshot_id(), first.snapshot_id());

    server.replace(b"second version\n", "\"v2\"");
    let (third, dir) = env.solve(&def).await.unwrap();
    assert_eq!(server.counts(), (3, 2));
    assert_ne!(third.snapshot_id(), first.snapshot_id());
    assert_eq!(
        std::fs::read(dir.join("payload.txt")).unwrap(),
        b"second version\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pinned_checksums_are_verified_and_need_no_request_once_stored() {
    let body = b"pinned content\n";
    let server = Server::start(body, "\"p\"");
    let env = Env::new();
    let url = server.url("/file");

    let err = env
        .solve(&definition(&url, Some(sha256(b"something else"))))
        .await
        .unwrap_err();
    assert!(
        err.contains("digest mismatch") && err.contains(&url),
        "{err}"
    );
    assert!(
        err.contains(&sha256(body)),
        "names what was received: {err}"
    );

    let def = definition(&url, Some(sha256(body)));
    let (_, dir) = env.solve(&def).await.unwrap();
    assert_eq!(std::fs::read(dir.join("payload.txt")).unwrap(), body);
    let after_download = server.counts();
    env.solve(&def).await.unwrap();
    assert_eq!(server.counts(), after_download, "found by its checksum");
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_name_the_url() {
    let server = Server::start(b"x", "\"x\"");
    let env = Env::new();
    let missing = server.url("/missing");
    let err = env.solve(&definition(&missing, None)).await.unwrap_err();
    assert!(err.contains(&missing) && err.contains("404"), "{err}");

    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}/file", l.local_addr().unwrap().port())
    };
    let err = env.solve(&definition(&closed, None)).await.unwrap_err();
    assert!(err.contains(&closed), "{err}");
}

#[test]
fn bud_adds_a_url_into_a_local_export() {
    if !support::require("root", rustix::process::geteuid().is_root()) {
        return;
    }
    let server = Server::start(b"served over http\n", "\"b\"");
    let root = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args(["--progress", "plain", "--build-arg"])
        .arg(format!("BASE_URL=http://127.0.0.1:{}", server.port))
        .arg("-o")
        .arg(format!("type=local,dest={}", dest.path().display()))
        .arg(support::testdata("add-url"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dest.path().join("downloads/file")).unwrap(),
        "served over http\n"
    );
}

/// A web server that accepts the connection and never answers fails `ADD URL` with a
/// timeout instead of hanging the build.
#[test]
fn bud_times_out_on_a_silent_server() {
    if !support::require("root", rustix::process::geteuid().is_root()) {
        return;
    }
    let server = support::silent_listener();
    let dir = tempfile::tempdir().unwrap();
    let config = support::short_timeouts_config(dir.path());
    let context = dir.path().join("context");
    std::fs::create_dir(&context).unwrap();
    let url = format!("http://{server}/file");
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM scratch\nADD {url} /file\n"),
    )
    .unwrap();
    let out = support::bud_within(
        &dir.path().join("state"),
        &["-o", "type=tar,dest=/dev/null", context.to_str().unwrap()],
        &[("BUD_CONFIG", &config)],
        std::time::Duration::from_secs(300),
    );
    let stderr = support::stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&url) && stderr.contains("timed out"),
        "{stderr}"
    );
}

/// The files of the tarball contexts.
const CONTEXT_FILES: &[(&str, &[u8])] = &[
    (
        "Dockerfile",
        b"FROM bud-test/busybox:latest\nCOPY . /ctx/\nRUN cat /ctx/a.txt > /copied\n",
    ),
    ("a.txt", b"a\n"),
    (
        "sub/Dockerfile",
        b"FROM bud-test/busybox:latest\nCOPY sub /sub/\n",
    ),
];

const PLAIN_DOCKERFILE: &[u8] =
    b"FROM bud-test/busybox:latest\nLABEL from=url\nRUN echo built > /built\n";

fn compressed(tar: &[u8], kind: &str) -> Vec<u8> {
    match kind {
        "gz" => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(tar).unwrap();
            enc.finish().unwrap()
        }
        "bz2" => {
            let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            enc.write_all(tar).unwrap();
            enc.finish().unwrap()
        }
        "xz" => {
            let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
            enc.write_all(tar).unwrap();
            enc.finish().unwrap()
        }
        other => panic!("no {other} here"),
    }
}

/// A server of the contexts and of bad answers.
fn context_server() -> FileServer {
    let tar = tar_of(CONTEXT_FILES);
    let mut answers = std::collections::BTreeMap::new();
    answers.insert("/ctx.tar".to_string(), Answer::Body(tar.clone()));
    for kind in ["gz", "bz2", "xz"] {
        answers.insert(
            format!("/ctx.tar.{kind}"),
            Answer::Body(compressed(&tar, kind)),
        );
    }
    answers.insert(
        "/Dockerfile".to_string(),
        Answer::Body(PLAIN_DOCKERFILE.to_vec()),
    );
    answers.insert(
        "/not-a-tar.tar.gz".to_string(),
        Answer::Body(b"this is no tarball\n".to_vec()),
    );
    let mut broken = vec![0x1f, 0x8b, 0x08, 0];
    broken.extend_from_slice(&[0x55; 64]);
    answers.insert("/broken.tar.gz".to_string(), Answer::Body(broken));
    answers.insert(
        "/fails".to_string(),
        Answer::Status("500 Internal Server Error"),
    );
    answers.insert("/loop".to_string(), Answer::Redirect("/loop".into()));
    FileServer::serve(answers)
}

fn context_env() -> bool {
    support::require_docker() && support::require_base_image() && support::require_runc()
}

/// A tarball (plain, gzip, bzip2, xz) or a Dockerfile served over http as the context: bud
/// (embedded, and with --addr on Docker 20.10's BuildKit) builds the image both references
/// build from the same URL; `-f` is relative to the unpacked context.
#[test]
fn http_contexts_build_the_image_docker_builds() {
    if !context_env() {
        return;
    }
    let Some(docker28) = support::require_docker28() else {
        return;
    };
    let server = context_server();
    let every = [Builder::Docker20, Builder::Bud, Builder::BudAddr];
    for path in [
        "/ctx.tar",
        "/ctx.tar.gz",
        "/ctx.tar.bz2",
        "/ctx.tar.xz",
        "/Dockerfile",
    ] {
        assert_same_image(&docker28, &every, &[&server.url(path)]);
    }
    assert_same_image(
        &docker28,
        &every,
        &["-f", "sub/Dockerfile", &server.url("/ctx.tar.gz")],
    );
}

/// A URL that fails (404, 500, a redirect loop, no tarball where the name says one, a
/// corrupt one) fails the build, embedded or with --addr, with an error naming the URL.
#[test]
fn http_context_errors_name_the_url() {
    if !context_env() {
        return;
    }
    let server = context_server();
    let root = tempfile::tempdir().unwrap();
    for (path, why) in [
        ("/missing", "404"),
        ("/fails", "500"),
        ("/loop", "redirect"),
        ("/not-a-tar.tar.gz", "unknown instruction"),
        ("/broken.tar.gz", "/broken.tar.gz"),
    ] {
        let url = server.url(path);
        for addr in [None, Some("docker://")] {
            let mut args: Vec<&str> = Vec::new();
            if let Some(addr) = addr {
                args.extend(["--addr", addr]);
            }
            args.extend(["-o", "type=tar,dest=/dev/null", &url]);
            let out =
                support::bud_within(root.path(), &args, &[], std::time::Duration::from_secs(300));
            let stderr = support::stderr_of(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            let last = stderr.lines().last().unwrap_or_default();
            assert!(
                last.contains(&url) && last.to_lowercase().contains(why),
                "{args:?}: the error names the URL and what is wrong: {stderr}"
            );
        }
    }
}

/// A server that accepts the connection and never answers fails the context's fetch with a
/// timeout naming the URL, instead of hanging the build.
#[test]
fn a_silent_context_server_times_out() {
    if !support::require("root", rustix::process::geteuid().is_root()) {
        return;
    }
    let server = support::silent_listener();
    let dir = tempfile::tempdir().unwrap();
    let config = support::short_timeouts_config(dir.path());
    let url = format!("http://{server}/ctx.tar.gz");
    let out = support::bud_within(
        &dir.path().join("state"),
        &["-o", "type=tar,dest=/dev/null", &url],
        &[("BUD_CONFIG", &config)],
        std::time::Duration::from_secs(300),
    );
    let stderr = support::stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(&url) && last.contains("timed out"),
        "{stderr}"
    );
}

/// `ADD --checksum=sha256:…` of a URL: the file when the digest matches, as Docker 28.5
/// builds it (embedded, and on Docker 20.10's BuildKit, which checks `http.checksum` too);
/// a build that fails naming the digest when it does not.
#[test]
fn add_checksum_verifies_what_the_url_serves() {
    if !context_env() {
        return;
    }
    let Some(docker28) = support::require_docker28() else {
        return;
    };
    let body = b"pinned by its digest\n".to_vec();
    let digest = sha256(&body);
    let mut answers = std::collections::BTreeMap::new();
    answers.insert("/pinned.txt".to_string(), Answer::Body(body));
    let server = FileServer::serve(answers);
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM bud-test/busybox\nARG URL\nARG SUM\nADD --checksum=$SUM $URL /pinned.txt\n",
    )
    .unwrap();
    let url = format!("URL={}", server.url("/pinned.txt"));
    let ctx = context.path().to_str().unwrap();
    let right = format!("SUM={digest}");
    assert_same_image(
        &docker28,
        &[Builder::Bud, Builder::BudAddr],
        &["--build-arg", &url, "--build-arg", &right, ctx],
    );

    let wrong = format!("SUM=sha256:{}", "0".repeat(64));
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args([
            "build",
            "--progress",
            "plain",
            "--build-arg",
            &url,
            "--build-arg",
            &wrong,
        ])
        .args(["-o", "type=tar,dest=/dev/null", ctx])
        .output()
        .unwrap();
    let err = support::stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&"0".repeat(64)), "{err}");
    let theirs = docker28.build(&["--build-arg", &url, "--build-arg", &wrong, ctx]);
    assert!(!theirs.status.success(), "Docker 28.5 refuses it too");
}
