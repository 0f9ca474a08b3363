//! Builds for other platforms than the host's with the embedded solver: RUN steps through
//! QEMU user emulation (registered in binfmt_misc with flag F by scripts/test-env), the
//! platform ARGs, base images chosen by platform, and the errors when a platform cannot be
//! built here.

use crate::support;
use crate::support::context_servers;

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
/// step through the same emulator.
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
}

/// The mount points of a RUN step, which dockerd 20.10's BuildKit (v0.8) leaves behind in
/// the result, empty; later BuildKits and bud remove them. Not a difference of bud's.
const MOUNT_STUBS: [&str; 3] = ["dev", "proc", "sys"];

fn mount_stub(name: &str) -> bool {
    MOUNT_STUBS.contains(&name)
}

/// What a two-platform build with every kind of output gave, for comparing solvers: the
/// index pushed and the OCI layout's (platforms, each config's platform and runtime
/// settings), the files of each platform's local directory and tarball, and what the RUN
/// step recorded of the machine. Its outputs are under `ROOT/out-LABEL`.
fn two_platform_outputs(
    root: &Path,
    label: &str,
    dir: &str,
    solver: &[&str],
    env: &[(&str, &Path)],
) -> String {
    let repo = "bud-test/platforms-remote";
    let name = format!("{OPEN_REGISTRY}/{repo}:{label}");
    let out_dir = root.join(format!("out-{label}"));
    let local = out_dir.join("local");
    let tarball = out_dir.join("fs.tar");
    let oci = out_dir.join("oci.tar");
    let (local_out, tar_out, oci_out) = (
        format!("type=local,dest={}", local.display()),
        format!("type=tar,dest={}", tarball.display()),
        format!("type=oci,dest={},name=example.com/app:v1", oci.display()),
    );
    let mut args: Vec<&str> = solver.to_vec();
    args.extend([
        "--provenance=false",
        "--platform",
        "linux/amd64,linux/arm64",
        "--push",
        "-t",
        &name,
        "-o",
        &local_out,
        "-o",
        &tar_out,
        "-o",
        &oci_out,
        dir,
    ]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root)
        .args(&args)
        .envs(env.iter().copied())
        .output()
        .expect("run bud");
    assert!(out.status.success(), "bud {args:?}: {}", stderr_of(&out));
    // Docker 28.5's BuildKit checks each result against the platform it was asked for.
    assert!(
        !stderr_of(&out).contains("does not match result platform"),
        "{}",
        stderr_of(&out)
    );

    let mut summary = Vec::new();
    let config_of = |config: &serde_json::Value| {
        format!(
            "{}/{} {}",
            config["os"].as_str().unwrap(),
            config["architecture"].as_str().unwrap(),
            config["config"]
        )
    };
    let index = registry_get(&format!("{repo}/manifests/{label}"), INDEX_TYPES);
    for entry in index["manifests"].as_array().expect("manifests") {
        let digest = entry["digest"].as_str().unwrap();
        let manifest = registry_get(&format!("{repo}/manifests/{digest}"), MANIFEST_TYPES);
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        let config = registry_get(&format!("{repo}/blobs/{config_digest}"), "*/*");
        summary.push(format!(
            "pushed {} {} layers: {}",
            entry["platform"]["architecture"],
            manifest["layers"].as_array().unwrap().len(),
            config_of(&config)
        ));
    }

    let mut files = std::collections::HashMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&oci).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        files.insert(path, bytes);
    }
    let blob = |digest: &str| -> serde_json::Value {
        let bytes = &files[&format!("blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap())];
        serde_json::from_slice(bytes).unwrap()
    };
    let top: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let oci_index = blob(top["manifests"][0]["digest"].as_str().unwrap());
    for m in oci_index["manifests"].as_array().unwrap() {
        let manifest = blob(m["digest"].as_str().unwrap());
        let config = blob(manifest["config"]["digest"].as_str().unwrap());
        summary.push(format!(
            "oci {}: {}",
            m["platform"]["architecture"],
            config_of(&config)
        ));
    }

    for platform in ["linux_amd64", "linux_arm64"] {
        let machine = std::fs::read_to_string(local.join(platform).join("machine")).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(local.join(platform))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !mount_stub(name))
            .collect();
        for stub in MOUNT_STUBS {
            let path = local.join(platform).join(stub);
            assert!(
                !path.exists() || std::fs::read_dir(&path).unwrap().next().is_none(),
                "{} is not empty",
                path.display()
            );
        }
        names.sort();
        summary.push(format!("local {platform}: {} {names:?}", machine.trim()));
    }
    let mut archive = tar::Archive::new(std::fs::File::open(&tarball).unwrap());
    let mut tops = std::collections::BTreeMap::<String, Vec<String>>::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let mut parts = path.components();
        let top = parts
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        if let Some(second) = parts.next()
            && parts.next().is_none()
        {
            let name = second.as_os_str().to_string_lossy().into_owned();
            if !mount_stub(&name) {
                tops.entry(top).or_default().push(name);
            }
        }
    }
    for (top, mut names) in tops {
        names.sort();
        summary.push(format!("tar {top}: {names:?}"));
    }
    summary.join("\n")
}

