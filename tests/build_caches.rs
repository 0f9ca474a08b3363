//! `--cache-from` and `--cache-to`: passed to a BuildKit daemon with `--addr`, which imports
//! and exports them; with the embedded solver an import that cannot be made leaves the build
//! going on, as `docker build` does with one it cannot find, and an export that cannot be made
//! fails it up front unless `ignore-error=true`.

mod support;

use std::process::Command;

use support::*;

/// A cache reference on the test registry that nothing ever pushes.
const MISSING_CACHE: &str = "127.0.0.1:5000/bud-test/no-such-cache:never";

/// The lines of the step a cache import shows as in plain progress (`#N importing cache
/// manifest from WHAT`, then every other line of that `#N`).
fn import_step(progress: &str, what: &str) -> String {
    let name = format!("importing cache manifest from {what}");
    let number = progress
        .lines()
        .find_map(|line| {
            let (number, rest) = line.split_once(' ')?;
            (number.starts_with('#') && rest == name).then_some(number)
        })
        .unwrap_or_else(|| panic!("no step {name:?} in:\n{progress}"));
    progress
        .lines()
        .filter(|line| line.split_once(' ').is_some_and(|(n, _)| n == number))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_cache_that_cannot_be_imported_does_not_fail_the_build_as_with_docker() {
    if !build_ready() {
        return;
    }
    let context = testdata("hello");
    let reference = Command::new("/usr/bin/docker")
        .env("DOCKER_BUILDKIT", "1")
        .args([
            "build",
            "--progress",
            "plain",
            "--cache-from",
            MISSING_CACHE,
        ])
        .args(["-t", "bud-test/cache-from-reference"])
        .arg(&context)
        .output()
        .unwrap();
    assert!(reference.status.success(), "{}", stderr_of(&reference));
    import_step(&stderr_of(&reference), MISSING_CACHE);

    let root = tempfile::tempdir().unwrap();
    let out = bud_at(
        root.path(),
        &[
            "build",
            "--progress",
            "plain",
            "--cache-from",
            MISSING_CACHE,
            "--cache-from",
            "type=local,src=/nonexistent/cache",
            "-t",
            "bud-test/cache-from",
            context.to_str().unwrap(),
        ],
    );
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    for what in [MISSING_CACHE, "/nonexistent/cache"] {
        let step = import_step(&text, what);
        assert!(
            step.contains("ERROR: the embedded solver does not import"),
            "{step}"
        );
    }
    docker_ok(&["image", "inspect", "bud-test/cache-from"]);
    docker_ok(&[
        "image",
        "rm",
        "bud-test/cache-from",
        "bud-test/cache-from-reference",
    ]);
}

#[test]
fn a_cache_export_the_embedded_solver_cannot_make_fails_up_front() {
    if !build_ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let context = testdata("hello");
    let context = context.to_str().unwrap();
    let out = bud_at(
        root.path(),
        &[
            "build",
            "--cache-to",
            "type=inline",
            "-o",
            "type=tar,dest=/dev/null",
            context,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stderr_of(&out);
    assert!(text.contains("--cache-to type=inline"), "{text}");
    assert!(text.contains("ignore-error=true"), "{text}");
    // Nothing ran: the refusal comes before the build.
    assert!(!text.contains("RUN echo"), "{text}");

    let out = bud_at(
        root.path(),
        &[
            "build",
            "--progress",
            "plain",
            "--cache-to",
            "type=registry,ref=127.0.0.1:5000/bud-test/cache,ignore-error=true",
            "-o",
            "type=tar,dest=/dev/null",
            context,
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("not exported"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_buildkit_daemon_exports_and_imports_caches_with_addr() {
    if !(build_ready() && require_docker()) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let context = testdata("hello");
    let context = context.to_str().unwrap();
    let tag = "bud-test/cache-inline";
    let out = bud_at(
        root.path(),
        &[
            "--addr",
            "docker://",
            "build",
            "--progress",
            "plain",
            "--cache-to",
            "type=inline",
            "-t",
            tag,
            context,
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    // The inline cache is the image config's record of the build's cache keys.
    let saved = docker(&["save", tag]);
    assert!(saved.status.success());
    let mut archive = tar::Archive::new(saved.stdout.as_slice());
    let config = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find_map(|mut entry| {
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let is_config =
                path.ends_with(".json") && !path.contains('/') && path != "manifest.json";
            is_config.then(|| {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                text
            })
        })
        .expect("a config in the saved image");
    assert!(config.contains("moby.buildkit.cache.v0"), "{config}");

    // Imported by the daemon: the step ends well for the image, badly for the missing ref,
    // and the build goes on.
    let out = bud_at(
        root.path(),
        &[
            "--addr",
            "docker://",
            "build",
            "--progress",
            "plain",
            "--cache-from",
            tag,
            "--cache-from",
            MISSING_CACHE,
            "-o",
            "type=tar,dest=/dev/null",
            context,
        ],
    );
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    let step = import_step(&text, tag);
    assert!(step.contains("DONE") && !step.contains("ERROR"), "{step}");
    import_step(&text, MISSING_CACHE);
    docker_ok(&["image", "rm", tag]);
}
