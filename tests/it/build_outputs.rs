//! `bud build` as a user runs it: into Docker, to files, with secrets, failing, cached,
//! and interrupted.

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

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "bud failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ready() -> bool {
    require_base_image() && require_runc()
}

#[test]
fn builds_into_docker_then_rebuilds_from_cache() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let iid = files.path().join("iid");
    let metadata = files.path().join("metadata.json");
    let context = testdata("hello");
    let tag = "bud-test/outputs-hello:latest";
    let args = [
        "-t",
        tag,
        "--iidfile",
        iid.to_str().unwrap(),
        "--metadata-file",
        metadata.to_str().unwrap(),
        context.to_str().unwrap(),
    ];
    let first = ok(&bud(root.path(), &args));
    assert!(!first.contains("CACHED"), "{first}");
    assert_eq!(
        docker_ok(&["run", "--rm", tag]),
        "hello from root\na message from the build context"
    );
    let id = docker_ok(&["image", "inspect", "--format", "{{.Id}}", tag]);
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    assert_eq!(meta["containerimage.config.digest"], id);
    assert_eq!(meta["image.name"], tag);
    // The new layers went to Docker straight from their snapshots, never into bud's store.
    let layers = docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        tag,
    ]);
    let layers: Vec<String> = serde_json::from_str(&layers).unwrap();
    let blob = |diff_id: &str| {
        root.path()
            .join("content/blobs/sha256")
            .join(diff_id.trim_start_matches("sha256:"))
    };
    let new_layers = &layers[layers.len() - 2..];
    for diff_id in new_layers {
        assert!(!blob(diff_id).exists(), "{diff_id} was stored");
    }

    let second = ok(&bud(root.path(), &args));
    let steps = second
        .lines()
        .filter(|l| l.contains("] RUN ") || l.contains("] COPY "))
        .count();
    let cached = second.lines().filter(|l| l.ends_with(" CACHED")).count();
    assert_eq!(steps, 2, "{second}");
    assert!(cached >= 2, "a no-op rebuild runs nothing: {second}");
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id, "same image");

    // An export that needs the tars stores them then, and they are the layers Docker got.
    let oci = files.path().join("oci.tar");
    ok(&bud(
        root.path(),
        &[
            "-o",
            &format!("type=oci,dest={}", oci.display()),
            "--metadata-file",
            metadata.to_str().unwrap(),
            context.to_str().unwrap(),
        ],
    ));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    assert_eq!(meta["containerimage.config.digest"], id);
    for diff_id in new_layers {
        assert!(blob(diff_id).is_file(), "{diff_id} not stored");
    }
    remove_images(&[tag]);
}

#[test]
fn writes_local_tar_docker_and_oci_outputs() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let context = testdata("hello");
    let ctx = context.to_str().unwrap();
    let dir = out.path().join("dir");
    ok(&bud(
        root.path(),
        &["-o", &format!("type=local,dest={}", dir.display()), ctx],
    ));
    assert_eq!(
        std::fs::read_to_string(dir.join("greeting")).unwrap(),
        "hello from root\n"
    );
    assert!(dir.join("bin/busybox").is_file());

    let tar_path = out.path().join("fs.tar");
    ok(&bud(
        root.path(),
        &["-o", &format!("type=tar,dest={}", tar_path.display()), ctx],
    ));
    let mut archive = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "message.txt"), "{names:?}");

    let docker_tar = out.path().join("image.tar");
    ok(&bud(
        root.path(),
        &[
            "-t",
            "bud-test/outputs-archive:1",
            "-o",
            &format!("type=docker,dest={}", docker_tar.display()),
            ctx,
        ],
    ));
    docker_ok(&["load", "-i", docker_tar.to_str().unwrap()]);
    assert_eq!(
        docker_ok(&[
            "run",
            "--rm",
            "bud-test/outputs-archive:1",
            "cat",
            "/greeting"
        ]),
        "hello from root"
    );
    remove_images(&["bud-test/outputs-archive:1"]);

    let oci = out.path().join("oci.tar");
    ok(&bud(
        root.path(),
        &["-o", &format!("type=oci,dest={}", oci.display()), ctx],
    ));
    let mut archive = tar::Archive::new(std::fs::File::open(&oci).unwrap());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "index.json"), "{names:?}");
    assert!(names.iter().any(|n| n == "oci-layout"), "{names:?}");
}

