//! `--cache-from` and `--cache-to`: passed to a BuildKit daemon with `--addr`, which imports
//! and exports them; with the embedded solver written and read in BuildKit's format (local
//! OCI layouts, registries): an import that cannot be made leaves the build going on, as
//! `docker build` does with one it cannot find, and an export that cannot be made fails it
//! unless `ignore-error=true`. And the local cache's misses explained: why each step that
//! ran was not cached.

use crate::support;

use std::process::Command;

use support::*;

/// A cache reference on the test registry that nothing ever pushes.
const MISSING_CACHE: &str = "127.0.0.1:5000/bud-test/no-such-cache:never";

/// A cache on a registry that is not there: nothing listens on port 1.
const UNREACHABLE_CACHE: &str = "127.0.0.1:1/bud-test/cache:never";

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
            "--cache-from",
            UNREACHABLE_CACHE,
            "-t",
            "bud-test/cache-from",
            context.to_str().unwrap(),
        ],
    );
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    for (what, why) in [
        (MISSING_CACHE, "not found"),
        ("/nonexistent/cache", "no index.json"),
        (UNREACHABLE_CACHE, "127.0.0.1:1"),
    ] {
        let step = import_step(&text, what);
        assert!(step.contains("ERROR") && step.contains(why), "{step}");
        assert!(
            text.contains(&format!("--cache-from {what}: not imported")),
            "{text}"
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
            "type=s3,region=eu-west-1,bucket=b",
            "-o",
            "type=tar,dest=/dev/null",
            context,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stderr_of(&out);
    assert!(text.contains("--cache-to type=s3"), "{text}");
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
            "type=gha,ignore-error=true",
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

/// BuildKit passes over a cache attribute it does not take; the embedded solver refuses one
/// it would not honour, naming it, before anything runs.
#[test]
fn a_cache_attribute_the_embedded_solver_does_not_honour_is_refused_by_name() {
    if !build_ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let context = testdata("hello");
    for (flag, spec, attr) in [
        (
            "--cache-to",
            format!(
                "type=local,dest={},compression-variant=x",
                cache.path().display()
            ),
            "compression-variant",
        ),
        (
            "--cache-from",
            format!("type=local,src={},mode=max", cache.path().display()),
            "mode",
        ),
        // BuildKit 0.31's client empties a local cache of unreferenced blobs; bud does not.
        (
            "--cache-to",
            format!("type=local,dest={},reset=true", cache.path().display()),
            "reset",
        ),
    ] {
        let out = bud_at(
            root.path(),
            &[
                "build",
                "--progress",
                "plain",
                flag,
                &spec,
                "-o",
                "type=tar,dest=/dev/null",
                context.to_str().unwrap(),
            ],
        );
        let text = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains(&format!("{flag} type=local: {attr}: not supported")),
            "{text}"
        );
        assert!(!text.contains("RUN echo"), "{text}");
    }
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
}

/// A daemon passes over a cache attribute BuildKit does not take, and over a `mode` or
/// `ignore-error` it cannot read (Docker 28.5's buildx builds with `mode=maxx`); bud with
/// `--addr` refuses each by name before the build, as the embedded solver does, and refuses
/// its own extension `cache-mounts=true`, which the daemon cannot do. With
/// `ignore-error=true` such an export is left out with a warning.
#[test]
fn a_cache_attribute_the_daemon_would_pass_over_is_refused_by_name_with_addr() {
    if !(build_ready() && require_docker()) {
        return;
    }
    let Some(docker28) = require_docker28() else {
        return;
    };
    let context = testdata("hello");
    let context = context.to_str().unwrap();
    let out = docker28.build(&[
        "--cache-to",
        "type=inline,mode=maxx",
        "-o",
        "type=tar,dest=/dev/null",
        context,
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));

    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("never");
    let dir = dir.to_str().unwrap();
    let addr_build = |flag: &str, spec: &str| {
        bud_at(
            root.path(),
            &[
                "--addr",
                "docker://",
                "build",
                "--progress",
                "plain",
                flag,
                spec,
                "-o",
                "type=tar,dest=/dev/null",
                context,
            ],
        )
    };
    for (flag, spec, message) in [
        (
            "--cache-to",
            "type=inline,mode=maxx".to_owned(),
            "--cache-to type=inline: mode=maxx: not min or max".to_owned(),
        ),
        (
            "--cache-to",
            "type=inline,ignore-error=yes".to_owned(),
            "--cache-to type=inline: ignore-error=yes: not a boolean".to_owned(),
        ),
        (
            "--cache-to",
            "type=inline,mode=max".to_owned(),
            "--cache-to type=inline: mode=max: an inline cache holds".to_owned(),
        ),
        (
            "--cache-to",
            format!("type=local,dest={dir},reset=true"),
            "--cache-to type=local: reset: not supported for type=local by bud with --addr \
             (it takes tag, mode, ignore-error, dest, compression"
                .to_owned(),
        ),
        (
            "--cache-to",
            "type=registry,ref=127.0.0.1:5000/bud-test/h-cacheattrs:c,cache-mounts=true".to_owned(),
            "--cache-to type=registry: cache-mounts=true: bud's own extension, which a BuildKit \
             daemon cannot do"
                .to_owned(),
        ),
        (
            "--cache-from",
            format!("type=local,src={dir},mode=max"),
            "--cache-from type=local: mode: not supported for type=local by bud with --addr"
                .to_owned(),
        ),
    ] {
        let out = addr_build(flag, &spec);
        let text = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{spec}: {text}");
        assert!(text.contains(&message), "{spec}: {text}");
        assert!(
            !text.contains("RUN echo"),
            "refused before the build: {text}"
        );
    }
    assert!(!std::path::Path::new(dir).exists());

    let out = addr_build("--cache-to", "type=inline,ignore-error=true,mode=maxx");
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(
            "--cache-to type=inline: not exported (ignore-error=true): mode=maxx: not min or max"
        ),
        "{text}"
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
    remove_images(&[tag]);
}

fn require_registry() -> bool {
    require(
        "the open registry at 127.0.0.1:5000",
        std::net::TcpStream::connect(OPEN_REGISTRY).is_ok(),
    )
}

/// The build steps (`[stage n/m] …`) plain progress shows, each with whether it says
/// CACHED.
fn steps(progress: &str) -> Vec<(String, bool)> {
    let mut names: Vec<(String, String)> = Vec::new();
    for line in progress.lines() {
        let Some((number, rest)) = line.split_once(' ') else {
            continue;
        };
        if number.starts_with('#')
            && rest.starts_with('[')
            && !rest.starts_with("[internal]")
            && !rest.contains(" FROM ")
            && !names.iter().any(|(n, _)| n == number)
        {
            names.push((number.to_string(), rest.to_string()));
        }
    }
    names
        .into_iter()
        .map(|(number, name)| {
            let cached = progress
                .lines()
                .any(|l| l == format!("{number} CACHED").as_str());
            (name, cached)
        })
        .collect()
}

/// Builds `case` on a fresh state root with `args`, writing the image ID to `id_file`.
fn build_case(root: &std::path::Path, case: &str, args: &[&str]) -> (String, String) {
    let context = testdata(case);
    let id_file = root.join("iid");
    let mut all = vec!["build", "--progress", "plain"];
    all.extend_from_slice(args);
    let id_arg = id_file.to_str().unwrap().to_string();
    all.extend_from_slice(&["--iidfile", &id_arg, "-o", "type=oci,dest=/dev/null"]);
    let context = context.to_str().unwrap().to_string();
    all.push(&context);
    let out = bud_at(root, &all);
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    (std::fs::read_to_string(&id_file).unwrap(), text)
}

#[test]
fn a_local_cache_makes_every_step_cached_on_an_empty_state_root() {
    if !build_ready() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    for (mode, builder_step_travels) in [("min", false), ("max", true)] {
        let dest = cache.path().join(mode);
        let dest = dest.to_str().unwrap();
        let first = tempfile::tempdir().unwrap();
        let (id, text) = build_case(
            first.path(),
            "cache-export",
            &[
                "--cache-to",
                &format!("type=local,dest={dest},mode={mode},tag=t1"),
            ],
        );
        assert!(
            text.contains("exporting cache to client directory"),
            "{text}"
        );
        let index = std::fs::read_to_string(format!("{dest}/index.json")).unwrap();
        assert!(
            index.contains(r#""org.opencontainers.image.ref.name":"t1""#),
            "{index}"
        );

        let empty = tempfile::tempdir().unwrap();
        let (again, text) = build_case(
            empty.path(),
            "cache-export",
            &["--cache-from", &format!("type=local,src={dest},tag=t1")],
        );
        assert_eq!(again, id, "the same image from the cache\n{text}");
        let steps = steps(&text);
        assert_eq!(steps.len(), 4, "{text}");
        for (name, cached) in steps {
            // The builder stage's RUN is not in the image: only mode=max takes it along.
            let expected = builder_step_travels || !name.starts_with("[build ");
            assert_eq!(cached, expected, "{mode}: {name}\n{text}");
        }
    }
}

/// The layers of the cache manifest tagged `tag` in the local cache at `dest`: each blob's
/// digest and media type, decompressed and checked against its `containerd.io/uncompressed`
/// annotation, which is returned.
fn cache_layers(dest: &std::path::Path, tag: &str) -> Vec<(String, String, u64)> {
    use std::io::Read as _;
    let read = |digest: &str| std::fs::read(dest.join("blobs/sha256").join(&digest[7..])).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .expect("the tag in index.json");
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(entry["digest"].as_str().unwrap())).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            let digest = layer["digest"].as_str().unwrap();
            let media_type = layer["mediaType"].as_str().unwrap();
            let blob = read(digest);
            let mut tar = Vec::new();
            if media_type.ends_with("+zstd") {
                tar = zstd::decode_all(&blob[..]).unwrap();
            } else {
                assert!(media_type.ends_with("gzip"), "{media_type}");
                flate2::read::MultiGzDecoder::new(&blob[..])
                    .read_to_end(&mut tar)
                    .unwrap();
            }
            let diff_id = layer["annotations"]["containerd.io/uncompressed"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(
                format!(
                    "sha256:{}",
                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&tar))
                ),
                diff_id
            );
            (digest.to_owned(), diff_id, blob.len() as u64)
        })
        .collect()
}

