//! The differential suite: every case under testdata/diff/ is built by the reference
//! (`docker build` with Docker 20.10's BuildKit) and by bud, and the two images must agree
//! on the config a Dockerfile decides, on the history and on the filesystem a container
//! starts with. A case Docker rejects must be rejected by bud; messages are not compared.
//!
//! Run a subset with `BUD_DIFF_CASES=name,name cargo test --test differential -- --nocapture`.
//! Case layout: tests/differential/case.rs.

mod support;

#[path = "differential/case.rs"]
mod case;
#[path = "differential/image.rs"]
mod image;
#[path = "differential/listing.rs"]
mod listing;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use case::Case;
use support::*;

/// Cases where bud is known to differ from the reference, each with the reason. Every
/// entry is a bug to fix; a listed case that starts passing fails the suite so that the
/// list stays true.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

/// Docker and bud builds run side by side; two cores leave room for no more.
const WORKERS: usize = 2;

/// Cases the remote solver does not build like the reference yet, each with the reason.
const REMOTE_KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

#[test]
fn bud_builds_what_docker_builds() {
    if !require_base_image() || !require_runc() {
        return;
    }
    run_suite(Solver::Embedded, KNOWN_DIFFERENCES);
}

/// The same cases with `--addr docker://`: bud's own LLB solved by dockerd's BuildKit must
/// give what dockerd's Dockerfile frontend gives.
#[test]
fn bud_on_dockerds_buildkit_builds_what_docker_builds() {
    if !require_base_image() {
        return;
    }
    run_suite(Solver::Remote("docker://"), REMOTE_KNOWN_DIFFERENCES);
}

/// The same cases built by an ordinary user's bud, rootless in a user namespace: the same
/// images as root's docker build.
#[test]
fn rootless_bud_builds_what_docker_builds() {
    if !require_base_image() || !require_runc() || !require_user(ROOTLESS_USER) {
        return;
    }
    run_suite(Solver::Rootless, ROOTLESS_KNOWN_DIFFERENCES);
}

/// Cases a rootless bud does not build like the reference, each with the reason.
const ROOTLESS_KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

/// Who builds the bud side of a case.
#[derive(Clone, Copy)]
enum Solver<'a> {
    Embedded,
    Rootless,
    Remote(&'a str),
}

fn run_suite(solver: Solver<'_>, known_differences: &[(&str, &str)]) {
    let cases = case::all(&repo_root().join("testdata/diff")).expect("read testdata/diff");
    let scratch = tempfile::Builder::new()
        .prefix("bud-diff-")
        .tempdir()
        .expect("temp dir");
    open_to_all(scratch.path());

    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let outcome = run_case(case, &scratch.path().join(&case.name), solver);
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

fn run_case(case: &Case, work: &Path, solver: Solver<'_>) -> Result<(), String> {
    let context = work.join("context");
    case.prepare(&context)?;
    if let Solver::Rootless = solver {
        // A user builds a context of its own (one it cannot read fails for docker build too).
        chown_to(ROOTLESS_USER, &context);
    }
    let context = context.to_str().ok_or("non-UTF-8 temp path")?;

    if let Some(base) = case.base_dockerfile() {
        let tag = format!("bud-diff-base/{}", case.name);
        let base = base.to_str().ok_or("non-UTF-8 path")?;
        let out = reference_build(case, context, &["-f", base, "-t", &tag, context]);
        if !out.status.success() {
            return Err(format!("base.Dockerfile: {}", stderr(&out)));
        }
    }

    // The suites run in parallel test threads: keep their tags apart.
    let suffix = match solver {
        Solver::Embedded => "",
        Solver::Rootless => "-rootless",
        Solver::Remote(_) => "-remote",
    };
    let reference_tag = format!("bud-diff-ref/{}{suffix}", case.name);
    let bud_tag = format!("bud-diff-bud/{}{suffix}", case.name);
    let mut args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    args.extend(["-t", &reference_tag, context]);
    let reference = reference_build(case, context, &args);
    args.truncate(args.len() - 3);
    args.extend(["-t", &bud_tag, context]);
    if let Solver::Remote(addr) = solver {
        args.splice(0..0, ["--addr", addr]);
    }
    let bud = bud_build(case, context, &work.join("root"), &args, solver);

    match (case.fails, reference.status.success(), bud.status.success()) {
        (true, false, false) => return Ok(()),
        (true, true, _) => return Err("docker accepts a case marked `fails`".into()),
        (false, false, _) => {
            return Err(format!("docker rejects the case:\n{}", stderr(&reference)));
        }
        (true, false, true) => return Err("docker rejects the build; bud accepts it".into()),
        (false, true, false) => {
            return Err(format!("bud rejects the build:\n{}", stderr(&bud)));
        }
        (false, true, true) => {}
    }

    let mut report = Vec::new();
    let want = image::config(&reference_tag)?;
    let got = image::config(&bud_tag)?;
    for ((field, want), (_, got)) in want.iter().zip(&got) {
        if want != got {
            report.push(format!(
                "  config {field}\n    docker: {want}\n    bud:    {got}"
            ));
        }
    }
    let want = history(&reference_tag)?;
    let got = history(&bud_tag)?;
    if want != got {
        report.push(format!(
            "  history\n    docker: {want:#?}\n    bud:    {got:#?}"
        ));
    }
    let want = image::layer_count(&reference_tag)?;
    let got = image::layer_count(&bud_tag)?;
    if want != got {
        report.push(format!("  layers: docker {want}, bud {got}"));
    }
    let mut want = image::filesystem(&reference_tag)?;
    let got = image::filesystem(&bud_tag)?;
    // `reference-only` paths are what BuildKit v0.8 leaves and current BuildKit does not;
    // on dockerd's BuildKit bud's graph leaves them too, so both must have them.
    let reference_only: &[String] = match solver {
        Solver::Remote(_) => &[],
        Solver::Embedded | Solver::Rootless => &case.reference_only,
    };
    for path in reference_only {
        match (want.remove(path), got.contains_key(path)) {
            (Some(_), false) => {}
            (None, _) => report.push(format!(
                "  {path} is listed in reference-only but docker lacks it"
            )),
            (Some(_), true) => report.push(format!(
                "  {path} is listed in reference-only but bud has it"
            )),
        }
    }
    report.extend(listing::differences(&want, &got, 20));

    if report.is_empty() {
        image::remove(&[&reference_tag, &bud_tag]);
        Ok(())
    } else {
        Err(format!("images differ:\n{}", report.join("\n")))
    }
}

/// The history, with what changed in BuildKit after v0.8 taken out (bud follows current
/// BuildKit): ARG entries keep only the first name, because v0.8 records the default an
/// ARG declares and later versions the value it takes, which may hold spaces (the values
/// in effect still show in the RUN entries); COPY and ADD entries lose `--chown` and
/// `--chmod`, which v0.8 leaves out; EXPOSE and HEALTHCHECK entries keep only the
/// instruction, because their text is Go's printing of a type that changed (a map then,
/// a list now; a struct that gained a field), while the config holds what they set.
fn history(tag: &str) -> Result<Vec<String>, String> {
    Ok(image::history(tag)?
        .into_iter()
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
            entry
        })
        .collect())
}

/// Both builders run in the context directory, so that `-f` in `args` is relative to it.
fn reference_build(case: &Case, context: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(DOCKER);
    cmd.current_dir(context);
    cmd.arg("build").args(args).env("DOCKER_BUILDKIT", "1");
    cmd.envs(case.env.iter().map(|(k, v)| (k, v)));
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {DOCKER}: {e}"))
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

fn stderr(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(15);
    lines[start..].join("\n")
}
