//! The differential suite: every case under testdata/diff/ is built by the two references,
//! Docker 20.10's `docker build` and Docker 28.5's (buildx), and by bud; bud's image must
//! agree with the reference it follows on the config a Dockerfile decides, on the history
//! and on the filesystem a container starts with. A case the reference rejects must be
//! rejected by bud; messages are not compared.
//!
//! bud follows the current Docker, 28.5. Where 20.10 builds a case differently, the case
//! says so and why (`docker20-differs`), and a test of its own holds every case to it: the
//! references must agree on every case not marked, and differ on every case marked. The
//! `--addr docker://` variant runs bud's graph on Docker 20.10's BuildKit, so where the
//! difference is that BuildKit's, the variant follows 20.10 (the case says which).
//!
//! Each case's references are built once, by whichever test reaches the case first, and
//! shared by the others (tests/it/differential/references.rs).
//!
//! Run a subset with `BUD_DIFF_CASES=name,name cargo test --test it differential:: -- --nocapture`.
//! Case layout: tests/it/differential/case.rs.

mod case;
mod references;

use crate::support::{self, image, listing};

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use case::{Case, Reference};
use image::{Daemon, Image};
use references::{Outcome, log_end};
use support::*;

/// Cases where bud is known to differ from the reference, each with the reason. Every
/// entry is a bug to fix; a listed case that starts passing fails the suite so that the
/// list stays true.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[NOT_UTF8];

/// Cases the remote solver does not build like the reference yet, each with the reason.
const REMOTE_KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

/// Cases a rootless bud does not build like the reference, each with the reason.
const ROOTLESS_KNOWN_DIFFERENCES: &[(&str, &str)] = &[NOT_UTF8];

/// Where bud follows Docker 20.10, not 28.5, until it refuses what 28.5 refuses.
const NOT_UTF8: (&str, &str) = (
    "dockerfile-not-utf8",
    "bud reads bytes that are not UTF-8 as U+FFFD, as Docker 20.10 does; Docker 28.5 fails once such a byte reaches a string of the LLB (RUN, ENV, WORKDIR) and builds when it stays in a comment or a label: to follow it, bud must refuse exactly there",
);

/// Cases run side by side in each test; with the other tests' and the daemons' builds, two
/// cores leave room for no more.
const WORKERS: usize = 2;

#[test]
fn bud_builds_what_docker_builds() {
    if !require_base_image() || !require_runc() {
        return;
    }
    let Some(docker28) = require_docker28() else {
        return;
    };
    run_suite(&docker28, Solver::Embedded, KNOWN_DIFFERENCES);
}

/// The same cases with `--addr docker://`: bud's own LLB solved by dockerd's BuildKit must
/// give what dockerd's Dockerfile frontend gives.
#[test]
fn bud_on_dockerds_buildkit_builds_what_docker_builds() {
    if !require_base_image() {
        return;
    }
    let Some(docker28) = require_docker28() else {
        return;
    };
    run_suite(
        &docker28,
        Solver::Remote("docker://"),
        REMOTE_KNOWN_DIFFERENCES,
    );
}

/// The same cases built by an ordinary user's bud, rootless in a user namespace: the same
/// images as root's docker build.
#[test]
fn rootless_bud_builds_what_docker_builds() {
    if !require_base_image() || !require_runc() || !require_user(ROOTLESS_USER) {
        return;
    }
    let Some(docker28) = require_docker28() else {
        return;
    };
    run_suite(&docker28, Solver::Rootless, ROOTLESS_KNOWN_DIFFERENCES);
}

/// The two references agree on every case except those marked `docker20-differs`, and
/// differ on every case so marked: the marks stay true as cases change. A case marked
/// `fails` is one Docker 28.5 rejects.
#[test]
fn references_differ_only_where_a_case_says_so() {
    if !require_base_image() {
        return;
    }
    let Some(docker28) = require_docker28() else {
        return;
    };
    let cases = case::all(&repo_root().join("testdata/diff")).expect("read testdata/diff");
    let outcomes = for_each_case(&cases, |case| {
        let refs = references::of(case, &docker28)?;
        match (&refs.docker28, case.fails) {
            (Outcome::Built(_), true) => {
                return Err("docker 28.5 accepts a case marked `fails`".into());
            }
            (Outcome::Rejected(log), false) => {
                return Err(format!("docker 28.5 rejects the case:\n{log}"));
            }
            _ => {}
        }
        let report = differences(
            &refs.docker20,
            &refs.docker28,
            (Reference::Docker20, Reference::Docker28.name()),
        );
        match (&case.docker20_differs, report.is_empty()) {
            (None, true) | (Some(_), false) => Ok(()),
            (Some(_), true) => {
                Err("the references agree: the case's docker20-differs is no longer true".into())
            }
            (None, false) => Err(format!(
                "docker 20.10 and 28.5 differ; say in docker20-differs why, and which \
                 one the remote variant follows:\n{}",
                report.join("\n")
            )),
        }
    });
    eprintln!("\nCases Docker 20.10 builds differently:");
    for case in &cases {
        if let Some(differs) = &case.docker20_differs {
            eprintln!("{:<36} {}", case.name, differs.why);
        }
    }
    report(outcomes, &[]);
}