/// `--cache-to …,compression-level=N`: the same layers in other blobs (each one compressed
/// once per level), which an empty state root imports like any other.
#[test]
fn a_cache_is_exported_at_the_compression_level_asked_for() {
    if !build_ready() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let dest = cache.path().to_str().unwrap();
    let first = tempfile::tempdir().unwrap();
    let mut exported = Vec::new();
    for (tag, attrs) in [
        ("default", ""),
        ("stored", ",compression-level=0"),
        (
            "zstd-best",
            ",compression=zstd,compression-level=19,force-compression=true",
        ),
    ] {
        build_case(
            first.path(),
            "cache-export",
            &[
                "--cache-to",
                &format!("type=local,dest={dest},tag={tag}{attrs}"),
            ],
        );
        exported.push(cache_layers(cache.path(), tag));
    }
    let [default, stored, zstd_best] = &exported[..] else {
        unreachable!()
    };
    let diff_ids = |layers: &[(String, String, u64)]| -> Vec<String> {
        layers.iter().map(|l| l.1.clone()).collect()
    };
    assert_eq!(diff_ids(default), diff_ids(stored));
    assert_eq!(diff_ids(default), diff_ids(zstd_best));
    for (a, b) in default.iter().zip(stored) {
        assert_ne!(a.0, b.0, "level 0 is another blob of {}", a.1);
        assert!(
            b.2 > a.2,
            "level 0 stores: {} is not larger than {}",
            b.2,
            a.2
        );
    }

    let empty = tempfile::tempdir().unwrap();
    let (_, text) = build_case(
        empty.path(),
        "cache-export",
        &["--cache-from", &format!("type=local,src={dest},tag=stored")],
    );
    let steps = steps(&text);
    assert!(
        steps
            .iter()
            .any(|(name, cached)| name.contains("RUN cat") && *cached),
        "{text}"
    );
}

#[test]
fn a_registry_cache_makes_every_step_cached_on_an_empty_state_root() {
    if !(build_ready() && require_registry()) {
        return;
    }
    for (i, shape) in [
        "",
        ",oci-mediatypes=false",
        ",image-manifest=false,compression=zstd",
    ]
    .iter()
    .enumerate()
    {
        let reference = format!("{OPEN_REGISTRY}/bud-test/cache-roundtrip:shape{i}");
        let first = tempfile::tempdir().unwrap();
        let (id, _) = build_case(
            first.path(),
            "cache-export",
            &[
                "--cache-to",
                &format!("type=registry,ref={reference},mode=max{shape}"),
            ],
        );
        let empty = tempfile::tempdir().unwrap();
        let (again, text) = build_case(
            empty.path(),
            "cache-export",
            &["--cache-from", &format!("type=registry,ref={reference}")],
        );
        assert_eq!(again, id, "{shape}: the same image from the cache\n{text}");
        let steps = steps(&text);
        assert_eq!(steps.len(), 4, "{text}");
        assert!(
            steps.iter().all(|(_, cached)| *cached),
            "{shape}: {steps:?}\n{text}"
        );
    }
}

#[test]
fn a_damaged_cache_is_ignored_with_a_warning_and_the_steps_run() {
    if !build_ready() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let dest = cache.path().join("c");
    let dest_text = dest.to_str().unwrap();
    let first = tempfile::tempdir().unwrap();
    let (id, _) = build_case(
        first.path(),
        "cache-export",
        &[
            "--cache-to",
            &format!("type=local,dest={dest_text},mode=max"),
        ],
    );
    let blobs = dest.join("blobs/sha256");
    let manifest_digest = {
        let index = std::fs::read_to_string(dest.join("index.json")).unwrap();
        let at = index.find("sha256:").unwrap();
        index[at + 7..at + 71].to_string()
    };
    let manifest = std::fs::read_to_string(blobs.join(&manifest_digest)).unwrap();

    // A layer blob whose bytes do not match its digest: the step that needs it runs.
    let layer = {
        let at = manifest.rfind("tar+gzip\",\"digest\":\"sha256:").unwrap();
        let start = at + "tar+gzip\",\"digest\":\"sha256:".len();
        manifest[start..start + 64].to_string()
    };
    let original = std::fs::read(blobs.join(&layer)).unwrap();
    std::fs::write(blobs.join(&layer), b"not the layer").unwrap();
    let empty = tempfile::tempdir().unwrap();
    let (again, text) = build_case(
        empty.path(),
        "cache-export",
        &["--cache-from", &format!("type=local,src={dest_text}")],
    );
    assert_eq!(again.len(), id.len(), "{text}");
    assert!(text.contains("could not be brought in"), "{text}");
    assert!(text.contains("sha256:"), "{text}");
    assert!(!steps(&text).iter().all(|(_, cached)| *cached), "{text}");
    std::fs::write(blobs.join(&layer), original).unwrap();

    // A manifest cut short, then one that is not a cache: not imported, nothing cached.
    for damaged in [&manifest.as_bytes()[..manifest.len() / 2], b"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:0000000000000000000000000000000000000000000000000000000000000000\",\"size\":2},\"layers\":[]}".as_slice()] {
        std::fs::write(blobs.join(&manifest_digest), damaged).unwrap();
        let empty = tempfile::tempdir().unwrap();
        let (_, text) = build_case(
            empty.path(),
            "cache-export",
            &["--cache-from", &format!("type=local,src={dest_text}")],
        );
        let step = import_step(&text, dest_text);
        assert!(step.contains("ERROR"), "{step}");
        assert!(text.contains("not imported"), "{text}");
        assert!(steps(&text).iter().all(|(_, cached)| !cached), "{text}");
    }
}

#[test]
fn a_cache_export_that_fails_fails_the_build_unless_ignore_error() {
    if !build_ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let unreachable = "type=registry,ref=127.0.0.1:1/bud-test/cache:x";
    let context = testdata("hello");
    let context = context.to_str().unwrap();
    let out = bud_at(
        root.path(),
        &[
            "build",
            "--progress",
            "plain",
            "--cache-to",
            unreachable,
            "-o",
            "type=tar,dest=/dev/null",
            context,
        ],
    );
    let text = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("exporting the cache to 127.0.0.1:1/bud-test/cache:x"),
        "{text}"
    );
    let out = bud_at(
        root.path(),
        &[
            "build",
            "--progress",
            "plain",
            "--cache-to",
            &format!("{unreachable},ignore-error=true"),
            "-o",
            "type=tar,dest=/dev/null",
            context,
        ],
    );
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("not exported (ignore-error=true)"), "{text}");
}

#[test]
fn an_inline_cache_travels_in_the_pushed_image() {
    if !(build_ready() && require_registry()) {
        return;
    }
    let image = format!("{OPEN_REGISTRY}/bud-test/cache-inline");
    let first = tempfile::tempdir().unwrap();
    let push = |tag: &str| format!("type=image,name={image}:{tag},push=true");
    let (id, text) = build_case(
        first.path(),
        "cache-export",
        &[
            "--provenance=false",
            "--cache-to",
            "type=inline",
            "-o",
            &push("first"),
        ],
    );
    // No step of its own: the cache is in the image config.
    assert!(!text.contains("exporting cache"), "{text}");

    // A plain image reference imports the image's inline cache; with the inline cache
    // written again, the image is the very same.
    let empty = tempfile::tempdir().unwrap();
    let (again, text) = build_case(
        empty.path(),
        "cache-export",
        &[
            "--cache-from",
            &format!("{image}:first"),
            "--cache-to",
            "type=inline",
            "-o",
            &push("second"),
        ],
    );
    assert_eq!(again, id, "{text}");
    let import = import_step(&text, &format!("{image}:first"));
    assert!(import.contains("DONE"), "{import}");
    for (name, cached) in steps(&text) {
        // Inline caches are min mode: the builder stage's step is not in the image.
        assert_eq!(cached, !name.starts_with("[build "), "{name}\n{text}");
    }
}

/// Docker's BuildKit and bud read each other's caches, but hit none of each other's
/// records: BuildKit's record digests are its own op digests (the JSON of its Go op
/// structures, its image and content-hash keys), bud's the digests of bud's cache keys.
/// The import succeeds and the build goes on, every step run.
#[test]
fn a_docker_inline_cache_is_read_but_its_records_are_buildkit_keys() {
    if !(build_ready() && require_registry() && require_docker()) {
        return;
    }
    let image = format!("{OPEN_REGISTRY}/bud-test/cache-inline-docker:latest");
    let context = testdata("cache-export");
    let built = Command::new("/usr/bin/docker")
        .env("DOCKER_BUILDKIT", "1")
        .args([
            "build",
            "--build-arg",
            "BUILDKIT_INLINE_CACHE=1",
            "-t",
            &image,
        ])
        .arg(&context)
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", stderr_of(&built));
    docker_ok(&["push", &image]);
    let empty = tempfile::tempdir().unwrap();
    let (_, text) = build_case(empty.path(), "cache-export", &["--cache-from", &image]);
    let import = import_step(&text, &image);
    assert!(
        import.contains("DONE") && !import.contains("ERROR"),
        "{import}"
    );
    assert!(!text.contains("not imported"), "{text}");
    remove_images(&[&image]);
}