/// `-o type=local` writes every file as the user who builds, as BuildKit's local exporter
/// does on the client, whatever owner the image gives it.
#[test]
fn a_local_output_belongs_to_the_builder_as_with_docker() {
    use std::os::unix::fs::MetadataExt;
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM bud-test/busybox\nRUN touch /f && chown 1000:1000 /f && chmod 4755 /f\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let (ours, theirs) = (out.path().join("bud"), out.path().join("docker"));
    let ctx = context.path().to_str().unwrap();
    ok(&bud(
        root.path(),
        &["-o", &format!("type=local,dest={}", ours.display()), ctx],
    ));
    let reference = Command::new(DOCKER)
        .args([
            "build",
            "-o",
            &format!("type=local,dest={}", theirs.display()),
            ctx,
        ])
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap();
    assert!(reference.status.success(), "{}", stderr_of(&reference));
    for entry in ["f", "home/user", "bin/busybox"] {
        let meta = |dir: &Path| {
            let m = std::fs::symlink_metadata(dir.join(entry)).unwrap();
            (m.uid(), m.gid(), m.mode())
        };
        assert_eq!(meta(&ours), meta(&theirs), "{entry}");
    }
}

#[test]
fn secrets_reach_the_step_and_never_the_image() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let secret = files.path().join("token");
    std::fs::write(&secret, "s3cr3t-value").unwrap();
    let dir = files.path().join("out");
    let context = testdata("secret");
    ok(&bud(
        root.path(),
        &[
            "--secret",
            &format!("id=token,src={}", secret.display()),
            "-o",
            &format!("type=local,dest={}", dir.display()),
            context.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        std::fs::read_to_string(dir.join("seen")).unwrap().trim(),
        "12"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("stat")).unwrap(),
        "440 1000\n"
    );
    assert!(
        !dir.join("run/secrets").exists(),
        "the mount point left no stub"
    );
    assert!(!dir.join("etc/token").exists());
    // Nowhere in the layers either.
    let grep = Command::new("grep")
        .args(["-r", "-l", "s3cr3t-value"])
        .arg(root.path().join("snapshots"))
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&grep.stdout)
    );

    // Secret mounts are optional unless `required=true`, as in BuildKit: without the
    // secret the file is simply absent and the step's own read fails.
    let missing = bud(root.path(), &["--no-cache", context.to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/run/secrets/token"));
}

#[test]
fn a_failing_step_exits_1_with_its_output_and_dockerfile_lines() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let context = testdata("fails");
    let out = bud(root.path(), &[context.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("about to fail"), "{err}");
    assert!(
        err.contains("did not complete successfully: exit code: 7"),
        "{err}"
    );
    assert!(
        err.contains(">>> RUN echo \"about to fail\" && exit 7"),
        "{err}"
    );
}

#[test]
fn a_failing_step_after_multibyte_text_is_reported_like_any_other() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // Multibyte characters before the failing line (a comment), and inside the failing
    // instruction beyond the characters the excerpt compares. As docker build does, the
    // step's block is there even when the step printed nothing, and there once.
    let cases = [
        (
            "FROM bud-test/busybox\n# 安装依赖\nRUN exit 3\n",
            "------\n > [2/2] RUN exit 3:\n------\n",
            ":\n------\n",
            "   3 | >>> RUN exit 3\n",
            "failed to solve: process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3",
        ),
        (
            "FROM bud-test/busybox\nRUN echo ééééééééééééééééééé && false\n",
            " > [2/2] RUN echo ééééééééééééééééééé && false:\n",
            " ééééééééééééééééééé\n------\n",
            "   2 | >>> RUN echo ééééééééééééééééééé && false\n",
            "failed to solve: process \"/bin/sh -c echo ééééééééééééééééééé && false\" did not complete successfully: exit code: 1",
        ),
    ];
    for (dockerfile, step_block, block_end, excerpt_line, failure) in cases {
        let context = tempfile::tempdir().unwrap();
        std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
        let out = bud(
            root.path(),
            &[
                "-o",
                "type=tar,dest=/dev/null",
                context.path().to_str().unwrap(),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.matches(step_block).count(), 1, "{err}");
        let block = &err[err.find(step_block).unwrap()..];
        assert!(block.contains(block_end), "{err}");
        assert!(err.contains(excerpt_line), "{err}");
        assert!(err.contains(failure), "{err}");
    }
}

/// The Dockerfile excerpt of a failed build's error: from `Dockerfile:N` to its closing rule
/// (buildx prints it on a line of its own, bud after `error: `).
fn failure_excerpt(stderr: &str) -> Option<&str> {
    let start = stderr.find("Dockerfile:")?;
    let rule = "--------------------\n";
    let first = start + stderr[start..].find(rule)? + rule.len();
    let end = first + stderr[first..].find(rule)? + rule.len();
    Some(&stderr[start..end])
}

#[test]
fn a_failed_step_is_shown_at_its_own_lines_as_docker_28_shows_it() {
    if !ready() || !require_docker() {
        return;
    }
    let Some(docker28) = require_docker28() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    // The op's own lines, from the Definition's source map (with --addr, from the
    // locations BuildKit returns in its error), never the first line with the same text;
    // multibyte text in the step and in a heredoc.
    let cases = [
        (
            "FROM bud-test/busybox\nRUN test ! -e /m\nRUN touch /m\nRUN test ! -e /m\n",
            "Dockerfile:4\n--------------------\n   2 |     RUN test ! -e /m\n   3 |     RUN touch /m\n   4 | >>> RUN test ! -e /m\n   5 |     \n--------------------\n",
        ),
        (
            "FROM bud-test/busybox\n# ünïcødé 安装\nRUN echo 'ééé 🦤' && exit 4\n",
            "Dockerfile:3\n--------------------\n   1 |     FROM bud-test/busybox\n   2 |     # ünïcødé 安装\n   3 | >>> RUN echo 'ééé 🦤' && exit 4\n   4 |     \n--------------------\n",
        ),
        (
            "FROM bud-test/busybox\nRUN <<EOF\necho 'ñandú 🦤 安装'\nexit 5\nEOF\n",
            "Dockerfile:2\n--------------------\n   1 |     FROM bud-test/busybox\n   2 | >>> RUN <<EOF\n   3 | >>> echo 'ñandú 🦤 安装'\n   4 | >>> exit 5\n   5 | >>> EOF\n   6 |     \n--------------------\n",
        ),
    ];
    for (dockerfile, excerpt) in cases {
        let context = tempfile::tempdir().unwrap();
        std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
        let dir = context.path().to_str().unwrap();
        let reference = docker28.build(&["--progress", "plain", "--no-cache", dir]);
        let reference = stderr_of(&reference);
        assert_eq!(failure_excerpt(&reference), Some(excerpt), "{reference}");
        // Embedded, on dockerd 20.10's BuildKit (which attaches no source to a gateway's
        // error) and on Docker 28's (which rewrites the unpinned image op, and so every
        // digest after it).
        let docker20 = std::env::var("DOCKER_HOST").unwrap_or_default();
        for (addr, host) in [
            (&[][..], docker20.as_str()),
            (&["--addr", "docker://"][..], docker20.as_str()),
            (&["--addr", "docker://"][..], docker28.host()),
        ] {
            let mut args = addr.to_vec();
            args.extend(["--no-cache", "-o", "type=tar,dest=/dev/null", dir]);
            let mut command = Command::new(env!("CARGO_BIN_EXE_bud"));
            command
                .arg("--root")
                .arg(root.path())
                .args(["--progress", "plain"]);
            if host.is_empty() {
                command.env_remove("DOCKER_HOST");
            } else {
                command.env("DOCKER_HOST", host);
            }
            let out = command.args(&args).output().expect("run bud");
            let addr = (addr, host);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{addr:?}: {err}");
            assert_eq!(failure_excerpt(&err), Some(excerpt), "{addr:?}: {err}");
            assert_eq!(err.matches("Dockerfile:").count(), 1, "{addr:?}: {err}");
        }
    }
}

#[test]
fn a_long_instruction_is_refused_or_reported_as_often_as_docker_build_reports_it() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let context = tempfile::tempdir().unwrap();
    let build = |dockerfile: String| {
        std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
        bud(
            root.path(),
            &[
                "-o",
                "type=tar,dest=/dev/null",
                context.path().to_str().unwrap(),
            ],
        )
    };
    // One line of 1 MB: longer than BuildKit reads a line, refused before anything runs.
    let out = build(format!(
        "FROM bud-test/busybox\nRUN true {}\n",
        "a".repeat(1 << 20)
    ));
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err:.300}");
    assert!(
        err.contains("line 2, column 1: dockerfile line greater than max allowed size of 65535"),
        "{err:.300}"
    );
    assert!(err.len() < 1000, "the line is not repeated: {err:.300}");
    // The same joined from lines BuildKit reads, failing (the argument is too long for
    // exec): Docker 28.5 names it as often as bud does (the step, its error, the failure
    // block, the Dockerfile excerpt and the final error), never more.
    let piece = format!("{} \\\n", "a".repeat(60_000));
    let dockerfile = format!("FROM bud-test/busybox\nRUN true {}MARK\n", piece.repeat(4));
    std::fs::write(context.path().join("Dockerfile"), &dockerfile).unwrap();
    let theirs = require_docker28().map(|docker28| {
        let out = docker28.build(&["--progress", "plain", context.path().to_str().unwrap()]);
        stderr_of(&out).matches("MARK").count()
    });
    let out = build(dockerfile);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err:.300}");
    assert!(
        err.contains("failed to solve: process \"/bin/sh -c true aaa"),
        "{err:.300}"
    );
    if let Some(theirs) = theirs {
        assert_eq!(err.matches("MARK").count(), theirs, "{err:.300}");
    }
}