/// Cases built for linux/arm64 by Docker 20.10's `docker build --platform linux/arm64` and by
/// bud, both running the steps through QEMU: tiny ones, as emulation is slow.
const ARM64_CASES: &[&str] = &[
    "hello",
    "multistage-copy-from",
    "links-by-run",
    "rm-whiteouts",
];

/// The arm64 image comes from the open registry's manifest list of the base image, which
/// both pick the arm64 entry of (Docker's own `bud-test/busybox` is the amd64 one).
#[test]
fn bud_builds_what_docker_builds_for_arm64() {
    if !require_base_image() || !require_runc() {
        return;
    }
    let root = repo_root().join("testdata/diff");
    for name in ARM64_CASES {
        assert!(
            root.join(name).is_dir(),
            "ARM64_CASES names {name}, which is no case"
        );
    }
    // BUD_DIFF_CASES narrows these as it narrows the others.
    let cases: Vec<Case> = case::all(&root)
        .expect("read testdata/diff")
        .into_iter()
        .filter(|c| ARM64_CASES.contains(&c.name.as_str()))
        .collect();
    let scratch = tempfile::Builder::new()
        .prefix("bud-diff-arm64-")
        .tempdir()
        .expect("temp dir");
    let outcomes = for_each_case(&cases, |case| {
        let context = scratch.path().join(&case.name).join("context");
        case.prepare(&context)?;
        let dockerfile = context.join("Dockerfile");
        let text = std::fs::read_to_string(&dockerfile).map_err(|e| e.to_string())?;
        let text = text
            .replace(
                "FROM bud-test/busybox",
                &format!("FROM {OPEN_REGISTRY}/bud-test/busybox"),
            )
            .replace(
                "--from=bud-test/busybox",
                &format!("--from={OPEN_REGISTRY}/bud-test/busybox"),
            );
        std::fs::write(&dockerfile, text).map_err(|e| e.to_string())?;
        let dir = context.to_str().ok_or("non-UTF-8 temp path")?;
        let mut images = Vec::new();
        for who in ["docker", "bud"] {
            let tag = format!("bud-diff-arm64-{who}/{}", case.name);
            let mut args: Vec<&str> = case.args.iter().map(String::as_str).collect();
            args.extend(["--platform", "linux/arm64", "-t", &tag, dir]);
            let out = if who == "docker" {
                let mut cmd = Command::new(DOCKER);
                cmd.env("DOCKER_BUILDKIT", "1").arg("build");
                cmd
            } else {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_bud"));
                cmd.arg("--root")
                    .arg(scratch.path().join("root"))
                    .arg("--progress=plain");
                cmd
            }
            .current_dir(&context)
            .args(&args)
            .envs(case.env.iter().map(|(k, v)| (k, v)))
            .output()
            .map_err(|e| format!("running the {who} build: {e}"))?;
            if !out.status.success() {
                return Err(format!("{who} rejects the case:\n{}", log_end(&out)));
            }
            let platform = docker_ok(&[
                "image",
                "inspect",
                "--format",
                "{{.Os}}/{{.Architecture}}/{{.Variant}}",
                &tag,
            ]);
            let image = Image::read(Daemon::Docker20, &tag);
            Daemon::Docker20.remove(&[&tag]);
            images.push((platform, Outcome::Built(image?)));
        }
        let (bud_platform, bud) = images.pop().ok_or("no bud image")?;
        let (docker_platform, docker) = images.pop().ok_or("no docker image")?;
        let mut report = differences(&docker, &bud, (Reference::Docker20, "bud"));
        if docker_platform != bud_platform {
            report.push(format!(
                "  platform: docker {docker_platform}, bud {bud_platform}"
            ));
        }
        if report.is_empty() {
            Ok(())
        } else {
            Err(report.join("\n"))
        }
    });
    report(outcomes, &[]);
}

/// Who builds the bud side of a case.
#[derive(Clone, Copy)]
enum Solver<'a> {
    Embedded,
    Rootless,
    Remote(&'a str),
}

