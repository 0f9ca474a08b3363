//! The Docker API on `ssh://[USER@]HOST[:PORT]`, reached as the docker CLI reaches it: each
//! connection is an `ssh … -- HOST docker system dial-stdio`, whose standard input and output
//! carry the HTTP. Authentication, host keys and jump hosts are ssh's, from the user's ssh
//! configuration and agent.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll, ready};

use bollard::Docker;

use super::FailureNotes;
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

/// How much of ssh's error output is kept for a message.
const KEPT_STDERR: usize = 4096;

/// `ssh://` as docker parses it: a user and a port at most, no path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost {
    /// ssh's `-l`; unset: ssh's own choice (its config, the local user).
    pub user: Option<String>,
    /// A name or address; an IPv6 address without brackets.
    pub host: String,
    /// ssh's `-p`; unset: ssh's own choice.
    pub port: Option<u16>,
}

impl SshHost {
    /// A leaf parser: the caller names the setting the message is about.
    pub(super) fn parse(rest: &str) -> Result<Self, String> {
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err("an ssh:// Docker host has no path, query or fragment".into());
        }
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((user, hostport)) => {
                if user.contains(':') {
                    return Err("an ssh:// Docker host has no password: use ssh's keys".into());
                }
                (Some(user.to_string()).filter(|u| !u.is_empty()), hostport)
            }
            None => (None, rest),
        };
        let (host, port) = match super::split_host_port(hostport, 0) {
            Some((host, 0)) => (host, None),
            Some((host, port)) => (host, Some(port)),
            None => return Err("expected ssh://[USER@]HOST[:PORT]".into()),
        };
        Ok(SshHost { user, host, port })
    }

    /// ssh's arguments, as the docker CLI passes them.
    fn args(&self) -> Vec<String> {
        let mut args = vec!["-o".into(), "ConnectTimeout=30".into(), "-T".into()];
        if let Some(user) = &self.user {
            args.extend(["-l".into(), user.clone()]);
        }
        if let Some(port) = self.port {
            args.extend(["-p".into(), port.to_string()]);
        }
        args.extend(
            ["--", &self.host, "docker", "system", "dial-stdio"]
                .iter()
                .map(|s| s.to_string()),
        );
        args
    }
}

impl std::fmt::Display for SshHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ssh://")?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        match (&self.port, self.host.contains(':')) {
            (Some(port), true) => write!(f, "[{}]:{port}", self.host),
            (Some(port), false) => write!(f, "{}:{port}", self.host),
            (None, _) => write!(f, "{}", self.host),
        }
    }
}

pub(super) fn client(host: &SshHost, timeout: u64) -> Result<Docker, bollard::errors::Error> {
    let notes = FailureNotes::new();
    let connector = SshConnector {
        host: host.clone(),
        notes: notes.clone(),
    };
    // The URI's authority is never dialled: every connection is an ssh process.
    super::client_over(connector, "http://docker".into(), timeout, Some(notes))
}

#[derive(Clone)]
struct SshConnector {
    host: SshHost,
    /// Where each ssh's last words go.
    notes: FailureNotes,
}

impl tower_service::Service<Uri> for SshConnector {
    type Response = TokioIo<SshStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (host, notes) = (self.host.clone(), self.notes.clone());
        Box::pin(async move { SshStream::spawn(&host, notes).map(TokioIo::new) })
    }
}

/// One `ssh … docker system dial-stdio`: its stdout read, its stdin written. ssh is killed
/// when the connection is dropped.
struct SshStream {
    _child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// ssh's error output, read to its end, for when the connection ends before any reply.
    stderr: Option<JoinHandle<String>>,
    received: bool,
}

impl SshStream {
    fn spawn(host: &SshHost, notes: FailureNotes) -> io::Result<Self> {
        let mut child = Command::new("ssh")
            .args(host.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("running ssh: {e}")))?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(io::Error::other("ssh started without its pipes"));
        };
        let stderr = tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = (&mut stderr)
                .take(KEPT_STDERR as u64)
                .read_to_end(&mut text)
                .await;
            // Drain the rest so that ssh never blocks on a full pipe.
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
            let said = String::from_utf8_lossy(&text).trim().to_string();
            if !said.is_empty() {
                notes.record(format!("ssh: {said}"));
            }
            said
        });
        Ok(SshStream {
            _child: child,
            stdin,
            stdout,
            stderr: Some(stderr),
            received: false,
        })
    }
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stdout).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.received = true;
            return Poll::Ready(Ok(()));
        }
        // The end, before any reply: ssh failed, and said why on its error output.
        if !self.received && self.stderr.is_some() {
            return self.poll_failure(cx).map(Err);
        }
        Poll::Ready(Ok(()))
    }
}

impl SshStream {
    /// Why ssh ended: what it wrote on its error output, once it has all been read.
    fn poll_failure(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let said = match self.stderr.as_mut() {
            Some(stderr) => ready!(Pin::new(stderr).poll(cx)).unwrap_or_default(),
            None => String::new(),
        };
        self.stderr = None;
        Poll::Ready(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            if said.is_empty() {
                "ssh ended the connection".to_string()
            } else {
                format!("ssh: {said}")
            },
        ))
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match ready!(Pin::new(&mut self.stdin).poll_write(cx, data)) {
            // ssh exited before reading the request (it could not connect or log in).
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe && !self.received => {
                self.poll_failure(cx).map(Err)
            }
            written => Poll::Ready(written),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

impl Connection for SshStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_docker_does() {
        let host = SshHost::parse("me@box:2222").unwrap();
        assert_eq!(
            host,
            SshHost {
                user: Some("me".into()),
                host: "box".into(),
                port: Some(2222)
            }
        );
        assert_eq!(
            host.args().join(" "),
            "-o ConnectTimeout=30 -T -l me -p 2222 -- box docker system dial-stdio"
        );
        assert_eq!(host.to_string(), "ssh://me@box:2222");
        let bare = SshHost::parse("box").unwrap();
        assert_eq!(
            bare.args().join(" "),
            "-o ConnectTimeout=30 -T -- box docker system dial-stdio"
        );
        assert_eq!(
            SshHost::parse("[::1]:22").unwrap().to_string(),
            "ssh://[::1]:22"
        );
        for bad in ["", "me@", "box/path", "me:secret@box", "box:ssh"] {
            assert!(SshHost::parse(bad).is_err(), "{bad}");
        }
    }
}
