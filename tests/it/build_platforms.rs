//! Builds for other platforms than the host's with the embedded solver: RUN steps through
//! QEMU user emulation (registered in binfmt_misc with flag F by scripts/test-env), the
//! platform ARGs, base images chosen by platform, and the errors when a platform cannot be
//! built here.

use crate::support;

use std::path::Path;

use sha2::Digest as _;
use support::*;

/// The arm64 base image scripts/test-env loads into Docker; the open registry's
/// `bud-test/busybox:latest` is a manifest list of it and the amd64 one.
const ARM64_IMAGE: &str = "bud-test/busybox:arm64";
const LIST_IMAGE: &str = "127.0.0.1:5000/bud-test/busybox:latest";

fn require_emulation() -> bool {
    build_ready()
        && require(
            "the arm64 base image",
            docker(&["image", "inspect", ARM64_IMAGE]).status.success(),
        )
        && require(
            "QEMU for aarch64 in binfmt_misc",
            Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists(),
        )
}

fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).expect("write the Dockerfile");
    dir
}

fn run_ok(root: &Path, args: &[&str]) {
    let out = bud_at(root, args);
    assert!(out.status.success(), "bud {args:?}: {}", stderr_of(&out));
}

/// What a RUN step recorded of the machine it ran on and of the platform ARGs.
const RECORD_PLATFORM: &str = "ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDARCH
RUN echo \"$(uname -m) $TARGETPLATFORM $TARGETOS $TARGETARCH [$TARGETVARIANT] $BUILDPLATFORM $BUILDARCH\" > /platform
";

#[test]
fn an_arm64_build_runs_its_steps_under_emulation() {
    if !require_emulation() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // From the registry's manifest list (the arm64 entry is chosen) and from Docker's store
    // (the arm64 image is used, its platform matching).
    for (base, tag) in [
        (LIST_IMAGE, "bud-test-platforms/list:arm64"),
        (ARM64_IMAGE, "bud-test-platforms/docker:arm64"),
    ] {
        let ctx = context(&format!("FROM {base}\n{RECORD_PLATFORM}"));
        let dir = ctx.path().to_str().unwrap();
        run_ok(
            root.path(),
            &[
                "--progress=plain",
                "--platform",
                "linux/arm64",
                "-t",
                tag,
                dir,
            ],
        );
        let platform = docker_ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Os}}/{{.Architecture}}/[{{.Variant}}]",
            tag,
        ]);
        assert_eq!(platform, "linux/arm64/[]", "{base}");
        let recorded = docker_ok(&[
            "run",
            "--rm",
            "--platform",
            "linux/arm64",
            tag,
            "cat",
            "/platform",
        ]);
        assert_eq!(
            recorded, "aarch64 linux/arm64 linux arm64 [] linux/amd64 amd64",
            "{base}"
        );
        docker(&["image", "rm", tag]);
    }
}

/// `linux/armhf` is containerd's alias of `linux/arm/v7`: the arguments say so, and the step
/// runs through the arm emulator (the base image, for arm64, is refused: no arm/v7 entry).
#[test]
fn platforms_are_normalised_and_a_base_without_the_platform_is_refused() {
    if !require_emulation() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&format!("FROM {LIST_IMAGE}\n{RECORD_PLATFORM}"));
    let dir = ctx.path().to_str().unwrap();
    let out = bud_at(
        root.path(),
        &[
            "--platform",
            "linux/armhf",
            "-o",
            "type=local,dest=out",
            dir,
        ],
    );
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("no image for platform linux/arm/v7")
            && err.contains("linux/amd64")
            && err.contains("linux/arm64"),
        "{err}"
    );

    // aarch64 is arm64's alias; an unknown platform is refused before anything runs.
    let out_dir = root.path().join("out");
    let dest = format!("type=local,dest={}", out_dir.display());
    run_ok(
        root.path(),
        &["--platform", "linux/aarch64", "-o", &dest, dir],
    );
    let recorded = std::fs::read_to_string(out_dir.join("platform")).unwrap();
    assert_eq!(
        recorded.trim(),
        "aarch64 linux/arm64 linux arm64 [] linux/amd64 amd64"
    );
    let out = bud_at(root.path(), &["--platform", "nonsense", "-o", &dest, dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains(
            "--platform nonsense: \"nonsense\": unknown operating system or architecture"
        ),
        "{}",
        stderr_of(&out)
    );
}