/// `--addr` with several platforms, on dockerd 20.10 and on Docker 28.5, and a builder of
/// two native nodes (bud.toml's `[[builder.nodes]]`: amd64 on the one, arm64 on the other):
/// each platform is solved on its daemon and bud joins the results, so every output is
/// the embedded build's: the same index pushed and written, the same directories.
#[test]
fn several_platforms_on_daemons_and_native_nodes_give_the_embedded_outputs() {
    if !require_emulation() {
        return;
    }
    let Some(docker28) = require_docker28() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&format!(
        "FROM {LIST_IMAGE}\nRUN uname -m > /machine\n\
         RUN grep -o 'upperdir=[^,]*' /proc/self/mountinfo | head -n 1 > /node\n\
         ENV BUILT=yes\nCMD [\"cat\", \"/machine\"]\n"
    ));
    let dir = ctx.path().to_str().unwrap();

    let embedded = two_platform_outputs(root.path(), "embedded", dir, &[], &[]);
    for part in [
        "pushed \"amd64\" 3 layers: linux/amd64 {",
        "pushed \"arm64\" 3 layers: linux/arm64 {",
        "oci \"arm64\": linux/arm64 {",
        "local linux_amd64: x86_64 [",
        "local linux_arm64: aarch64 [",
        "tar linux_arm64: [",
    ] {
        assert!(embedded.contains(part), "{part} is not in {embedded}");
    }
    let docker28_addr = format!("docker://{}", docker28.host());
    for (label, addr) in [
        ("dockerd", "docker://"),
        ("docker28", docker28_addr.as_str()),
    ] {
        let remote = two_platform_outputs(root.path(), label, dir, &["--addr", addr], &[]);
        assert_eq!(remote, embedded, "--addr {addr}");
    }

    let config = root.path().join("bud.toml");
    std::fs::write(
        &config,
        format!(
            "[[builder.nodes]]\nname = \"amd\"\naddr = \"docker://\"\nplatforms = [\"linux/amd64\"]\n\n\
             [[builder.nodes]]\nname = \"arm\"\naddr = \"{docker28_addr}\"\nplatforms = [\"linux/arm64\"]\n"
        ),
    )
    .unwrap();
    let nodes = two_platform_outputs(root.path(), "nodes", dir, &[], &[("BUD_CONFIG", &config)]);
    assert_eq!(nodes, embedded, "native nodes");
    // Each platform ran on its own node: the RUN step's root was in that daemon's storage.
    let data_root = docker28.ok(&["info", "--format", "{{.DockerRootDir}}"]);
    let ran_on = |platform: &str| {
        let node = root
            .path()
            .join("out-nodes/local")
            .join(platform)
            .join("node");
        std::fs::read_to_string(node).unwrap()
    };
    assert!(
        ran_on("linux_amd64").starts_with("upperdir=/var/lib/docker/"),
        "{}",
        ran_on("linux_amd64")
    );
    assert!(
        ran_on("linux_arm64").starts_with(&format!("upperdir={data_root}/")),
        "{} is not under {data_root}",
        ran_on("linux_arm64")
    );

    let workers = std::process::Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args(["debug", "workers"])
        .env("BUD_CONFIG", &config)
        .output()
        .expect("run bud debug workers");
    assert!(workers.status.success(), "{}", stderr_of(&workers));
    let shown = String::from_utf8_lossy(&workers.stdout);
    assert!(
        shown.contains(&format!(
            "the nodes of [[builder.nodes]]: amd at docker:// (linux/amd64); arm at \
             {docker28_addr} (linux/arm64)"
        )),
        "{shown}"
    );

    // What one image cannot hold, or a build of several platforms on daemons does not
    // carry out yet, is refused before anything runs.
    let cache = root.path().join("cache");
    let cache_to = format!("type=local,dest={}", cache.display());
    for (extra, refusal) in [
        (
            vec!["-t", "bud-test-platforms/refused"],
            "docker exporter does not currently support exporting manifest lists",
        ),
        (
            vec![
                "--cache-to",
                cache_to.as_str(),
                "-o",
                "type=tar,dest=/dev/null",
            ],
            "--cache-to with several platforms is not supported yet",
        ),
    ] {
        let mut args = vec![
            "--addr",
            "docker://",
            "--platform",
            "linux/amd64,linux/arm64",
        ];
        args.extend(extra);
        args.push(dir);
        let out = bud_at(root.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
        assert!(stderr_of(&out).contains(refusal), "{}", stderr_of(&out));
    }
    assert!(!cache.exists());

    // A platform no node builds is refused, naming what each builds.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args([
            "--platform",
            "linux/arm/v7",
            "-o",
            "type=tar,dest=/dev/null",
            dir,
        ])
        .env("BUD_CONFIG", &config)
        .output()
        .expect("run bud");
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(
            "no node of the builder builds linux/arm/v7: its nodes are amd (linux/amd64); \
             arm (linux/arm64)"
        ),
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

/// An OCI image layout tarball read into memory: file path → bytes.
fn oci_layout_files(path: &Path) -> std::collections::HashMap<String, Vec<u8>> {
    let mut files = std::collections::HashMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        files.insert(path, bytes);
    }
    files
}

/// A blob of an OCI layout, checked against its digest.
fn layout_blob<'a>(
    files: &'a std::collections::HashMap<String, Vec<u8>>,
    digest: &str,
) -> &'a [u8] {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let bytes = files
        .get(&format!("blobs/sha256/{hex}"))
        .unwrap_or_else(|| panic!("no blob {digest}"));
    let actual: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(actual, hex, "blob {digest} does not match its digest");
    bytes
}

/// The annotations of one JSON object, as `key=value` strings in key order.
fn annotations_of(value: &serde_json::Value) -> Vec<String> {
    value["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

/// `-o type=oci` with several platforms, as BuildKit's OCI exporter writes it:
/// `compression=zstd,force-compression=true` (base layers too, wherever they came from)
/// and `rewrite-timestamp=true` make each platform's image (its layers zstd, the build's
/// own files dated SOURCE_DATE_EPOCH), and every kind of annotation goes
/// where buildx's `--annotation` puts it: `manifest` into every manifest and
/// `manifest[linux/arm64]` into arm64's only, `manifest-descriptor` onto the index's
/// entries, `index` into the index, `index-descriptor` onto its entry in index.json.
/// (Docker 28.5's docker driver writes no OCI layout of several platforms, so the layout is
/// read back and checked against the OCI image spec instead.)
#[test]
fn several_platforms_in_an_oci_layout_with_annotations_compression_and_clamped_times() {
    if !require_emulation() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&format!("FROM {LIST_IMAGE}\nRUN uname -m > /machine\n"));
    let dir = ctx.path().to_str().unwrap();
    let oci_path = root.path().join("oci.tar");
    let dest = format!(
        "type=oci,dest={},name=example.com/app:v1,compression=zstd,force-compression=true,rewrite-timestamp=true",
        oci_path.display()
    );
    const EPOCH: i64 = 1_000_000_000;
    run_ok(
        root.path(),
        &[
            "--provenance=false",
            "--platform",
            "linux/amd64,linux/arm64",
            "--build-arg",
            &format!("SOURCE_DATE_EPOCH={EPOCH}"),
            "--annotation",
            "com.example.all=1",
            "--annotation",
            "manifest[linux/arm64]:com.example.all=arm",
            "--annotation",
            "manifest[linux/arm64]:com.example.arm=yes",
            "--annotation",
            "manifest-descriptor:com.example.entry=e",
            "--annotation",
            "index:com.example.index=i",
            "--annotation",
            "index-descriptor:com.example.top=t",
            "-o",
            &dest,
            dir,
        ],
    );
    let files = oci_layout_files(&oci_path);
    let top: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let entry = &top["manifests"][0];
    let entry_annotations = annotations_of(entry);
    assert!(
        entry_annotations.contains(&"com.example.top=t".to_owned())
            && entry_annotations
                .contains(&"io.containerd.image.name=example.com/app:v1".to_owned()),
        "{top}"
    );
    let index: serde_json::Value =
        serde_json::from_slice(layout_blob(&files, entry["digest"].as_str().unwrap())).unwrap();
    assert_eq!(annotations_of(&index), ["com.example.index=i"], "{index}");
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{index}");
    for (m, arch) in manifests.iter().zip(["amd64", "arm64"]) {
        assert_eq!(m["platform"]["architecture"], arch, "{index}");
        assert_eq!(annotations_of(m), ["com.example.entry=e"], "{index}");
        let manifest: serde_json::Value =
            serde_json::from_slice(layout_blob(&files, m["digest"].as_str().unwrap())).unwrap();
        let expected: &[&str] = if arch == "arm64" {
            &["com.example.all=arm", "com.example.arm=yes"]
        } else {
            &["com.example.all=1"]
        };
        assert_eq!(annotations_of(&manifest), expected, "{manifest}");
        let config: serde_json::Value = serde_json::from_slice(layout_blob(
            &files,
            manifest["config"]["digest"].as_str().unwrap(),
        ))
        .unwrap();
        assert_eq!(config["architecture"], arch);
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2, "{manifest}");
        for layer in layers {
            assert_eq!(
                layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
                "{manifest}"
            );
        }
        // The build's own layer, read back: its file says where it ran and is dated
        // SOURCE_DATE_EPOCH, its config's diff ID the digest of the clamped tar.
        let own = layout_blob(&files, layers[1]["digest"].as_str().unwrap());
        let tar_bytes = zstd::decode_all(own).unwrap();
        let diff_id: String = sha2::Sha256::digest(&tar_bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(config["rootfs"]["diff_ids"][1], format!("sha256:{diff_id}"));
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            assert!(
                e.header().mtime().unwrap() <= EPOCH as u64,
                "{arch} {path} is dated after SOURCE_DATE_EPOCH"
            );
            if path == "machine" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut e, &mut text).unwrap();
                assert_eq!(e.header().mtime().unwrap(), EPOCH as u64);
                seen.push(text.trim().to_owned());
            }
        }
        let machine = if arch == "arm64" { "aarch64" } else { "x86_64" };
        assert_eq!(seen, [machine], "{arch}");
    }

    // A manifest annotation for a platform not built would be written nowhere: refused.
    let out = bud_at(
        root.path(),
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--annotation",
            "manifest[linux/riscv64]:k=v",
            "-o",
            &format!("type=oci,dest={}", oci_path.display()),
            dir,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains(
            "annotation \"k\" is for platform linux/riscv64, but the image is built for \
             linux/amd64, linux/arm64"
        ),
        "{}",
        stderr_of(&out)
    );
}

