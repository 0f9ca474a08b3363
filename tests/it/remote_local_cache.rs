//! `--cache-to type=local` and `--cache-from type=local` with `--addr`: the daemon's local
//! cache exporter and importer read and write the client's directory through the session's
//! content store, as with buildx. On Docker 28.5 with the containerd image store (whose
//! BuildKit has the local cache exporter) compared with buildx there; the caches travel
//! between `--addr` and the embedded solver; Docker's own image store refuses the export up
//! front, as buildx's docker driver does, and still imports.

use crate::support;

use std::path::Path;
use std::process::Output;

use support::*;

/// A context of its own: steps no daemon has built before, each named by `marker` in its
/// description, so that pruning by it removes this test's cache records and no other's.
fn unique_context(name: &str) -> (tempfile::TempDir, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let marker = format!("h-addr-{name}-{}-{nanos}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM bud-test/busybox\nRUN echo {marker} > /u\nRUN echo {marker} && cat /u > /v\n"
        ),
    )
    .unwrap();
    (dir, marker)
}

fn ok(out: Output) -> String {
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    text
}

/// The lines of the plain-progress step named `name`, found by its number.
fn step(progress: &str, name: impl Fn(&str) -> bool) -> String {
    let number = progress
        .lines()
        .find_map(|line| {
            let (number, rest) = line.split_once(' ')?;
            (number.starts_with('#') && name(rest)).then_some(number)
        })
        .unwrap_or_else(|| panic!("no such step in:\n{progress}"));
    progress
        .lines()
        .filter(|line| line.split_once(' ').is_some_and(|(n, _)| n == number))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether every RUN step shows CACHED.
fn runs_cached(progress: &str) -> Vec<bool> {
    let runs: Vec<String> = progress
        .lines()
        .filter_map(|l| {
            let (number, rest) = l.split_once(' ')?;
            (rest.starts_with('[') && rest.contains("] RUN ")).then(|| number.to_owned())
        })
        .collect();
    assert_eq!(runs.len(), 2, "{progress}");
    runs.iter()
        .map(|n| progress.lines().any(|l| l == format!("{n} CACHED")))
        .collect()
}

/// The import step of a local cache ends well (BuildKit names it by a hash of its
/// attributes, the embedded solver by its directory).
fn imported(progress: &str) {
    let import = step(progress, |rest| {
        rest.starts_with("importing cache manifest from ")
    });
    assert!(
        import.contains("DONE") && !import.contains("ERROR"),
        "{import}\n{progress}"
    );
    assert!(!progress.contains("not imported"), "{progress}");
}

/// Removes this test's cache records (and only them) from the daemon's BuildKit, and checks
/// that none is left: a step of the context is then cached only by an import.
fn prune_marked(docker: &Docker28, marker: &str) {
    let filter = format!("description~={marker}");
    docker.ok(&["builder", "prune", "--all", "--force", "--filter", &filter]);
    let left = docker.ok(&["buildx", "du", "--verbose", "--filter", &filter]);
    assert!(
        !left.contains(marker),
        "records left after the prune:\n{left}"
    );
}

/// What a local cache directory holds, beside the digests: its entries (less buildx's empty
/// `ingest/`, see [`listing`]), each index entry's media type and annotations, the cache
/// manifest's media types, and whether every blob it names is there.
fn shape(dir: &Path) -> serde_json::Value {
    let entries = listing(dir);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &serde_json::Value| {
        let digest = digest.as_str().unwrap();
        let bytes = std::fs::read(dir.join("blobs/sha256").join(&digest[7..])).unwrap();
        assert_eq!(
            format!("sha256:{}", sha256_hex(&bytes)),
            digest,
            "{}",
            dir.display()
        );
        bytes
    };
    let manifests: Vec<serde_json::Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let manifest: serde_json::Value = serde_json::from_slice(&blob(&m["digest"])).unwrap();
            blob(&manifest["config"]["digest"]);
            let layers: Vec<&serde_json::Value> = manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    blob(&l["digest"]);
                    &l["mediaType"]
                })
                .collect();
            serde_json::json!({
                "mediaType": m["mediaType"],
                "annotations": m["annotations"],
                "manifest": manifest["mediaType"],
                "config": manifest["config"]["mediaType"],
                "layers": layers,
            })
        })
        .collect();
    serde_json::json!({ "entries": entries, "index": index["mediaType"], "manifests": manifests })
}

