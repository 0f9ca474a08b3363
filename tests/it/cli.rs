//! The command line as a user meets it: help, exit codes, errors that name the flag.

use crate::support;

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

/// A failed system call is printed with its cause once: a message names its own layer and
/// the one printer adds the causes (each used to come twice, "Is a directory (os error 21):
/// Is a directory (os error 21)").
#[test]
fn a_system_error_is_printed_with_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(context.join("Dockerfile"), "FROM scratch\n").unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let root_below_a_file = file.join("state");
    let state = dir.path().join("state");

    let config_is_a_directory = Command::new(env!("CARGO_BIN_EXE_bud"))
        .args(["--root", state.to_str().unwrap(), context.to_str().unwrap()])
        .env("BUD_CONFIG", dir.path())
        .output()
        .expect("run bud");
    let state_below_a_file = bud(&[
        "--root",
        root_below_a_file.to_str().unwrap(),
        context.to_str().unwrap(),
    ]);
    for (out, expected) in [
        (
            config_is_a_directory,
            format!(
                "error: cannot read the configuration file {}: Is a directory (os error 21)",
                dir.path().display()
            ),
        ),
        (
            state_below_a_file,
            format!(
                "error: cannot create the state directory {}: Not a directory (os error 20)",
                root_below_a_file.display()
            ),
        ),
    ] {
        let stderr = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().last(), Some(expected.as_str()), "{stderr}");
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

/// `--call=outline` prints what buildx prints (Docker 28.5), as text byte for byte and as
/// JSON value for value (locations included): the target's build args (global ones its
/// FROM lines use, those its stages and the stages it copies from declare, with values
/// from defaults, ENV, the platform or `--build-arg`, and `# NAME` descriptions), the
/// secrets and SSH sockets its RUN mounts ask for, and the target's own name and
/// description. The Dockerfile keeps one ARG and one mount of a kind to a line: BuildKit
/// orders by line with an unstable sort.
#[test]
fn outline_text_and_json_match_docker28() {
    let Some(docker28) = support::require_docker28() else {
        return;
    };
    let root = tempfile::tempdir().expect("temp dir");
    let root = root.path().to_str().expect("utf-8 path");
    let context = support::testdata("outline");
    let context = context.to_str().expect("utf-8 path");
    let cases: [&[&str]; 5] = [
        &[],
        &["--target", "deps"],
        &["--target", "assets"],
        &[
            "--build-arg",
            "REGISTRY=docker.io/bud-test",
            "--build-arg",
            "NO_DEFAULT=given",
            "--build-arg",
            "GREETING=hi",
            "--build-arg",
            "NEVER_USED=2",
        ],
        &["--target", "no-such-stage"],
    ];
    for case in cases {
        for call in ["--call=outline", "--call=outline,format=json"] {
            let mut args = vec![call];
            args.extend_from_slice(case);
            args.push(context);
            let theirs = docker28.build(&args);
            let mut ours_args = vec!["--root", root, "build"];
            ours_args.extend_from_slice(&args);
            let ours = bud(&ours_args);
            assert_eq!(
                ours.status.code(),
                theirs.status.code(),
                "{args:?}: {}",
                stderr(&ours)
            );
            if !theirs.status.success() {
                assert!(
                    stderr(&ours).contains("target stage \"no-such-stage\" could not be found"),
                    "{}",
                    stderr(&ours)
                );
                continue;
            }
            if call.ends_with("json") {
                let value = |out: &Output| -> serde_json::Value {
                    serde_json::from_slice(&out.stdout).expect("outline JSON")
                };
                let theirs = value(&theirs);
                assert!(theirs["args"].is_array(), "{theirs}");
                assert_eq!(value(&ours), theirs, "{args:?}");
            } else {
                let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
                assert!(theirs.contains("BUILD ARG"), "{theirs}");
                assert_eq!(String::from_utf8_lossy(&ours.stdout), theirs, "{args:?}");
            }
        }
    }
}

/// What a build's plain progress says about the checks: the `WARN:` lines of the step
/// reading the Dockerfile, and the summary's header and lines, each list sorted (buildx
/// prints its summary from a Go map, in no fixed order).
fn plain_warnings(out: &Output) -> (Vec<String>, String, Vec<String>) {
    let text = stderr(out);
    let mut warns: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once(" WARN: ").map(|(_, w)| w.to_string()))
        .collect();
    warns.sort();
    let header = text
        .lines()
        .find(|l| l.contains("found (use"))
        .unwrap_or_default()
        // buildx names its client: `docker --debug`; bud's is `bud --debug`.
        .replace("docker --debug", "--debug");
    let mut summary: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("\x1b[0m").unwrap_or(l).strip_prefix(" - "))
        .map(str::to_string)
        .collect();
    summary.sort();
    (warns, header, summary)
}