#[test]
fn interrupting_a_build_stops_the_step_and_leaves_the_cache_usable() {
    if !ready() {
        return;
    }
    // SIGTERM is how CI systems cancel a job, SIGHUP how a closed terminal ends one: each
    // stops the build as Ctrl-C does.
    for signal in [
        rustix::process::Signal::INT,
        rustix::process::Signal::TERM,
        rustix::process::Signal::HUP,
    ] {
        let root = tempfile::tempdir().unwrap();
        let child = spawn_bud_until(root.path(), &testdata("slow"), "started-sleeping");
        rustix::process::kill_process(rustix::process::Pid::from_child(&child), signal).unwrap();
        let status = wait_or_kill(child, std::time::Duration::from_secs(120));
        assert_eq!(
            status.code(),
            Some(1),
            "{signal:?}: bud exits 1, as docker build does when interrupted"
        );
        assert_eq!(
            runc_containers(root.path()),
            "",
            "{signal:?}: no container left behind"
        );
        let leftovers = leftover_work(root.path());
        assert!(
            leftovers.is_empty(),
            "{signal:?}: work in flight was removed: {leftovers:?}"
        );
        let bundles = leftover_bundles(root.path());
        assert!(bundles.is_empty(), "{signal:?}: bundles left: {bundles:?}");
        // The cache still works.
        let hello = testdata("hello");
        ok(&bud(
            root.path(),
            &["-o", "type=tar,dest=/dev/null", hello.to_str().unwrap()],
        ));
    }
}

