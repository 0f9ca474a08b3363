//! `--build-context NAME=oci-layout://PATH[:TAG][@DIGEST]` built by bud's embedded solver and
//! with `--addr` on the daemon `require_oci_layout_daemon` picks (BuildKit reads the layout
//! from bud's session content store), against Docker 28.5's buildx on the same daemon.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::*;

/// Builds `context` with bud: embedded, or with `--addr docker://` on the Docker at `host`.
fn bud(root: &Path, host: Option<&str>, args: &[&str], context: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bud"));
    cmd.arg("--root").arg(root).args(["--progress", "plain"]);
    if let Some(host) = host {
        cmd.env("DOCKER_HOST", host).args(["--addr", "docker://"]);
    }
    cmd.args(args).arg(context).output().expect("run bud")
}

fn context_of(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

/// The files of a tarball.
fn files_of(tar_path: &Path) -> BTreeMap<String, Vec<u8>> {
    let file = std::fs::File::open(tar_path).unwrap();
    let mut archive = tar::Archive::new(file);
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        out.insert(path, data);
    }
    out
}

/// One image of an OCI archive: the top descriptor's manifest, or its index's manifest for
/// `architecture`.
#[derive(Debug)]
struct OciImage {
    config: Value,
    layers: Vec<String>,
}

fn oci_image(tar_path: &Path, architecture: &str) -> OciImage {
    let files = files_of(tar_path);
    let json = |name: &str| -> Value {
        serde_json::from_slice(files.get(name).unwrap_or_else(|| panic!("{name} missing"))).unwrap()
    };
    let blob = |digest: &Value| json(&format!("blobs/sha256/{}", &digest.as_str().unwrap()[7..]));
    let mut manifest = blob(&json("index.json")["manifests"][0]["digest"]);
    if let Some(entries) = manifest["manifests"].as_array() {
        let entry = entries
            .iter()
            .find(|e| e["platform"]["architecture"] == architecture)
            .unwrap_or_else(|| panic!("no {architecture} manifest in {entries:?}"));
        manifest = blob(&entry["digest"]);
    }
    OciImage {
        config: blob(&manifest["config"]["digest"]),
        layers: manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned())
            .collect(),
    }
}

fn untar(tar_path: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ok = Command::new("tar")
        .arg("-xf")
        .arg(tar_path)
        .arg("-C")
        .arg(dir)
        .status()
        .unwrap();
    assert!(ok.success());
}

const LAYOUT_SOURCE: &str = "FROM bud-test/busybox\n\
    ARG TARGETARCH\n\
    RUN mkdir /data && echo from-layout-$TARGETARCH > /data/file\n\
    ENV LAYOUT=1\n";

const ON_LAYOUT: &str = "FROM ctx\nLABEL from=layout\nENV MORE=2\n";