impl Solver<'_> {
    /// The reference a variant's image must match: Docker 28.5, but for the remote
    /// variant of a case where Docker 20.10's BuildKit makes the difference; `None` when
    /// the variant must be refused.
    fn follows(self, case: &Case) -> Option<Reference> {
        match (self, &case.docker20_differs) {
            (Solver::Remote(_), Some(differs)) => differs.remote_follows,
            _ => Some(Reference::Docker28),
        }
    }
}

fn run_suite(docker28: &Docker28, solver: Solver<'_>, known_differences: &[(&str, &str)]) {
    let cases = case::all(&repo_root().join("testdata/diff")).expect("read testdata/diff");
    let scratch = tempfile::Builder::new()
        .prefix("bud-diff-")
        .tempdir()
        .expect("temp dir");
    open_to_all(scratch.path());
    let outcomes = for_each_case(&cases, |case| {
        let references = references::of(case, docker28)?;
        let work = scratch.path().join(&case.name);
        match solver.follows(case) {
            Some(follows) => run_case(case, &work, solver, follows, references.of(follows)),
            // The graph needs what 20.10's BuildKit lacks: bud must say so, not build.
            None => run_case(
                case,
                &work,
                solver,
                Reference::Docker20,
                &Outcome::Rejected(String::new()),
            )
            .map_err(|_| {
                "bud builds on Docker 20.10's BuildKit a graph that needs a capability it \
                 lacks; docker20-differs says it must refuse (remote: refused)"
                    .to_string()
            }),
        }
    });
    report(outcomes, known_differences);
}

/// Runs `check` on every case, `WORKERS` at a time; the outcomes sorted by case name.
fn for_each_case(
    cases: &[Case],
    check: impl Fn(&Case) -> Result<(), String> + Sync,
) -> Vec<(String, Result<(), String>)> {
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let outcome = check(case);
                    outcomes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((case.name.clone(), outcome));
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap_or_else(|e| e.into_inner());
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    outcomes
}

fn report(outcomes: Vec<(String, Result<(), String>)>, known_differences: &[(&str, &str)]) {
    let mut problems = Vec::new();
    eprintln!("\n{:<36} result", "case");
    for (name, outcome) in &outcomes {
        let known = known_differences.iter().find(|(n, _)| n == name);
        let verdict = match (outcome, known) {
            (Ok(()), None) => "pass".to_string(),
            (Err(_), Some((_, why))) => format!("known difference: {why}"),
            (Ok(()), Some(_)) => {
                problems.push(format!(
                    "{name}: passes now; remove it from KNOWN_DIFFERENCES"
                ));
                "pass (listed as known difference)".to_string()
            }
            (Err(e), None) => {
                problems.push(format!("{name}: {e}"));
                "FAIL".to_string()
            }
        };
        eprintln!("{name:<36} {verdict}");
    }
    assert!(
        problems.is_empty(),
        "{} of {} cases differ:\n\n{}",
        problems.len(),
        outcomes.len(),
        problems.join("\n\n")
    );
}

fn run_case(
    case: &Case,
    work: &Path,
    solver: Solver<'_>,
    follows: Reference,
    want: &Outcome,
) -> Result<(), String> {
    let context = work.join("context");
    case.prepare(&context)?;
    if let Solver::Rootless = solver {
        // A user builds a context of its own (one it cannot read fails for docker build too).
        chown_keeping_modes(ROOTLESS_USER, &context)?;
    }
    let context = context.to_str().ok_or("non-UTF-8 temp path")?;

    // The suites run in parallel test threads: keep their tags apart.
    let suffix = match solver {
        Solver::Embedded => "",
        Solver::Rootless => "-rootless",
        Solver::Remote(_) => "-remote",
    };
    let bud_tag = format!("bud-diff-bud/{}{suffix}", case.name);
    let mut args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    args.extend(["-t", &bud_tag, context]);
    if let Solver::Remote(addr) = solver {
        args.splice(0..0, ["--addr", addr]);
    }
    let out = bud_build(case, context, &work.join("root"), &args, solver);
    let got = if out.status.success() {
        Outcome::Built(Image::read(Daemon::Docker20, &bud_tag)?)
    } else {
        Outcome::Rejected(log_end(&out))
    };
    let report = differences(want, &got, (follows, "bud"));
    if report.is_empty() {
        Daemon::Docker20.remove(&[&bud_tag]);
        Ok(())
    } else {
        Err(report.join("\n"))
    }
}