/// An ordinary build warns as Docker 28.5 does in plain progress: the same findings (for the
/// target's stages only) under the step reading the Dockerfile, then the same summary; with
/// the embedded solver and with `--addr`.
#[test]
fn build_warnings_match_docker28() {
    let Some(docker28) = support::require_docker28() else {
        return;
    };
    if !support::build_ready() || !support::require_docker() {
        return;
    }
    let root = tempfile::tempdir().expect("temp dir");
    let context = support::testdata("checks");
    let context = context.to_str().expect("utf-8 path");
    let file = format!("{context}/rules.Dockerfile");
    let theirs = docker28.build(&[
        "--progress",
        "plain",
        "--build-arg",
        "IMAGE=bud-test/busybox",
        "-f",
        &file,
        context,
    ]);
    assert!(theirs.status.success(), "{}", stderr(&theirs));
    let expected = plain_warnings(&theirs);
    assert_eq!(expected.2.len(), 11, "{}", stderr(&theirs));
    // buildx prints a step's `WARN:` lines only if they reach it before the step is shown
    // done, which is a race: those it printed are among the summary's.
    assert!(expected.0.iter().all(|w| expected.2.contains(w)));
    for extra in [&[][..], &["--addr", "docker://"]] {
        let mut args = vec!["--progress", "plain", "-f", &file];
        args.extend_from_slice(extra);
        let ours = bud_check(root.path(), &args);
        assert!(ours.status.success(), "{extra:?}: {}", stderr(&ours));
        assert_eq!(
            plain_warnings(&ours),
            expected,
            "{extra:?}: {}",
            stderr(&ours)
        );
        // The step reading the Dockerfile carries them (after the base image's metadata
        // with --addr, which resolves it on the daemon for the checks).
        let text = stderr(&ours);
        let step = text
            .lines()
            .find_map(|l| l.strip_suffix(" [internal] load build definition from rules.Dockerfile"))
            .unwrap_or_else(|| panic!("no step reads the Dockerfile: {text}"));
        assert!(
            text.contains(&format!("{step} WARN: NoEmptyContinuation")),
            "{text}"
        );
    }
}

/// `# check=error=true`: the findings are shown, then the build fails with BuildKit's error
/// and exit status, naming the rules Docker 28.5 names.
#[test]
fn failing_checks_fail_the_build_as_docker28() {
    let Some(docker28) = support::require_docker28() else {
        return;
    };
    if !support::build_ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("Dockerfile"),
        "# check=error=true\nFROM bud-test/busybox\nENV FOO bar\nMAINTAINER x\nRUN echo built\n",
    )
    .expect("write Dockerfile");
    let context = dir.path().to_str().expect("utf-8 path");
    let root = tempfile::tempdir().expect("temp dir");
    let root = root.path().to_str().expect("utf-8 path");
    let ours = bud(&["--root", root, "build", "--progress", "plain", context]);
    let theirs = docker28.build(&["--progress", "plain", context]);
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "{}",
        stderr(&ours)
    );
    let error = |out: &Output| {
        let text = stderr(out);
        text.lines()
            .find_map(|l| {
                l.split_once("failed to solve: ")
                    .map(|(_, e)| e.to_string())
            })
            .unwrap_or_default()
    };
    assert_eq!(
        error(&ours),
        "lint violation found for rules: MaintainerDeprecated, LegacyKeyValueFormat"
    );
    // buildx names the rules in Go's map order, which varies from run to run.
    let rules = |e: String| {
        let mut rules: Vec<String> = e
            .trim_start_matches("lint violation found for rules: ")
            .split(", ")
            .map(str::to_string)
            .collect();
        rules.sort();
        rules
    };
    assert_eq!(rules(error(&ours)), rules(error(&theirs)));
    let (warns, header, summary) = plain_warnings(&ours);
    let expected = plain_warnings(&theirs);
    assert_eq!((&header, &summary), (&expected.1, &expected.2));
    assert_eq!(warns, summary);
    // Nothing ran.
    assert!(!stderr(&ours).contains("echo built"), "{}", stderr(&ours));
}

