//! Several platforms and Docker's containerd image store (scripts/test-env's third daemon,
//! Docker 28.5 with `containerd-snapshotter`), compared with Docker 28.5's buildx on it: a
//! load keeps the index of every platform under one tag (embedded, and with `--addr`), and
//! its BuildKit, which exports images itself, gets the platforms in one solve and writes the
//! index, the OCI archive and one cache of them all itself, as with buildx.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

use support::*;

const LIST_IMAGE: &str = "127.0.0.1:5000/bud-test/busybox:latest";
const PLATFORMS: [&str; 2] = ["linux/amd64", "linux/arm64"];
const INDEX_TYPES: &str = "application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.list.v2+json";
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json";

fn require_emulation() -> bool {
    build_ready()
        && require(
            "QEMU for aarch64 in binfmt_misc",
            Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists(),
        )
}

fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).expect("write the Dockerfile");
    std::fs::write(dir.path().join("greeting"), "hello\n").expect("write the greeting");
    dir
}

/// `bud --root ROOT ARGS…` with `DOCKER_HOST` naming `docker`'s daemon.
fn bud_on(docker: &Docker28, root: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env("DOCKER_HOST", docker.host())
        .output()
        .expect("run bud");
    assert!(out.status.success(), "bud {args:?}: {}", stderr_of(&out));
    out
}

/// What the containerd store holds under `tag` for each platform: the platform, its
/// configuration, its layer count and what it prints when run there.
fn loaded(docker: &Docker28, tag: &str) -> Vec<String> {
    PLATFORMS
        .iter()
        .map(|platform| {
            let inspected = docker.ok(&[
                "image",
                "inspect",
                "--platform",
                platform,
                "--format",
                "{{.Os}}/{{.Architecture}} {{json .Config}} {{len .RootFS.Layers}} layers",
                tag,
            ]);
            let ran = docker.ok(&["run", "--rm", "--platform", platform, tag]);
            format!("{inspected} runs: {ran}")
        })
        .collect()
}