/// Reads a file of a `-o type=local` output.
fn output_file(dir: &std::path::Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .trim()
        .to_string()
}

#[test]
fn cache_mounts_travel_with_cache_mounts_true() {
    if !build_ready() {
        return;
    }
    let context = testdata("cache-mount-travels");
    let context = context.to_str().unwrap();
    let cache = tempfile::tempdir().unwrap();
    for (travels, runs_seen) in [(true, "2"), (false, "1")] {
        let dest = cache.path().join(format!("travels-{travels}"));
        let dest = dest.to_str().unwrap();
        let first = tempfile::tempdir().unwrap();
        let out = first.path().join("out");
        let built = bud_at(
            first.path(),
            &[
                "build",
                "--cache-to",
                &format!("type=local,dest={dest},cache-mounts={travels}"),
                "-o",
                &format!("type=local,dest={}", out.display()),
                context,
            ],
        );
        assert!(built.status.success(), "{}", stderr_of(&built));
        assert_eq!(output_file(&out, "runs-seen"), "1");

        // The steps run again (--no-cache) on an empty state root: with the mounts'
        // contents brought in, they find the first build's runs.
        let empty = tempfile::tempdir().unwrap();
        let out = empty.path().join("out");
        let built = bud_at(
            empty.path(),
            &[
                "build",
                "--no-cache",
                "--cache-from",
                &format!("type=local,src={dest}"),
                "-o",
                &format!("type=local,dest={}", out.display()),
                context,
            ],
        );
        assert!(built.status.success(), "{}", stderr_of(&built));
        assert_eq!(
            output_file(&out, "runs-seen"),
            runs_seen,
            "travels={travels}"
        );
        assert_eq!(
            output_file(&out, "owned-seen"),
            runs_seen,
            "travels={travels}"
        );
        assert_eq!(output_file(&out, "owned-uid"), "1000");
    }
}

/// bud's extension stays importable by BuildKit: dockerd's reads a registry cache with cache
/// mounts (and bud's records) without an error.
#[test]
fn buildkit_reads_a_cache_with_cache_mounts() {
    if !(build_ready() && require_registry() && require_docker()) {
        return;
    }
    let reference = format!("{OPEN_REGISTRY}/bud-test/cache-mounts:latest");
    let first = tempfile::tempdir().unwrap();
    build_case(
        first.path(),
        "cache-mount-travels",
        &[
            "--cache-to",
            &format!("type=registry,ref={reference},mode=max,cache-mounts=true"),
        ],
    );
    let root = tempfile::tempdir().unwrap();
    let context = testdata("cache-mount-travels");
    let out = bud_at(
        root.path(),
        &[
            "--addr",
            "docker://",
            "build",
            "--progress",
            "plain",
            "--cache-from",
            &format!("type=registry,ref={reference}"),
            "-o",
            "type=tar,dest=/dev/null",
            context.to_str().unwrap(),
        ],
    );
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    let import = import_step(&text, &reference);
    assert!(
        import.contains("DONE") && !import.contains("ERROR"),
        "{import}"
    );
    if let Some(docker28) = require_docker28() {
        let out = docker28.build(&[
            "--progress",
            "plain",
            "--cache-from",
            &format!("type=registry,ref={reference}"),
            "-o",
            "type=tar,dest=/dev/null",
            context.to_str().unwrap(),
        ]);
        let text = stderr_of(&out);
        assert!(out.status.success(), "{text}");
        let import = import_step(&text, &reference);
        assert!(
            import.contains("DONE") && !import.contains("ERROR"),
            "{import}"
        );
    }
}

/// `--cache-from` of an image index (several platforms, or an image with attestations, as
/// Docker 28 pushes them): the inline cache of the image for the build's platform.
/// Stores an image index of `entries` in the OCI layout at `layout` and names it `latest`
/// in its `index.json`, as a cache reference reads it.
fn name_index_in_layout(layout: &std::path::Path, entries: &[serde_json::Value]) {
    use sha2::Digest as _;
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .unwrap();
    let digest = hex::encode(sha2::Sha256::digest(&index));
    std::fs::write(layout.join("blobs/sha256").join(&digest), &index).unwrap();
    let named = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{digest}"),
            "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    std::fs::write(layout.join("index.json"), named.to_string()).unwrap();
}