#[test]
fn a_second_signal_ends_bud_at_once_and_still_removes_the_container() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let child = spawn_bud_until(root.path(), &testdata("slow"), "started-sleeping");
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = wait_or_kill(child, std::time::Duration::from_secs(120));
    assert_eq!(status.code(), Some(1));
    assert_eq!(runc_containers(root.path()), "", "no container left behind");
    let bundles = leftover_bundles(root.path());
    assert!(bundles.is_empty(), "bundles left: {bundles:?}");
}

#[test]
fn an_interrupt_during_the_export_fails_the_build() {
    if !ready() {
        return;
    }
    // The push goes to a registry that accepts the connection and never answers: the
    // build is in its export, waiting, for as long as the test needs.
    let registry = silent_listener();
    let root = tempfile::tempdir().unwrap();
    let tag = format!("{registry}/bud-test/interrupted:latest");
    let hello = testdata("hello");
    let (child, _) = spawn_bud_args_until(
        root.path(),
        &["--push", "-t", &tag, hello.to_str().unwrap()],
        &[],
        "exporting to image",
    );
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let status = wait_or_kill(child, std::time::Duration::from_secs(120));
    assert_eq!(
        status.code(),
        Some(1),
        "an interrupted export fails the build"
    );
}

#[test]
fn the_same_build_runs_on_dockerds_buildkit_with_addr() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let context = testdata("hello");
    let tag = "bud-test/outputs-remote:latest";
    ok(&bud(
        root.path(),
        &["--addr", "docker://", "-t", tag, context.to_str().unwrap()],
    ));
    assert_eq!(
        docker_ok(&["run", "--rm", tag]),
        "hello from root\na message from the build context"
    );
    let config = docker_ok(&["image", "inspect", "--format", "{{json .Config}}", tag]);
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["User"], "user");
    assert_eq!(config["WorkingDir"], "/home/user");
    remove_images(&[tag]);
}