/// `--load` (and `-t` alone) with two platforms into a Docker on the containerd image store:
/// one tag holds both platforms, each with the configuration and the behaviour buildx's
/// load gives, whether bud built them itself (an OCI archive of the index through the load
/// API) or Docker's BuildKit did (`--addr`, one solve, its `moby` exporter). `--iidfile`
/// names the index, which is the image's ID there.
#[test]
fn two_platforms_load_into_a_containerd_store_as_buildx_loads_them() {
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    if !require_emulation() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&format!(
        "FROM {LIST_IMAGE}\nRUN uname -m > /machine\nENV BUILT=yes\nCMD [\"cat\", \"/machine\"]\n"
    ));
    let dir = ctx.path().to_str().unwrap();
    let repo = "bud-test-platforms/containerd-load";
    let (reference, embedded, remote) = (
        format!("{repo}:buildx"),
        format!("{repo}:embedded"),
        format!("{repo}:addr"),
    );
    let out = docker.build(&[
        "--provenance=false",
        "--platform",
        "linux/amd64,linux/arm64",
        "--load",
        "-t",
        &reference,
        dir,
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let want = loaded(&docker, &reference);
    assert!(want[0].starts_with("linux/amd64 ") && want[0].ends_with("runs: x86_64"));
    assert!(want[1].starts_with("linux/arm64 ") && want[1].ends_with("runs: aarch64"));

    let addr = format!("docker://{}", docker.host());
    for (tag, solver) in [
        (&embedded, &[][..]),
        (&remote, &["--addr", addr.as_str()][..]),
    ] {
        let iidfile = root.path().join("iid");
        let mut args = solver.to_vec();
        args.extend([
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            tag,
            "--iidfile",
            iidfile.to_str().unwrap(),
            dir,
        ]);
        bud_on(&docker, root.path(), &args);
        assert_eq!(loaded(&docker, tag), want, "{solver:?}");
        let id = docker.ok(&["image", "inspect", "--format", "{{.Id}}", tag]);
        assert_eq!(std::fs::read_to_string(&iidfile).unwrap(), id, "{solver:?}");
    }
    docker.ok(&["image", "rm", &reference, &embedded, &remote]);
}

fn registry_get(path: &str, accept: &str) -> serde_json::Value {
    let out = Command::new("curl")
        .args(["-fsS", "-H", &format!("Accept: {accept}")])
        .arg(format!("http://{OPEN_REGISTRY}/v2/{path}"))
        .output()
        .expect("run curl");
    assert!(out.status.success(), "GET {path}: {}", stderr_of(&out));
    serde_json::from_slice(&out.stdout).expect("a JSON document")
}

/// An image config without its times, which differ from build to build.
fn timeless(mut config: serde_json::Value) -> serde_json::Value {
    config.as_object_mut().unwrap().remove("created");
    for entry in config["history"].as_array_mut().into_iter().flatten() {
        entry.as_object_mut().unwrap().remove("created");
    }
    config
}

/// The index pushed as `repo:tag`: its media type, then each platform's entry, manifest
/// media type and config (times left out; layers by diff ID).
fn pushed(repo: &str, tag: &str) -> Vec<String> {
    let index = registry_get(&format!("{repo}/manifests/{tag}"), INDEX_TYPES);
    let mut summary = vec![index["mediaType"].to_string()];
    for entry in index["manifests"].as_array().expect("manifests") {
        let digest = entry["digest"].as_str().unwrap();
        let manifest = registry_get(&format!("{repo}/manifests/{digest}"), MANIFEST_TYPES);
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        let config = registry_get(&format!("{repo}/blobs/{config_digest}"), "*/*");
        summary.push(format!(
            "{} {} {}",
            entry["platform"],
            manifest["mediaType"],
            timeless(config)
        ));
    }
    summary
}

/// The OCI archive at `path`: each platform of its index with its config (times left out).
fn archived(path: &Path) -> Vec<String> {
    let mut files = std::collections::HashMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        files.insert(name, bytes);
    }
    let blob = |digest: &str| -> serde_json::Value {
        let name = format!("blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap());
        serde_json::from_slice(&files[&name]).unwrap()
    };
    let top: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let index = blob(top["manifests"][0]["digest"].as_str().unwrap());
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let manifest = blob(m["digest"].as_str().unwrap());
            let config = blob(manifest["config"]["digest"].as_str().unwrap());
            format!("{} {}", m["platform"], timeless(config))
        })
        .collect()
}

/// The layers a registry cache holds, by digest, sorted.
fn cache_layers(repo: &str, tag: &str) -> Vec<String> {
    let manifest = registry_get(&format!("{repo}/manifests/{tag}"), MANIFEST_TYPES);
    assert_eq!(
        manifest["config"]["mediaType"], "application/vnd.buildkit.cacheconfig.v0",
        "{manifest}"
    );
    let mut layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();
    layers.sort();
    layers
}