/// How `got` (built by `labels.1`) differs from what `want`'s reference built; empty when
/// they agree. Compared with Docker 20.10, history entries first lose what BuildKit changed
/// in them after v0.8 ([`history_as_of_v08`]).
fn differences(want: &Outcome, got: &Outcome, labels: (Reference, &str)) -> Vec<String> {
    let (reference, got_label) = labels;
    let want_label = reference.name();
    let (want, got) = match (want, got) {
        (Outcome::Rejected(_), Outcome::Rejected(_)) => return Vec::new(),
        (Outcome::Rejected(log), Outcome::Built(_)) => {
            return vec![format!(
                "{want_label} rejects the build; {got_label} accepts it. {want_label}:\n{log}"
            )];
        }
        (Outcome::Built(_), Outcome::Rejected(log)) => {
            return vec![format!(
                "{got_label} rejects the build; {want_label} accepts it. {got_label}:\n{log}"
            )];
        }
        (Outcome::Built(want), Outcome::Built(got)) => (want, got),
    };
    let mut report = Vec::new();
    let width = want_label.len().max(got_label.len()) + 1;
    let pair = |what: String, want: &dyn std::fmt::Debug, got: &dyn std::fmt::Debug| {
        format!(
            "  {what}\n    {:<width$} {want:#?}\n    {:<width$} {got:#?}",
            format!("{want_label}:"),
            format!("{got_label}:"),
        )
    };
    for ((field, want), (_, got)) in want.config.iter().zip(&got.config) {
        if want != got {
            report.push(pair(format!("config {field}"), want, got));
        }
    }
    let (want_history, got_history) = match reference {
        Reference::Docker20 => (
            history_as_of_v08(&want.history),
            history_as_of_v08(&got.history),
        ),
        Reference::Docker28 => (want.history.clone(), got.history.clone()),
    };
    if want_history != got_history {
        report.push(pair("history".into(), &want_history, &got_history));
    }
    if want.layers != got.layers {
        report.push(format!(
            "  layers: {want_label} {}, {got_label} {}",
            want.layers, got.layers
        ));
    }
    report.extend(listing::differences(
        &want.filesystem,
        &got.filesystem,
        (want_label, got_label),
        20,
    ));
    report
}

/// The history, with what changed in BuildKit after v0.8 taken out, for comparisons with
/// Docker 20.10: ARG entries keep only the first name, because v0.8 records the default an
/// ARG declares and later versions the value it takes, which may hold spaces (the values
/// in effect still show in the RUN entries); COPY and ADD entries lose `--chown` and
/// `--chmod`, which v0.8 leaves out; EXPOSE and HEALTHCHECK entries keep only the
/// instruction, because their text is Go's printing of a type that changed (a map then,
/// a list now; a struct that gained a field), while the config holds what they set.
fn history_as_of_v08(history: &[String]) -> Vec<String> {
    history
        .iter()
        .map(|entry| {
            if let Some(args) = entry.strip_prefix("ARG ") {
                let first = args.split(['=', ' ']).next().unwrap_or_default();
                return format!("ARG {first}");
            }
            for keyword in ["EXPOSE", "HEALTHCHECK"] {
                if entry.starts_with(&format!("{keyword} ")) {
                    return keyword.to_string();
                }
            }
            if entry.starts_with("COPY ") || entry.starts_with("ADD ") {
                let words: Vec<&str> = entry
                    .split(' ')
                    .filter(|w| !w.starts_with("--chown=") && !w.starts_with("--chmod="))
                    .collect();
                return words.join(" ");
            }
            entry.clone()
        })
        .collect()
}

/// Gives `path` to `user` with every mode as it was: chown clears the setuid and setgid
/// bits, which the references see in their own copy of the context.
fn chown_keeping_modes(user: &str, path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    fn modes(dir: &Path, out: &mut Vec<(std::path::PathBuf, u32)>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.file_type().is_symlink() {
                continue;
            }
            out.push((entry.path(), meta.permissions().mode() & 0o7777));
            if meta.is_dir() {
                modes(&entry.path(), out)?;
            }
        }
        Ok(())
    }
    let mut before = Vec::new();
    modes(path, &mut before).map_err(|e| format!("read the context's modes: {e}"))?;
    chown_to(user, path);
    for (file, mode) in before {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {}: {e}", file.display()))?;
    }
    Ok(())
}

fn bud_build(case: &Case, context: &str, root: &Path, args: &[&str], solver: Solver<'_>) -> Output {
    let mut cmd = match solver {
        Solver::Rootless => {
            std::fs::create_dir_all(root).expect("create the state root");
            chown_to(ROOTLESS_USER, root);
            bud_command_as(ROOTLESS_USER)
        }
        Solver::Embedded | Solver::Remote(_) => Command::new(env!("CARGO_BIN_EXE_bud")),
    };
    cmd.current_dir(context);
    cmd.arg("--root")
        .arg(root)
        .arg("--progress=plain")
        .args(args)
        .env_remove("BUD_HOST")
        .env_remove("BUILDKIT_PROGRESS");
    cmd.envs(case.env.iter().map(|(k, v)| (k, v)));
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run bud: {e}"))
}
