//! Servers of git repositories and files on 127.0.0.1, for the tests of `ADD <URL>` and of
//! remote build contexts: `git daemon`, git's smart HTTP (`git http-backend` behind a small
//! server of the test's own) and plain HTTP with chosen answers. Each serves every
//! connection to a listener bound before it returns: no port race, no waiting for readiness.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Whether `git daemon` and `git http-backend` are installed.
pub fn git_servers_available() -> bool {
    // Usage, exit code 129, when the command is installed; "not a git command" otherwise.
    let has = |cmd: &str| {
        Command::new("git")
            .args([cmd, "-h"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.code() == Some(129))
    };
    let exec_path = Command::new("git").arg("--exec-path").output();
    let backend = exec_path.is_ok_and(|out| {
        Path::new(String::from_utf8_lossy(&out.stdout).trim())
            .join("git-http-backend")
            .is_file()
    });
    has("daemon") && backend
}

/// Runs git in `dir` with a fixed identity and no signing; panics with git's stderr.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(["-c", "init.defaultBranch=main", "-c", "tag.gpgSign=false"])
        .args(["-c", "commit.gpgSign=false"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `git daemon --inetd` on each connection; repositories are found under `base`. Counts
/// connections (an `ls-remote` is one, a fetch another).
pub struct GitDaemon {
    pub port: u16,
    connections: Arc<AtomicUsize>,
}

impl GitDaemon {
    pub fn serve(base: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let base = base.to_path_buf();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let output = OwnedFd::from(stream.try_clone().unwrap());
                let mut child = Command::new("git")
                    .args(["daemon", "--inetd", "--export-all"])
                    .arg(format!("--base-path={}", base.display()))
                    .arg(&base)
                    .stdin(Stdio::from(OwnedFd::from(stream)))
                    .stdout(Stdio::from(output))
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                std::thread::spawn(move || child.wait());
            }
        });
        Self { port, connections }
    }

    /// `git://127.0.0.1:PORT/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Git's smart HTTP protocol: each request handed to `git http-backend` as CGI, with the
/// repositories under `base`.
pub struct GitHttp {
    pub port: u16,
}

impl GitHttp {
    pub fn serve(base: &Path) -> Self {
        Self::serve_as(base, None)
    }

    /// Answers `401` with a Basic challenge to any request without `user:password`.
    pub fn serve_with_auth(base: &Path, user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self::serve_as(base, Some(pair))
    }

    /// `authorization`: the base64 `user:password` a request must carry.
    fn serve_as(base: &Path, authorization: Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = base.to_path_buf();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let base = base.clone();
                let authorization = authorization.clone();
                std::thread::spawn(move || {
                    let _ = http_backend(stream, &base, authorization.as_deref());
                });
            }
        });
        Self { port }
    }

    /// `http://127.0.0.1:PORT/NAME` (NAME ends in `.git` for docker to see a repository).
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

/// One HTTP request, as far as these servers need it.
struct Request {
    method: String,
    path: String,
    query: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn read_request(stream: &TcpStream) -> std::io::Result<Request> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let target = words.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = headers.get("content-length") {
        body = vec![0; len.parse().unwrap_or(0)];
        reader.read_exact(&mut body)?;
    }
    Ok(Request {
        method,
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body,
    })
}