/// `--addr` to a BuildKit that exports images itself (dockerd on the containerd image
/// store) with two platforms is one solve returning a ref per platform, as buildx sends it:
/// the daemon pushes the index, writes the OCI archive and exports one cache of both, and
/// each is what buildx's same build on the same daemon gives, down to the layers' diff IDs
/// and the cache's blobs. The embedded build's index has the same platforms and configs.
#[test]
fn two_platforms_on_a_buildkit_with_image_exporters_are_one_solve_as_with_buildx() {
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    if !require_emulation() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&format!(
        "FROM {LIST_IMAGE}\nARG TARGETARCH\nCOPY greeting /greeting\nENV ARCH=$TARGETARCH\n\
         CMD [\"cat\", \"/greeting\"]\n"
    ));
    let dir = ctx.path().to_str().unwrap();
    let repo = "bud-test/platforms-containerd";
    let cache_repo = "bud-test/platforms-containerd-cache";
    let outputs = |label: &str| {
        (
            format!("type=image,name={OPEN_REGISTRY}/{repo}:{label},push=true"),
            format!("type=oci,dest={}", root.path().join(label).display()),
            format!("type=registry,ref={OPEN_REGISTRY}/{cache_repo}:{label},mode=max"),
        )
    };
    let args = |label: &str, (image, oci, cache): &(String, String, String)| -> Vec<String> {
        let mut args = vec![
            "--provenance=false",
            "--platform",
            "linux/amd64,linux/arm64",
        ];
        args.extend(["-o", image, "-o", oci]);
        if label != "embedded" {
            args.extend(["--cache-to", cache]);
        }
        args.push(dir);
        args.into_iter().map(str::to_owned).collect()
    };

    let buildx = outputs("buildx");
    let buildx_args = args("buildx", &buildx);
    let buildx_args: Vec<&str> = buildx_args.iter().map(String::as_str).collect();
    let out = docker.build(&buildx_args);
    assert!(out.status.success(), "{}", stderr_of(&out));

    let addr = format!("docker://{}", docker.host());
    let remote = outputs("addr");
    let mut remote_args = vec![
        "--addr".to_owned(),
        addr,
        "--progress".into(),
        "plain".into(),
    ];
    remote_args.extend(args("addr", &remote));
    let remote_args: Vec<&str> = remote_args.iter().map(String::as_str).collect();
    let progress = stderr_of(&bud_on(&docker, root.path(), &remote_args));
    // One solve: one export of the index, not one image per platform joined by bud.
    let indexes = progress
        .lines()
        .filter(|l| l.contains(" exporting manifest list sha256:") && l.ends_with(" done"))
        .count();
    assert_eq!(
        indexes, 2,
        "the image and the OCI archive, each one index: {progress}"
    );
    assert!(
        !progress.contains("does not match result platform"),
        "{progress}"
    );
    // The build checks' look at the base image asks the daemon for it by its full name, as
    // the conversion does: no failed lookup of a bare name shows as a step.
    assert!(!progress.contains(" ERROR: "), "{progress}");

    let want = pushed(repo, "buildx");
    assert_eq!(want.len(), 3, "{want:?}");
    assert!(want[1].starts_with(r#"{"architecture":"amd64","os":"linux"} "#));
    assert!(want[2].starts_with(r#"{"architecture":"arm64","os":"linux"} "#));
    assert_eq!(pushed(repo, "addr"), want);
    let want_archive = archived(&root.path().join("buildx"));
    assert_eq!(want_archive.len(), 2, "{want_archive:?}");
    assert_eq!(archived(&root.path().join("addr")), want_archive);
    let want_cache = cache_layers(cache_repo, "buildx");
    assert!(!want_cache.is_empty());
    assert_eq!(cache_layers(cache_repo, "addr"), want_cache);

    // The embedded build: the same platforms and configs (its index is OCI's, its layer
    // tars bud's own bytes, so media types and the COPY layer's digest are left out).
    let embedded = outputs("embedded");
    let embedded_args = args("embedded", &embedded);
    let embedded_args: Vec<&str> = embedded_args.iter().map(String::as_str).collect();
    bud_on(&docker, root.path(), &embedded_args);
    let comparable = |summary: Vec<String>| -> Vec<serde_json::Value> {
        summary[1..]
            .iter()
            .map(|line| {
                let (platform, rest) = line.split_once(' ').unwrap();
                let (_, config) = rest.split_once(' ').unwrap();
                let mut config: serde_json::Value = serde_json::from_str(config).unwrap();
                let diff_ids = config["rootfs"]["diff_ids"].as_array_mut().unwrap();
                assert_eq!(diff_ids.len(), 2, "{line}");
                diff_ids.pop();
                let platform: serde_json::Value = serde_json::from_str(platform).unwrap();
                serde_json::json!({"platform": platform, "config": config})
            })
            .collect()
    };
    assert_eq!(
        comparable(pushed(repo, "embedded")),
        comparable(pushed(repo, "addr"))
    );
    // The daemon's image exporter also named what it pushed in its store.
    let named = ["buildx", "addr"].map(|label| format!("{OPEN_REGISTRY}/{repo}:{label}"));
    docker.ok(&["image", "rm", &named[0], &named[1]]);
}

/// Each attestation manifest of the index pushed as `repo:tag`: the platform of the image it
/// attests (by the index's reference annotation), and of each in-toto statement the predicate
/// type, whether its subject is that image's manifest, and its provenance's materials.
fn attested(repo: &str, tag: &str) -> Vec<String> {
    let index = registry_get(&format!("{repo}/manifests/{tag}"), INDEX_TYPES);
    let entries = index["manifests"].as_array().expect("manifests");
    let platform_of = |digest: &str| {
        entries
            .iter()
            .find(|e| e["digest"] == digest)
            .map(|e| e["platform"].to_string())
            .unwrap_or_default()
    };
    let mut summary = Vec::new();
    for entry in entries {
        let annotations = &entry["annotations"];
        if annotations["vnd.docker.reference.type"] != "attestation-manifest" {
            continue;
        }
        let image = annotations["vnd.docker.reference.digest"].as_str().unwrap();
        let digest = entry["digest"].as_str().unwrap();
        let manifest = registry_get(&format!("{repo}/manifests/{digest}"), MANIFEST_TYPES);
        for layer in manifest["layers"].as_array().unwrap() {
            let blob = layer["digest"].as_str().unwrap();
            let statement = registry_get(&format!("{repo}/blobs/{blob}"), "*/*");
            let subject = statement["subject"][0]["digest"]["sha256"]
                .as_str()
                .unwrap();
            summary.push(format!(
                "{} {} subject is the image: {} materials: {}",
                platform_of(image),
                statement["predicateType"],
                image == format!("sha256:{subject}"),
                statement["predicate"]["materials"]
            ));
        }
    }
    summary
}

/// `--provenance` with `--addr` to a BuildKit that exports images itself goes to the daemon
/// as buildx sends it (`attest:provenance`), and the daemon attests the result bud's gateway
/// returned: one provenance per platform, on that platform's image, from the same materials
/// as buildx's. On Docker's own image store, whose `moby` exporter would drop them, bud
/// attaches them itself to the image it pushes (remote_docker.rs), one platform at a time:
/// several platforms there are refused by name.
#[test]
fn provenance_with_addr_is_the_daemons_own_where_it_exports_images() {
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    if !require_emulation() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&format!(
        "FROM {LIST_IMAGE}\nCOPY greeting /greeting\nCMD [\"cat\", \"/greeting\"]\n"
    ));
    let dir = ctx.path().to_str().unwrap();
    let repo = "bud-test/platforms-containerd-provenance";
    let output = |label: &str| format!("type=image,name={OPEN_REGISTRY}/{repo}:{label},push=true");
    let (buildx, remote) = (output("buildx"), output("addr"));
    let args = |output: &str| -> Vec<String> {
        [
            "--provenance=mode=max",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            output,
            dir,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let buildx_args = args(&buildx);
    let buildx_args: Vec<&str> = buildx_args.iter().map(String::as_str).collect();
    let out = docker.build(&buildx_args);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let addr = format!("docker://{}", docker.host());
    let mut remote_args = vec!["--addr".to_owned(), addr];
    remote_args.extend(args(&remote));
    let remote_args: Vec<&str> = remote_args.iter().map(String::as_str).collect();
    bud_on(&docker, root.path(), &remote_args);

    let want = attested(repo, "buildx");
    assert_eq!(want.len(), 2, "{want:?}");
    for (line, arch) in want.iter().zip(["amd64", "arm64"]) {
        assert!(
            line.starts_with(&format!(
                r#"{{"architecture":"{arch}","os":"linux"}} "https://slsa.dev/provenance/v0.2" subject is the image: true"#
            )),
            "{line}"
        );
    }
    assert_eq!(attested(repo, "addr"), want);
    let named = ["buildx", "addr"].map(|label| format!("{OPEN_REGISTRY}/{repo}:{label}"));
    docker.ok(&["image", "rm", &named[0], &named[1]]);

    // dockerd 20.10 keeps images in its own store.
    let out = bud_at(
        root.path(),
        &[
            "--addr",
            "docker://",
            "--provenance=mode=max",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &output("refused"),
            dir,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(
            "attestations (--provenance, --sbom, --attest) with --addr and several platforms \
             are not supported yet"
        ),
        "{}",
        stderr_of(&out)
    );
}
