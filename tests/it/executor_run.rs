//! Runs real containers with runc over a busybox root filesystem (needs root).

use crate::support::executor::{Sandbox, can_run_containers};
use bud::executor::{ExecError, LogChunk, Mount, MountKind, Network, Runtime, Stream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn echo_output_is_captured() {
    if !can_run_containers() {
        return;
    }
    let sandbox = Sandbox::new();
    let (code, out, err) = sandbox.run(&sandbox.spec("echo hi; echo oops >&2")).await;
    assert_eq!((code, out.as_str(), err.as_str()), (0, "hi\n", "oops\n"));
}

#[tokio::test]
async fn exit_code_is_propagated() {
    if !can_run_containers() {
        return;
    }
    let sandbox = Sandbox::new();
    let (code, _, _) = sandbox.run(&sandbox.spec("exit 3")).await;
    assert_eq!(code, 3);
}

#[tokio::test]
async fn cwd_env_and_user_are_honoured() {
    if !can_run_containers() {
        return;
    }
    let sandbox = Sandbox::new();
    let mut exec = sandbox.spec("pwd; echo \"$GREETING\"; id -u; id -g; id -G");
    exec.cwd = "/tmp".into();
    exec.env = vec!["GREETING=hello world".into(), "PATH=/bin".into()];
    exec.uid = 1000;
    exec.gid = 1000;
    exec.additional_gids = vec![27];
    let (code, out, err) = sandbox.run(&exec).await;
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "/tmp\nhello world\n1000\n1000\n1000 27\n");
}

/// The primary group is a supplementary group too, first, as current BuildKit sets it
/// (Docker 28.5's `id` in a step lists it; Docker 20.10's did not).
#[tokio::test]
async fn primary_group_leads_the_supplementary_groups() {
    if !can_run_containers() {
        return;
    }
    let sandbox = Sandbox::new();
    let mut exec = sandbox.spec("grep '^Groups:' /proc/self/status");
    exec.uid = 1000;
    exec.gid = 1000;
    let (code, out, err) = sandbox.run(&exec).await;
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["Groups:", "1000"]
    );

    exec.additional_gids = vec![27, 1000];
    let (code, out, err) = sandbox.run(&exec).await;
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["Groups:", "27", "1000"]
    );
    exec.additional_gids = vec![27];
    let (code, out, err) = sandbox.run(&exec).await;
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["Groups:", "27", "1000"]
    );
}

#[tokio::test]
async fn hosts_file_has_hostname_and_extra_hosts() {
    if !can_run_containers() {
        return;
    }
    let sandbox = Sandbox::new();
    let mut exec = sandbox.spec("hostname; cat /etc/hosts");
    exec.extra_hosts = vec![("db.internal".into(), "10.0.0.7".into())];
    let (code, out, err) = sandbox.run(&exec).await;
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(
        out,
        "buildkitsandbox\n127.0.0.1\tlocalhost buildkitsandbox\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.7\tdb.internal\n"
    );
}

#[tokio::test]
async fn network_none_has_only_loopback() {
    if !can_run_containers() {
        return;
    }
    let sandbox = Sandbox::new();
    let mut exec = sandbox.spec("ls /sys/class/net; cat /sys/class/net/lo/operstate");
    exec.network = Network::None;
    let (code, out, err) = sandbox.run(&exec).await;
    assert_eq!(code, 0, "stderr: {err}");
    // A loopback that is up reports "unknown" (it has no carrier).
    assert_eq!(out, "lo\nunknown\n");
}

#[tokio::test]
async fn bind_and_tmpfs_mounts() {
    if !can_run_containers() {
        return;
    }
    let sandbox = Sandbox::new();
    let data = sandbox.dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("input"), "from host\n").unwrap();
    let mut exec = sandbox.spec(
        "cat /data/input; touch /data/new 2>/dev/null || echo read-only; \
         touch /scratch/x && echo tmpfs-ok",
    );
    exec.mounts = vec![
        Mount {
            dest: "/data".into(),
            kind: MountKind::Bind {
                source: data.clone(),
                readonly: true,
            },
        },
        Mount {
            dest: "/scratch".into(),
            kind: MountKind::Tmpfs {
                size: Some(1 << 20),
            },
        },
    ];
    let (code, out, err) = sandbox.run(&exec).await;
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "from host\nread-only\ntmpfs-ok\n");
    assert!(!data.join("new").exists());
}

