//! `kube-pod://POD?context=CTX&namespace=NS&container=C`: a buildkitd in a Kubernetes pod,
//! reached as buildx's kubernetes connection helper reaches it. Each connection is a
//! `kubectl exec -i POD -- buildctl dial-stdio`, whose standard input and output carry the
//! HTTP/2; kubectl's own configuration (KUBECONFIG, contexts, credentials) finds the pod.

use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;

use super::RemoteError;
use super::container::Started;

/// How long kubectl may take to reach the daemon before the connection is given up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of kubectl's error output is kept for a message.
const KEPT_STDERR: usize = 4096;

/// The pod and how kubectl is to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubePod {
    pub pod: String,
    pub context: Option<String>,
    pub namespace: Option<String>,
    pub container: Option<String>,
}

impl KubePod {
    /// Parses what follows `kube-pod://`: the pod's name, then buildx's query keys.
    pub(super) fn parse(rest: &str) -> Result<Self, String> {
        let rest = rest.trim_end_matches('/');
        let (pod, query) = rest.split_once('?').unwrap_or((rest, ""));
        if !is_pod_name(pod) {
            return Err("expected kube-pod://POD, with the name of a pod".into());
        }
        let mut target = KubePod {
            pod: pod.to_string(),
            context: None,
            namespace: None,
            container: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "context" => &mut target.context,
                "namespace" => &mut target.namespace,
                "container" => &mut target.container,
                _ => {
                    return Err(format!(
                        "unknown key {key:?}: kube-pod:// takes context, namespace and container"
                    ));
                }
            };
            if value.is_empty() || value.starts_with('-') {
                return Err(format!("{key}= needs a value"));
            }
            *slot = Some(value.to_string());
        }
        Ok(target)
    }

    /// kubectl's arguments, in the order buildx's helper passes them.
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(context) = &self.context {
            args.push(format!("--context={context}"));
        }
        if let Some(namespace) = &self.namespace {
            args.push(format!("--namespace={namespace}"));
        }
        args.extend(["exec".into(), "-i".into()]);
        if let Some(container) = &self.container {
            args.push(format!("--container={container}"));
        }
        args.push(self.pod.clone());
        args.extend(["--", "buildctl", "dial-stdio"].map(String::from));
        args
    }
}

impl std::fmt::Display for KubePod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kube-pod://{}", self.pod)?;
        let keys = [
            ("context", &self.context),
            ("namespace", &self.namespace),
            ("container", &self.container),
        ];
        let mut separator = '?';
        for (key, value) in keys {
            if let Some(value) = value {
                write!(f, "{separator}{key}={value}")?;
                separator = '&';
            }
        }
        Ok(())
    }
}

/// Kubernetes' rule for pod names (an RFC 1123 subdomain), which also keeps a name from
/// being taken for one of kubectl's options.
fn is_pod_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Starts `kubectl exec … buildctl dial-stdio` and returns the connection it relays, and
/// the [`Started`] to await once the HTTP/2 client preface is on its way: kubectl connects
/// whatever happens in the pod, and says so only in what it prints.
pub(crate) fn dial(target: &KubePod) -> Result<(KubectlStream, Started), RemoteError> {
    let addr = target.to_string();
    let mut child = Command::new("kubectl")
        .args(target.args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| RemoteError::Container {
            addr: addr.clone(),
            reason: if e.kind() == io::ErrorKind::NotFound {
                "kubectl is not installed (or not on PATH)".into()
            } else {
                format!("running kubectl: {e}")
            },
        })?;
    let (Some(stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(RemoteError::Protocol(
            "kubectl's pipes were not made".into(),
        ));
    };
    let stderr = tokio::spawn(async move {
        let mut kept = Vec::new();
        let _ = (&mut stderr)
            .take(KEPT_STDERR as u64)
            .read_to_end(&mut kept)
            .await;
        // Drained to its end, so that kubectl never blocks on a full pipe.
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        String::from_utf8_lossy(&kept).trim().to_string()
    });
    let (answered, answer) = oneshot::channel();
    let stream = KubectlStream {
        _child: child,
        stdin,
        stdout,
        answered: Some((answered, stderr)),
    };
    let started: Started = Box::pin(async move {
        let reason = match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Ok(Ok(Ok(()))) => return Ok(()),
            Ok(Ok(Err(printed))) if printed.is_empty() => {
                "kubectl ended before the daemon answered".to_string()
            }
            Ok(Ok(Err(printed))) => format!("kubectl ended before the daemon answered: {printed}"),
            Ok(Err(_)) => "the connection was closed before the daemon answered".to_string(),
            Err(_) => format!(
                "the daemon did not answer through kubectl within {}s",
                ANSWER_TIMEOUT.as_secs()
            ),
        };
        Err(RemoteError::Container { addr, reason })
    });
    Ok((stream, started))
}

/// kubectl's standard output read, its standard input written; kubectl is killed when the
/// connection is dropped.
pub(crate) struct KubectlStream {
    _child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// Until the first bytes arrive: who waits for them, and kubectl's error output for
    /// when none come.
    answered: Option<(Answer, tokio::task::JoinHandle<String>)>,
}

/// Says whether the daemon answered, or what kubectl printed when it did not.
type Answer = oneshot::Sender<Result<(), String>>;

impl AsyncRead for KubectlStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut self.stdout).poll_read(cx, buf));
        let got = buf.filled().len() > before;
        if let Some((answered, stderr)) = self.answered.take() {
            match (&result, got) {
                (Ok(()), true) => {
                    let _ = answered.send(Ok(()));
                }
                (Ok(()), false) | (Err(_), _) => {
                    tokio::spawn(async move {
                        let printed = stderr.await.unwrap_or_default();
                        let _ = answered.send(Err(printed));
                    });
                }
            }
        }
        Poll::Ready(result)
    }
}

impl Drop for KubectlStream {
    fn drop(&mut self) {
        // Dropped before any answer (the handshake failed on a dead pipe): whoever waits
        // still learns what kubectl printed.
        if let Some((answered, stderr)) = self.answered.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let printed = stderr.await.unwrap_or_default();
                let _ = answered.send(Err(printed));
            });
        }
    }
}

impl AsyncWrite for KubectlStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_s_form_and_passes_kubectl_buildx_s_arguments() {
        let pod =
            KubePod::parse("buildkitd-0?context=prod&namespace=ci&container=buildkitd").unwrap();
        assert_eq!(
            pod.args(),
            [
                "--context=prod",
                "--namespace=ci",
                "exec",
                "-i",
                "--container=buildkitd",
                "buildkitd-0",
                "--",
                "buildctl",
                "dial-stdio"
            ]
        );
        assert_eq!(
            pod.to_string(),
            "kube-pod://buildkitd-0?context=prod&namespace=ci&container=buildkitd"
        );
        let bare = KubePod::parse("builder.x-1/").unwrap();
        assert_eq!(
            bare.args(),
            ["exec", "-i", "builder.x-1", "--", "buildctl", "dial-stdio"]
        );
        assert_eq!(bare.to_string(), "kube-pod://builder.x-1");
    }

    #[test]
    fn refuses_what_kubectl_would_misread() {
        for bad in [
            "",
            "-n",
            "Pod",
            "pod?user=x",
            "pod?namespace=",
            "pod?namespace=-x",
            "a..b",
        ] {
            assert!(KubePod::parse(bad).is_err(), "{bad}");
        }
    }
}