/// Docker's store holds one image per name; bud uses it only for its own platform and
/// otherwise takes the registry's.
#[test]
fn an_image_in_docker_is_used_only_for_its_platform() {
    if !require_emulation() {
        return;
    }
    // The registry holds the arm64 image under the name Docker holds the amd64 one.
    let name = format!("{OPEN_REGISTRY}/bud-test/platforms-docker-or-registry:latest");
    docker_ok(&["tag", ARM64_IMAGE, &name]);
    docker_ok(&["push", &name]);
    docker_ok(&["tag", BASE_IMAGE, &name]);
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&format!("FROM {name}\nRUN uname -m > /machine\n"));
    let dir = ctx.path().to_str().unwrap();
    for (platform, machine) in [("linux/arm64", "aarch64"), ("linux/amd64", "x86_64")] {
        let out_dir = root.path().join(platform.replace('/', "_"));
        let dest = format!("type=local,dest={}", out_dir.display());
        run_ok(root.path(), &["--platform", platform, "-o", &dest, dir]);
        let recorded = std::fs::read_to_string(out_dir.join("machine")).unwrap();
        assert_eq!(recorded.trim(), machine, "{platform}");
    }
    // The pushed image keeps a digest reference under the name: it goes too.
    docker(&["image", "rm", &name]);
    let repository = name.trim_end_matches(":latest");
    let digests = docker_ok(&[
        "image",
        "ls",
        "--digests",
        "--format",
        "{{.Digest}}",
        repository,
    ]);
    for digest in digests.lines().filter(|d| d.starts_with("sha256:")) {
        docker(&["image", "rm", &format!("{repository}@{digest}")]);
    }
}

/// No emulator for a platform: the build fails before any step runs, naming the platform and
/// the ways out. riscv64 is one scripts/test-env does not register.
#[test]
fn a_platform_without_an_emulator_is_refused_with_the_fix() {
    if !build_ready() {
        return;
    }
    assert!(
        !Path::new("/proc/sys/fs/binfmt_misc/qemu-riscv64").exists(),
        "this test needs a machine without a riscv64 emulator"
    );
    let root = tempfile::tempdir().unwrap();
    let ctx = context("FROM scratch\nRUN true\n");
    let dir = ctx.path().to_str().unwrap();
    let out = bud_at(
        root.path(),
        &["--platform", "linux/riscv64", "-o", "type=tar,dest=-", dir],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("cannot run linux/riscv64 binaries on this machine")
            && err.contains("apt-get install qemu-user-static")
            && err.contains("--addr"),
        "{err}"
    );
}