/// A two-platform push with annotations, read back from the registry: the index carries
/// its own, its entries the manifest descriptors', each manifest its platform's; pushed
/// with `rewrite-timestamp=true`, each platform's own layer has its files dated
/// SOURCE_DATE_EPOCH. An `index-descriptor` annotation has no place in a registry: refused.
#[test]
fn a_two_platform_push_carries_its_annotations_and_clamped_times() {
    if !require_emulation() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&format!("FROM {LIST_IMAGE}\nRUN uname -m > /machine\n"));
    let dir = ctx.path().to_str().unwrap();
    let repo = "bud-test/platforms-annotated";
    let name = format!("{OPEN_REGISTRY}/{repo}:two");
    let output = format!("type=registry,name={name},rewrite-timestamp=true");
    const EPOCH: i64 = 1_000_000_000;
    run_ok(
        root.path(),
        &[
            "--provenance=false",
            "--platform",
            "linux/amd64,linux/arm64",
            "--build-arg",
            &format!("SOURCE_DATE_EPOCH={EPOCH}"),
            "--annotation",
            "index:com.example.index=i",
            "--annotation",
            "manifest-descriptor[linux/amd64]:com.example.entry=amd",
            "--annotation",
            "manifest[linux/arm64]:com.example.arm=yes",
            "-o",
            &output,
            dir,
        ],
    );
    let index = registry_get(&format!("{repo}/manifests/two"), INDEX_TYPES);
    assert_eq!(annotations_of(&index), ["com.example.index=i"], "{index}");
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    for (entry, (arch, machine)) in entries
        .iter()
        .zip([("amd64", "x86_64"), ("arm64", "aarch64")])
    {
        assert_eq!(entry["platform"]["architecture"], arch, "{index}");
        let (entry_expected, manifest_expected): (&[&str], &[&str]) = if arch == "amd64" {
            (&["com.example.entry=amd"], &[])
        } else {
            (&[], &["com.example.arm=yes"])
        };
        assert_eq!(annotations_of(entry), entry_expected, "{index}");
        let digest = entry["digest"].as_str().unwrap();
        let manifest = registry_get(&format!("{repo}/manifests/{digest}"), MANIFEST_TYPES);
        assert_eq!(annotations_of(&manifest), manifest_expected, "{manifest}");
        let layers = manifest["layers"].as_array().unwrap();
        let own = layers.last().unwrap()["digest"].as_str().unwrap();
        let blob = support::registry_get(&format!("{repo}/blobs/{own}"));
        let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(blob.as_slice()));
        let mut found = false;
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            assert!(e.header().mtime().unwrap() <= EPOCH as u64, "{arch}");
            if e.path().unwrap().to_string_lossy() == "machine" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut e, &mut text).unwrap();
                assert_eq!(text.trim(), machine);
                assert_eq!(e.header().mtime().unwrap(), EPOCH as u64);
                found = true;
            }
        }
        assert!(found, "{arch}: no /machine in its own layer");
    }

    let out = bud_at(
        root.path(),
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--annotation",
            "index-descriptor:k=v",
            "--push",
            "-t",
            &name,
            dir,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("a registry keeps no such descriptor"),
        "{}",
        stderr_of(&out)
    );
}