/// The same Dockerfile on a two-platform layout buildx wrote, named by tag (the default
/// platform's image of the index) and pinned by the index's digest with `--platform
/// linux/arm64` (narrowed to that platform): bud embedded, bud with `--addr` and buildx give
/// the same config (every field, the history included) on the same layers, and `--addr` keeps
/// the layout's blobs as buildx does. With both platforms at once, each gets its own image.
/// Config digests are not compared: bud's config JSON orders and escapes keys otherwise than
/// Go (the same for every image, not for OCI layouts only).
#[test]
fn oci_layout_contexts_build_buildx_s_image_embedded_and_with_addr() {
    if !(require_base_image() && require_runc()) {
        return;
    }
    let Some(daemon) = require_oci_layout_daemon() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let source = context_of(LAYOUT_SOURCE);
    let layout_tar = work.path().join("layout.tar");
    let out = daemon.build(&[
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        &format!(
            "type=oci,dest={},name=h-ocictx/layout:v1",
            layout_tar.display()
        ),
        source.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "buildx: {}", stderr_of(&out));
    let layout = work.path().join("layout");
    untar(&layout_tar, &layout);
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let index_digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();

    let context = context_of(ON_LAYOUT);
    let root = tempfile::tempdir().unwrap();
    for (reference, platform) in [(":v1", "amd64"), (&*format!("@{index_digest}"), "arm64")] {
        let flag = format!("ctx=oci-layout://{}{reference}", layout.display());
        let platform_flag = format!("linux/{platform}");
        let output = |name: &str| work.path().join(format!("{name}-{platform}.tar"));
        let args = |dest: &Path| {
            vec![
                "--build-context".to_owned(),
                flag.clone(),
                "--platform".to_owned(),
                platform_flag.clone(),
                "--build-arg".to_owned(),
                "SOURCE_DATE_EPOCH=0".to_owned(),
                "-o".to_owned(),
                format!("type=oci,dest={}", dest.display()),
            ]
        };
        let theirs = output("buildx");
        let mut buildx_args: Vec<String> = args(&theirs);
        buildx_args.push(context.path().to_str().unwrap().to_owned());
        let refs: Vec<&str> = buildx_args.iter().map(String::as_str).collect();
        let out = daemon.build(&refs);
        assert!(out.status.success(), "buildx {flag}: {}", stderr_of(&out));
        let want = oci_image(&theirs, platform);
        assert_eq!(want.config["architecture"], platform);
        assert_eq!(want.config["config"]["Labels"]["from"], "layout");

        for host in [None, Some(daemon.host())] {
            let ours = output(if host.is_some() { "addr" } else { "embedded" });
            let bud_args = args(&ours);
            let refs: Vec<&str> = bud_args.iter().map(String::as_str).collect();
            let out = bud(root.path(), host, &refs, context.path());
            assert!(
                out.status.success(),
                "bud {host:?} {flag}: {}",
                stderr_of(&out)
            );
            let got = oci_image(&ours, platform);
            assert_eq!(got.config, want.config, "bud {host:?} {flag}: config");
            if host.is_some() {
                assert_eq!(got.layers, want.layers, "bud {host:?} {flag}: layers");
            }
        }
    }

    // Several platforms at once: each build reads its own platform's image of the index.
    let copy = context_of("FROM scratch\nCOPY --from=ctx /data/file /read\n");
    let flag = format!("ctx=oci-layout://{}:v1", layout.display());
    for host in [None, Some(daemon.host())] {
        let dest = work.path().join(format!("platforms-{}", host.is_some()));
        let out = bud(
            root.path(),
            host,
            &[
                "--build-context",
                &flag,
                "--platform",
                "linux/amd64,linux/arm64",
                "-o",
                &format!("type=local,dest={}", dest.display()),
            ],
            copy.path(),
        );
        assert!(out.status.success(), "bud {host:?}: {}", stderr_of(&out));
        for arch in ["amd64", "arm64"] {
            let read = dest.join(format!("linux_{arch}/read"));
            assert_eq!(
                std::fs::read_to_string(&read).unwrap().trim(),
                format!("from-layout-{arch}"),
                "bud {host:?}"
            );
        }
    }
}

/// A layout of layers the daemon has never seen (bud wrote it), so `--addr` reads them
/// through the session: a missing layer blob, one that does not match its digest and one
/// that is a symlink out of the layout (to the right bytes) are each refused naming the blob,
/// embedded and with `--addr`; the intact layout gives its files both ways.
#[test]
fn oci_layout_layers_are_read_from_the_session_and_bad_ones_refused() {
    if !(require_base_image() && require_runc()) {
        return;
    }
    let Some(daemon) = require_oci_layout_daemon() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    // Content of this run only: no daemon holds its layer yet.
    let unique = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let source = context_of(&format!(
        "FROM bud-test/busybox\nRUN mkdir /data && echo {unique} > /data/file\n"
    ));
    let layout_tar = work.path().join("layout.tar");
    let out = bud(
        root.path(),
        None,
        &["-o", &format!("type=oci,dest={}", layout_tar.display())],
        source.path(),
    );
    assert!(out.status.success(), "bud: {}", stderr_of(&out));
    let image = oci_image(&layout_tar, "amd64");
    let layer = image.layers.last().unwrap().clone();
    let hex = &layer[7..];

    let broken = |name: &str, damage: &dyn Fn(&Path)| {
        let dir = work.path().join(name);
        untar(&layout_tar, &dir);
        damage(&dir.join("blobs/sha256").join(hex));
        dir
    };
    let outside = work.path().join("outside-blob");
    let cases = [
        (
            broken("missing", &|blob| std::fs::remove_file(blob).unwrap()),
            "No such file or directory",
        ),
        (
            broken("corrupt", &|blob| {
                let mut bytes = std::fs::read(blob).unwrap();
                *bytes.last_mut().unwrap() ^= 1;
                std::fs::write(blob, bytes).unwrap();
            }),
            "does not match its digest",
        ),
        (
            broken("escaping", &|blob| {
                std::fs::rename(blob, &outside).unwrap();
                std::os::unix::fs::symlink(&outside, blob).unwrap();
            }),
            "leads out of the layout (through a symlink)",
        ),
    ];
    let context = context_of("FROM scratch\nCOPY --from=ctx /data/file /read\n");
    for (dir, reason) in &cases {
        let flag = format!("ctx=oci-layout://{}", dir.display());
        for host in [None, Some(daemon.host())] {
            let out = bud(
                root.path(),
                host,
                &["--build-context", &flag, "-o", "type=tar,dest=/dev/null"],
                context.path(),
            );
            let err = stderr_of(&out);
            assert!(!out.status.success(), "{host:?} {flag}: {err}");
            assert!(
                err.contains(reason) && err.contains(hex),
                "{host:?} {flag}: no {reason:?} naming {hex}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }

    let intact = work.path().join("intact");
    untar(&layout_tar, &intact);
    let flag = format!("ctx=oci-layout://{}", intact.display());
    for host in [None, Some(daemon.host())] {
        let dest = work
            .path()
            .join(if host.is_some() { "addr" } else { "embedded" });
        let out = bud(
            root.path(),
            host,
            &[
                "--build-context",
                &flag,
                "-o",
                &format!("type=local,dest={}", dest.display()),
            ],
            context.path(),
        );
        assert!(out.status.success(), "{host:?}: {}", stderr_of(&out));
        assert_eq!(
            std::fs::read_to_string(dest.join("read")).unwrap().trim(),
            unique
        );
    }
}