#[tokio::test]
async fn readonly_rootfs_refuses_writes() {
    if !can_run_containers() {
        return;
    }
    let sandbox = Sandbox::new();
    let mut exec = sandbox.spec("touch /tmp/x");
    exec.readonly_rootfs = true;
    let (code, _, _) = sandbox.run(&exec).await;
    assert_ne!(code, 0);
    assert!(!sandbox.rootfs().join("tmp/x").exists());
}

fn processes_with_arg(arg: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if cmdline.split(|b| *b == 0).any(|a| a == arg.as_bytes()) {
                found.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    found
}

#[tokio::test]
async fn cancel_kills_the_container_and_leaves_nothing() {
    if !can_run_containers() {
        return;
    }
    // A duration no other test uses, to find the process by its command line.
    const MARKER: &str = "300.4242";
    let sandbox = Sandbox::new();
    // "started" comes once the sleep has been exec'd (a forked child still shows the shell's
    // command line until then), so that it can be found by its argument.
    let exec = sandbox.spec(&format!(
        "sleep {MARKER} & until [ \"$(head -c 5 /proc/$!/cmdline)\" = sleep ]; do :; done; \
         echo started; wait"
    ));
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel(4);
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            // Cancel once the step is known to run; check what was seen only after
            // cancelling, so that a surprise fails the test instead of hanging it.
            let first: Option<LogChunk> = rx.recv().await;
            let running = !processes_with_arg(MARKER).is_empty();
            cancel.cancel();
            while rx.recv().await.is_some() {}
            assert_eq!(
                first.map(|c| (c.stream, c.data)),
                Some((Stream::Stdout, b"started\n".to_vec()))
            );
            assert!(running, "the step was not running when cancelled");
        })
    };
    let result = sandbox.runtime.run(&exec, tx, &cancel).await;
    canceller.await.unwrap();
    assert!(matches!(result, Err(ExecError::Cancelled)), "{result:?}");

    assert_eq!(processes_with_arg(MARKER), Vec::<String>::new());
    let list = std::process::Command::new(sandbox.runtime.binary())
        .arg("--root")
        .arg(sandbox.runtime.state_root())
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert!(list.status.success());
    assert_eq!(String::from_utf8_lossy(&list.stdout), "");
    let bundles = std::fs::read_dir(sandbox.dir.path().join("state/bundles"))
        .unwrap()
        .count();
    assert_eq!(bundles, 0);
}

#[tokio::test]
async fn already_cancelled_runs_nothing() {
    if !can_run_containers() {
        return;
    }
    let sandbox = Sandbox::new();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let (tx, _rx) = mpsc::channel(1);
    let result = sandbox
        .runtime
        .run(&sandbox.spec("touch /tmp/ran"), tx, &cancel)
        .await;
    assert!(matches!(result, Err(ExecError::Cancelled)));
    assert!(!sandbox.rootfs().join("tmp/ran").exists());
}

#[tokio::test]
async fn missing_runtime_binary_is_a_spawn_error() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::with_binary("/nonexistent/runc", dir.path());
    let (tx, _rx) = mpsc::channel(1);
    let exec = bud::executor::ExecSpec::new(dir.path(), vec!["true".into()]);
    let result = runtime.run(&exec, tx, &CancellationToken::new()).await;
    assert!(matches!(result, Err(ExecError::Spawn { .. })), "{result:?}");
}

#[test]
fn runtime_not_found_says_how_to_fix_it() {
    let message = ExecError::RuntimeNotFound {
        name: "runc".into(),
    }
    .to_string();
    assert!(message.contains("apt-get install runc"), "{message}");
    assert!(message.contains("--addr"), "{message}");
}
