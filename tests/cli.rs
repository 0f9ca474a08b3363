//! The command line as a user meets it: help, exit codes, errors that name the flag.

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