#[test]
fn an_inline_cache_is_found_through_an_image_index() {
    if !build_ready() {
        return;
    }
    let first = tempfile::tempdir().unwrap();
    let archive = first.path().join("image.tar");
    let id_file = first.path().join("iid");
    let context = testdata("cache-export");
    let out = bud_at(
        first.path(),
        &[
            "build",
            "--provenance=false",
            "--cache-to",
            "type=inline",
            "--iidfile",
            id_file.to_str().unwrap(),
            "-o",
            &format!("type=oci,dest={}", archive.display()),
            context.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let layout = first.path().join("layout");
    tar::Archive::new(std::fs::File::open(&archive).unwrap())
        .unpack(&layout)
        .unwrap();
    // The image's manifest behind an index with an attestation-like entry first.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut image = index["manifests"][0].clone();
    image["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
    image.as_object_mut().unwrap().remove("annotations");
    let mut attestation = image.clone();
    attestation["platform"] = serde_json::json!({"os": "unknown", "architecture": "unknown"});
    name_index_in_layout(&layout, &[attestation, image]);

    let empty = tempfile::tempdir().unwrap();
    let src = format!("type=local,src={}", layout.display());
    let (_, text) = build_case(empty.path(), "cache-export", &["--cache-from", &src]);
    let import = import_step(&text, layout.to_str().unwrap());
    assert!(
        import.contains("DONE") && !import.contains("ERROR"),
        "{import}\n{text}"
    );
    for (name, cached) in steps(&text) {
        assert_eq!(cached, !name.starts_with("[build "), "{name}\n{text}");
    }
}

/// An imported layer keeps the time the cache recorded for it, so that the image made from
/// the cache is the image the cache was made with: a cache whose times are rewritten to
/// 2001 gives an image created in 2001.
#[test]
fn imported_results_keep_the_times_the_cache_recorded() {
    if !build_ready() {
        return;
    }
    use sha2::Digest as _;
    const THEN: &str = "2001-02-03T04:05:06Z";
    let cache = tempfile::tempdir().unwrap();
    let dest = cache.path().join("c");
    let first = tempfile::tempdir().unwrap();
    build_case(
        first.path(),
        "hello",
        &["--cache-to", &format!("type=local,dest={}", dest.display())],
    );
    let blobs = dest.join("blobs/sha256");
    let read = |digest: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(blobs.join(&digest[7..])).unwrap()).unwrap()
    };
    let write = |value: &serde_json::Value| -> (String, usize) {
        let bytes = serde_json::to_vec(value).unwrap();
        let hex = hex::encode(sha2::Sha256::digest(&bytes));
        std::fs::write(blobs.join(&hex), &bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("index.json")).unwrap()).unwrap();
    let mut manifest = read(index["manifests"][0]["digest"].as_str().unwrap());
    let mut config = read(manifest["config"]["digest"].as_str().unwrap());
    for layer in config["layers"].as_array_mut().unwrap() {
        layer["annotations"]["createdAt"] = THEN.into();
    }
    for record in config["records"].as_array_mut().unwrap() {
        let results = record.get_mut("layers").and_then(|r| r.as_array_mut());
        for result in results.into_iter().flatten() {
            result["createdAt"] = THEN.into();
        }
    }
    for layer in manifest["layers"].as_array_mut().unwrap() {
        layer["annotations"]["buildkit/createdat"] = THEN.into();
    }
    let (digest, size) = write(&config);
    manifest["config"]["digest"] = digest.into();
    manifest["config"]["size"] = size.into();
    let (digest, size) = write(&manifest);
    index["manifests"][0]["digest"] = digest.into();
    index["manifests"][0]["size"] = size.into();
    std::fs::write(dest.join("index.json"), index.to_string()).unwrap();

    let empty = tempfile::tempdir().unwrap();
    let archive = empty.path().join("image.tar");
    let out = bud_at(
        empty.path(),
        &[
            "build",
            "--progress",
            "plain",
            "--cache-from",
            &format!("type=local,src={}", dest.display()),
            "-o",
            &format!("type=docker,dest={}", archive.display()),
            testdata("hello").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let mut tar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    let image = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find_map(|mut entry| {
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let is_config = path.ends_with(".json") && path != "manifest.json";
            is_config.then(|| {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                serde_json::from_str::<serde_json::Value>(&text).unwrap()
            })
        })
        .expect("an image config in the archive");
    assert_eq!(
        image["created"],
        "2001-02-03T04:05:06.000000000Z",
        "{image}\n{}",
        stderr_of(&out)
    );
}

/// `--no-cache-filter STAGE` runs that stage's steps again, and what uses their new results
/// with them (as BuildKit's content-keyed copies do), and takes every other step from the
/// cache; the next build without the flag keeps the new results. Embedded and on dockerd's
/// BuildKit (the graph marks the stage's ops).
#[test]
fn no_cache_filter_runs_the_named_stages_again_and_what_uses_them() {
    if !(build_ready() && require_docker()) {
        return;
    }
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM bud-test/busybox:latest AS a\nRUN echo a; cat /proc/sys/kernel/random/uuid > /t\n\
         FROM bud-test/busybox:latest AS b\nRUN echo b; cat /proc/sys/kernel/random/uuid > /t\n\
         FROM bud-test/busybox:latest\nCOPY --from=a /t /a\nCOPY --from=b /t /b\n\
         RUN cat /a /b > /both\n",
    )
    .unwrap();
    for solver in [&[][..], &["--addr", "docker://"]] {
        let root = tempfile::tempdir().unwrap();
        let build = |extra: &[&str]| {
            let dest = tempfile::tempdir().unwrap();
            let output = format!("type=local,dest={}", dest.path().display());
            let mut args = solver.to_vec();
            args.extend(["build", "--progress", "plain"]);
            args.extend_from_slice(extra);
            args.extend(["-o", &output, context.path().to_str().unwrap()]);
            let out = bud_at(root.path(), &args);
            assert!(out.status.success(), "{solver:?}: {}", stderr_of(&out));
            let both = output_file(dest.path(), "both");
            let files = (output_file(dest.path(), "a"), output_file(dest.path(), "b"));
            assert_eq!(both, format!("{}\n{}", files.0, files.1), "{solver:?}");
            files
        };
        let (a1, b1) = build(&[]);
        assert_eq!(build(&[]), (a1.clone(), b1.clone()), "{solver:?}: cached");
        let (a2, b2) = build(&["--no-cache-filter", "a"]);
        assert!(a2 != a1 && b2 == b1, "{solver:?}: {a1} {a2} {b1} {b2}");
        assert_eq!(build(&[]), (a2.clone(), b2.clone()), "{solver:?}: kept");
        let (a3, b3) = build(&["--no-cache-filter", "a,b"]);
        assert!(a3 != a2 && b3 != b2, "{solver:?}");
    }
}

/// What plain progress says of each step that ran: (its name, the reason after `CACHE
/// MISS:`), in the order the steps ran.
fn reasons(progress: &str) -> Vec<(String, String)> {
    let mut names: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    let mut found = Vec::new();
    for line in progress.lines() {
        let Some((number, rest)) = line.split_once(' ') else {
            continue;
        };
        if !number.starts_with('#') {
            continue;
        }
        if let Some(reason) = rest.strip_prefix("CACHE MISS: ") {
            let name = names.get(number).copied().unwrap_or_default();
            found.push((name.to_string(), reason.to_string()));
        } else {
            names.entry(number).or_insert(rest);
        }
    }
    found
}

/// One build of the explanation test's context, with plain progress and `--explain`.
fn explained_build(root: &std::path::Path, context: &std::path::Path, args: &[&str]) -> String {
    let out_dir = root.join("out");
    let mut all = vec!["build", "--progress", "plain", "--explain"];
    all.extend_from_slice(args);
    let out_arg = format!("type=local,dest={}", out_dir.display());
    all.extend_from_slice(&["-o", &out_arg, context.to_str().unwrap()]);
    let out = bud_at(root, &all);
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    text
}

/// The base image of the explanation test, built by bud into Docker with `marker` in its
/// layer, so that a new marker gives it a new digest.
fn build_why_base(root: &std::path::Path, marker: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM bud-test/busybox:latest\nRUN echo {marker} > /base\n"),
    )
    .unwrap();
    let out = bud_at(
        root,
        &[
            "build",
            "--progress",
            "plain",
            "-t",
            WHY_BASE,
            dir.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
}

const WHY_BASE: &str = "bud-test/why-base:latest";

#[test]
fn each_step_that_ran_says_why() {
    if !build_ready() || !require_docker() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let base_root = tempfile::tempdir().unwrap();
    build_why_base(base_root.path(), "one");
    let ctx = tempfile::tempdir().unwrap();
    let context = ctx.path();
    std::fs::create_dir(context.join("app")).unwrap();
    std::fs::write(context.join("app/main.txt"), "one\n").unwrap();
    std::fs::write(context.join("app/other.txt"), "one\n").unwrap();
    std::fs::write(context.join("unread.txt"), "one\n").unwrap();
    let dockerfile = format!(
        "FROM {WHY_BASE} AS base\nARG VERSION=1\nARG API_TOKEN=none\nCOPY app /app\n\
         RUN echo $VERSION > /v\nRUN cat /app/main.txt\n"
    );
    std::fs::write(context.join("Dockerfile"), &dockerfile).unwrap();
    let copy = "[2/4] COPY app /app".to_string();
    let run_v1 = "[3/4] RUN echo 1 > /v".to_string();
    let run_v2 = "[3/4] RUN echo 2 > /v".to_string();
    let cat = "[4/4] RUN cat /app/main.txt".to_string();
    let all = |names: &[&String], reason: &str| -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (n.to_string(), reason.to_string()))
            .collect()
    };

    let text = explained_build(root.path(), context, &[]);
    assert_eq!(
        reasons(&text),
        all(&[&copy, &run_v1, &cat], "new step"),
        "{text}"
    );

    let text = explained_build(root.path(), context, &[]);
    assert_eq!(reasons(&text), [], "{text}");
    assert!(
        text.ends_with("Why steps ran: none ran (3 from the cache)\n"),
        "{text}"
    );

    // A file no step reads changes nothing; one the COPY reads is named.
    std::fs::write(context.join("unread.txt"), "two\n").unwrap();
    std::fs::write(context.join("app/main.txt"), "two\n").unwrap();
    let text = explained_build(root.path(), context, &[]);
    let expected = vec![
        (
            copy.clone(),
            "context file app/main.txt changed".to_string(),
        ),
        (run_v1.clone(), format!("earlier step {copy} ran again")),
        (cat.clone(), format!("earlier step {run_v1} ran again")),
    ];
    assert_eq!(reasons(&text), expected, "{text}");
    // The same at the end with --explain.
    let summary: String = expected
        .iter()
        .map(|(name, reason)| format!(" => {name}: {reason}\n"))
        .collect();
    assert!(
        text.ends_with(&format!("Why steps ran:\n{summary}")),
        "{text}"
    );

    let text = explained_build(root.path(), context, &["--build-arg", "VERSION=2"]);
    let changed = "build arg VERSION changed (1 → 2)";
    assert_eq!(reasons(&text), all(&[&run_v2, &cat], changed), "{text}");

    // A secret-looking build arg is named, its value never shown.
    let secret = [
        "--build-arg",
        "VERSION=2",
        "--build-arg",
        "API_TOKEN=hunter2-x",
    ];
    let text = explained_build(root.path(), context, &secret);
    let changed = "build arg API_TOKEN changed";
    assert_eq!(reasons(&text), all(&[&run_v2, &cat], changed), "{text}");
    assert!(!text.contains("hunter2"), "{text}");

    let mut no_cache = secret.to_vec();
    no_cache.push("--no-cache");
    let text = explained_build(root.path(), context, &no_cache);
    let expected = all(&[&copy, &run_v2, &cat], "--no-cache");
    assert_eq!(reasons(&text), expected, "{text}");
    let mut filtered = secret.to_vec();
    filtered.extend(["--no-cache-filter", "base"]);
    let text = explained_build(root.path(), context, &filtered);
    let expected = all(&[&copy, &run_v2, &cat], "--no-cache-filter");
    assert_eq!(reasons(&text), expected, "{text}");

    build_why_base(base_root.path(), "two");
    let text = explained_build(root.path(), context, &secret);
    let found = reasons(&text);
    assert_eq!(found.len(), 3, "{text}");
    assert_eq!(found[0].0, copy);
    assert!(
        found[0].1.starts_with("base image ")
            && found[0]
                .1
                .ends_with("bud-test/why-base:latest has a new digest"),
        "{text}"
    );

    let pruned = bud_at(root.path(), &["prune", "-a", "-f"]);
    assert!(pruned.status.success(), "{}", stderr_of(&pruned));
    let text = explained_build(root.path(), context, &secret);
    let expected = all(&[&copy, &run_v2, &cat], "its cache was pruned");
    assert_eq!(reasons(&text), expected, "{text}");

    // A new instruction is a new step; rawjson carries the reason as a field of the
    // vertex, each line still one JSON object.
    std::fs::write(
        context.join("Dockerfile"),
        format!("{dockerfile}RUN echo added\n"),
    )
    .unwrap();
    let out_arg = format!("type=local,dest={}", root.path().join("out").display());
    let mut args = vec!["build", "--progress", "rawjson"];
    args.extend_from_slice(&secret);
    args.extend(["-o", &out_arg, context.to_str().unwrap()]);
    let out = bud_at(root.path(), &args);
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    let explained: Vec<(String, String)> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .flat_map(|v| v["vertexes"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| Some((v["name"].as_str()?.into(), v["reason"].as_str()?.into())))
        .collect();
    assert_eq!(
        explained,
        [("[5/5] RUN echo added".to_string(), "new step".to_string())],
        "{text}"
    );
    remove_images(&[WHY_BASE]);
}

/// BuildKit does not report why a step ran: `--explain` with `--addr` says so up front
/// rather than list nothing as if every step had been cached.
#[test]
fn explain_with_addr_says_buildkit_does_not_report_reasons() {
    if !(build_ready() && require_docker()) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let out_dir = root.path().join("out");
    let out_arg = format!("type=local,dest={}", out_dir.display());
    let context = testdata("hello");
    let out = bud_at(
        root.path(),
        &[
            "--addr",
            "docker://",
            "build",
            "--progress",
            "plain",
            "--explain",
            "-o",
            &out_arg,
            context.to_str().unwrap(),
        ],
    );
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines().any(|l| l
            == "WARNING: --explain: the build runs on BuildKit, which does not report why a \
                step was not cached: no reasons will be listed"),
        "{text}"
    );
    assert!(!text.contains("Why steps ran"), "{text}");
    assert!(!text.contains("CACHE MISS"), "{text}");
}

/// An inline cache read through an index of several platforms' images is the one of the
/// image for the platform the build targets: an arm64 build hits the arm64 image's records,
/// an amd64 one the amd64 image's.
#[test]
fn an_inline_cache_in_a_multi_platform_index_is_read_for_the_build_s_platform() {
    if !(build_ready()
        && require(
            "QEMU for aarch64 in binfmt_misc",
            std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists(),
        ))
    {
        return;
    }
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM 127.0.0.1:5000/bud-test/busybox:latest\nRUN uname -m > /machine\n",
    )
    .unwrap();
    let ctx = context.path().to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let mut entries = Vec::new();
    for (platform, arch) in [("linux/amd64", "amd64"), ("linux/arm64", "arm64")] {
        let archive = work.path().join(format!("{arch}.tar"));
        let root = tempfile::tempdir().unwrap();
        let out = bud_at(
            root.path(),
            &[
                "build",
                "--provenance=false",
                "--platform",
                platform,
                "--cache-to",
                "type=inline",
                "-o",
                &format!("type=oci,dest={}", archive.display()),
                ctx,
            ],
        );
        assert!(out.status.success(), "{}", stderr_of(&out));
        let unpacked = work.path().join(arch);
        tar::Archive::new(std::fs::File::open(&archive).unwrap())
            .unpack(&unpacked)
            .unwrap();
        tar::Archive::new(std::fs::File::open(&archive).unwrap())
            .unpack(&layout)
            .unwrap();
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(unpacked.join("index.json")).unwrap()).unwrap();
        let mut image = index["manifests"][0].clone();
        image["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
        image.as_object_mut().unwrap().remove("annotations");
        entries.push(image);
    }
    name_index_in_layout(&layout, &entries);

    let src = format!("type=local,src={}", layout.display());
    for platform in ["linux/arm64", "linux/amd64"] {
        let empty = tempfile::tempdir().unwrap();
        let out = bud_at(
            empty.path(),
            &[
                "build",
                "--progress",
                "plain",
                "--platform",
                platform,
                "--cache-from",
                &src,
                "-o",
                "type=tar,dest=/dev/null",
                ctx,
            ],
        );
        let text = stderr_of(&out);
        assert!(out.status.success(), "{text}");
        let ran = steps(&text);
        assert!(
            !ran.is_empty() && ran.iter().all(|(_, cached)| *cached),
            "{platform}: {ran:?}\n{text}"
        );
    }
}