/// A URL as the context of a two-platform build, git (served by `git daemon`) and a
/// tarball over http: fetched by the solver, its Dockerfile read from it, and each
/// platform's result holding the context's file and its own RUN step's machine.
#[test]
fn a_url_context_builds_for_two_platforms() {
    if !require_emulation()
        || !require(
            "git daemon and git http-backend",
            context_servers::git_servers_available(),
        )
    {
        return;
    }
    let dockerfile = format!("FROM {LIST_IMAGE}\nCOPY hello.txt /\nRUN uname -m > /machine\n");
    let repos = context_servers::Repos::new();
    repos.create(
        "multi.git",
        &[("Dockerfile", &dockerfile), ("hello.txt", "from git\n")],
    );
    let daemon = context_servers::GitDaemon::serve(repos.base.path());
    let tarball = context_servers::tar_of(&[
        ("Dockerfile", dockerfile.as_bytes()),
        ("hello.txt", b"from a tarball\n"),
    ]);
    let server = context_servers::FileServer::serve(std::collections::BTreeMap::from([(
        "/context.tar".to_owned(),
        context_servers::Answer::Body(tarball),
    )]));
    let root = tempfile::tempdir().unwrap();
    for (url, hello) in [
        (daemon.url("multi.git"), "from git"),
        (server.url("/context.tar"), "from a tarball"),
    ] {
        let out_dir = root.path().join("out");
        let _ = std::fs::remove_dir_all(&out_dir);
        let dest = format!("type=local,dest={}", out_dir.display());
        run_ok(
            root.path(),
            &[
                "--provenance=false",
                "--platform",
                "linux/amd64,linux/arm64",
                "-o",
                &dest,
                &url,
            ],
        );
        for (platform, machine) in [("linux_amd64", "x86_64"), ("linux_arm64", "aarch64")] {
            let read = |file: &str| {
                std::fs::read_to_string(out_dir.join(platform).join(file))
                    .unwrap_or_else(|e| panic!("{url}: {platform}/{file}: {e}"))
            };
            assert_eq!(read("hello.txt").trim(), hello, "{url}");
            assert_eq!(read("machine").trim(), machine, "{url}");
        }
    }
}

/// What a random RUN step wrote for each platform of a two-platform local output.
fn stamps(out_dir: &Path) -> Vec<String> {
    ["linux_amd64", "linux_arm64"]
        .iter()
        .map(|p| {
            std::fs::read_to_string(out_dir.join(p).join("stamp"))
                .unwrap_or_else(|e| panic!("{p}/stamp: {e}"))
        })
        .collect()
}

/// `--cache-to` of a two-platform build writes one cache holding the records of both
/// platforms, as BuildKit exports every result of the build into one cache config; a
/// build of both platforms on an empty state root imports it, each platform's step hitting
/// its own record. The same with an inline cache: each platform's image carries its own
/// records, and the pushed index is read for every platform. (Docker 28.5's docker driver
/// builds one platform only, so the cache is read back and checked instead.)
#[test]
fn a_cache_of_several_platforms_holds_them_all_and_imports_per_platform() {
    if !require_emulation() {
        return;
    }
    let ctx = context(&format!(
        "FROM {LIST_IMAGE}\nRUN head -c 16 /dev/urandom | od -An -tx1 > /stamp && uname -m > /machine\n"
    ));
    let dir = ctx.path().to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let build = |extra: &[&str], out: &str| {
        let root = tempfile::tempdir().unwrap();
        let out_dir = work.path().join(out);
        let dest = format!("type=local,dest={}", out_dir.display());
        let mut args = vec![
            "--provenance=false",
            "--progress=plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &dest,
        ];
        args.extend_from_slice(extra);
        args.push(dir);
        let out = bud_at(root.path(), &args);
        assert!(out.status.success(), "{extra:?}: {}", stderr_of(&out));
        (stamps(&out_dir), stderr_of(&out))
    };

    let cache_to = format!("type=local,dest={}", cache.display());
    let (first, log) = build(&["--cache-to", &cache_to], "first");
    assert_ne!(first[0], first[1], "each platform ran its own step");
    assert!(log.contains("exporting cache to client directory"), "{log}");
    // One cache (one manifest in the layout), whose layers hold both platforms' results.
    let layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("index.json")).unwrap()).unwrap();
    let entries = layout["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{layout}");
    let blob = |digest: &str| {
        std::fs::read(
            cache
                .join("blobs/sha256")
                .join(digest.strip_prefix("sha256:").unwrap()),
        )
        .unwrap()
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(entries[0]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"], "application/vnd.buildkit.cacheconfig.v0",
        "{manifest}"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let with_results = config["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["layers"].as_array().is_some_and(|a| !a.is_empty()))
        .count();
    assert_eq!(
        with_results, 2,
        "one result per platform's RUN step: {config}"
    );
    let mut machines = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let bytes = blob(layer["digest"].as_str().unwrap());
        let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(bytes.as_slice()));
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_string_lossy() == "machine" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut e, &mut text).unwrap();
                machines.push(text.trim().to_owned());
            }
        }
    }
    machines.sort();
    assert_eq!(machines, ["aarch64", "x86_64"], "{manifest}");

    let cache_from = format!("type=local,src={}", cache.display());
    let (again, log) = build(&["--cache-from", &cache_from], "again");
    assert_eq!(
        again, first,
        "both platforms' steps came from the cache\n{log}"
    );

    // Inline: the pushed index's images each carry their own records.
    let image = format!("{OPEN_REGISTRY}/bud-test/platforms-cache:inline");
    let push = format!("type=registry,name={image}");
    let (pushed, _) = build(&["--cache-to", "type=inline", "-o", &push], "pushed");
    // Each image's records are its own graph's: one result, its RUN step's, and none of
    // the other platform's records (the build's journal holds both platforms' steps).
    let index = registry_get("bud-test/platforms-cache/manifests/inline", INDEX_TYPES);
    let mut record_sets = Vec::new();
    for entry in index["manifests"].as_array().unwrap() {
        let digest = entry["digest"].as_str().unwrap();
        let manifest = registry_get(
            &format!("bud-test/platforms-cache/manifests/{digest}"),
            MANIFEST_TYPES,
        );
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        let config = registry_get(
            &format!("bud-test/platforms-cache/blobs/{config_digest}"),
            "*/*",
        );
        let encoded = config["moby.buildkit.cache.v0"]
            .as_str()
            .unwrap_or_else(|| panic!("no inline cache in {config}"));
        let records: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded).unwrap(),
        )
        .unwrap();
        let records = records.as_array().unwrap();
        let with_results = records
            .iter()
            .filter(|r| r["layers"].as_array().is_some_and(|a| !a.is_empty()))
            .count();
        assert_eq!(with_results, 1, "{records:?}");
        let digests: std::collections::BTreeSet<String> = records
            .iter()
            .map(|r| r["digest"].as_str().unwrap().to_owned())
            .collect();
        record_sets.push(digests);
    }
    assert_eq!(record_sets.len(), 2, "{index}");
    assert!(
        record_sets[0].is_disjoint(&record_sets[1]),
        "{record_sets:?}"
    );
    let (again, log) = build(&["--cache-from", &image], "inline");
    assert_eq!(
        again, pushed,
        "both platforms' steps came from the inline caches\n{log}"
    );
}

