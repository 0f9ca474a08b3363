//! `--allow`: a step that needs an entitlement (`RUN --network=host`, `RUN
//! --security=insecure`, `RUN --device` with a device not auto-allowed) is refused before
//! anything runs unless the build was granted it, as BuildKit refuses it; granted, an
//! insecure step runs privileged, as BuildKit runs it, and without the seccomp filter that
//! confines every other step, and a device step gets its CDI edits.

use crate::support;

use support::*;

/// A context whose Dockerfile is `FROM bud-test/busybox` and then `steps`.
fn context(steps: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // `RUN --security` is a flag of the labs frontend only, as in BuildKit.
    let syntax = if steps.contains("--security") {
        "# syntax=docker/dockerfile:1-labs\n"
    } else {
        ""
    };
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("{syntax}FROM bud-test/busybox\n{steps}"),
    )
    .unwrap();
    dir
}

/// The effective capability set of a privileged step: every capability bud (like this test)
/// holds.
fn all_capabilities() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    bounding.to_string()
}

#[test]
fn network_host_needs_allow_or_network_host() {
    if !build_ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context("RUN echo ran > /ran\nRUN --network=host true\n");
    let dir = ctx.path().to_str().unwrap();
    let tar = ["-o", "type=tar,dest=/dev/null"];

    let out = bud_at(
        root.path(),
        &[&["build", "--progress", "plain"][..], &tar, &[dir]].concat(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("network.host is not allowed"), "{err}");
    assert!(err.contains("--allow network.host"), "{err}");
    assert!(
        !err.contains("] RUN echo ran"),
        "a step ran before the refusal: {err}"
    );

    for grant in [&["--allow", "network.host"][..], &["--network", "host"]] {
        let out = bud_at(
            root.path(),
            &[&["build", "-q"][..], grant, &tar, &[dir]].concat(),
        );
        assert!(out.status.success(), "{grant:?}: {}", stderr_of(&out));
    }
    // An unknown entitlement is a usage error, as with buildx.
    let out = bud_at(root.path(), &["build", "--allow", "device.everything", dir]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("invalid entitlement"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn an_insecure_step_runs_privileged_when_allowed() {
    if !build_ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context(
        "RUN grep CapEff /proc/self/status > /caps-default\n\
         RUN --security=insecure sh -c 'grep CapEff /proc/self/status > /caps; \
         ls /dev > /devices; grep \" /sys \" /proc/self/mountinfo > /sys-mount; \
         unshare -U true && echo allowed > /user-namespace'\n",
    );
    let dir = ctx.path().to_str().unwrap();

    let out = bud_at(
        root.path(),
        &["build", "-o", "type=tar,dest=/dev/null", dir],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("security.insecure is not allowed"),
        "{}",
        stderr_of(&out)
    );

    let dest = tempfile::tempdir().unwrap();
    let out = bud_at(
        root.path(),
        &[
            "build",
            "--allow",
            "security.insecure",
            "-o",
            &format!("type=local,dest={}", dest.path().display()),
            dir,
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let read = |name: &str| std::fs::read_to_string(dest.path().join(name)).unwrap();
    assert_eq!(
        read("caps").split_whitespace().nth(1),
        Some(all_capabilities().as_str())
    );
    // The ordinary step keeps Docker's default set.
    assert_eq!(
        read("caps-default").split_whitespace().nth(1),
        Some("00000000a80425fb")
    );
    // The host's devices are there (a block device of this machine among them), and /sys
    // is writable.
    let host_block_devices: Vec<String> = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .filter(|e| std::os::unix::fs::FileTypeExt::is_block_device(&e.file_type().unwrap()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let devices = read("devices");
    for device in &host_block_devices {
        assert!(
            devices.lines().any(|l| l == device),
            "{device} missing: {devices}"
        );
    }
    // No seccomp filter: a user namespace can be made, as in a privileged container.
    assert_eq!(read("user-namespace"), "allowed\n");
    let sys = read("sys-mount");
    assert!(sys.contains(" rw,") || sys.contains(" rw "), "{sys}");
}

#[test]
fn a_buildkit_daemon_gets_the_entitlements_asked_for() {
    if !(build_ready() && require_docker()) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context("RUN --network=host true\n");
    let dir = ctx.path().to_str().unwrap();
    let base = [
        "--addr",
        "docker://",
        "build",
        "-o",
        "type=tar,dest=/dev/null",
    ];
    let out = bud_at(root.path(), &[&base[..], &[dir]].concat());
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("network.host is not allowed"),
        "{}",
        stderr_of(&out)
    );
    let out = bud_at(
        root.path(),
        &[&base[..], &["--allow", "network.host", dir]].concat(),
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
}

/// What each way of making a user namespace meets in a step: refused by the filter
/// (`clone3` with ENOSYS, so that C libraries fall back to `clone`), while a plain `clone`
/// (a fork) goes through; an insecure step has no filter.
#[test]
fn the_seccomp_filter_refuses_every_way_to_a_user_namespace() {
    if !build_ready() {
        return;
    }
    let ctx = context(
        "COPY probe /probe\n\
         RUN for way in unshare clone clone3 fork; do /probe $way; done > /confined\n\
         RUN --security=insecure for way in unshare clone clone3 fork; do /probe $way; done > /insecure\n",
    );
    if !build_namespace_probe(&ctx.path().join("probe")) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let out = bud_at(
        root.path(),
        &[
            "build",
            "--allow",
            "security.insecure",
            "-o",
            &format!("type=local,dest={}", dest.path().display()),
            ctx.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let read = |name: &str| std::fs::read_to_string(dest.path().join(name)).unwrap();
    assert_eq!(
        read("confined"),
        "unshare EPERM\nclone EPERM\nclone3 ENOSYS\nfork allowed\n"
    );
    assert_eq!(
        read("insecure"),
        "unshare allowed\nclone allowed\nclone3 allowed\nfork allowed\n"
    );
}

/// bud with `[cdi] spec_dirs` set to `cdi_dir` (BuildKit's `cdi.specDirs`).
fn bud_with_cdi(
    root: &std::path::Path,
    cdi_dir: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    let config = root.join("bud.toml");
    std::fs::write(
        &config,
        format!("[cdi]\nspec_dirs = [{:?}]\n", cdi_dir.to_str().unwrap()),
    )
    .unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_bud"))
        .env("BUD_CONFIG", &config)
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

/// `RUN --device` (labs syntax) gives the step a CDI device as BuildKit >= 0.20 does: the
/// spec's device node (here the host's /dev/null under another name) and environment are
/// in the step; the device needs a `device` entitlement (`--allow device`, or a grant
/// naming it, or its alias) since its spec does not auto-allow it; a required device that
/// is not registered fails naming the line, an optional one is skipped with a warning.
#[test]
fn run_device_gives_the_step_its_cdi_device_nodes_and_environment() {
    if !build_ready() {
        return;
    }
    let vendor = "bud-test.example.com";
    let kind = format!("{vendor}/null");
    let cdi = tempfile::tempdir().unwrap();
    std::fs::write(
        cdi.path().join("bud-test.yaml"),
        format!(
            "cdiVersion: \"0.6.0\"\nkind: {kind}\ndevices:\n- name: one\n  containerEdits:\n    \
             env:\n    - BUD_CDI=injected\n    deviceNodes:\n    - path: /dev/bud-cdi-null\n      \
             hostPath: /dev/null\n"
        ),
    )
    .unwrap();
    let bud_at = |root: &std::path::Path, args: &[&str]| bud_with_cdi(root, cdi.path(), args);
    let root = tempfile::tempdir().unwrap();
    let ctx = |steps: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!("# syntax=docker/dockerfile:1-labs\nFROM bud-test/busybox\n{steps}"),
        )
        .unwrap();
        dir
    };
    let uses = ctx(&format!(
        "RUN echo ran > /ran\n\
         RUN --device={kind}=one,required --device={vendor}/absent=x \
         sh -c 'test -c /dev/bud-cdi-null && echo through > /dev/bud-cdi-null && \
         stat -c \"%A %U:%G %t,%T\" /dev/bud-cdi-null > /node && echo \"$BUD_CDI\" > /env'\n"
    ));
    let dir = uses.path().to_str().unwrap();

    // Not auto-allowed: refused before anything runs.
    let out = bud_at(
        root.path(),
        &[
            "build",
            "--progress",
            "plain",
            "-o",
            "type=tar,dest=/dev/null",
            dir,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "device {kind}=one is requested by the build but not allowed"
        )) && err.contains("--allow device"),
        "{err}"
    );
    assert!(
        !err.contains("] RUN echo ran"),
        "a step ran before the refusal: {err}"
    );

    let dest = tempfile::tempdir().unwrap();
    let out = bud_at(
        root.path(),
        &[
            "build",
            "--progress",
            "plain",
            "--allow",
            &format!("device={kind}"),
            "-o",
            &format!("type=local,dest={}", dest.path().display()),
            dir,
        ],
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "optional device \"{vendor}/absent=x\" is not registered"
        )),
        "{err}"
    );
    let read = |name: &str| std::fs::read_to_string(dest.path().join(name)).unwrap();
    assert_eq!(read("env"), "injected\n");
    // The node is /dev/null's: a character device 1, 3.
    let node = read("node");
    assert!(
        node.starts_with("crw") && node.ends_with(" 1,3\n"),
        "{node}"
    );

    // `--allow device` grants every device; a grant's alias stands for its device.
    let aliased = ctx(
        "RUN --device=mynull,required sh -c 'test -c /dev/bud-cdi-null && echo \"$BUD_CDI\" > /env'\n",
    );
    for grant in [
        "device".to_owned(),
        format!("device={kind}=one,alias=mynull"),
    ] {
        let dest = tempfile::tempdir().unwrap();
        let out = bud_at(
            root.path(),
            &[
                "build",
                "--allow",
                &grant,
                "-o",
                &format!("type=local,dest={}", dest.path().display()),
                aliased.path().to_str().unwrap(),
            ],
        );
        if grant == "device" {
            // No device is named `mynull` without the alias.
            assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
            assert!(stderr_of(&out).contains("required device \"mynull\" is not registered"));
            continue;
        }
        assert!(out.status.success(), "{grant}: {}", stderr_of(&out));
        assert_eq!(
            std::fs::read_to_string(dest.path().join("env")).unwrap(),
            "injected\n"
        );
    }

    let missing = ctx(&format!("RUN --device={vendor}/absent=x,required true\n"));
    let out = bud_at(
        root.path(),
        &[
            "build",
            "-o",
            "type=tar,dest=/dev/null",
            missing.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "required device \"{vendor}/absent=x\" is not registered"
        )),
        "{err}"
    );
    assert!(err.contains("Dockerfile:3"), "{err}");
}

/// CDI spec files the test wrote into the daemons' spec directory, removed when dropped
/// (also when the test fails).
struct DaemonCdiSpecs(Vec<std::path::PathBuf>);

impl Drop for DaemonCdiSpecs {
    fn drop(&mut self) {
        for spec in &self.0 {
            let _ = std::fs::remove_file(spec);
        }
    }
}

/// `RUN --device` through `--addr`: Docker 28.5's BuildKit (moby >= 28.2 reads the CDI specs
/// of /etc/cdi and /var/run/cdi) gives the step a device its spec auto-allows, as the
/// embedded solver gives it; one it does not auto-allow it refuses, and it cannot be granted
/// the `device` entitlement (dockerd permits network.host and security.insecure only): bud
/// says how to get it. dockerd 20.10's BuildKit knows no CDI devices: refused naming the LLB
/// capability, before any step runs, never built without the device.
#[test]
fn run_device_through_addr_is_given_by_docker_28_and_refused_by_dockerd_20() {
    if !build_ready() || !require_root("writing a CDI spec under /var/run/cdi") {
        return;
    }
    let Some(docker28) = require_docker28() else {
        return;
    };
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let vendor = format!("h-attest-{nonce}.example.com");
    let spec = |class: &str, annotations: &str| {
        format!(
            "cdiVersion: \"0.6.0\"\nkind: {vendor}/{class}\n{annotations}devices:\n- name: one\n  \
             containerEdits:\n    env:\n    - BUD_CDI={class}\n    deviceNodes:\n    - path: \
             /dev/bud-cdi-null\n      hostPath: /dev/null\n"
        )
    };
    let dir = std::path::Path::new("/var/run/cdi");
    std::fs::create_dir_all(dir).unwrap();
    let specs = DaemonCdiSpecs(vec![
        dir.join(format!("h-attest-{nonce}-auto.yaml")),
        dir.join(format!("h-attest-{nonce}-granted.yaml")),
    ]);
    std::fs::write(
        &specs.0[0],
        spec(
            "auto",
            "annotations:\n  org.mobyproject.buildkit.device.autoallow: \"true\"\n",
        ),
    )
    .unwrap();
    std::fs::write(&specs.0[1], spec("granted", "")).unwrap();
    let ctx = |class: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "# syntax=docker/dockerfile:1-labs\nFROM bud-test/busybox\nRUN echo {nonce}\n\
                 RUN --device={vendor}/{class}=one,required sh -c 'test -c /dev/bud-cdi-null && \
                 echo through > /dev/bud-cdi-null && stat -c \"%A %U:%G %t,%T\" /dev/bud-cdi-null \
                 > /node && echo \"$BUD_CDI\" > /env'\n"
            ),
        )
        .unwrap();
        dir
    };
    let auto = ctx("auto");
    let granted = ctx("granted");
    let build = |extra: &[&str], context: &tempfile::TempDir| {
        let root = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let mut args = vec!["build", "--progress", "plain"];
        args.extend(extra);
        let output = format!("type=local,dest={}", dest.path().display());
        args.extend(["-o", &output, context.path().to_str().unwrap()]);
        let out = bud_with_cdi(root.path(), dir, &args);
        (out, dest)
    };
    let files = |dest: &tempfile::TempDir| {
        let read = |name: &str| std::fs::read_to_string(dest.path().join(name)).unwrap();
        (read("env"), read("node"))
    };

    // The embedded solver, reading the same spec directory, is what the daemon must match.
    let (out, embedded) = build(&[], &auto);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let (env, node) = files(&embedded);
    assert_eq!(env, "auto\n");
    // The node's type, owner and numbers, not its time: two builds a minute apart make
    // theirs at different times.
    assert!(
        node.starts_with("crw") && node.ends_with(" 1,3\n"),
        "{node}"
    );

    let docker28_addr = format!("docker://{}", docker28.host());
    let (out, through) = build(&["--addr", &docker28_addr], &auto);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(files(&through), files(&embedded));

    // Not auto-allowed: the daemon refuses it, and refuses the entitlement that would grant
    // it.
    for extra in [&[][..], &["--allow", "device"][..]] {
        let mut args = vec!["--addr", docker28_addr.as_str()];
        args.extend(extra);
        let (out, _) = build(&args, &granted);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        let refusal = if extra.is_empty() {
            format!("device {vendor}/granted=one is requested by the build but not allowed")
        } else {
            "granting entitlement device is not allowed by build daemon configuration".to_owned()
        };
        assert!(err.contains(&refusal), "{extra:?}: {err}");
        assert!(
            err.contains("org.mobyproject.buildkit.device.autoallow"),
            "{extra:?}: {err}"
        );
    }

    // dockerd 20.10: no CDI in its BuildKit.
    let (out, _) = build(&["--addr", "docker://"], &auto);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("does not support LLB capability \"exec.meta.cdi\""),
        "{err}"
    );
    assert!(
        !err.contains(&format!("RUN echo {nonce}")),
        "a step ran: {err}"
    );
}