/// A local cache directory's entries, sorted, and those of its `blobs/sha256/` that are no
/// digest (a temporary file left behind); less the `ingest/` buildx leaves, checked empty:
/// containerd's local store, which buildx writes the cache with, makes it when opened and
/// leaves it, where BuildKit's layout is `oci-layout`, `index.json` and `blobs/`.
fn listing(dir: &Path) -> Vec<String> {
    let names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let mut entries = names(dir);
    if entries.iter().any(|n| n == "ingest") {
        assert_eq!(names(&dir.join("ingest")), Vec::<String>::new());
        entries.retain(|n| n != "ingest");
    }
    let digest = |n: &String| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit());
    entries.extend(
        names(&dir.join("blobs/sha256"))
            .into_iter()
            .filter(|n| !digest(n))
            .map(|n| format!("blobs/sha256/{n}")),
    );
    entries
}

/// [`listing`] with each entry's mode, and the modes the blobs named by their digest have.
fn listing_with_modes(dir: &Path) -> Vec<String> {
    let mode = |path: &Path| format!("{:o}", support::fileop::mode_of(path));
    let mut listed: Vec<String> = listing(dir)
        .into_iter()
        .map(|name| format!("{name} {}", mode(&dir.join(&name))))
        .collect();
    let mut blob_modes: Vec<String> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("blobs/sha256/<digest> {}", mode(&e.unwrap().path())))
        .collect();
    blob_modes.sort();
    blob_modes.dedup();
    listed.push(format!("blobs/sha256 {}", mode(&dir.join("blobs/sha256"))));
    listed.extend(blob_modes);
    listed
}