/// A layer a registry cache brought in is not compressed and uploaded again when the image
/// is pushed to the same registry: the push mounts the cache's blob, as a pull's layers are
/// mounted.
#[test]
fn a_push_mounts_the_layers_a_registry_cache_brought_in() {
    if !(build_ready() && require_registry()) {
        return;
    }
    let cache = format!("{OPEN_REGISTRY}/bud-test/cache-mount-source:latest");
    let first = tempfile::tempdir().unwrap();
    build_case(
        first.path(),
        "cache-export",
        &["--cache-to", &format!("type=registry,ref={cache},mode=max")],
    );
    let cached: Vec<String> =
        registry_json("bud-test/cache-mount-source/manifests/latest")["layers"]
            .as_array()
            .expect("the cache manifest's layers")
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect();

    let empty = tempfile::tempdir().unwrap();
    // A repository of its own: nothing of the image is in it yet.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let repository = format!("bud-test/cache-mount-target-{nanos}");
    let image = format!("{OPEN_REGISTRY}/{repository}:latest");
    let context = testdata("cache-export");
    let out = bud_at(
        empty.path(),
        &[
            "build",
            "--progress",
            "plain",
            "--cache-from",
            &format!("type=registry,ref={cache}"),
            "--push",
            "-t",
            &image,
            context.to_str().unwrap(),
        ],
    );
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(steps(&text).iter().all(|(_, cached)| *cached), "{text}");
    let mut pushed = registry_json(&format!("{repository}/manifests/latest"));
    // With its provenance attached, the image is an index: its manifest is the one for a
    // real platform.
    if let Some(manifests) = pushed["manifests"].as_array() {
        let image = manifests
            .iter()
            .find(|m| m["platform"]["architecture"] != "unknown")
            .expect("the image's manifest in the index");
        let digest = image["digest"].as_str().unwrap();
        pushed = registry_json(&format!("{repository}/manifests/{digest}"));
    }
    let config = pushed["config"]["digest"].as_str().unwrap();
    let diff_ids =
        registry_json(&format!("{repository}/blobs/{config}"))["rootfs"]["diff_ids"].clone();
    let layers = pushed["layers"].as_array().expect("the image's layers");
    // A layer uploaded shows as a status under its blob digest, or under its diff ID while
    // it is compressed on the way.
    let diff_ids = diff_ids.as_array().expect("the config's diff IDs");
    // The two COPY layers and the RUN layer on top of the base (which came from Docker)
    // were brought in from the cache.
    let from_cache: Vec<[&str; 2]> = layers
        .iter()
        .zip(diff_ids)
        .skip(layers.len() - 3)
        .map(|(layer, diff_id)| [layer["digest"].as_str().unwrap(), diff_id.as_str().unwrap()])
        .collect();
    for [digest, _] in &from_cache {
        assert!(cached.iter().any(|c| c == digest), "{pushed}\n{cached:?}");
    }
    for names in from_cache {
        for name in names {
            assert!(
                !text.lines().any(|l| l.contains(name)),
                "{name} was uploaded, not mounted:\n{text}"
            );
        }
    }
}

/// A registry cache of `testdata/cache-lazy` (mode=max) on the open registry seen through
/// `proxy`, made by a first build that also pushed its image; with the layer blobs of that
/// image (bottom first) and of the cache, and the image's manifest and ID.
struct LazyCache {
    /// The testdata case it was made from, which builds from it use too.
    case: &'static str,
    cache_ref: String,
    cache_repository: String,
    image_layers: Vec<String>,
    cache_layers: Vec<String>,
    manifest: Vec<u8>,
    image_id: String,
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("bud-test/h-lazy-{name}-{nanos}")
}

fn lazy_cache(proxy: &support::registry_proxy::RegistryProxy, name: &str) -> LazyCache {
    lazy_cache_of(proxy, name, "cache-lazy")
}