/// rawjson carries each finding as BuildKit's `VertexWarning`: line, detail, URL, file and
/// range, as Docker 28.5 prints them.
#[test]
fn rawjson_warnings_match_docker28() {
    let Some(docker28) = support::require_docker28() else {
        return;
    };
    if !support::build_ready() {
        return;
    }
    let root = tempfile::tempdir().expect("temp dir");
    let context = support::testdata("checks");
    let context = context.to_str().expect("utf-8 path");
    let file = format!("{context}/rules.Dockerfile");
    let records = |out: &Output| {
        let decode = |v: &serde_json::Value| {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or_default())
                .expect("base64");
            String::from_utf8(bytes).expect("utf-8")
        };
        let mut found: Vec<String> = stderr(out)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .flat_map(|v| v["warnings"].as_array().cloned().unwrap_or_default())
            .map(|w| {
                let detail: Vec<String> = w["detail"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(decode)
                    .collect();
                format!(
                    "{} | {detail:?} | {} | {} {} {} | {} | {}",
                    decode(&w["short"]),
                    w["url"],
                    w["sourceInfo"]["filename"],
                    w["sourceInfo"]["language"],
                    decode(&w["sourceInfo"]["data"]).len(),
                    w["range"],
                    w["level"],
                )
            })
            .collect();
        found.sort();
        found
    };
    let ours = bud_check(root.path(), &["--progress", "rawjson", "-f", &file]);
    let theirs = docker28.build(&[
        "--progress",
        "rawjson",
        "--build-arg",
        "IMAGE=bud-test/busybox",
        "-f",
        &file,
        context,
    ]);
    assert!(ours.status.success(), "{}", stderr(&ours));
    let expected = records(&theirs);
    assert_eq!(expected.len(), 11, "{}", stderr(&theirs));
    assert_eq!(records(&ours), expected);
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

/// `bud debug dump-llb` and each of its flags: the format (`--format json|dot|pb`, `--dot`),
/// the stage (`--target`), the build args (`--build-arg`) and the Dockerfile (`-f`).
#[test]
fn dump_llb_honours_each_of_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().to_str().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch AS first\nARG GREETING=none\nCOPY a /a-${GREETING}\n\
         FROM scratch AS second\nCOPY a /only-in-second\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("a"), "a").unwrap();
    std::fs::write(
        dir.path().join("Other.Dockerfile"),
        "FROM scratch\nCOPY a /from-other\n",
    )
    .unwrap();
    let dump = |args: &[&str]| -> Vec<u8> {
        let mut all = vec!["debug", "dump-llb"];
        all.extend_from_slice(args);
        all.push(context);
        let out = bud(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out.stdout
    };
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();

    let json = text(dump(&[]));
    for line in json.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("one JSON object per line");
    }
    assert!(
        json.contains("/only-in-second") && !json.contains("/a-none"),
        "{json}"
    );
    assert_eq!(text(dump(&["--format", "json"])), json);

    let dot = text(dump(&["--format", "dot"]));
    assert!(dot.starts_with("digraph {"), "{dot}");
    assert_eq!(text(dump(&["--dot"])), dot);

    let pb = dump(&["--format", "pb"]);
    assert!(!pb.is_empty() && pb != json.as_bytes());
    assert!(serde_json::from_slice::<serde_json::Value>(&pb).is_err());

    let first = text(dump(&["--target", "first"]));
    assert!(
        first.contains("/a-none") && !first.contains("/only-in-second"),
        "{first}"
    );
    let greeted = text(dump(&["--target", "first", "--build-arg", "GREETING=hi"]));
    assert!(greeted.contains("/a-hi"), "{greeted}");

    let other = text(dump(&[
        "-f",
        dir.path().join("Other.Dockerfile").to_str().unwrap(),
    ]));
    assert!(other.contains("/from-other"), "{other}");
}