#[test]
fn reads_a_dockerfile_or_a_context_archive_from_stdin() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = |stdin: Vec<u8>, dest: &Path| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bud"))
            .arg("--root")
            .arg(root.path())
            .args(["--progress", "quiet", "-o"])
            .arg(format!("type=local,dest={}", dest.display()))
            .arg("-")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), &stdin).unwrap();
        ok(&child.wait_with_output().unwrap());
    };
    let plain = out.path().join("plain");
    run(
        b"FROM bud-test/busybox\nRUN echo from-stdin > /x\n".to_vec(),
        &plain,
    );
    assert_eq!(
        std::fs::read_to_string(plain.join("x")).unwrap(),
        "from-stdin\n"
    );

    let mut archive = tar::Builder::new(Vec::new());
    archive.append_dir_all(".", testdata("hello")).unwrap();
    let from_tar = out.path().join("tar");
    run(archive.into_inner().unwrap(), &from_tar);
    assert_eq!(
        std::fs::read_to_string(from_tar.join("message.txt")).unwrap(),
        "a message from the build context\n"
    );
}

#[test]
fn du_and_workers_ask_the_daemon_with_addr() {
    if !require_docker() {
        return;
    }
    let bud = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bud"))
            .args(["--addr", "docker://"])
            .args(args)
            .output()
            .expect("run bud")
    };
    let workers = bud(&["debug", "workers"]);
    let text = String::from_utf8_lossy(&workers.stdout);
    assert!(
        workers.status.success(),
        "{}",
        String::from_utf8_lossy(&workers.stderr)
    );
    assert!(
        text.contains("Platforms:") && text.contains("linux/amd64"),
        "{text}"
    );
    let du = bud(&["du"]);
    assert!(
        du.status.success(),
        "{}",
        String::from_utf8_lossy(&du.stderr)
    );
    assert!(String::from_utf8_lossy(&du.stdout).contains("Total:"));
}

#[test]
fn a_relative_state_root_works() {
    if !ready() {
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bud"))
        .current_dir(cwd.path())
        .args([
            "--root",
            "state",
            "--progress",
            "plain",
            "-o",
            "type=local,dest=out",
        ])
        .arg(testdata("hello"))
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(
        std::fs::read_to_string(cwd.path().join("out/greeting")).unwrap(),
        "hello from root\n"
    );
    assert!(cwd.path().join("state/meta.db").is_file());
}

#[test]
fn on_a_terminal_progress_is_the_live_view_and_trace_writes_the_steps() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let trace = files.path().join("trace.json");
    let command = format!(
        "{} --root {} --trace {} -o type=tar,dest=/dev/null {}",
        env!("CARGO_BIN_EXE_bud"),
        root.path().display(),
        trace.display(),
        testdata("hello").display()
    );
    // util-linux's script gives bud a pseudo-terminal as stderr.
    let out = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("BUILDKIT_PROGRESS")
        .output()
        .expect("run script");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("[+] Building"), "{screen}");
    assert!(screen.contains("FINISHED"), "{screen}");
    assert!(screen.contains("RUN echo"), "{screen}");
    assert!(!screen.contains("#1 "), "not the plain format: {screen}");

    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    let names: Vec<&str> = doc["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.iter().any(|n| n.contains("RUN echo")), "{names:?}");
    assert!(
        names.iter().any(|n| n.contains("COPY message.txt")),
        "{names:?}"
    );
}