/// A local cache exported with `--addr` is the one buildx exports (a directory of the same
/// entries with the same modes, blobs read-only as containerd's local store leaves them, an
/// index and manifest of the same shape, as the embedded solver's directory too), and is
/// imported with `--addr`.
#[test]
fn a_local_cache_exported_with_addr_is_imported_with_addr_as_with_buildx() {
    if !(build_ready() && require_base_image()) {
        return;
    }
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    let (context, marker) = unique_context("roundtrip");
    let root = tempfile::tempdir().unwrap();
    let caches = tempfile::tempdir().unwrap();
    let (ours, theirs) = (caches.path().join("bud"), caches.path().join("buildx"));
    let cache_to = |dir: &Path| format!("type=local,dest={},mode=max,tag=t1", dir.display());

    let text = ok(bud_addr(
        docker.host(),
        root.path(),
        &[
            "--cache-to",
            &cache_to(&ours),
            "-o",
            "type=tar,dest=/dev/null",
        ],
        context.path(),
    ));
    let export = step(&text, |rest| rest == "exporting cache to client directory");
    assert!(export.contains("writing cache"), "{export}");
    let out = docker.build(&[
        "--progress",
        "plain",
        "--cache-to",
        &cache_to(&theirs),
        "-o",
        "type=tar,dest=/dev/null",
        context.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(shape(&ours), shape(&theirs));

    // The directory as buildx leaves it (no lock file, no `ingest/`, no temporary blob),
    // written by the embedded solver too, and after a second export into it, which reads
    // and rewrites its index. In this test, not one of its own: a build of another test's
    // on the daemon meanwhile can make the import below miss.
    let embedded = caches.path().join("embedded");
    let other_tag = |dir: &Path| format!("type=local,dest={},tag=t3", dir.display());
    for spec in [cache_to(&embedded), other_tag(&embedded)] {
        ok(bud_at(
            root.path(),
            &[
                "build",
                "--cache-to",
                &spec,
                "-o",
                "type=tar,dest=/dev/null",
                context.path().to_str().unwrap(),
            ],
        ));
    }
    ok(bud_addr(
        docker.host(),
        root.path(),
        &[
            "--cache-to",
            &other_tag(&ours),
            "-o",
            "type=tar,dest=/dev/null",
        ],
        context.path(),
    ));
    let out = docker.build(&[
        "--cache-to",
        &other_tag(&theirs),
        "-o",
        "type=tar,dest=/dev/null",
        context.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let buildx = listing_with_modes(&theirs);
    assert_eq!(
        buildx,
        [
            "blobs 755",
            "index.json 644",
            "oci-layout 644",
            "blobs/sha256 755",
            "blobs/sha256/<digest> 444"
        ]
    );
    assert_eq!(listing_with_modes(&ours), buildx, "--addr");
    assert_eq!(listing_with_modes(&embedded), buildx, "embedded");
    assert_eq!(
        shape(&ours)["manifests"][0]["layers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // The daemon forgets the steps; only the imported cache has them.
    prune_marked(&docker, &marker);
    let cache_from = format!("type=local,src={},tag=t1", ours.display());
    let text = ok(bud_addr(
        docker.host(),
        root.path(),
        &["--cache-from", &cache_from, "-o", "type=tar,dest=/dev/null"],
        context.path(),
    ));
    imported(&text);
    assert_eq!(runs_cached(&text), [true, true], "{text}");

    // A tag the index does not name is not imported, with a warning, as BuildKit's client
    // leaves it out.
    let text = ok(bud_addr(
        docker.host(),
        root.path(),
        &[
            "--cache-from",
            &format!("type=local,src={},tag=t2", ours.display()),
            "-o",
            "type=tar,dest=/dev/null",
        ],
        context.path(),
    ));
    assert!(
        text.contains(&format!(
            "--cache-from type=local,src={}: not imported: no cache tagged \"t2\"",
            ours.display()
        )),
        "{text}"
    );
    assert!(!text.contains("importing cache manifest"), "{text}");
}

/// BuildKit's and bud's records are keyed differently (tests/it/build_caches.rs), so no
/// step hits across them, but each reads the other's local cache without an error.
#[test]
fn local_caches_travel_between_addr_and_the_embedded_solver() {
    if !(build_ready() && require_base_image()) {
        return;
    }
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    let (context, _) = unique_context("travel");
    let caches = tempfile::tempdir().unwrap();
    let (daemon, embedded) = (caches.path().join("daemon"), caches.path().join("embedded"));
    let root = tempfile::tempdir().unwrap();

    ok(bud_addr(
        docker.host(),
        root.path(),
        &[
            "--cache-to",
            &format!("type=local,dest={}", daemon.display()),
            "-o",
            "type=tar,dest=/dev/null",
        ],
        context.path(),
    ));
    let out = bud_at(
        root.path(),
        &[
            "build",
            "--progress",
            "plain",
            "--cache-from",
            &format!("type=local,src={}", daemon.display()),
            "--cache-to",
            &format!("type=local,dest={}", embedded.display()),
            "-o",
            "type=tar,dest=/dev/null",
            context.path().to_str().unwrap(),
        ],
    );
    imported(&ok(out));

    let text = ok(bud_addr(
        docker.host(),
        root.path(),
        &[
            "--cache-from",
            &format!("type=local,src={}", embedded.display()),
            "-o",
            "type=tar,dest=/dev/null",
        ],
        context.path(),
    ));
    imported(&text);
}

/// dockerd's BuildKit on Docker's own image store has no local cache exporter: refused
/// before the build, as buildx's docker driver refuses it, and nothing is made at `dest`.
/// Its local cache importer reads what the embedded solver wrote.
#[test]
fn docker_s_own_image_store_refuses_a_local_cache_export_and_imports_one() {
    if !(build_ready() && require_docker() && require_base_image()) {
        return;
    }
    let Some(docker28) = require_docker28() else {
        return;
    };
    let (context, _) = unique_context("moby");
    let caches = tempfile::tempdir().unwrap();
    let dest = caches.path().join("never");
    let cache_to = format!("type=local,dest={}", dest.display());
    let root = tempfile::tempdir().unwrap();
    for host in ["unix:///var/run/docker.sock", docker28.host()] {
        let out = bud_addr(
            host,
            root.path(),
            &["--cache-to", &cache_to, "-o", "type=tar,dest=/dev/null"],
            context.path(),
        );
        let text = stderr_of(&out);
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains("--cache-to type=local: the BuildKit of the Docker at docker:// exports only inline caches"),
            "{text}"
        );
        assert!(!text.contains("#1 "), "refused before the build:\n{text}");
        assert!(!dest.exists());
    }
    let out = docker28.build(&[
        "--cache-to",
        &cache_to,
        "-o",
        "type=tar,dest=/dev/null",
        context.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("Cache export is not supported for the docker driver"),
        "{}",
        stderr_of(&out)
    );

    let embedded = caches.path().join("embedded");
    ok(bud_at(
        root.path(),
        &[
            "build",
            "--cache-to",
            &format!("type=local,dest={}", embedded.display()),
            "-o",
            "type=tar,dest=/dev/null",
            context.path().to_str().unwrap(),
        ],
    ));
    for host in ["unix:///var/run/docker.sock", docker28.host()] {
        let text = ok(bud_addr(
            host,
            root.path(),
            &[
                "--cache-from",
                &format!("type=local,src={}", embedded.display()),
                "-o",
                "type=tar,dest=/dev/null",
            ],
            context.path(),
        ));
        imported(&text);
    }
}