/// The registry cache (mode=max) of a build of `case`, pushed through the proxy.
fn lazy_cache_of(
    proxy: &support::registry_proxy::RegistryProxy,
    name: &str,
    case: &'static str,
) -> LazyCache {
    let base = unique(name);
    let cache_repository = format!("{base}/cache");
    let cache_ref = format!("{}/{cache_repository}:c", proxy.addr());
    let root = tempfile::tempdir().unwrap();
    let iid = root.path().join("iid");
    let context = testdata(case);
    let out = bud_at(
        root.path(),
        &[
            "build",
            "--progress",
            "plain",
            "--provenance=false",
            "--cache-to",
            &format!("type=registry,ref={cache_ref},mode=max"),
            "--push",
            "-t",
            &format!("{}/{base}/first:latest", proxy.addr()),
            "--iidfile",
            iid.to_str().unwrap(),
            context.to_str().unwrap(),
        ],
    );
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    let digests = |doc: &serde_json::Value| -> Vec<String> {
        doc["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect()
    };
    let manifest = registry_get(&format!("{base}/first/manifests/latest"));
    let image: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let cache = registry_json(&format!("{cache_repository}/manifests/c"));
    LazyCache {
        case,
        cache_ref,
        cache_repository,
        image_layers: digests(&image),
        cache_layers: digests(&cache),
        manifest,
        image_id: std::fs::read_to_string(&iid).unwrap(),
    }
}

/// Builds `testdata/cache-lazy` on an empty state root with `--cache-from` `cache` and
/// `args`; returns the progress and the layer blobs of the cache the build fetched.
fn build_from_lazy_cache(
    proxy: &support::registry_proxy::RegistryProxy,
    cache: &LazyCache,
    args: &[&str],
) -> (String, Vec<String>) {
    let root = tempfile::tempdir().unwrap();
    build_from_lazy_cache_at(root.path(), proxy, cache, args)
}

/// `build_from_lazy_cache` on the state root `root`, which the caller keeps to look into.
fn build_from_lazy_cache_at(
    root: &std::path::Path,
    proxy: &support::registry_proxy::RegistryProxy,
    cache: &LazyCache,
    args: &[&str],
) -> (String, Vec<String>) {
    let context = testdata(cache.case);
    let mut all = vec![
        "build",
        "--progress",
        "plain",
        "--provenance=false",
        "--cache-from",
    ];
    let from = format!("type=registry,ref={}", cache.cache_ref);
    all.push(&from);
    all.extend_from_slice(args);
    all.push(context.to_str().unwrap());
    proxy.clear();
    let out = bud_at(root, &all);
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    let mut fetched: Vec<String> = proxy
        .blob_gets(&cache.cache_repository)
        .into_iter()
        .filter(|blob| cache.cache_layers.contains(blob))
        .collect();
    fetched.sort();
    fetched.dedup();
    (text, fetched)
}

/// `build_from_lazy_cache` with a new `LAST`, so that only the last step runs, pushed
/// through the proxy to a new repository named after `name`, which it returns.
fn build_last_step_again(
    proxy: &support::registry_proxy::RegistryProxy,
    cache: &LazyCache,
    name: &str,
) -> (String, Vec<String>, String) {
    let target = format!("{}/{name}", unique(name));
    let (text, fetched) = build_from_lazy_cache(
        proxy,
        cache,
        &[
            "--build-arg",
            "LAST=two",
            "--push",
            "-t",
            &format!("{}/{target}:latest", proxy.addr()),
        ],
    );
    (text, fetched, target)
}

fn sorted(blobs: &[String]) -> Vec<String> {
    let mut blobs = blobs.to_vec();
    blobs.sort();
    blobs
}

#[test]
fn a_build_cached_to_its_last_step_pushed_to_the_cache_s_registry_downloads_no_layer() {
    if !(build_ready() && require_registry()) {
        return;
    }
    let proxy = support::registry_proxy::RegistryProxy::start(OPEN_REGISTRY);
    let cache = lazy_cache(&proxy, "push");
    // More layers than the image's: the `build` stage's too.
    assert!(
        cache.cache_layers.len() > cache.image_layers.len(),
        "{:?}",
        cache.cache_layers
    );
    let target = format!("{}/lazy", unique("push"));
    let (text, fetched) = build_from_lazy_cache(
        &proxy,
        &cache,
        &["--push", "-t", &format!("{}/{target}:latest", proxy.addr())],
    );
    assert!(steps(&text).iter().all(|(_, cached)| *cached), "{text}");
    assert_eq!(fetched, Vec::<String>::new(), "layers downloaded:\n{text}");
    // The layers the cache brought were mounted from the cache's repository, none uploaded.
    let requests: Vec<String> = proxy
        .requests()
        .iter()
        .map(|r| r.replace("%3A", ":").replace("%2F", "/"))
        .collect();
    for blob in &cache.image_layers[1..] {
        let mount = format!("mount={blob}");
        let from = format!("from={}", cache.cache_repository);
        assert!(
            requests
                .iter()
                .any(|r| r.starts_with("POST ") && r.contains(&mount) && r.contains(&from)),
            "{blob} not mounted: {requests:#?}"
        );
        assert!(
            !requests
                .iter()
                .any(|r| r.starts_with("PUT ") && r.contains(&format!("digest={blob}"))),
            "{blob} uploaded: {requests:#?}"
        );
    }
    // The same image as the build that made the cache (and as an import that brings every
    // layer in: a_registry_cache_makes_every_step_cached_on_an_empty_state_root).
    let pushed = registry_get(&format!("{target}/manifests/latest"));
    assert_eq!(
        String::from_utf8_lossy(&pushed),
        String::from_utf8_lossy(&cache.manifest)
    );
}

#[test]
fn a_build_whose_last_step_changed_downloads_only_the_layers_that_step_runs_on() {
    if !(build_ready() && require_registry()) {
        return;
    }
    let proxy = support::registry_proxy::RegistryProxy::start(OPEN_REGISTRY);
    let cache = lazy_cache(&proxy, "partial");
    let (text, fetched, _) = build_last_step_again(&proxy, &cache, "partial");
    let steps = steps(&text);
    assert!(
        steps
            .iter()
            .all(|(name, cached)| *cached != name.contains("> /last")),
        "{steps:?}\n{text}"
    );
    // The two COPY layers under the RUN (the base came from Docker); not the `build`
    // stage's, whose only user, the COPY, was cached.
    let under_run = &cache.image_layers[1..cache.image_layers.len() - 1];
    assert_eq!(fetched, sorted(under_run), "{text}");
}

/// A COPY from a stage the cache holds reads a file its last step made from that step's
/// layer alone, as BuildKit's lazy refs do not (they pull the stage whole): the layers below
/// are neither downloaded nor unpacked, and the copy is the one the first build made. What
/// that layer does not hold as a plain file (a file of a lower layer, one through a link, a
/// directory, one it deleted) brings the stage in whole, as before.
#[test]
fn a_copy_of_a_file_a_cached_stage_s_last_step_made_reads_only_that_layer() {
    if !(build_ready() && require_registry()) {
        return;
    }
    let proxy = support::registry_proxy::RegistryProxy::start(OPEN_REGISTRY);
    let cache = lazy_cache_of(&proxy, "top", "cache-lazy-copy");
    let target = format!("{}/top", unique("top"));
    let (text, fetched) = build_from_lazy_cache(
        &proxy,
        &cache,
        &[
            "--build-arg",
            "CHANGE=two",
            "--push",
            "-t",
            &format!("{}/{target}:latest", proxy.addr()),
        ],
    );
    let ran: Vec<String> = steps(&text)
        .into_iter()
        .filter(|(_, cached)| !cached)
        .map(|(name, _)| name)
        .collect();
    assert!(
        ran.len() == 2 && ran.iter().any(|name| name.contains("COPY --from=deps")),
        "{ran:?}\n{text}"
    );
    let pushed = registry_json(&format!("{target}/manifests/latest"));
    assert_eq!(
        pushed["layers"]
            .as_array()
            .and_then(|l| l.last())
            .and_then(|l| l["digest"].as_str()),
        cache.image_layers.last().map(String::as_str),
        "the COPY's layer differs from the first build's\n{text}"
    );

    // Each of these reads the stage brought in whole: one layer more than the above.
    let cases = [
        ("/src/deps/1", Some("one\n")),
        ("/link/file", Some("real\n")),
        ("/out", None),
    ];
    for (src, content) in cases {
        let out = tempfile::tempdir().unwrap();
        let dest = format!("type=local,dest={}", out.path().display());
        let arg = format!("SRC={src}");
        let (text, whole) = build_from_lazy_cache(
            &proxy,
            &cache,
            &[
                "--build-arg",
                "CHANGE=two",
                "--build-arg",
                &arg,
                "-o",
                &dest,
            ],
        );
        assert!(
            fetched.iter().all(|blob| whole.contains(blob)) && whole.len() == fetched.len() + 1,
            "{src}: {whole:?} against {fetched:?}\n{text}"
        );
        let got = out.path().join("got");
        match content {
            Some(content) => assert_eq!(std::fs::read_to_string(&got).unwrap(), content),
            None => assert!(got.join("deps.tar").is_file(), "{src}"),
        }
    }
    let root = tempfile::tempdir().unwrap();
    let context = testdata(cache.case);
    let from = format!("type=registry,ref={}", cache.cache_ref);
    let out = bud_at(
        root.path(),
        &[
            "build",
            "--cache-from",
            &from,
            "--build-arg",
            "SRC=/src/deps/2",
            "-o",
            "type=tar,dest=/dev/null",
            context.to_str().unwrap(),
        ],
    );
    let text = stderr_of(&out);
    assert!(
        !out.status.success() && text.contains("/src/deps/2") && text.contains("not found"),
        "{text}"
    );
}

/// Once a step runs, the steps below it will too: what they read from an imported cache is
/// brought in beside it, not after it. Here the COPY's layer is asked for while the RUN
/// above it is still running (it never ends by itself: CHANGE=hold); an interrupt then
/// stops both and leaves nothing behind.
#[test]
fn what_a_step_below_a_running_one_reads_from_a_cache_is_brought_in_beside_it() {
    if !(build_ready() && require_registry()) {
        return;
    }
    let proxy = support::registry_proxy::RegistryProxy::start(OPEN_REGISTRY);
    let cache = lazy_cache_of(&proxy, "ahead", "cache-lazy-copy");
    // The deps stage's last layer, which the COPY reads: one the image does not have.
    let (text, read) = build_from_lazy_cache(
        &proxy,
        &cache,
        &["--build-arg", "CHANGE=two", "-o", "type=tar,dest=/dev/null"],
    );
    let [top] = read.as_slice() else {
        panic!("one layer read: {read:?}\n{text}");
    };
    interrupted_while_downloading(
        &proxy,
        &cache,
        top,
        "CHANGE=hold",
        "the COPY's layer was not asked for beside the RUN",
    );
}

/// A layer is unpacked as it downloads; a download cut short on the way is made again,
/// whole, and the layer unpacked from that.
#[test]
fn a_cache_layer_whose_download_is_cut_short_is_downloaded_again() {
    if !(build_ready() && require_registry()) {
        return;
    }
    let proxy = support::registry_proxy::RegistryProxy::start(OPEN_REGISTRY);
    let cache = lazy_cache(&proxy, "cut");
    // The COPY of message.txt, under the RUN that the new LAST runs again (and reads it).
    let cut = &cache.image_layers[cache.image_layers.len() - 2];
    let size = registry_get(&format!("{}/blobs/{cut}", cache.cache_repository)).len();
    proxy.cut_next_download(cut, size / 2);
    let (text, fetched, target) = build_last_step_again(&proxy, &cache, "cut");
    assert!(fetched.contains(cut), "{fetched:?}\n{text}");
    let gets = proxy.blob_gets(&cache.cache_repository);
    assert_eq!(
        gets.iter().filter(|blob| *blob == cut).count(),
        2,
        "the cut download, then a whole one: {gets:?}\n{text}"
    );
    // The others, unpacked as they came, are not downloaded again.
    for blob in fetched.iter().filter(|blob| *blob != cut) {
        let times = gets.iter().filter(|get| *get == blob).count();
        assert_eq!(times, 1, "{blob}: {gets:?}\n{text}");
    }
    // The RUN read the layer's file: `both` holds message.txt after the artifact.
    let pushed = registry_json(&format!("{target}/manifests/latest"));
    let last = pushed["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let layer = registry_get(&format!("{target}/blobs/{last}"));
    let both = support::file_in_gzip_layer(&layer, "both").expect("/both in the RUN's layer");
    let message = std::fs::read(testdata("cache-lazy").join("message.txt")).unwrap();
    assert!(
        both.ends_with(&message),
        "{}",
        String::from_utf8_lossy(&both)
    );
}

/// An interrupt while a cache layer downloads (its registry gone silent mid-blob) stops the
/// build, and leaves no half-extracted layer in the state root.
#[test]
fn an_interrupt_during_a_cache_layer_download_leaves_nothing_behind() {
    if !(build_ready() && require_registry()) {
        return;
    }
    let proxy = support::registry_proxy::RegistryProxy::start(OPEN_REGISTRY);
    let cache = lazy_cache(&proxy, "stall");
    let stalled = &cache.image_layers[cache.image_layers.len() - 2];
    interrupted_while_downloading(
        &proxy,
        &cache,
        stalled,
        "LAST=three",
        "the build downloads the layer under its RUN",
    );
}

/// Builds `cache`'s case with `--cache-from` it and `build_arg` on an empty state root, the
/// download of `blob` stalled halfway (`expected` says why it must be asked for), then
/// interrupts the build: it stops, and leaves no work, partial blob or mount behind.
fn interrupted_while_downloading(
    proxy: &support::registry_proxy::RegistryProxy,
    cache: &LazyCache,
    blob: &str,
    build_arg: &str,
    expected: &str,
) {
    let size = registry_get(&format!("{}/blobs/{blob}", cache.cache_repository)).len();
    let heard = proxy.stall_next_download(blob, size / 2);
    let root = tempfile::tempdir().unwrap();
    let context = testdata(cache.case);
    let from = format!("type=registry,ref={}", cache.cache_ref);
    let (child, seen) = support::spawn_bud_args_until(
        root.path(),
        &[
            "--cache-from",
            &from,
            "--build-arg",
            build_arg,
            "-o",
            "type=tar,dest=/dev/null",
            context.to_str().unwrap(),
        ],
        &[],
        "importing cache manifest",
    );
    // Interrupted either way: a build left running would hold the test's output open.
    let asked = heard.recv_timeout(std::time::Duration::from_secs(120));
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = support::wait_or_kill(child, std::time::Duration::from_secs(120));
    assert!(asked.is_ok(), "{expected}: {seen}");
    assert_eq!(status.code(), Some(1));
    let leftovers = support::leftover_work(root.path());
    assert!(leftovers.is_empty(), "work in flight left: {leftovers:?}");
    // Neither the blob nor the tar being written is left half done.
    let ingests: Vec<_> = std::fs::read_dir(root.path().join("content/ingest"))
        .unwrap()
        .collect();
    assert!(ingests.is_empty(), "partial blobs left: {ingests:?}");
    let root_text = root.path().to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&root_text),
        "a mount left under {root_text}"
    );
}