/// `bud debug workers` lists what the emulators' test programs showed this machine runs.
#[test]
fn debug_workers_lists_the_emulated_platforms() {
    if !require_emulation() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let out = bud_at(root.path(), &["debug", "workers"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Platforms:"))
        .expect("a Platforms line");
    let platforms: Vec<&str> = line["Platforms:".len()..]
        .split(',')
        .map(str::trim)
        .collect();
    assert_eq!(platforms.first(), Some(&"linux/amd64"), "{line}");
    assert!(platforms.contains(&"linux/arm64"), "{line}");
    assert!(platforms.contains(&"linux/arm/v7"), "{line}");
    assert!(!platforms.contains(&"linux/riscv64"), "{line}");
}

/// A GET from the open registry's API, with `accept` as the media types wanted.
fn registry_get(path: &str, accept: &str) -> serde_json::Value {
    let out = std::process::Command::new("curl")
        .args(["-fsS", "-H", &format!("Accept: {accept}")])
        .arg(format!("http://{OPEN_REGISTRY}/v2/{path}"))
        .output()
        .expect("run curl");
    assert!(out.status.success(), "GET {path}: {}", stderr_of(&out));
    serde_json::from_slice(&out.stdout).expect("a JSON document")
}

const INDEX_TYPES: &str = "application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.list.v2+json";
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json";

/// `--platform linux/amd64,linux/arm64 --push`: an index of one manifest per platform,
/// each config naming its platform, each image running on its platform with what its RUN
/// step recorded there. `oci-mediatypes=false` makes it a Docker manifest list.
#[test]
fn a_two_platform_push_writes_an_index_of_both() {
    if !require_emulation() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&format!(
        "FROM {LIST_IMAGE}\nRUN uname -m > /machine\nCMD [\"cat\", \"/machine\"]\n"
    ));
    let dir = ctx.path().to_str().unwrap();
    let repo = "bud-test/platforms-index";
    let name = format!("{OPEN_REGISTRY}/{repo}:two");
    let list_name = format!("{OPEN_REGISTRY}/{repo}:list");
    // --iidfile names the index, which has no config, as with buildx.
    let iidfile = root.path().join("iid");
    let out = bud_at(
        root.path(),
        &[
            // The index's own shape; attestation manifests are image_metadata's.
            "--provenance=false",
            "--platform",
            "linux/amd64,linux/arm64",
            "--push",
            "-t",
            &name,
            "--iidfile",
            iidfile.to_str().unwrap(),
            dir,
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let index_digest = std::fs::read_to_string(&iidfile).unwrap();
    let list_output = format!("type=registry,name={list_name},oci-mediatypes=false");
    run_ok(
        root.path(),
        &[
            "--provenance=false",
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm64",
            "-o",
            &list_output,
            dir,
        ],
    );

    for (tag, index_type, manifest_type) in [
        (
            "two",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
        ),
        (
            "list",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
    ] {
        let index = registry_get(&format!("{repo}/manifests/{tag}"), INDEX_TYPES);
        if tag == "two" {
            let by_digest = registry_get(&format!("{repo}/manifests/{index_digest}"), INDEX_TYPES);
            assert_eq!(by_digest, index, "{index_digest} is not the index pushed");
        }
        assert_eq!(index["mediaType"], index_type, "{index}");
        let entries = index["manifests"].as_array().expect("manifests");
        let platforms: Vec<String> = entries
            .iter()
            .map(|e| {
                format!(
                    "{}/{}",
                    e["platform"]["os"].as_str().unwrap(),
                    e["platform"]["architecture"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{index}");
        for (entry, (arch, machine)) in entries
            .iter()
            .zip([("amd64", "x86_64"), ("arm64", "aarch64")])
        {
            assert_eq!(entry["mediaType"], manifest_type, "{index}");
            let digest = entry["digest"].as_str().unwrap();
            let manifest = registry_get(&format!("{repo}/manifests/{digest}"), MANIFEST_TYPES);
            let config_digest = manifest["config"]["digest"].as_str().unwrap();
            let config = registry_get(&format!("{repo}/blobs/{config_digest}"), "*/*");
            assert_eq!(config["architecture"], arch, "{config}");
            assert_eq!(config["os"], "linux", "{config}");
            assert_eq!(config.get("variant"), None, "{config}");
            if tag == "two" {
                let pinned = format!("{OPEN_REGISTRY}/{repo}@{digest}");
                docker_ok(&["pull", &pinned]);
                let ran = docker_ok(&[
                    "run",
                    "--rm",
                    "--platform",
                    &format!("linux/{arch}"),
                    &pinned,
                ]);
                assert_eq!(ran, machine);
                docker(&["image", "rm", &pinned]);
            }
        }
    }
}

/// The cross-compiling pattern: a stage on $BUILDPLATFORM is the same graph for both
/// targets, so it runs once and both platforms copy the very same result.
#[test]
fn a_build_platform_stage_runs_once_for_every_target() {
    if !require_emulation() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&format!(
        "FROM --platform=$BUILDPLATFORM {LIST_IMAGE} AS build
RUN head -c 16 /dev/urandom | od -An -tx1 > /stamp && uname -m > /built-on
FROM {LIST_IMAGE}
COPY --from=build /stamp /built-on /
RUN uname -m > /machine
"
    ));
    let dir = ctx.path().to_str().unwrap();
    let out_dir = root.path().join("out");
    let dest = format!("type=local,dest={}", out_dir.display());
    let out = bud_at(
        root.path(),
        &[
            "--progress=plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &dest,
            dir,
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let read = |platform: &str, file: &str| {
        std::fs::read_to_string(out_dir.join(platform).join(file))
            .unwrap_or_else(|e| panic!("{platform}/{file}: {e}"))
    };
    assert_eq!(read("linux_amd64", "stamp"), read("linux_arm64", "stamp"));
    assert_eq!(read("linux_arm64", "built-on").trim(), "x86_64");
    assert_eq!(read("linux_amd64", "machine").trim(), "x86_64");
    assert_eq!(read("linux_arm64", "machine").trim(), "aarch64");
    let log = stderr_of(&out);
    // Each vertex has its own `#N` in the plain log.
    let runs: std::collections::BTreeSet<&str> = log
        .lines()
        .filter(|l| l.starts_with('#') && l.contains("RUN head -c 16"))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(runs.len(), 1, "the build stage's step shows once:\n{log}");
    // Step names start with their platform, as BuildKit's do in a multi-platform build.
    for name in [
        "[linux/amd64 build 2/2] RUN head -c 16",
        "[linux/arm64 stage-1 3/3] RUN uname -m",
        "[linux/amd64 stage-1 3/3] RUN uname -m",
    ] {
        assert!(log.contains(name), "no {name:?} in:\n{log}");
    }
}

/// What several platforms cannot do: an unknown platform, a base image without one of
/// them, a load into Docker (buildx's reason); a tar holds one directory per platform, an
/// OCI layout an image index of one manifest per platform.
#[test]
fn several_platforms_errors_and_file_outputs() {
    if !require_emulation() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&format!("FROM {LIST_IMAGE}\nRUN uname -m > /machine\n"));
    let dir = ctx.path().to_str().unwrap();

    let out = bud_at(
        root.path(),
        &[
            "--platform",
            "linux/amd64,nonsense",
            "-o",
            "type=tar,dest=-",
            dir,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains(
            "--platform nonsense: \"nonsense\": unknown operating system or architecture"
        ),
        "{}",
        stderr_of(&out)
    );

    let out = bud_at(
        root.path(),
        &[
            "--platform",
            "linux/amd64,linux/arm/v7",
            "-o",
            "type=tar,dest=-",
            dir,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("no image for platform linux/arm/v7"),
        "{}",
        stderr_of(&out)
    );

    let out = bud_at(
        root.path(),
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "bud-test-platforms/refused",
            dir,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out)
            .contains("docker exporter does not currently support exporting manifest lists"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        !docker(&["image", "inspect", "bud-test-platforms/refused"])
            .status
            .success()
    );

    // What a multi-platform build does not carry out yet is refused, never dropped.
    let cache = root.path().join("cache");
    let cache_to = format!("type=local,dest={}", cache.display());
    let oci = format!("type=oci,dest={}", root.path().join("o.tar").display());
    for (extra, refusal) in [
        (
            vec!["--cache-to", cache_to.as_str(), "-o", "type=tar,dest=-"],
            "--cache-from and --cache-to with several platforms are not supported yet",
        ),
        (
            vec!["--annotation", "a=b", "-o", oci.as_str()],
            "annotations with several platforms are not supported yet",
        ),
    ] {
        let mut args = vec!["--platform", "linux/amd64,linux/arm64"];
        args.extend(extra);
        args.push(dir);
        let out = bud_at(root.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
        assert!(stderr_of(&out).contains(refusal), "{}", stderr_of(&out));
    }
    assert!(!cache.exists());

    let tar_path = root.path().join("out.tar");
    let dest = format!("type=tar,dest={}", tar_path.display());
    run_ok(
        root.path(),
        &[
            "--provenance=false",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &dest,
            dir,
        ],
    );
    let file = std::fs::File::open(&tar_path).unwrap();
    let mut archive = tar::Archive::new(file);
    let mut machines = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let top = path
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        assert!(
            top == "linux_amd64" || top == "linux_arm64",
            "{}",
            path.display()
        );
        if path.file_name().is_some_and(|n| n == "machine") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            machines.push((top, text.trim().to_owned()));
        }
    }
    machines.sort();
    assert_eq!(
        machines,
        [
            ("linux_amd64".to_owned(), "x86_64".to_owned()),
            ("linux_arm64".to_owned(), "aarch64".to_owned())
        ]
    );

    let oci_path = root.path().join("oci.tar");
    let dest = format!(
        "type=oci,dest={},name=example.com/app:v1",
        oci_path.display()
    );
    run_ok(
        root.path(),
        &[
            "--provenance=false",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &dest,
            dir,
        ],
    );
    let mut files = std::collections::HashMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&oci_path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        files.insert(path, bytes);
    }
    // Every blob read is checked against its digest.
    let blob = |digest: &str| -> serde_json::Value {
        let bytes = &files[&format!("blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap())];
        let hex: String = sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(format!("sha256:{hex}"), digest);
        serde_json::from_slice(bytes).unwrap()
    };
    let top: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let entry = &top["manifests"][0];
    assert_eq!(
        entry["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{top}"
    );
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        "example.com/app:v1"
    );
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    let index = blob(entry["digest"].as_str().unwrap());
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{index}");
    for (m, arch) in manifests.iter().zip(["amd64", "arm64"]) {
        assert_eq!(m["platform"]["architecture"], arch, "{index}");
        let manifest = blob(m["digest"].as_str().unwrap());
        let config = blob(manifest["config"]["digest"].as_str().unwrap());
        assert_eq!(config["architecture"], arch);
        for layer in manifest["layers"].as_array().unwrap() {
            let name = format!(
                "blobs/sha256/{}",
                layer["digest"]
                    .as_str()
                    .unwrap()
                    .strip_prefix("sha256:")
                    .unwrap()
            );
            assert!(files.contains_key(&name), "{name} is missing");
        }
    }
}

/// With `--addr`, the platform goes to BuildKit in the graph: dockerd's BuildKit runs the
/// step through the same emulator. Several platforms are refused there for now.
#[test]
fn a_remote_build_for_arm64_runs_on_the_daemons_emulator() {
    if !require_emulation() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&format!("FROM {LIST_IMAGE}\n{RECORD_PLATFORM}"));
    let dir = ctx.path().to_str().unwrap();
    let tag = "bud-test-platforms/remote:arm64";
    run_ok(
        root.path(),
        &[
            "--addr",
            "docker://",
            "--platform",
            "linux/arm64",
            "-t",
            tag,
            dir,
        ],
    );
    let platform = docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Os}}/{{.Architecture}}/[{{.Variant}}]",
        tag,
    ]);
    assert_eq!(platform, "linux/arm64/[]");
    let recorded = docker_ok(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        tag,
        "cat",
        "/platform",
    ]);
    assert_eq!(
        recorded,
        "aarch64 linux/arm64 linux arm64 [] linux/amd64 amd64"
    );
    docker(&["image", "rm", tag]);

    let out = bud_at(
        root.path(),
        &[
            "--addr",
            "docker://",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            "type=tar,dest=-",
            dir,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out)
            .contains("with --addr, --platform with several platforms is not supported yet"),
        "{}",
        stderr_of(&out)
    );
}

/// A step failing in a multi-platform build is reported as in any build: the step's
/// block and docker build's failure line, once.
#[test]
fn a_failing_step_of_several_platforms_is_reported_like_any_other() {
    if !require_emulation() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&format!("FROM {LIST_IMAGE}\nRUN exit 3\n"));
    let dir = ctx.path().to_str().unwrap();
    let out = bud_at(
        root.path(),
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            "type=tar,dest=/dev/null",
            dir,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    let failure = "failed to solve: process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3";
    assert_eq!(err.matches(failure).count(), 1, "{err}");
    assert!(err.contains("   2 | >>> RUN exit 3\n"), "{err}");
}