fn http_backend(
    mut stream: TcpStream,
    base: &Path,
    authorization: Option<&str>,
) -> std::io::Result<()> {
    let req = read_request(&stream)?;
    if let Some(expected) = authorization {
        // The scheme is case-insensitive, the credentials are not.
        let given = req.headers.get("authorization").map_or("", String::as_str);
        let matches =
            given.len() > 6 && given[..6].eq_ignore_ascii_case("basic ") && given[6..] == *expected;
        if !matches {
            return write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    }
    let header = |name: &str| req.headers.get(name).cloned().unwrap_or_default();
    let mut child = Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", base)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &req.method)
        .env("PATH_INFO", &req.path)
        .env("QUERY_STRING", &req.query)
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", req.body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let body = req.body;
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let mut output = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut output)?;
    let _ = writer.join();
    child.wait()?;
    // CGI: headers (with an optional Status), a blank line, the body.
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let (head, body) = match split {
        Some((i, n)) => (&output[..i], &output[i + n..]),
        None => (&output[..], &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut status = "200 OK".to_string();
    let mut headers = String::new();
    for line in head.lines() {
        match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("status") => {
                status = value.trim().to_string();
            }
            _ => {
                headers.push_str(line);
                headers.push_str("\r\n");
            }
        }
    }
    write!(
        stream,
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)
}

/// What [`FileServer`] answers at one path.
#[derive(Clone)]
pub enum Answer {
    /// 200 with this body.
    Body(Vec<u8>),
    /// This status (e.g. `500 Internal Server Error`) with a short body.
    Status(&'static str),
    /// `302` to this location.
    Redirect(String),
}

/// Plain HTTP: fixed answers by path, `404` elsewhere. Counts requests.
pub struct FileServer {
    pub port: u16,
    requests: Arc<AtomicUsize>,
}

impl FileServer {
    pub fn serve(answers: BTreeMap<String, Answer>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        let answers = Arc::new(answers);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let answers = answers.clone();
                std::thread::spawn(move || {
                    let _ = answer(stream, &answers);
                });
            }
        });
        Self { port, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn answer(mut stream: TcpStream, answers: &BTreeMap<String, Answer>) -> std::io::Result<()> {
    let req = read_request(&stream)?;
    let (status, extra, body) = match answers.get(&req.path) {
        Some(Answer::Body(body)) => ("200 OK".to_string(), String::new(), body.clone()),
        Some(Answer::Status(status)) => (status.to_string(), String::new(), b"failed".to_vec()),
        Some(Answer::Redirect(to)) => (
            "302 Found".to_string(),
            format!("Location: {to}\r\n"),
            Vec::new(),
        ),
        None => (
            "404 Not Found".to_string(),
            String::new(),
            b"not here".to_vec(),
        ),
    };
    let head = if req.method == "HEAD" {
        Vec::new()
    } else {
        body.clone()
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&head)
}

/// A tar archive of `files` (path, contents): regular files of mode 0644 at a fixed time,
/// their owner fields left blank as some archivers leave them (Go's archive/tar, and so
/// Docker and BuildKit, reads them as 0).
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        builder.append_data(&mut header, path, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// A directory of repositories served by both git servers.
pub struct Repos {
    pub base: tempfile::TempDir,
}

impl Repos {
    pub fn new() -> Self {
        Self {
            base: tempfile::tempdir().unwrap(),
        }
    }

    /// A repository `NAME` with these files committed on `main`; returns its work tree.
    /// Both servers find its `.git` directory by `NAME` (end it in `.git` for docker build
    /// to take an http URL of it as a repository).
    pub fn create(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let work = self.base.path().join(name);
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q"]);
        for (path, data) in files {
            let path = work.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, data).unwrap();
        }
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", "files"]);
        work
    }
}

/// Whether an OpenSSH server and client are installed (`openssh-server`, scripts/test-env).
pub fn ssh_servers_available() -> bool {
    [
        "/usr/sbin/sshd",
        "/usr/bin/ssh",
        "/usr/bin/ssh-keygen",
        "/usr/bin/ssh-agent",
    ]
    .iter()
    .all(|p| Path::new(p).is_file())
}

/// A fresh ed25519 key pair without a passphrase at `path` and `path.pub`.
pub fn ssh_keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "bud-test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An sshd of the test's own, run as inetd runs it (`sshd -i`) on each connection to a
/// listener bound before `serve` returns, with its own host key and one authorized client
/// key: git reaches the repositories under `base` as `ssh://USER@127.0.0.1:PORT/BASE/NAME`,
/// USER being whoever runs the tests.
pub struct GitSsh {
    pub port: u16,
    dir: tempfile::TempDir,
    base: PathBuf,
    user: String,
    connections: Arc<AtomicUsize>,
}

impl GitSsh {
    pub fn serve(base: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("host_key");
        ssh_keygen(&host_key);
        ssh_keygen(&dir.path().join("client_key"));
        std::fs::copy(
            dir.path().join("client_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        // sshd refuses to start without its privilege separation directory, which only the
        // package's service creates.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "HostKey {host}\nAuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 PidFile none\nLogLevel VERBOSE\n",
                host = host_key.display(),
                dir = dir.path().display(),
            ),
        )
        .unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let log = dir.path().join("sshd.log");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let output = OwnedFd::from(stream.try_clone().unwrap());
                // sshd re-executes itself, so it must be started by its absolute path.
                let mut child = Command::new("/usr/sbin/sshd")
                    .arg("-i")
                    .arg("-f")
                    .arg(&config)
                    .arg("-E")
                    .arg(&log)
                    .stdin(Stdio::from(OwnedFd::from(stream)))
                    .stdout(Stdio::from(output))
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                std::thread::spawn(move || child.wait());
            }
        });
        Self {
            port,
            dir,
            base: base.to_path_buf(),
            user,
            connections,
        }
    }

    /// `ssh://USER@127.0.0.1:PORT/BASE/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}/{name}",
            self.user,
            self.port,
            self.base.display()
        )
    }

    /// The private key the server lets in.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// The server's host key as a known_hosts line for `127.0.0.1:PORT`.
    pub fn known_hosts_line(&self) -> String {
        let public = std::fs::read_to_string(self.dir.path().join("host_key.pub")).unwrap();
        let mut fields = public.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        format!("[127.0.0.1]:{} {kind} {key}", self.port)
    }

    /// What sshd logged (the keys it refused, the commands it ran), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// An `ssh-agent` of the test's own holding `keys`, on a socket in a directory of its own;
/// killed on drop.
pub struct SshAgent {
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    pid: i32,
}

impl SshAgent {
    pub fn with_keys(keys: &[&Path]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        // Without -D the agent forks once its socket listens, and prints its pid.
        let out = Command::new("ssh-agent")
            .arg("-s")
            .arg("-a")
            .arg(&socket)
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-agent: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = text
            .split(';')
            .find_map(|part| part.trim().strip_prefix("SSH_AGENT_PID="))
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("no SSH_AGENT_PID in {text:?}"));
        let agent = Self {
            _dir: dir,
            socket,
            pid,
        };
        for key in keys {
            let out = Command::new("ssh-add")
                .arg("-q")
                .arg(key)
                .env("SSH_AUTH_SOCK", &agent.socket)
                .output()
                .unwrap();
            assert!(out.status.success(), "ssh-add: {out:?}");
        }
        agent
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}
