//! The command line as a user meets it: help, exit codes, errors that name the flag.

mod support;

use std::process::{Command, Output};

fn bud(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bud"))
        .args(args)
        .env_remove("BUD_HOST")
        .env_remove("BUILDKIT_PROGRESS")
        .output()
        .expect("run bud")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_reads_like_docker_build() {
    for args in [&["--help"][..], &["build", "--help"]] {
        let out = bud(args);
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Usage: bud [build] [OPTIONS] PATH | URL | -"),
            "{help}"
        );
        for flag in [
            "--add-host",
            "--build-arg",
            "--cache-from",
            "--file",
            "--iidfile",
            "--label",
            "--network",
            "--no-cache",
            "--pull",
            "--quiet",
            "--shm-size",
            "--tag",
            "--target",
            "--ulimit",
            "--output",
            "--push",
            "--load",
            "--platform",
            "--progress",
            "--secret",
            "--ssh",
        ] {
            assert!(help.contains(flag), "help lacks {flag}");
        }
    }
}

#[test]
fn usage_errors_exit_2_and_name_the_flag() {
    for (args, flag) in [
        (&["--progress", "fancy", "."][..], "--progress"),
        (&["-o", "type=floppy", "."], "--output"),
        (&["--build-arg", "=x", "."], "--build-arg"),
        (&["-t", "Bad:Tag", "."], "--tag"),
        (&["--ulimit", "nofile", "."], "--ulimit"),
        (&["--bogus", "."], "--bogus"),
    ] {
        let out = bud(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(flag), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn completion_prints_a_script() {
    let out = bud(&["completion", "bash"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("complete -F"));
    assert_eq!(bud(&["completion", "tcsh"]).status.code(), Some(2));
}

#[test]
fn a_dockerfile_syntax_error_is_reported_before_any_daemon_is_dialled() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nFROMM x\n").unwrap();
    // Nothing listens there: a connection error would mean the daemon came first.
    let socket = dir.path().join("no-daemon.sock");
    let out = bud(&[
        "--addr",
        &format!("unix://{}", socket.display()),
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("line 2") && err.contains("unknown instruction: FROMM"),
        "{err}"
    );
    assert!(!err.contains("no-daemon.sock"), "{err}");
}

/// `bud build --root TEMP ARGS…` on testdata/checks, with the base image the test env has.
fn bud_check(root: &std::path::Path, args: &[&str]) -> Output {
    let root = root.to_str().expect("utf-8 path");
    let context = support::testdata("checks");
    let context = context.to_str().expect("utf-8 path");
    let mut all = vec![
        "--root",
        root,
        "build",
        "--build-arg",
        "IMAGE=bud-test/busybox",
    ];
    all.extend_from_slice(args);
    all.push(context);
    bud(&all)
}

/// `(rule, first line)` of each warning in `--call=check,format=json` output, sorted.
fn rules_and_lines(json: &[u8]) -> Vec<(String, u64)> {
    let value: serde_json::Value = serde_json::from_slice(json).expect("check JSON");
    let mut found: Vec<(String, u64)> = value["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            (
                w["ruleName"].as_str().unwrap_or_default().to_string(),
                w["location"]["ranges"][0]["start"]["line"]
                    .as_u64()
                    .unwrap_or(0),
            )
        })
        .collect();
    found.sort();
    found
}

/// The same rules fire on the same lines in bud and in Docker 28.5's BuildKit, for a
/// Dockerfile tripping most rules and for a clean one; the exit status is buildx's.
#[test]
fn build_checks_match_docker28() {
    let Some(docker28) = support::require_docker28() else {
        return;
    };
    let root = tempfile::tempdir().expect("temp dir");
    let context = support::testdata("checks");
    let context = context.to_str().expect("utf-8 path");
    for (file, fires) in [("rules.Dockerfile", true), ("clean.Dockerfile", false)] {
        let path = format!("{context}/{file}");
        let args = ["--call=check,format=json", "-f", &path];
        let ours = bud_check(root.path(), &args);
        let theirs = docker28.build(&[
            "--build-arg",
            "IMAGE=bud-test/busybox",
            "--call=check,format=json",
            "-f",
            &format!("{context}/{file}"),
            context,
        ]);
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "{file}: {}",
            stderr(&ours)
        );
        assert_eq!(ours.status.success(), !fires, "{file}");
        let expected = rules_and_lines(&theirs.stdout);
        assert_eq!(rules_and_lines(&ours.stdout), expected, "{file}");
        assert_eq!(expected.is_empty(), !fires, "{file}: {expected:?}");
    }
}

/// `--check` prints what buildx prints, byte for byte; `--call=targets` too.
#[test]
fn check_and_targets_text_match_docker28() {
    let Some(docker28) = support::require_docker28() else {
        return;
    };
    let root = tempfile::tempdir().expect("temp dir");
    let context = support::testdata("checks");
    let context = context.to_str().expect("utf-8 path");
    for args in [&["--check"][..], &["--call=targets"]] {
        let mut ours_args = args.to_vec();
        let file = format!("{context}/rules.Dockerfile");
        ours_args.extend(["-f", &file]);
        let ours = bud_check(root.path(), &ours_args);
        let mut theirs_args = vec!["--build-arg", "IMAGE=bud-test/busybox", "-f", &file];
        theirs_args.extend_from_slice(args);
        theirs_args.push(context);
        let theirs = docker28.build(&theirs_args);
        assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
        // Go's sort.Slice orders findings on the same line in no fixed way: compare the
        // header, then the findings as a set.
        let blocks = |out: &Output| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut parts: Vec<String> = text.split("\nWARNING: ").map(str::to_string).collect();
            parts[1..].sort();
            parts
        };
        assert_eq!(blocks(&ours), blocks(&theirs), "{args:?}");
    }
}

#[test]
fn call_refuses_an_unknown_method() {
    let out = bud(&["build", "--call=nope", "."]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid call method \"nope\""),
        "{}",
        stderr(&out)
    );
}