#[test]
fn ssh_agent_sockets_are_forwarded_by_id() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    // Any listening socket stands in for an agent: the step only checks it is there.
    let default_sock = files.path().join("default.sock");
    let deploy_sock = files.path().join("deploy.sock");
    let _default = std::os::unix::net::UnixListener::bind(&default_sock).unwrap();
    let _deploy = std::os::unix::net::UnixListener::bind(&deploy_sock).unwrap();
    let dest = files.path().join("out");
    let context = testdata("ssh");
    let out = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args(["--progress", "plain", "--ssh", "default", "--ssh"])
        .arg(format!("deploy={}", deploy_sock.display()))
        .arg("-o")
        .arg(format!("type=local,dest={}", dest.display()))
        .arg(&context)
        .env("SSH_AUTH_SOCK", &default_sock)
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(
        std::fs::read_to_string(dest.join("agent-path")).unwrap(),
        "/run/buildkit/ssh_agent.0\n"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("deploy-ok")).unwrap(),
        "deploy\n"
    );
    assert!(!dest.join("run/buildkit").exists(), "no mount stub left");

    // Without an agent the optional mount is absent and the step's own check fails.
    let out = bud(
        root.path(),
        &[
            "--no-cache",
            "-o",
            "type=tar,dest=/dev/null",
            context.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn ssh_key_files_are_served_by_an_agent_of_bud() {
    if !ready() {
        return;
    }
    let context = tempfile::tempdir().unwrap();
    if !build_list_identities(&context.path().join("list-identities")) {
        return;
    }
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {BASE_IMAGE}\n\
             COPY list-identities /usr/local/bin/\n\
             RUN --mount=type=ssh,id=x list-identities > /identities\n"
        ),
    )
    .unwrap();
    let files = tempfile::tempdir().unwrap();
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let key_file = files.path().join("id_ed25519");
    std::fs::write(&key_file, key.to_openssh(ssh_key::LineEnding::LF).unwrap()).unwrap();
    let blob_len = key.public_key().to_bytes().unwrap().len();
    let root = tempfile::tempdir().unwrap();
    let dest = files.path().join("out");
    let out = bud(
        root.path(),
        &[
            "--ssh",
            &format!("x={}", key_file.display()),
            "-o",
            &format!("type=local,dest={}", dest.display()),
            context.path().to_str().unwrap(),
        ],
    );
    ok(&out);
    assert_eq!(
        std::fs::read_to_string(dest.join("identities")).unwrap(),
        format!("identities 1 blob {blob_len}\n")
    );

    // A file that is not a key is named, and nothing is built.
    let garbage = files.path().join("not-a-key");
    std::fs::write(&garbage, "hello").unwrap();
    let out = bud(
        root.path(),
        &[
            "--ssh",
            &format!("x={}", garbage.display()),
            "-o",
            "type=tar,dest=/dev/null",
            context.path().to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&garbage.display().to_string()), "{stderr}");
}

#[test]
fn copy_link_layers_stay_the_same_on_a_new_base() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let context = testdata("link");
    let layers = |tag: &str| -> Vec<String> {
        let json = docker_ok(&[
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            tag,
        ]);
        serde_json::from_str(&json).unwrap()
    };
    let one = "bud-test/link:one";
    let two = "bud-test/link:two";
    ok(&bud(root.path(), &["-t", one, context.to_str().unwrap()]));
    let second = ok(&bud(
        root.path(),
        &[
            "--build-arg",
            "BASE=two",
            "-t",
            two,
            context.to_str().unwrap(),
        ],
    ));
    let copy_cached = second
        .lines()
        .skip_while(|l| !l.ends_with("] COPY --link app.txt /app/"))
        .nth(1)
        .is_some_and(|l| l.ends_with(" CACHED"));
    assert!(copy_cached, "the linked copy did not rerun: {second}");
    assert_eq!(
        docker_ok(&["run", "--rm", two, "cat", "/combined"]),
        "app\ntwo"
    );
    let (a, b) = (layers(one), layers(two));
    assert_eq!(a.len(), 4, "{a:?}");
    assert_ne!(a[1], b[1], "the RUN layers differ");
    assert_eq!(a[2], b[2], "the linked layer is byte-identical");
    remove_images(&[one, two]);
}

#[test]
fn without_docker_the_image_is_built_and_the_error_says_how_to_get_it() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let context = testdata("registry-base");
    let out = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args(["--progress", "plain", "-t", "bud-test/no-docker"])
        .arg(&context)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Docker is not reachable"), "{err}");
    assert!(err.contains("-o type=docker,dest="), "{err}");
    // The base came from the registry, and the built result is usable from the cache.
    let dest = root.path().join("out");
    let again = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args(["--progress", "plain", "-o"])
        .arg(format!("type=local,dest={}", dest.display()))
        .arg(&context)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let text = ok(&again);
    assert!(text.contains("CACHED"), "{text}");
    assert_eq!(
        std::fs::read_to_string(dest.join("origin")).unwrap(),
        "from-registry\n"
    );
}

