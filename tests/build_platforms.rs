//! Builds for other platforms than the host's with the embedded solver: RUN steps through
//! QEMU user emulation (registered in binfmt_misc with flag F by scripts/test-env), the
//! platform ARGs, base images chosen by platform, and the errors when a platform cannot be
//! built here.

mod support;

use std::path::Path;

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
    docker(&["image", "rm", &name]);
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