#[test]
fn a_load_of_a_build_cached_to_its_last_step_downloads_only_the_image_s_layers() {
    if !(build_ready() && require_registry() && require_docker()) {
        return;
    }
    let proxy = support::registry_proxy::RegistryProxy::start(OPEN_REGISTRY);
    let cache = lazy_cache(&proxy, "load");
    let tag = format!("h-lazy-load-{}", std::process::id());
    let iid_dir = tempfile::tempdir().unwrap();
    let iid = iid_dir.path().join("iid");
    let (text, fetched) = build_from_lazy_cache(
        &proxy,
        &cache,
        &["--load", "-t", &tag, "--iidfile", iid.to_str().unwrap()],
    );
    let loaded = std::fs::read_to_string(&iid).unwrap();
    remove_images(&[&tag]);
    assert!(steps(&text).iter().all(|(_, cached)| *cached), "{text}");
    // Docker has the base image: the layers the build made, not the `build` stage's.
    assert_eq!(fetched, sorted(&cache.image_layers[1..]), "{text}");
    assert_eq!(
        loaded, cache.image_id,
        "the same image as the first build\n{text}"
    );
}

#[test]
fn a_push_to_another_registry_copies_the_cache_s_blobs_once() {
    if !(build_ready() && require_registry()) {
        return;
    }
    let proxy = support::registry_proxy::RegistryProxy::start(OPEN_REGISTRY);
    let cache = lazy_cache(&proxy, "copy");
    // The same storage under another address: to bud, another registry, which cannot mount
    // from the cache's.
    let other = support::registry_proxy::RegistryProxy::start(OPEN_REGISTRY);
    let target = format!("{}/copied", unique("copy"));
    let (text, _) = build_from_lazy_cache(
        &proxy,
        &cache,
        &["--push", "-t", &format!("{}/{target}:latest", other.addr())],
    );
    assert!(steps(&text).iter().all(|(_, cached)| *cached), "{text}");
    let fetched = proxy.blob_gets(&cache.cache_repository);
    let uploads: Vec<String> = other
        .requests()
        .iter()
        .map(|r| r.replace("%3A", ":"))
        .filter(|r| r.starts_with("PUT "))
        .collect();
    for blob in &cache.image_layers[1..] {
        assert_eq!(
            fetched.iter().filter(|b| *b == blob).count(),
            1,
            "{blob} fetched once: {fetched:?}\n{text}"
        );
        assert!(
            uploads
                .iter()
                .any(|r| r.contains(&format!("digest={blob}"))),
            "{blob} not uploaded: {uploads:#?}"
        );
    }
    let pushed = registry_get(&format!("{target}/manifests/latest"));
    assert_eq!(
        String::from_utf8_lossy(&pushed),
        String::from_utf8_lossy(&cache.manifest)
    );
}