#[test]
fn cache_mounts_persist_across_builds() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let context = testdata("cache-mount");
    for expected in ["1", "2"] {
        let dest = out.path().join(expected);
        ok(&bud(
            root.path(),
            &[
                "--no-cache",
                "-o",
                &format!("type=local,dest={}", dest.display()),
                context.to_str().unwrap(),
            ],
        ));
        assert_eq!(
            std::fs::read_to_string(dest.join("runs-seen"))
                .unwrap()
                .trim(),
            expected
        );
        assert!(
            !dest.join("cache/runs").exists(),
            "the cache is not in the image"
        );
    }
}

#[test]
fn the_runtime_is_chosen_by_bud_runtime() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let context = testdata("hello");
    let run = |runtime: &str| {
        Command::new(env!("CARGO_BIN_EXE_bud"))
            .arg("--root")
            .arg(root.path())
            .args([
                "--progress",
                "plain",
                "--no-cache",
                "-o",
                "type=tar,dest=/dev/null",
            ])
            .arg(&context)
            .env("BUD_RUNTIME", runtime)
            .output()
            .unwrap()
    };
    let runc = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join("runc"))
        .find(|p| p.is_file())
        .unwrap();
    ok(&run(runc.to_str().unwrap()));
    let missing = run("/nonexistent/runc");
    assert_eq!(missing.status.code(), Some(1));
    let unknown = run("gvisor");
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("runc"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}

#[test]
fn a_copy_into_a_deleted_directory_does_not_resurrect_it() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("fs");
    ok(&bud(
        root.path(),
        &[
            "-o",
            &format!("type=local,dest={}", dest.display()),
            testdata("copy-after-rm").to_str().unwrap(),
        ],
    ));
    assert_eq!(
        std::fs::read_to_string(dest.join("app/new.txt")).unwrap(),
        "new\n"
    );
    assert!(!dest.join("app/old").exists(), "the deleted file came back");
}

#[test]
fn a_private_cache_mount_in_use_gives_the_next_writer_its_own_copy() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let context = testdata("cache-private");
    let build = || {
        ok(&bud(
            root.path(),
            &[
                "--no-cache",
                "-o",
                "type=tar,dest=/dev/null",
                context.to_str().unwrap(),
            ],
        ))
    };
    let lines = |dir: &Path| {
        std::fs::read_to_string(dir.join("log"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    build();
    let mounts = root.path().join("cache-mounts");
    let dirs: Vec<_> = std::fs::read_dir(&mounts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let main = dirs[0].clone();
    assert_eq!(lines(&main), 1);

    // Another user holds it: the build writes to a copy.
    let holder = std::fs::File::open(&main).unwrap();
    rustix::fs::flock(&holder, rustix::fs::FlockOperation::LockExclusive).unwrap();
    build();
    let copy = mounts.join(format!("{}-1", main.file_name().unwrap().to_string_lossy()));
    assert_eq!(lines(&main), 1, "the held directory was not touched");
    assert_eq!(lines(&copy), 1);
    drop(holder);

    build();
    assert_eq!(lines(&main), 2, "free again, the first directory is used");
}

#[test]
fn a_failed_step_keeps_its_whole_output_in_a_file_until_prune() {
    if !ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let context = tempfile::tempdir().unwrap();
    // 2 MB on stdout, beyond buildx's 1 MiB cut, then a failure.
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM bud-test/busybox\nRUN yes 0123456789abcdef | head -c 2000000; echo the-end; exit 3\n",
    )
    .unwrap();
    let out = bud(
        root.path(),
        &[
            "-o",
            "type=tar,dest=/dev/null",
            context.path().to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let prefix = "the whole output of step [2/2]: ";
    let line = err
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no log path: {err}"));
    let path = Path::new(line);
    assert!(path.starts_with(root.path().join("logs")), "{err}");
    let expected: Vec<u8> = b"0123456789abcdef\n"
        .iter()
        .copied()
        .cycle()
        .take(2_000_000)
        .chain(b"the-end\n".iter().copied())
        .collect();
    assert_eq!(std::fs::read(path).unwrap(), expected);

    let pruned = bud_at(root.path(), &["prune", "-f"]);
    assert!(pruned.status.success(), "{}", stderr_of(&pruned));
    assert!(!path.exists());
    assert!(!root.path().join("logs").exists());
}