/// A context whose Dockerfile copies each platform's own files (`amd64/`, `arm64/`) into the
/// same directories, so that the platforms' results can be merged, or with `shared` also
/// the Dockerfile itself, a file both platforms have.
fn split_context(shared: bool) -> tempfile::TempDir {
    let mut dockerfile = "FROM scratch\nARG TARGETARCH\nCOPY $TARGETARCH/ /out/\n".to_owned();
    if shared {
        dockerfile.push_str("COPY Dockerfile /copied\n");
    }
    let ctx = context(&dockerfile);
    for arch in ["amd64", "arm64"] {
        let dir = ctx.path().join(arch);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("share/empty")).unwrap();
        std::fs::write(dir.join("bin").join(format!("tool-{arch}")), arch).unwrap();
        std::os::unix::fs::symlink(format!("tool-{arch}"), dir.join(format!("bin/{arch}")))
            .unwrap();
        std::fs::create_dir_all(dir.join(format!("only-{arch}"))).unwrap();
        std::fs::write(dir.join(format!("only-{arch}/readme")), arch).unwrap();
        std::fs::set_permissions(
            dir.join(format!("only-{arch}")),
            std::os::unix::fs::PermissionsExt::from_mode(0o750),
        )
        .unwrap();
    }
    ctx
}

/// Every entry below `dir`: kind and content or link target, permission bits (not for
/// symlinks) and owner. Mtimes are left out, as in the other comparisons of local outputs.
fn local_listing(dir: &Path) -> std::collections::BTreeMap<String, String> {
    support::fileop::tree(dir)
        .into_iter()
        .map(|(path, what)| {
            let full = dir.join(&path);
            let mode = if what.starts_with("link ") {
                String::new()
            } else {
                format!(" {:o}", support::fileop::mode_of(&full))
            };
            let (uid, gid) = support::fileop::owner_of(&full);
            (path, format!("{what}{mode} {uid}:{gid}"))
        })
        .collect()
}

/// `-o type=local,platform-split=…` writes what buildx writes on Docker 28.5 (containerd
/// image store), with the embedded solver and with `--addr` (Docker 28.5's BuildKit in one
/// solve, and dockerd 20.10's, one solve per platform): several platforms merged into the
/// destination with `false`, a single platform under `linux_amd64/` with `true` (also
/// without `--platform`), and the defaults, a directory per platform for several and the
/// files themselves for one, when the value says so.
#[test]
fn platform_split_of_a_local_output_writes_what_buildx_writes() {
    if !build_ready() {
        return;
    }
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let ctx = split_context(false);
    let dir = ctx.path().to_str().unwrap();
    let c8d = format!("docker://{}", docker.host());
    let builders: [(&str, &[&str]); 3] = [
        ("embedded", &[]),
        ("docker28", &["--addr", &c8d]),
        ("dockerd", &["--addr", "docker://"]),
    ];
    for (platforms, split, top) in [
        ("linux/amd64,linux/arm64", "false", "out"),
        ("linux/amd64,linux/arm64", "true", "linux_arm64"),
        ("linux/amd64", "true", "linux_amd64"),
        ("", "true", "linux_amd64"),
        ("linux/arm64", "false", "out"),
    ] {
        let case = format!("{}-{split}", platforms.replace([',', '/'], "_"));
        let mut platform_args = Vec::new();
        if !platforms.is_empty() {
            platform_args.extend(["--platform", platforms]);
        }
        let theirs = root.path().join(format!("buildx-{case}"));
        let output = format!(
            "type=local,dest={},platform-split={split}",
            theirs.display()
        );
        let mut args = platform_args.clone();
        args.extend(["-o", &output, dir]);
        let reference = docker.build(&args);
        assert!(reference.status.success(), "{}", stderr_of(&reference));
        let expected = local_listing(&theirs);
        assert!(
            expected.contains_key(top),
            "buildx {platforms} platform-split={split}: no {top} in {expected:#?}"
        );
        if split == "false" && platforms.contains(',') {
            assert!(
                expected.contains_key("out/bin/tool-amd64")
                    && expected.contains_key("out/bin/tool-arm64"),
                "buildx merged the platforms: {expected:#?}"
            );
        }

        for (label, builder_args) in builders {
            let ours = root.path().join(format!("{label}-{case}"));
            let output = format!("type=local,dest={},platform-split={split}", ours.display());
            let mut args = builder_args.to_vec();
            args.extend(&platform_args);
            args.extend(["-o", &output, dir]);
            let out = bud_at(root.path(), &args);
            assert!(
                out.status.success(),
                "{label} {platforms} platform-split={split}: {}",
                stderr_of(&out)
            );
            assert_eq!(
                local_listing(&ours),
                expected,
                "{label} {platforms} platform-split={split}"
            );
        }
    }
}

/// With `platform-split=false`, a file two platforms both have is refused, as BuildKit's
/// local exporter refuses it, and bud refuses it before writing anything.
#[test]
fn platform_split_false_refuses_a_file_of_two_platforms_as_buildx_does() {
    if !build_ready() {
        return;
    }
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let ctx = split_context(true);
    let dir = ctx.path().to_str().unwrap();
    let platforms = ["--platform", "linux/amd64,linux/arm64"];
    let theirs = root.path().join("buildx");
    let output = format!("type=local,dest={},platform-split=false", theirs.display());
    let reference = docker.build(&[platforms[0], platforms[1], "-o", &output, dir]);
    assert!(!reference.status.success(), "buildx merged a shared file");
    let refused = |err: &str| {
        err.contains("cannot overwrite copied from linux/")
            && err.contains("when split option is disabled")
    };
    assert!(refused(&stderr_of(&reference)), "{}", stderr_of(&reference));

    let c8d = format!("docker://{}", docker.host());
    for (label, builder_args) in [
        ("embedded", &[][..]),
        ("docker28", &["--addr", c8d.as_str()][..]),
        ("dockerd", &["--addr", "docker://"][..]),
    ] {
        let ours = root.path().join(label);
        let output = format!("type=local,dest={},platform-split=false", ours.display());
        let mut args = builder_args.to_vec();
        args.extend([platforms[0], platforms[1], "-o", &output, dir]);
        let out = bud_at(root.path(), &args);
        assert!(!out.status.success(), "{label}: a shared file merged");
        assert!(refused(&stderr_of(&out)), "{label}: {}", stderr_of(&out));
        // The daemon's own exporter writes the platforms at once, as with buildx; bud's
        // check comes before any file is written.
        if label != "docker28" {
            assert!(!ours.exists(), "{label}: wrote {ours:?}");
        }
    }
}