/// The layers of imported caches a build on `root` unpacked (brought in), as `bud du
/// --verbose` describes them.
fn unpacked_cache_layers(root: &std::path::Path) -> Vec<String> {
    let out = bud_at(root, &["du", "--verbose"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("cache layer sha256:"))
        .map(str::to_string)
        .collect()
}

/// The blob digests of the layers of the cache manifest at `repository`'s tag `c`, sorted,
/// each once.
fn cache_manifest_layers(repository: &str) -> Vec<String> {
    let cache = registry_json(&format!("{repository}/manifests/c"));
    let mut layers: Vec<String> = cache["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    layers.sort();
    layers.dedup();
    layers
}

/// A build importing the cache `cache_ref` on an empty state root: every step CACHED, and
/// pushed to `target`, the image the cache was first made with.
fn assert_imports_as_the_first_build(cache_ref: &str, cache: &LazyCache, target: &str) {
    let root = tempfile::tempdir().unwrap();
    let context = testdata("cache-lazy");
    let from = format!("type=registry,ref={cache_ref}");
    let pushed_name = format!("{OPEN_REGISTRY}/{target}:latest");
    let out = bud_at(
        root.path(),
        &[
            "build",
            "--progress",
            "plain",
            "--provenance=false",
            "--cache-from",
            &from,
            "--push",
            "-t",
            &pushed_name,
            context.to_str().unwrap(),
        ],
    );
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(steps(&text).iter().all(|(_, cached)| *cached), "{text}");
    let pushed = registry_get(&format!("{target}/manifests/latest"));
    assert_eq!(
        String::from_utf8_lossy(&pushed),
        String::from_utf8_lossy(&cache.manifest)
    );
}

/// A fully cached build that pushes its image and exports its registry cache (mode=max)
/// to the registry its `--cache-from` is on downloads no layer and unpacks none, as
/// BuildKit's lazy refs: the cache's blobs are mounted into both repositories. The cache it
/// wrote records the same blobs, and a third build from it is all CACHED, the same image.
#[test]
fn a_registry_cache_export_of_a_lazily_cached_build_downloads_no_layer() {
    if !(build_ready() && require_registry()) {
        return;
    }
    let proxy = support::registry_proxy::RegistryProxy::start(OPEN_REGISTRY);
    let cache = lazy_cache(&proxy, "cache-to");
    let base = unique("cache-to");
    let new_cache = format!("{base}/cache");
    let target = format!("{base}/image");
    let root = tempfile::tempdir().unwrap();
    let (text, fetched) = build_from_lazy_cache_at(
        root.path(),
        &proxy,
        &cache,
        &[
            "--cache-to",
            &format!("type=registry,ref={}/{new_cache}:c,mode=max", proxy.addr()),
            "--push",
            "-t",
            &format!("{}/{target}:latest", proxy.addr()),
        ],
    );
    assert!(steps(&text).iter().all(|(_, cached)| *cached), "{text}");
    assert_eq!(fetched, Vec::<String>::new(), "layers downloaded:\n{text}");
    assert_eq!(unpacked_cache_layers(root.path()), Vec::<String>::new());
    let uploads: Vec<String> = proxy
        .requests()
        .iter()
        .map(|r| r.replace("%3A", ":"))
        .filter(|r| r.starts_with("PUT ") && r.contains("/blobs/uploads/"))
        .collect();
    // All but the base image's layer, which the image push compresses from the tar bud
    // has of it (the first build did too) rather than download it.
    for blob in cache
        .cache_layers
        .iter()
        .filter(|b| **b != cache.image_layers[0])
    {
        assert!(
            !uploads
                .iter()
                .any(|r| r.contains(&format!("digest={blob}"))),
            "{blob} uploaded, not mounted: {uploads:#?}"
        );
    }
    assert_eq!(
        cache_manifest_layers(&new_cache),
        cache_manifest_layers(&cache.cache_repository)
    );
    assert_imports_as_the_first_build(
        &format!("{OPEN_REGISTRY}/{new_cache}:c"),
        &cache,
        &format!("{}/third", unique("cache-to")),
    );
}

/// The same to another registry (which cannot mount from the cache's): each blob the image
/// and the cache need is downloaded once, verified, and uploaded, never unpacked.
#[test]
fn a_registry_cache_export_to_another_registry_copies_each_blob_once() {
    if !(build_ready() && require_registry()) {
        return;
    }
    let proxy = support::registry_proxy::RegistryProxy::start(OPEN_REGISTRY);
    let cache = lazy_cache(&proxy, "cache-to-other");
    // The same storage under another address: to bud, another registry.
    let other = support::registry_proxy::RegistryProxy::start(OPEN_REGISTRY);
    let base = unique("cache-to-other");
    let new_cache = format!("{base}/cache");
    let root = tempfile::tempdir().unwrap();
    let (text, _) = build_from_lazy_cache_at(
        root.path(),
        &proxy,
        &cache,
        &[
            "--cache-to",
            &format!("type=registry,ref={}/{new_cache}:c,mode=max", other.addr()),
            "--push",
            "-t",
            &format!("{}/{base}/image:latest", other.addr()),
        ],
    );
    assert!(steps(&text).iter().all(|(_, cached)| *cached), "{text}");
    assert_eq!(unpacked_cache_layers(root.path()), Vec::<String>::new());
    let fetched = proxy.blob_gets(&cache.cache_repository);
    for blob in &cache.cache_layers {
        let count = fetched.iter().filter(|b| *b == blob).count();
        // The base image's layer is compressed from the tar bud has of it, the same blob.
        let expected = if *blob == cache.image_layers[0] {
            0..=1
        } else {
            1..=1
        };
        assert!(
            expected.contains(&count),
            "{blob} fetched {count} times: {fetched:?}\n{text}"
        );
    }
    assert_eq!(
        cache_manifest_layers(&new_cache),
        cache_manifest_layers(&cache.cache_repository)
    );
    assert_imports_as_the_first_build(
        &format!("{OPEN_REGISTRY}/{new_cache}:c"),
        &cache,
        &format!("{}/third", unique("cache-to-other")),
    );
}

/// `--cache-to type=inline` of a fully cached build needs no layer's content: the records
/// name the image's layers by index, which the image already has. The pushed image is the
/// one a build that brings every layer in makes (inline records included), and a third
/// build importing it takes the image's steps from it.
#[test]
fn an_inline_cache_of_a_lazily_cached_build_downloads_no_layer() {
    if !(build_ready() && require_registry()) {
        return;
    }
    let proxy = support::registry_proxy::RegistryProxy::start(OPEN_REGISTRY);
    let cache = lazy_cache(&proxy, "inline");
    let target = format!("{}/inline", unique("inline"));
    let root = tempfile::tempdir().unwrap();
    let ids = tempfile::tempdir().unwrap();
    let (lazy_id, brought_id) = (ids.path().join("lazy"), ids.path().join("brought"));
    let (text, fetched) = build_from_lazy_cache_at(
        root.path(),
        &proxy,
        &cache,
        &[
            "--cache-to",
            "type=inline",
            "--push",
            "-t",
            &format!("{}/{target}:latest", proxy.addr()),
            "--iidfile",
            lazy_id.to_str().unwrap(),
        ],
    );
    assert!(steps(&text).iter().all(|(_, cached)| *cached), "{text}");
    assert_eq!(fetched, Vec::<String>::new(), "layers downloaded:\n{text}");
    assert_eq!(unpacked_cache_layers(root.path()), Vec::<String>::new());
    // An OCI archive needs the files: every layer brought in, the records made from the
    // snapshots.
    build_from_lazy_cache(
        &proxy,
        &cache,
        &[
            "--cache-to",
            "type=inline",
            "-o",
            "type=oci,dest=/dev/null",
            "--iidfile",
            brought_id.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(&lazy_id).unwrap(),
        std::fs::read_to_string(&brought_id).unwrap()
    );
    let config = registry_json(&format!("{target}/manifests/latest"))["config"]["digest"]
        .as_str()
        .map(str::to_string)
        .unwrap();
    let config = registry_json(&format!("{target}/blobs/{config}"));
    assert!(
        config["moby.buildkit.cache.v0"].is_string(),
        "no inline cache: {config}"
    );
    let third = tempfile::tempdir().unwrap();
    let (_, text) = build_case(
        third.path(),
        "cache-lazy",
        &["--cache-from", &format!("{OPEN_REGISTRY}/{target}:latest")],
    );
    for (name, cached) in steps(&text) {
        // Inline caches are min mode: the `build` stage's step is not in the image.
        assert_eq!(cached, !name.starts_with("[build "), "{name}\n{text}");
    }
}

/// `--cache-to type=local` of a fully cached build: the blobs copied into the layout (each
/// downloaded once, verified), none unpacked; the layout is importable.
#[test]
fn a_local_cache_export_of_a_lazily_cached_build_copies_blobs_without_unpacking() {
    if !(build_ready() && require_registry()) {
        return;
    }
    let proxy = support::registry_proxy::RegistryProxy::start(OPEN_REGISTRY);
    let cache = lazy_cache(&proxy, "local");
    let root = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let (text, _) = build_from_lazy_cache_at(
        root.path(),
        &proxy,
        &cache,
        &[
            "--cache-to",
            &format!("type=local,dest={},mode=max", dest.path().display()),
            "--push",
            "-t",
            &format!("{}/{}/image:latest", proxy.addr(), unique("local")),
        ],
    );
    assert!(steps(&text).iter().all(|(_, cached)| *cached), "{text}");
    assert_eq!(unpacked_cache_layers(root.path()), Vec::<String>::new());
    let fetched = proxy.blob_gets(&cache.cache_repository);
    for blob in &cache.cache_layers {
        let count = fetched.iter().filter(|b| *b == blob).count();
        // The base image's layer: the push compressed it from bud's tar, the same blob.
        let expected = if *blob == cache.image_layers[0] {
            0..=1
        } else {
            1..=1
        };
        assert!(
            expected.contains(&count),
            "{blob} fetched {count} times: {fetched:?}\n{text}"
        );
    }
    let mut written: Vec<String> = cache_layers(dest.path(), "latest")
        .into_iter()
        .map(|(digest, _, _)| digest)
        .collect();
    written.sort();
    written.dedup();
    assert_eq!(written, cache_manifest_layers(&cache.cache_repository));
    let third = tempfile::tempdir().unwrap();
    let (_, text) = build_case(
        third.path(),
        "cache-lazy",
        &[
            "--cache-from",
            &format!("type=local,src={}", dest.path().display()),
        ],
    );
    assert!(steps(&text).iter().all(|(_, cached)| *cached), "{text}");
}

/// A build for two platforms whose every step hits a registry cache keeps the hits in the
/// cache, as a build for one does: its index pushed to the cache's registry and its own
/// cache exported there download no layer and unpack none, and the index is the one the
/// cache was made with.
#[test]
fn a_two_platform_build_cached_to_its_last_step_pushes_without_downloading_layers() {
    if !(build_ready()
        && require_registry()
        && require(
            "QEMU for aarch64 in binfmt_misc",
            std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists(),
        ))
    {
        return;
    }
    let proxy = support::registry_proxy::RegistryProxy::start(OPEN_REGISTRY);
    let base = unique("platforms");
    let cache_repository = format!("{base}/cache");
    let cache_ref = format!("{}/{cache_repository}:c", proxy.addr());
    let context = testdata("cache-lazy-platforms");
    let build = |root: &std::path::Path, args: &[&str]| {
        let mut all = vec![
            "build",
            "--progress",
            "plain",
            "--provenance=false",
            "--platform",
            "linux/amd64,linux/arm64",
        ];
        all.extend_from_slice(args);
        all.push(context.to_str().unwrap());
        let out = bud_at(root, &all);
        let text = stderr_of(&out);
        assert!(out.status.success(), "{text}");
        text
    };
    let first = tempfile::tempdir().unwrap();
    build(
        first.path(),
        &[
            "--cache-to",
            &format!("type=registry,ref={cache_ref},mode=max"),
            "--push",
            "-t",
            &format!("{}/{base}/first:latest", proxy.addr()),
        ],
    );
    let cache_layers = cache_manifest_layers(&cache_repository);
    let root = tempfile::tempdir().unwrap();
    proxy.clear();
    let text = build(
        root.path(),
        &[
            "--cache-from",
            &format!("type=registry,ref={cache_ref}"),
            "--cache-to",
            &format!(
                "type=registry,ref={}/{base}/again-cache:c,mode=max",
                proxy.addr()
            ),
            "--push",
            "-t",
            &format!("{}/{base}/again:latest", proxy.addr()),
        ],
    );
    let steps = steps(&text);
    assert!(steps.len() >= 8, "{steps:?}\n{text}");
    assert!(steps.iter().all(|(_, cached)| *cached), "{text}");
    let fetched: Vec<String> = proxy
        .blob_gets(&cache_repository)
        .into_iter()
        .filter(|blob| cache_layers.contains(blob))
        .collect();
    assert_eq!(fetched, Vec::<String>::new(), "layers downloaded:\n{text}");
    assert_eq!(unpacked_cache_layers(root.path()), Vec::<String>::new());
    assert_eq!(
        String::from_utf8_lossy(&registry_get(&format!("{base}/again/manifests/latest"))),
        String::from_utf8_lossy(&registry_get(&format!("{base}/first/manifests/latest")))
    );
    assert_eq!(
        cache_manifest_layers(&format!("{base}/again-cache")),
        cache_layers
    );
}
