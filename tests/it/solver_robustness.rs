//! The cache survives what users do to it: SIGKILL in the middle of a step, and two builds
//! sharing one state root at the same time.

use crate::support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::*;

fn bud(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root)
        .args(["--progress", "plain"])
        .args(args)
        .output()
        .expect("run bud")
}

fn ready() -> bool {
    require_base_image() && require_runc()
}

#[test]
fn sigkill_mid_step_leaves_a_cache_the_next_build_uses() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let mut child = spawn_bud_until(root.path(), &testdata("slow"), "started-sleeping");
    child.kill().unwrap();
    child.wait().unwrap();

    // The next build reaps what the killed one left and builds correctly.
    let out_dir = tempfile::tempdir().unwrap();
    let dest = out_dir.path().join("fs");
    let hello = testdata("hello");
    let out = bud(
        root.path(),
        &[
            "-o",
            &format!("type=local,dest={}", dest.display()),
            hello.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("greeting")).unwrap(),
        "hello from root\n"
    );
    assert_eq!(
        runc_containers(root.path()),
        "",
        "the orphaned step was removed"
    );
    let leftovers = leftover_work(root.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn two_builds_share_one_root_at_the_same_time() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let spawn = |case: &str| {
        let dest = out_dir.path().join(case);
        let child = Command::new(env!("CARGO_BIN_EXE_bud"))
            .arg("--root")
            .arg(root.path())
            .args(["--progress", "plain", "-o"])
            .arg(format!("type=local,dest={}", dest.display()))
            .arg(testdata(case))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (child, dest)
    };
    let (a, dest_a) = spawn("concurrent-a");
    let (b, dest_b) = spawn("concurrent-b");
    for (child, dest, which) in [(a, dest_a, "a"), (b, dest_b, "b")] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("which")).unwrap(),
            format!("{which}\n")
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("shared")).unwrap(),
            "shared\n"
        );
    }
    // Both are cached now, whichever committed the shared step first.
    for case in ["concurrent-a", "concurrent-b"] {
        let out = bud(
            root.path(),
            &[
                "-o",
                "type=tar,dest=/dev/null",
                testdata(case).to_str().unwrap(),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert_eq!(err.matches(" CACHED").count(), 2, "{err}");
    }
}