/// `--rm` and `--force-rm` ask for what bud does anyway (no step leaves a container);
/// `--rm=false` asks to keep containers bud never makes, and the build says so.
#[test]
fn rm_flags_are_accepted_and_rm_false_is_answered() {
    if !support::build_ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCOPY a /\n").unwrap();
    std::fs::write(dir.path().join("a"), "a").unwrap();
    let build = |flag: &str| {
        let out = support::bud_at(
            root.path(),
            &[
                "build",
                "--progress",
                "plain",
                flag,
                "-o",
                "type=tar,dest=/dev/null",
                dir.path().to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{flag}: {}", stderr(&out));
        stderr(&out)
    };
    for quiet in ["--rm", "--rm=true", "--force-rm"] {
        assert!(!build(quiet).contains("--rm"), "{quiet}");
    }
    let text = build("--rm=false");
    assert!(
        text.contains("--rm=false: no intermediate containers are kept"),
        "{text}"
    );
}

/// `-D`/`--debug` turns on bud's debug log, which a plain run does not print.
#[test]
fn debug_prints_the_debug_log() {
    for args in [
        &["-D", "debug", "workers"][..],
        &["--debug", "debug", "workers"],
    ] {
        let out = bud(args);
        assert!(stderr(&out).contains("DEBUG"), "{args:?}: {}", stderr(&out));
    }
    let out = bud(&["debug", "workers"]);
    assert!(!stderr(&out).contains("DEBUG"), "{}", stderr(&out));
}

/// `-q` prints the image ID alone on stdout and nothing on stderr, as `docker build -q`.
#[test]
fn quiet_prints_only_the_image_id_as_docker_build() {
    if !(support::build_ready() && support::require_docker()) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCOPY a /\n").unwrap();
    std::fs::write(dir.path().join("a"), "quiet").unwrap();
    let context = dir.path().to_str().unwrap();
    let is_id = |s: &str| {
        s.strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let tag = "bud-test/quiet:latest";
    let out = support::bud_at(root.path(), &["build", "-q", "-t", tag, context]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let ours = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(ours.ends_with('\n') && is_id(ours.trim_end()), "{ours:?}");
    let loaded = support::docker_ok(&["image", "inspect", "-f", "{{.Id}}", tag]);
    assert_eq!(ours.trim_end(), loaded);

    let theirs = support::docker(&["build", "-q", context]);
    let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
    assert!(
        theirs.ends_with('\n') && is_id(theirs.trim_end()),
        "{theirs:?}"
    );
    support::remove_images(&[tag]);
}

/// What shows that each flag does what it says: a test function (`file::function`) or a
/// differential case's `args` file that passes it, and the text it passes it by when that is
/// not the flag itself (tests that call the command's code with its options struct).
const FLAG_EVIDENCE: &[(&str, &str, &str)] = &[
    (
        "--addr",
        "tests/it/remote_docker.rs::several_outputs_at_once_through_dockerd",
        "",
    ),
    ("--debug", "tests/it/cli.rs::debug_prints_the_debug_log", ""),
    (
        "--root",
        "tests/it/image_metadata.rs::source_date_epoch_and_rewrite_timestamp_give_the_same_image_from_any_path_umask_or_user",
        "",
    ),
    (
        "--tlscacert",
        "tests/it/remote_buildkitd.rs::tcp_with_tls_and_a_client_certificate_builds",
        "tls_args(",
    ),
    (
        "--tlscert",
        "tests/it/remote_buildkitd.rs::tcp_with_tls_and_a_client_certificate_builds",
        "tls_args(",
    ),
    (
        "--tlskey",
        "tests/it/remote_buildkitd.rs::tcp_with_tls_and_a_client_certificate_builds",
        "tls_args(",
    ),
    (
        "--tlsservername",
        "tests/it/remote_buildkitd.rs::tcp_with_tls_and_a_client_certificate_builds",
        "",
    ),
    (
        "--tlsdir",
        "src/remote/tls.rs::tlsdir_accepts_either_naming",
        "dir: Some",
    ),
    (
        "build --add-host",
        "testdata/diff/add-host-and-label/args",
        "",
    ),
    (
        "build --allow",
        "tests/it/build_entitlements.rs::network_host_needs_allow_or_network_host",
        "",
    ),
    (
        "build --annotation",
        "tests/it/image_metadata.rs::annotations_are_written_into_the_pushed_manifest_and_the_oci_layout",
        "",
    ),
    (
        "build --attest",
        "tests/it/image_metadata.rs::sbom_attestations_list_the_image_s_packages",
        "",
    ),
    (
        "build --build-arg",
        "testdata/diff/arg-build-arg-override/args",
        "",
    ),
    (
        "build --build-context",
        "tests/it/build_run_options.rs::named_contexts_replace_images_and_feed_copy_from",
        "",
    ),
    (
        "build --cache-from",
        "tests/it/build_caches.rs::a_local_cache_makes_every_step_cached_on_an_empty_state_root",
        "",
    ),
    (
        "build --cache-to",
        "tests/it/build_caches.rs::a_local_cache_makes_every_step_cached_on_an_empty_state_root",
        "",
    ),
    (
        "build --call",
        "tests/it/cli.rs::check_and_targets_text_match_docker28",
        "",
    ),
    (
        "build --check",
        "tests/it/cli.rs::check_and_targets_text_match_docker28",
        "",
    ),
    (
        "build --explain",
        "tests/it/build_caches.rs::each_step_that_ran_says_why",
        "",
    ),
    (
        "build --file",
        "testdata/diff/dockerfile-elsewhere/args",
        "",
    ),
    (
        "build --force-rm",
        "tests/it/cli.rs::rm_flags_are_accepted_and_rm_false_is_answered",
        "",
    ),
    (
        "build --iidfile",
        "tests/it/build_outputs.rs::builds_into_docker_then_rebuilds_from_cache",
        "",
    ),
    ("build --label", "testdata/diff/add-host-and-label/args", ""),
    (
        "build --load",
        "tests/it/remote_docker.rs::several_outputs_at_once_through_dockerd",
        "",
    ),
    (
        "build --metadata-file",
        "tests/it/build_outputs.rs::builds_into_docker_then_rebuilds_from_cache",
        "",
    ),
    (
        "build --network",
        "tests/it/build_entitlements.rs::network_host_needs_allow_or_network_host",
        "",
    ),
    (
        "build --no-cache",
        "tests/it/build_outputs.rs::cache_mounts_persist_across_builds",
        "",
    ),
    (
        "build --no-cache-filter",
        "tests/it/build_caches.rs::no_cache_filter_runs_the_named_stages_again_and_what_uses_them",
        "",
    ),
    (
        "build --output",
        "tests/it/build_outputs.rs::writes_local_tar_docker_and_oci_outputs",
        "",
    ),
    (
        "build --platform",
        "tests/it/build_platforms.rs::an_arm64_build_runs_its_steps_under_emulation",
        "",
    ),
    (
        "build --progress",
        "tests/it/cli.rs::rawjson_warnings_match_docker28",
        "",
    ),
    (
        "build --provenance",
        "tests/it/image_metadata.rs::pushes_and_oci_layouts_carry_buildkit_s_provenance_unless_turned_off",
        "",
    ),
    (
        "build --pull",
        "tests/it/registry_pull.rs::a_resolved_tag_is_reused_until_pull_is_forced",
        "pull: true",
    ),
    (
        "build --push",
        "tests/it/build_platforms.rs::a_two_platform_push_writes_an_index_of_both",
        "",
    ),
    (
        "build --quiet",
        "tests/it/cli.rs::quiet_prints_only_the_image_id_as_docker_build",
        "",
    ),
    (
        "build --rm",
        "tests/it/cli.rs::rm_flags_are_accepted_and_rm_false_is_answered",
        "",
    ),
    (
        "build --sbom",
        "tests/it/image_metadata.rs::sbom_attestations_list_the_image_s_packages",
        "",
    ),
    (
        "build --secret",
        "tests/it/build_outputs.rs::secrets_reach_the_step_and_never_the_image",
        "",
    ),
    (
        "build --shm-size",
        "tests/it/build_run_options.rs::shm_size_sizes_dev_shm",
        "",
    ),
    (
        "build --ssh",
        "tests/it/build_outputs.rs::ssh_agent_sockets_are_forwarded_by_id",
        "",
    ),
    (
        "build --tag",
        "tests/it/cli.rs::quiet_prints_only_the_image_id_as_docker_build",
        "",
    ),
    ("build --target", "testdata/diff/target-pruning/args", ""),
    (
        "build --trace",
        "tests/it/build_outputs.rs::on_a_terminal_progress_is_the_live_view_and_trace_writes_the_steps",
        "",
    ),
    (
        "build --ulimit",
        "tests/it/build_run_options.rs::ulimit_sets_the_limits_of_run_steps",
        "",
    ),
    (
        "du --filter",
        "tests/it/du_prune_commands.rs::du_filters_and_verbose",
        "type=layer",
    ),
    (
        "du --verbose",
        "tests/it/du_prune_commands.rs::du_filters_and_verbose",
        "du(true",
    ),
    (
        "prune --all",
        "tests/it/du_prune_commands.rs::prune_keeps_base_image_layers_unless_all",
        "all: true",
    ),
    (
        "prune --filter",
        "tests/it/du_prune_commands.rs::prune_filters_select_what_is_removed",
        "filters:",
    ),
    (
        "prune --force",
        "tests/it/du_prune_commands.rs::prune_asks_first_without_force",
        "force: false",
    ),
    (
        "prune --keep-storage",
        "tests/it/du_prune_commands.rs::prune_keep_storage_keeps_the_most_recently_used",
        "keep_storage",
    ),
    (
        "debug dump-llb --build-arg",
        "tests/it/cli.rs::dump_llb_honours_each_of_its_flags",
        "",
    ),
    (
        "debug dump-llb --dot",
        "tests/it/cli.rs::dump_llb_honours_each_of_its_flags",
        "",
    ),
    (
        "debug dump-llb --file",
        "tests/it/cli.rs::dump_llb_honours_each_of_its_flags",
        "",
    ),
    (
        "debug dump-llb --format",
        "tests/it/cli.rs::dump_llb_honours_each_of_its_flags",
        "",
    ),
    (
        "debug dump-llb --target",
        "tests/it/cli.rs::dump_llb_honours_each_of_its_flags",
        "",
    ),
];

/// Every flag of every command (`--long`, with `-s` its short form), named as
/// `FLAG_EVIDENCE` names them: globals bare, the others after their command's words.
fn every_flag(command: &clap::Command, words: &str, into: &mut Vec<(String, Option<char>)>) {
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_positional() || id == "help" || id == "version" {
            continue;
        }
        let long = arg.get_long().map(|l| format!("--{l}"));
        let name = long.unwrap_or_else(|| format!("-{}", arg.get_short().unwrap_or('?')));
        into.push((format!("{words}{name}"), arg.get_short()));
    }
    for sub in command.get_subcommands() {
        every_flag(sub, &format!("{words}{} ", sub.get_name()), into);
    }
}

/// The text of the evidence `file` (repository-relative). An integration test is named by
/// its place in the one test binary, tests/it/; a name from before the move says where.
fn evidence_text(file: &str) -> String {
    std::fs::read_to_string(support::repo_root().join(file)).unwrap_or_else(|e| {
        let moved = file
            .strip_prefix("tests/")
            .filter(|rest| !rest.starts_with("it/"))
            .map(|rest| format!("tests/it/{rest}"))
            .filter(|moved| support::repo_root().join(moved).is_file());
        match moved {
            Some(moved) => panic!("{file}: the integration tests are in tests/it/: name {moved}"),
            None => panic!("{file}: {e}"),
        }
    })
}

/// The text of `function` in `file` (repository-relative), up to its closing brace.
fn function_body(file: &str, function: &str) -> String {
    let text = evidence_text(file);
    let start = text
        .find(&format!("fn {function}("))
        .unwrap_or_else(|| panic!("{file} has no fn {function}"));
    let indent = text[..start].rsplit('\n').next().unwrap_or("");
    let end = text[start..]
        .find(&format!("\n{indent}}}\n"))
        .map_or(text.len(), |e| start + e);
    text[start..end].to_string()
}

/// Issue 16's rule: every flag bud accepts is honoured, with a test, or refused. The flags
/// come from the clap definitions, so a new one fails here until it names the test that
/// shows what it does; the named test must exist and pass the flag.
#[test]
fn every_flag_is_honoured_with_a_test() {
    use clap::CommandFactory as _;
    let mut flags = Vec::new();
    every_flag(&bud::cli::Cli::command(), "", &mut flags);
    let mut undecided = Vec::new();
    for (flag, short) in &flags {
        let Some((_, evidence, needle)) = FLAG_EVIDENCE.iter().find(|(f, ..)| f == flag) else {
            undecided.push(format!(
                "{flag}: name the test that shows what it does in FLAG_EVIDENCE, or refuse it"
            ));
            continue;
        };
        let text = match evidence.split_once("::") {
            Some((file, function)) => function_body(file, function),
            None => evidence_text(evidence),
        };
        let long = flag.rsplit(' ').next().unwrap_or(flag);
        let short = short.map(|s| format!("-{s}"));
        // In code, a short flag is a string of its own; in an args file, a line.
        let passes_short =
            |s: &String| text.contains(&format!("\"{s}\"")) || text.lines().any(|l| l.trim() == s);
        let passed = if needle.is_empty() {
            text.contains(long) || short.as_ref().is_some_and(passes_short)
        } else {
            text.contains(needle)
        };
        if !passed {
            undecided.push(format!("{flag}: {evidence} does not pass it"));
        }
    }
    for (flag, ..) in FLAG_EVIDENCE {
        if !flags.iter().any(|(f, _)| f == flag) {
            undecided.push(format!(
                "{flag} is in FLAG_EVIDENCE but bud has no such flag"
            ));
        }
    }
    assert!(undecided.is_empty(), "{}", undecided.join("\n"));
}

/// What shows that each instruction flag, `RUN --mount` key and parser directive does what
/// it says (or is refused): a differential case's Dockerfile, built by both Dockers and bud,
/// or a test function, and the text in it that uses the item.
const DOCKERFILE_EVIDENCE: &[(&str, &str, &str)] = &[
    (
        "FROM --platform",
        "tests/it/build_platforms.rs::a_build_platform_stage_runs_once_for_every_target",
        "FROM --platform",
    ),
    (
        "RUN --mount",
        "testdata/diff/run-mount-bind/Dockerfile",
        "--mount=",
    ),
    (
        "RUN --network",
        "tests/it/build_entitlements.rs::network_host_needs_allow_or_network_host",
        "--network=",
    ),
    (
        "RUN --security",
        "tests/it/build_entitlements.rs::an_insecure_step_runs_privileged_when_allowed",
        "--security=insecure",
    ),
    (
        "RUN --device",
        "tests/it/build_entitlements.rs::run_device_gives_the_step_its_cdi_device_nodes_and_environment",
        "--device",
    ),
    (
        "--device name",
        "frontend/tests/convert_basic.rs::run_device_asks_for_cdi_devices_with_a_labs_syntax",
        "--device=name=",
    ),
    (
        "--device required",
        "frontend/tests/convert_basic.rs::run_device_asks_for_cdi_devices_with_a_labs_syntax",
        ",required",
    ),
    (
        "COPY --chown",
        "testdata/diff/copy-chown/Dockerfile",
        "--chown=",
    ),
    (
        "COPY --from",
        "testdata/diff/multistage-copy-from/Dockerfile",
        "--from=",
    ),
    (
        "COPY --chmod",
        "testdata/diff/copy-chmod/Dockerfile",
        "--chmod=",
    ),
    (
        "COPY --link",
        "tests/it/build_outputs.rs::copy_link_layers_stay_the_same_on_a_new_base",
        "testdata(\"link\")",
    ),
    (
        "COPY --exclude",
        "testdata/diff/copy-exclude/Dockerfile",
        "--exclude=",
    ),
    (
        "COPY --parents",
        "tests/it/image_metadata.rs::copy_parents_keeps_the_paths_buildkit_s_labs_frontend_keeps",
        "copy-parents",
    ),
    (
        "ADD --chown",
        "testdata/diff/add-link/Dockerfile",
        "--chown=",
    ),
    (
        "ADD --chmod",
        "testdata/diff/add-link/Dockerfile",
        "--chmod=",
    ),
    (
        "ADD --link",
        "testdata/diff/add-link/Dockerfile",
        "ADD --link",
    ),
    (
        "ADD --keep-git-dir",
        "tests/it/source_git.rs::bud_adds_a_repository_into_a_local_export",
        "\"add-git\"",
    ),
    (
        "ADD --checksum",
        "tests/it/source_http.rs::add_checksum_verifies_what_the_url_serves",
        "--checksum=",
    ),
    (
        "ADD --unpack",
        "testdata/diff/add-exclude-unpack/Dockerfile",
        "--unpack=",
    ),
    (
        "ADD --exclude",
        "testdata/diff/add-exclude-unpack/Dockerfile",
        "ADD --exclude=",
    ),
    (
        "HEALTHCHECK --interval",
        "testdata/diff/healthcheck/Dockerfile",
        "--interval=",
    ),
    (
        "HEALTHCHECK --timeout",
        "testdata/diff/healthcheck/Dockerfile",
        "--timeout=",
    ),
    (
        "HEALTHCHECK --start-period",
        "testdata/diff/healthcheck/Dockerfile",
        "--start-period=",
    ),
    (
        "HEALTHCHECK --start-interval",
        "testdata/diff/healthcheck-start-interval/Dockerfile",
        "--start-interval=",
    ),
    (
        "HEALTHCHECK --retries",
        "testdata/diff/healthcheck/Dockerfile",
        "--retries=",
    ),
    (
        "--mount type",
        "testdata/diff/run-mount-bind/Dockerfile",
        "type=bind",
    ),
    (
        "--mount from",
        "testdata/diff/run-mount-keys/Dockerfile",
        "from=data",
    ),
    (
        "--mount source",
        "testdata/diff/run-mount-keys/Dockerfile",
        "source=/data",
    ),
    (
        "--mount src",
        "testdata/diff/run-mount-keys/Dockerfile",
        "src=/data",
    ),
    (
        "--mount target",
        "testdata/diff/run-mount-keys/Dockerfile",
        "target=/m3",
    ),
    (
        "--mount dst",
        "testdata/diff/run-mount-keys/Dockerfile",
        "dst=/m1",
    ),
    (
        "--mount destination",
        "testdata/diff/run-mount-keys/Dockerfile",
        "destination=/m2",
    ),
    (
        "--mount readonly",
        "testdata/diff/run-mount-keys/Dockerfile",
        ",readonly ",
    ),
    (
        "--mount ro",
        "testdata/diff/run-mount-keys/Dockerfile",
        "ro=true",
    ),
    (
        "--mount readwrite",
        "testdata/diff/run-mount-keys/Dockerfile",
        ",readwrite ",
    ),
    (
        "--mount rw",
        "testdata/diff/run-mount-keys/Dockerfile",
        "rw=true",
    ),
    (
        "--mount required",
        "testdata/diff/run-mount-keys/Dockerfile",
        "required=false",
    ),
    (
        "--mount size",
        "testdata/diff/run-mount-tmpfs-size/Dockerfile",
        "size=1m",
    ),
    (
        "--mount id",
        "testdata/diff/run-mount-cache/Dockerfile",
        "id=",
    ),
    (
        "--mount sharing",
        "testdata/diff/run-mount-cache/Dockerfile",
        "sharing=",
    ),
    (
        "--mount mode",
        "testdata/diff/run-mount-cache-owners/Dockerfile",
        "mode=",
    ),
    (
        "--mount uid",
        "testdata/diff/run-mount-cache-owners/Dockerfile",
        "uid=",
    ),
    (
        "--mount gid",
        "testdata/diff/run-mount-cache-owners/Dockerfile",
        "gid=",
    ),
    (
        "--mount env",
        "tests/it/build_run_options.rs::secrets_as_environment_variables_as_docker_28_sets_them",
        "env=TOKEN",
    ),
    (
        "# syntax",
        "tests/it/image_metadata.rs::docker_dockerfile_1_syntaxes_are_bud_s_own_frontend",
        "# syntax=",
    ),
    (
        "# escape",
        "testdata/diff/escape-directive/Dockerfile",
        "# escape=",
    ),
    (
        "# check",
        "tests/it/cli.rs::failing_checks_fail_the_build_as_docker28",
        "# check=",
    ),
];

/// Issue 16's rule for Dockerfiles: every instruction flag, `RUN --mount` key and parser
/// directive the frontend accepts, enumerated from the tables its parser reads, is
/// honoured with a test (or refused by one) named in `DOCKERFILE_EVIDENCE`.
#[test]
fn every_dockerfile_flag_key_and_directive_is_honoured_with_a_test() {
    let mut items = Vec::new();
    for (instruction, flags) in bud_frontend::instructions::instruction_flags() {
        items.extend(flags.iter().map(|f| format!("{instruction} --{f}")));
    }
    items.extend(
        bud_frontend::instructions::MOUNT_KEYS
            .iter()
            .map(|k| format!("--mount {k}")),
    );
    items.extend(
        bud_frontend::instructions::DEVICE_KEYS
            .iter()
            .map(|k| format!("--device {k}")),
    );
    items.extend(
        bud_frontend::parser::DIRECTIVES
            .iter()
            .map(|d| format!("# {d}")),
    );
    let mut undecided = Vec::new();
    for item in &items {
        let Some((_, evidence, needle)) = DOCKERFILE_EVIDENCE.iter().find(|(i, ..)| i == item)
        else {
            undecided.push(format!("{item}: name the test that shows what it does"));
            continue;
        };
        let text = match evidence.split_once("::") {
            Some((file, function)) => function_body(file, function),
            None => evidence_text(evidence),
        };
        if !text.contains(needle) {
            undecided.push(format!("{item}: {evidence} has no {needle:?}"));
        }
    }
    for (item, ..) in DOCKERFILE_EVIDENCE {
        if !items.iter().any(|i| i == item) {
            undecided.push(format!(
                "{item} is in DOCKERFILE_EVIDENCE but the frontend has none"
            ));
        }
    }
    assert!(undecided.is_empty(), "{}", undecided.join("\n"));
}