/// BuildKit's tar exporter reads `platform-split=` but puts a directory per platform into
/// the tarball exactly when the build has several, whatever the value: bud refuses, by
/// name, the value that asks otherwise rather than ignore it, and writes what it asks
/// when it agrees.
#[test]
fn platform_split_of_a_tar_output_is_refused_where_buildkit_ignores_it() {
    if !build_ready() {
        return;
    }
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let ctx = split_context(false);
    let dir = ctx.path().to_str().unwrap();
    let top_names = |tarball: &Path| {
        let mut archive = tar::Archive::new(std::fs::File::open(tarball).unwrap());
        let mut tops = std::collections::BTreeSet::new();
        for entry in archive.entries().unwrap() {
            let path = entry.unwrap().path().unwrap().into_owned();
            let first = path.components().next().unwrap();
            tops.insert(first.as_os_str().to_string_lossy().into_owned());
        }
        tops.into_iter().collect::<Vec<_>>()
    };
    for (platforms, split, buildx_tops) in [
        (
            "linux/amd64,linux/arm64",
            "false",
            &["linux_amd64", "linux_arm64"][..],
        ),
        ("linux/amd64", "true", &["out"][..]),
    ] {
        let theirs = root.path().join(format!("buildx-{split}.tar"));
        let output = format!("type=tar,dest={},platform-split={split}", theirs.display());
        let reference = docker.build(&["--platform", platforms, "-o", &output, dir]);
        assert!(reference.status.success(), "{}", stderr_of(&reference));
        assert_eq!(
            top_names(&theirs),
            buildx_tops,
            "buildx {platforms} {split}"
        );

        for addr in [None, Some("docker://")] {
            let ours = root.path().join(format!("bud-{split}.tar"));
            let output = format!("type=tar,dest={},platform-split={split}", ours.display());
            let mut args = Vec::new();
            if let Some(addr) = addr {
                args.extend(["--addr", addr]);
            }
            args.extend(["--platform", platforms, "-o", &output, dir]);
            let out = bud_at(root.path(), &args);
            assert!(
                !out.status.success(),
                "{addr:?} {platforms} {split} accepted"
            );
            let err = stderr_of(&out);
            assert!(
                err.contains(&format!(
                    "platform-split={split}: BuildKit's tar exporter does not honour it"
                )),
                "{err}"
            );
            assert!(!ours.exists(), "{addr:?}: wrote {ours:?}");
        }
    }
    // The value BuildKit's own choice agrees with is written as it asks.
    let ours = root.path().join("bud-agrees.tar");
    let output = format!("type=tar,dest={},platform-split=true", ours.display());
    run_ok(
        root.path(),
        &["--platform", "linux/amd64,linux/arm64", "-o", &output, dir],
    );
    assert_eq!(top_names(&ours), ["linux_amd64", "linux_arm64"]);
}

/// What SOURCE_DATE_EPOCH decides in a local output: every entry's mtime in nanoseconds,
/// the directories the build made only when `stamped` (they are otherwise the build's own
/// time, another in every build) or a platform's directory (`linux_amd64`).
fn local_mtimes(dir: &Path, stamped: bool) -> std::collections::BTreeMap<String, i64> {
    support::fileop::tree(dir)
        .into_iter()
        .filter(|(path, what)| {
            stamped || what != "dir" || !path.contains('/') && path.starts_with("linux_")
        })
        .map(|(path, _)| {
            let (secs, nanos) = support::fileop::mtime_of(&dir.join(&path));
            (path, secs * 1_000_000_000 + nanos)
        })
        .collect()
}

/// The same of a tarball: every entry's mtime (before 1970 too, from its PAX record), by
/// its name as written (a directory's ending in `/`, as BuildKit writes it).
fn tar_mtimes(tarball: &Path, stamped: bool) -> std::collections::BTreeMap<String, i64> {
    let mut archive = tar::Archive::new(std::fs::File::open(tarball).unwrap());
    let mut out = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let header = entry.header();
        let is_dir = header.entry_type() == tar::EntryType::Directory;
        let platform_dir = path.matches('/').count() == 1 && path.starts_with("linux_");
        let mut mtime = i64::try_from(header.mtime().unwrap()).unwrap();
        if let Some(records) = entry.pax_extensions().unwrap() {
            for record in records {
                let record = record.unwrap();
                if record.key().unwrap() == "mtime" {
                    mtime = record.value().unwrap().parse().unwrap();
                }
            }
        }
        if stamped || !is_dir || platform_dir {
            out.insert(path, mtime);
        }
    }
    out
}

/// Every header of a tarball, PAX extended headers with their records too, as text, so
/// that two tarballs that differ show where.
fn tar_headers(tarball: &Path) -> Vec<String> {
    let mut archive = tar::Archive::new(std::fs::File::open(tarball).unwrap());
    let mut out = Vec::new();
    for entry in archive.entries().unwrap().raw(true) {
        let mut entry = entry.unwrap();
        let header = entry.header().as_bytes().escape_ascii().to_string();
        let mut records = Vec::new();
        if entry.header().entry_type().is_pax_local_extensions() {
            std::io::Read::read_to_end(&mut entry, &mut records).unwrap();
        }
        out.push(format!(
            "{} {}",
            header.replace("\\x00", "."),
            records.escape_ascii()
        ));
    }
    out
}

/// Runs buildx (`builder` None) or bud with `builder`'s arguments, then `args`, with
/// SOURCE_DATE_EPOCH in the environment set to `env_epoch` or unset.
fn build_dated(
    docker: &Docker28,
    root: &Path,
    builder: Option<&[&str]>,
    args: &[&str],
    env_epoch: Option<&str>,
) -> std::process::Output {
    let mut cmd = match builder {
        None => {
            let mut cmd = docker.command();
            cmd.arg("build");
            cmd
        }
        Some(builder) => {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bud"));
            cmd.arg("--root").arg(root).arg("build").args(builder);
            cmd
        }
    };
    match env_epoch {
        Some(epoch) => cmd.env("SOURCE_DATE_EPOCH", epoch),
        None => cmd.env_remove("SOURCE_DATE_EPOCH"),
    };
    cmd.args(args).output().unwrap()
}

/// With SOURCE_DATE_EPOCH (a build arg, or the environment as buildx reads it), every entry
/// of a local or tar output, files, symlinks, directories and a platform's directory, has
/// the epoch as its mtime, as buildx writes them on Docker 28.5 (containerd image store),
/// for one platform and two; without it, the files keep their own and a platform's
/// directory has 0. With the embedded solver and with `--addr` (Docker 28.5's BuildKit,
/// which bud passes the exporter's `source-date-epoch`, and dockerd 20.10's, whose BuildKit
/// ignores it and bud stamps what it receives).
#[test]
fn source_date_epoch_dates_local_and_tar_outputs_as_buildx_does() {
    if !build_ready() {
        return;
    }
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let ctx = split_context(false);
    // Files new to every cache: a daemon's cached COPY would carry the mtimes of the
    // context it first copied (they are not in its cache key).
    for arch in ["amd64", "arm64"] {
        let nonce = ctx.path().join(arch).join("bin/nonce");
        std::fs::write(nonce, root.path().to_string_lossy().as_bytes()).unwrap();
    }
    let dir = ctx.path().to_str().unwrap();
    let c8d = format!("docker://{}", docker.host());
    const EPOCH: &str = "1000";
    let arg = format!("SOURCE_DATE_EPOCH={EPOCH}");
    // Runs buildx (`builder` None) or bud with `builder`'s arguments, writing `output`,
    // with the epoch given as `epoch` says ("arg", "env", or none).
    let build = |builder: Option<&[&str]>, platforms: &str, epoch: &str, output: &str| {
        let mut args = vec!["--platform", platforms, "-o", output];
        if epoch == "arg" {
            args.extend(["--build-arg", &arg]);
        }
        args.push(dir);
        let env_epoch = Some(EPOCH).filter(|_| epoch == "env");
        let out = build_dated(&docker, root.path(), builder, &args, env_epoch);
        assert!(
            out.status.success(),
            "{builder:?} {platforms} {epoch}: {}",
            stderr_of(&out)
        );
    };
    let builders: [(&str, &[&str]); 3] = [
        ("embedded", &[]),
        ("docker28", &["--addr", &c8d]),
        ("dockerd", &["--addr", "docker://"]),
    ];
    for (platforms, epoch) in [
        ("linux/amd64", "arg"),
        ("linux/amd64", "env"),
        ("linux/amd64", ""),
        ("linux/amd64,linux/arm64", "arg"),
        ("linux/amd64,linux/arm64", ""),
    ] {
        let stamped = !epoch.is_empty();
        let case = format!("{}-{epoch}", platforms.replace([',', '/'], "_"));
        let local = |label: &str| root.path().join(format!("{label}-{case}"));
        let tarball = |label: &str| root.path().join(format!("{label}-{case}.tar"));
        let local_output = |label: &str| format!("type=local,dest={}", local(label).display());
        let tar_output = |label: &str| format!("type=tar,dest={}", tarball(label).display());

        build(None, platforms, epoch, &local_output("buildx"));
        build(None, platforms, epoch, &tar_output("buildx"));
        let expected_local = local_mtimes(&local("buildx"), stamped);
        let expected_tar = tar_mtimes(&tarball("buildx"), stamped);
        if stamped {
            assert!(
                expected_local.values().all(|t| *t == 1000 * 1_000_000_000),
                "buildx {case}: {expected_local:#?}"
            );
        }
        for (label, builder_args) in builders {
            build(Some(builder_args), platforms, epoch, &local_output(label));
            build(Some(builder_args), platforms, epoch, &tar_output(label));
            assert_eq!(
                local_mtimes(&local(label), stamped),
                expected_local,
                "{label} {case} local"
            );
            assert_eq!(
                tar_mtimes(&tarball(label), stamped),
                expected_tar,
                "{label} {case} tar"
            );
        }
    }
}

/// An output's own `source-date-epoch` dates its files over SOURCE_DATE_EPOCH (an empty one
/// dates nothing, as BuildKit gives an exporter SOURCE_DATE_EPOCH only where it has none),
/// and an epoch before 1970 is kept: in a tarball as a PAX record, as Go's archive/tar
/// writes a time USTAR cannot hold. The tarball is buildx's on Docker 28.5 (containerd image
/// store) byte for byte, names a USTAR header splits or cannot hold included, and a local
/// output's times are buildx's, for one platform and two; with the embedded solver and with
/// `--addr` (Docker 28.5's BuildKit, given the attribute, and dockerd 20.10's, whose files
/// bud dates). A value that is no integer is refused, naming the attribute, as buildx
/// refuses it.
#[test]
fn an_outputs_source_date_epoch_and_one_before_1970_date_it_as_buildx_does() {
    if !build_ready() {
        return;
    }
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let ctx = split_context(false);
    for arch in ["amd64", "arm64"] {
        let dir = ctx.path().join(arch);
        // New to every cache, as in the test above.
        std::fs::write(
            dir.join("bin/nonce"),
            root.path().to_string_lossy().as_bytes(),
        )
        .unwrap();
        // A name USTAR holds split into prefix and name, one it cannot hold (a PAX
        // record), and a link target longer than its field.
        let split = dir.join("d".repeat(120));
        std::fs::create_dir(&split).unwrap();
        std::fs::write(split.join("f".repeat(90)), "split").unwrap();
        let long = dir.join("p".repeat(160));
        std::fs::create_dir(&long).unwrap();
        std::fs::write(long.join("q".repeat(95)), "long").unwrap();
        std::os::unix::fs::symlink("t".repeat(120), dir.join("long-link")).unwrap();
    }
    let dir = ctx.path().to_str().unwrap();
    let c8d = format!("docker://{}", docker.host());
    let builders: [(&str, &[&str]); 3] = [
        ("embedded", &[]),
        ("docker28", &["--addr", &c8d]),
        ("dockerd", &["--addr", "docker://"]),
    ];
    // (platforms, SOURCE_DATE_EPOCH, the outputs' source-date-epoch, the time they date
    // the files with)
    for (platforms, env_epoch, attr, dated) in [
        ("linux/amd64", Some("1000"), Some("-100"), Some(-100)),
        ("linux/amd64,linux/arm64", None, Some("2000"), Some(2000)),
        ("linux/amd64,linux/arm64", Some("-100"), None, Some(-100)),
        ("linux/amd64", Some("1000"), Some(""), None),
    ] {
        let case = format!(
            "{}-{}-{}",
            platforms.replace([',', '/'], "_"),
            env_epoch.unwrap_or("none"),
            attr.unwrap_or("none")
        );
        let local = |label: &str| root.path().join(format!("{label}-{case}"));
        let tarball = |label: &str| root.path().join(format!("{label}-{case}.tar"));
        let attr = attr.map_or(String::new(), |a| format!(",source-date-epoch={a}"));
        let outputs = |label: &str| {
            [
                format!("type=local,dest={}{attr}", local(label).display()),
                format!("type=tar,dest={}{attr}", tarball(label).display()),
            ]
        };
        let build = |builder: Option<&[&str]>, output: &str| {
            let args = ["--platform", platforms, "-o", output, dir];
            let out = build_dated(&docker, root.path(), builder, &args, env_epoch);
            assert!(
                out.status.success(),
                "{builder:?} {case}: {}",
                stderr_of(&out)
            );
        };
        for output in outputs("buildx") {
            build(None, &output);
        }
        let stamped = dated.is_some();
        let expected_local = local_mtimes(&local("buildx"), stamped);
        let expected_tar = tar_mtimes(&tarball("buildx"), stamped);
        if let Some(dated) = dated {
            assert!(
                expected_local.values().all(|t| *t == dated * 1_000_000_000),
                "buildx {case}: {expected_local:#?}"
            );
            assert!(
                expected_tar.values().all(|t| *t == dated),
                "buildx {case}: {expected_tar:#?}"
            );
        } else {
            assert!(
                expected_tar.values().all(|t| *t > 0),
                "buildx {case}: {expected_tar:#?}"
            );
        }
        for (label, builder_args) in builders {
            for output in outputs(label) {
                build(Some(builder_args), &output);
            }
            assert_eq!(
                local_mtimes(&local(label), stamped),
                expected_local,
                "{label} {case} local"
            );
            assert_eq!(
                tar_mtimes(&tarball(label), stamped),
                expected_tar,
                "{label} {case} tar"
            );
            if stamped {
                // Every entry dated, nothing of the build's own time is left: the bytes.
                assert_eq!(
                    tar_headers(&tarball(label)),
                    tar_headers(&tarball("buildx")),
                    "{label} {case}"
                );
                assert!(
                    std::fs::read(tarball(label)).unwrap()
                        == std::fs::read(tarball("buildx")).unwrap(),
                    "{label} {case}: the tarballs differ beyond their headers"
                );
            }
        }
    }

    // A value that is no integer: buildx's daemon refuses it (its client has created the
    // file by then); bud refuses it before the build, writing nothing.
    let refused = |label: &str| root.path().join(format!("refused-{label}.tar"));
    let output = |label: &str| {
        let dest = refused(label);
        format!("type=tar,dest={},source-date-epoch=soon", dest.display())
    };
    let reference = docker.build(&["-o", &output("buildx"), dir]);
    assert!(
        !reference.status.success(),
        "buildx took source-date-epoch=soon"
    );
    assert!(
        stderr_of(&reference).contains("invalid source-date-epoch"),
        "{}",
        stderr_of(&reference)
    );
    for (label, builder_args) in builders {
        let output = output(label);
        let mut args = builder_args.to_vec();
        args.extend(["-o", &output, dir]);
        let out = bud_at(root.path(), &args);
        assert!(
            !out.status.success(),
            "{label}: took source-date-epoch=soon"
        );
        assert!(
            stderr_of(&out).contains("source-date-epoch=\"soon\": expected seconds"),
            "{label}: {}",
            stderr_of(&out)
        );
        assert!(!refused(label).exists(), "{label}");
    }
}

/// A file's xattrs are in a tar output as `SCHILY.xattr.` PAX records, the tarball buildx's
/// byte for byte, and on the file of a local output, as buildx writes them. The embedded
/// solver only: with `--addr`, bud's context transfer does not send xattrs yet, so the
/// daemon's COPY has none.
#[test]
fn a_files_xattrs_are_in_tar_and_local_outputs_as_buildx_writes_them() {
    if !build_ready() {
        return;
    }
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let ctx = context("FROM scratch\nCOPY marked /out/\n");
    let marked = ctx.path().join("marked");
    std::fs::write(&marked, "x").unwrap();
    rustix::fs::setxattr(&marked, "user.bud", b"v1", rustix::fs::XattrFlags::empty()).unwrap();
    let dir = ctx.path().to_str().unwrap();
    for label in ["buildx", "embedded"] {
        let builder: Option<&[&str]> = (label != "buildx").then_some(&[]);
        for kind in ["tar", "local"] {
            let dest = root.path().join(format!("{label}-{kind}"));
            let output = format!("type={kind},dest={}", dest.display());
            let args = ["-o", &output, dir];
            let out = build_dated(&docker, root.path(), builder, &args, Some("10"));
            assert!(out.status.success(), "{label}: {}", stderr_of(&out));
        }
        let mut value = [0u8; 8];
        let local = root.path().join(format!("{label}-local/out/marked"));
        let n = rustix::fs::lgetxattr(&local, "user.bud", &mut value[..]).unwrap();
        assert_eq!(&value[..n], b"v1", "{label}");
    }
    let tarball = |label: &str| root.path().join(format!("{label}-tar"));
    assert!(
        tar_headers(&tarball("buildx"))
            .iter()
            .any(|h| h.contains("SCHILY.xattr.user.bud=v1")),
        "{:#?}",
        tar_headers(&tarball("buildx"))
    );
    assert_eq!(
        tar_headers(&tarball("embedded")),
        tar_headers(&tarball("buildx"))
    );
    assert!(
        std::fs::read(tarball("embedded")).unwrap() == std::fs::read(tarball("buildx")).unwrap()
    );
}

/// A local output's destination that does not exist yet is created 0700, with every
/// missing parent, as buildx's client creates it (BuildKit's `MkdirAll(dest, 0700)`, not
/// the umask), with the embedded solver and with `--addr`; an existing one keeps its mode.
#[test]
fn a_new_local_destination_is_private_as_buildx_makes_it() {
    if !build_ready() {
        return;
    }
    let Some(docker) = require_docker28_containerd() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let ctx = split_context(false);
    let dir = ctx.path().to_str().unwrap();
    // Builds into `top`/new/a/b and into `top`/existing (0750) with `build`, and returns
    // the modes of the directories.
    let modes = |top: &Path, build: &dyn Fn(&[&str]) -> std::process::Output| {
        let existing = top.join("existing");
        std::fs::create_dir_all(&existing).unwrap();
        std::fs::set_permissions(
            &existing,
            std::os::unix::fs::PermissionsExt::from_mode(0o750),
        )
        .unwrap();
        for dest in [top.join("new/a/b"), existing] {
            let output = format!("type=local,dest={}", dest.display());
            let out = build(&["-o", &output, dir]);
            assert!(out.status.success(), "{top:?}: {}", stderr_of(&out));
        }
        ["new", "new/a", "new/a/b", "existing"]
            .map(|p| (p, format!("{:o}", support::fileop::mode_of(&top.join(p)))))
    };
    let expected = modes(&root.path().join("buildx"), &|args| docker.build(args));
    assert_eq!(expected[0].1, "700", "buildx: {expected:?}");

    let c8d = format!("docker://{}", docker.host());
    for (label, builder_args) in [
        ("embedded", &[][..]),
        ("docker28", &["--addr", c8d.as_str()][..]),
        ("dockerd", &["--addr", "docker://"][..]),
    ] {
        let ours = modes(&root.path().join(label), &|args| {
            let mut all = builder_args.to_vec();
            all.extend(args);
            bud_at(root.path(), &all)
        });
        assert_eq!(ours, expected, "{label}");
    }
}
