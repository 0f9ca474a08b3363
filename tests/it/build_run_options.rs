//! `--build-context`, `--ulimit`, `--shm-size` and `--secret` (as variables) from the command line
//! to the RUN steps.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

use support::*;

fn bud(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root)
        .args(["--progress", "plain"])
        .args(args)
        .output()
        .expect("run bud")
}

/// Builds `dockerfile` in a fresh context with `flags`, exporting the result's files.
fn build_files(dockerfile: &str, flags: &[&str]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let output = format!("type=local,dest={}", dest.path().display());
    let mut args: Vec<&str> = flags.to_vec();
    args.extend(["-o", &output, context.path().to_str().unwrap()]);
    let out = bud(root.path(), &args);
    assert!(
        out.status.success(),
        "bud failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dest
}

fn read(dir: &tempfile::TempDir, file: &str) -> String {
    std::fs::read_to_string(dir.path().join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .trim()
        .to_owned()
}

fn ready() -> bool {
    require_base_image() && require_runc()
}

#[test]
fn named_contexts_replace_images_and_feed_copy_from() {
    if !ready() {
        return;
    }
    let extra = tempfile::tempdir().unwrap();
    std::fs::write(extra.path().join("data.txt"), "from the extra context\n").unwrap();
    std::fs::write(extra.path().join("skipped.tmp"), "ignored\n").unwrap();
    std::fs::write(extra.path().join(".dockerignore"), "*.tmp\n").unwrap();
    let extra_flag = format!("extra={}", extra.path().display());
    let image_flag = format!("base=docker-image://{BASE_IMAGE}");
    let dest = build_files(
        "FROM base\n\
         COPY --from=extra / /extra/\n\
         RUN ls /extra > /listing && busybox true && echo ran > /ran\n",
        &[
            "--build-context",
            &extra_flag,
            "--build-context",
            &image_flag,
        ],
    );
    assert_eq!(read(&dest, "extra/data.txt"), "from the extra context");
    // The directory's own .dockerignore applies.
    assert_eq!(read(&dest, "listing"), "data.txt");
    // `base` is no image of a registry: the busybox image stood in for it.
    assert_eq!(read(&dest, "ran"), "ran");
}

/// A directory and a `docker-image://` named context built with `--addr` (dockerd 20.10's
/// BuildKit, bud the frontend) and embedded: the image Docker 28.5's buildx builds with the
/// same flags.
#[test]
fn named_contexts_build_docker_28_s_image_embedded_and_with_addr() {
    if !ready() {
        return;
    }
    let Some(docker28) = require_docker28() else {
        return;
    };
    let extra = tempfile::tempdir().unwrap();
    std::fs::write(extra.path().join("data.txt"), "from the extra context\n").unwrap();
    std::fs::write(extra.path().join("skipped.tmp"), "ignored\n").unwrap();
    std::fs::write(extra.path().join(".dockerignore"), "*.tmp\n").unwrap();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM base\nCOPY --from=extra / /extra/\nRUN ls /extra > /listing\n",
    )
    .unwrap();
    let extra_flag = format!("extra={}", extra.path().display());
    let image_flag = format!("base=docker-image://{BASE_IMAGE}");
    same_image::assert_same_image(
        &docker28,
        &[same_image::Builder::Bud, same_image::Builder::BudAddr],
        &[
            "--build-context",
            &extra_flag,
            "--build-context",
            &image_flag,
            context.path().to_str().unwrap(),
        ],
    );
}

#[test]
fn ulimit_sets_the_limits_of_run_steps() {
    if !ready() {
        return;
    }
    let dest = build_files(
        "FROM bud-test/busybox:latest\nRUN ulimit -n > /soft && ulimit -Hn > /hard\n",
        &["--ulimit", "nofile=1024:2048"],
    );
    assert_eq!(read(&dest, "soft"), "1024");
    assert_eq!(read(&dest, "hard"), "2048");
}

#[test]
fn shm_size_sizes_dev_shm() {
    if !ready() {
        return;
    }
    let dockerfile =
        "FROM bud-test/busybox:latest\nRUN df -k /dev/shm | tail -n 1 | awk '{print $2}' > /shm\n";
    let dest = build_files(dockerfile, &["--shm-size", "128m"]);
    assert_eq!(read(&dest, "shm"), "131072");
    // Without the flag, the default 64 MiB.
    let dest = build_files(dockerfile, &[]);
    assert_eq!(read(&dest, "shm"), "65536");
}

/// `RUN --mount=type=secret,env=NAME` (BuildKit 0.13): the secret as a variable of the step,
/// with a file too only when a target is given; an absent optional one sets it empty. The
/// same files as Docker 28.5's build.
#[test]
fn secrets_as_environment_variables_as_docker_28_sets_them() {
    if !ready() {
        return;
    }
    let Some(docker28) = require_docker28() else {
        return;
    };
    let dockerfile = "FROM bud-test/busybox\n\
        RUN --mount=type=secret,id=tok,env=TOKEN echo \"[$TOKEN]\" > /env-only; ls /run/secrets > /files 2>&1; true\n\
        RUN --mount=type=secret,id=tok,env=TOKEN,target=/t cat /t > /both; echo \"[$TOKEN]\" >> /both\n\
        RUN --mount=type=secret,id=absent,env=GONE echo \"[${GONE-unset}]\" > /absent\n\
        FROM scratch\n\
        COPY --from=0 /env-only /files /both /absent /\n";
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("tok");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let secret_flag = format!("id=tok,src={}", secret.display());
    let ours = build_files(dockerfile, &["--secret", &secret_flag]);

    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let output = format!("type=local,dest={}", theirs.path().display());
    let out = docker28.build(&[
        "--secret",
        &secret_flag,
        "-o",
        &output,
        context.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "docker 28.5: {}", stderr_of(&out));
    for file in ["env-only", "files", "both", "absent"] {
        assert_eq!(
            read(&ours, file),
            std::fs::read_to_string(theirs.path().join(file))
                .unwrap()
                .trim(),
            "{file}"
        );
    }
    assert_eq!(read(&ours, "env-only"), "[s3cret\n]");
    assert_eq!(read(&ours, "absent"), "[]");
}

/// Makes an OCI layout directory of an image bud builds (files, and a file a later layer
/// deletes), and the same image as a `docker load` archive; returns the layout's directory,
/// the archive and the manifest digest `index.json` names.
fn layout_of_built_image(tag: &str) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let root = tempfile::tempdir().unwrap();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM bud-test/busybox\n\
         RUN mkdir /data && echo from-layout > /data/file && echo gone > /data/deleted\n\
         RUN rm /data/deleted && echo later > /data/later\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let oci_tar = dir.path().join("image.oci.tar");
    let docker_tar = dir.path().join("image.docker.tar");
    let oci = format!("type=oci,dest={}", oci_tar.display());
    let archive = format!("type=docker,dest={}", docker_tar.display());
    let out = bud(
        root.path(),
        &[
            "-t",
            tag,
            "-o",
            &oci,
            "-o",
            &archive,
            context.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "bud: {}", stderr_of(&out));
    let layout = dir.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(&oci_tar)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(untar.success());
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    (dir, docker_tar, digest)
}

/// Every path under `dir` with the contents of its regular files.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Option<String>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&path).unwrap();
            if md.is_dir() {
                stack.push(path);
                out.insert(rel, None);
            } else if md.is_file() {
                out.insert(
                    rel,
                    Some(std::fs::read_to_string(&path).unwrap_or_default()),
                );
            } else {
                out.insert(rel, None);
            }
        }
    }
    out
}

const LAYOUT_DOCKERFILE: &str = "FROM ctx AS probe\n\
    RUN cat /data/file > /read && ls -a /data > /listing\n\
    FROM ctx\n\
    COPY --from=ctx /data /copied\n\
    COPY --from=probe /read /listing /\n";

/// `--build-context ctx=oci-layout://DIR:TAG` (and `@DIGEST`) stands for `FROM ctx` and
/// `COPY --from=ctx`: the same files as Docker 28.5's buildx building on the same image. Its
/// docker driver on the classic image store has no oci-layout source ("unknown scheme
/// oci-layout"; with the containerd image store it has, see build_oci_layout_contexts), so the reference
/// takes the image as `docker-image://`, loaded from the archive bud wrote with the layout.
#[test]
fn oci_layout_contexts_give_the_files_docker_28_gives_for_the_image() {
    if !ready() {
        return;
    }
    let Some(docker28) = require_docker28() else {
        return;
    };
    let tag = "bud-test/oci-layout-context:v1";
    let (dir, docker_tar, digest) = layout_of_built_image(tag);
    let layout = dir.path().join("layout");

    let by_tag = format!("ctx=oci-layout://{}:v1", layout.display());
    let ours = build_files(LAYOUT_DOCKERFILE, &["--build-context", &by_tag]);
    assert_eq!(read(&ours, "read"), "from-layout");
    assert_eq!(read(&ours, "listing"), ".\n..\nfile\nlater");
    let by_digest = format!("ctx=oci-layout://{}@{digest}", layout.display());
    let pinned = build_files(LAYOUT_DOCKERFILE, &["--build-context", &by_digest]);
    assert_eq!(tree(ours.path()), tree(pinned.path()));

    let loaded = docker28.run(&["load", "-i", docker_tar.to_str().unwrap()]);
    assert!(
        loaded.status.success(),
        "docker 28.5 load: {}",
        stderr_of(&loaded)
    );
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("Dockerfile"), LAYOUT_DOCKERFILE).unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let output = format!("type=local,dest={}", theirs.path().display());
    let image_flag = format!("ctx=docker-image://{tag}");
    let out = docker28.build(&[
        "--build-context",
        &image_flag,
        "-o",
        &output,
        context.path().to_str().unwrap(),
    ]);
    let _ = docker28.run(&["rmi", tag]);
    assert!(out.status.success(), "docker 28.5: {}", stderr_of(&out));
    assert_eq!(tree(ours.path()), tree(theirs.path()));
}

/// An OCI layout with `--addr` on a daemon that cannot read it is refused naming what it
/// lacks: dockerd 20.10's BuildKit predates the `source.ocilayout` LLB cap (refused before
/// anything runs), Docker 28.5's classic worker lists the cap but registers no oci-layout
/// source (the daemon's "unknown scheme", explained). A tag the layout lacks, when it holds
/// several images, is refused naming it.
#[test]
fn oci_layout_contexts_refused_where_they_cannot_be_read() {
    if !ready() || !require_docker() {
        return;
    }
    let Some(docker28) = require_docker28() else {
        return;
    };
    let (dir, _, _) = layout_of_built_image("bud-test/oci-layout-refused:v1");
    let layout = dir.path().join("layout");
    let root = tempfile::tempdir().unwrap();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("Dockerfile"), LAYOUT_DOCKERFILE).unwrap();
    let flag = format!("ctx=oci-layout://{}:v1", layout.display());
    let on = |host: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bud"));
        if let Some(host) = host {
            cmd.env("DOCKER_HOST", host);
        }
        let out = cmd
            .arg("--root")
            .arg(root.path())
            .args(["--addr", "docker://", "--build-context", &flag])
            .args(["-o", "type=tar,dest=/dev/null"])
            .arg(context.path())
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert!(!out.status.success(), "{host:?}: {err}");
        err
    };
    let err = on(None);
    assert!(
        err.contains(
            "does not support LLB capability \"source.ocilayout\" (needed by [context ctx] OCI \
             load from client)"
        ),
        "{err}"
    );
    let err = on(Some(docker28.host()));
    assert!(
        err.contains("the daemon's BuildKit worker has no oci-layout source")
            && err.contains("unknown scheme oci-layout"),
        "{err}"
    );

    // Two images in index.json: a tag must name one.
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let mut second = index["manifests"][0].clone();
    second["annotations"]["org.opencontainers.image.ref.name"] = "v2".into();
    index["manifests"].as_array_mut().unwrap().push(second);
    std::fs::write(&index_path, index.to_string()).unwrap();
    let flag = format!("ctx=oci-layout://{}:v3", layout.display());
    let out = bud(
        root.path(),
        &[
            "--build-context",
            &flag,
            "-o",
            "type=tar,dest=/dev/null",
            context.path().to_str().unwrap(),
        ],
    );
    let err = stderr_of(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("no manifest is tagged \"v3\""), "{err}");
}

/// `target:STAGE` names a bake target: `docker buildx build` passes it on and fails finding
/// the target; bud refuses it the same way, naming the target and the context.
#[test]
fn target_contexts_are_refused_as_buildx_build_refuses_them() {
    let Some(docker28) = require_docker28() else {
        return;
    };
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM bud-test/busybox AS base\nFROM foo\n",
    )
    .unwrap();
    let args = [
        "--build-context",
        "foo=target:base",
        "-o",
        "type=tar,dest=/dev/null",
        context.path().to_str().unwrap(),
    ];
    let theirs = docker28.build(&args);
    let root = tempfile::tempdir().unwrap();
    let ours = bud(root.path(), &args);
    let expected = "failed to find target base for context foo";
    for (who, out) in [("docker 28.5", &theirs), ("bud", &ours)] {
        assert!(!out.status.success(), "{who} built a target: context");
        assert!(
            stderr_of(out).contains(expected),
            "{who}: {}",
            stderr_of(out)
        );
    }
    assert_eq!(ours.status.code(), theirs.status.code());
}

/// `--add-host NAME:host-gateway` is the Docker host's address on the bridge of the Docker
/// in use, as each reference resolves it: Docker 20.10's docker0 and Docker 28.5's own
/// bridge. bud asks the Docker that `DOCKER_HOST` names, and writes the same line.
#[test]
fn host_gateway_is_the_bridge_gateway_of_the_docker_in_use() {
    if !(ready() && require_docker()) {
        return;
    }
    let Some(docker28) = require_docker28() else {
        return;
    };
    let dockerfile = "FROM bud-test/busybox:latest\nRUN grep gw /etc/hosts > /gw\n";
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
    let context = context.path().to_str().unwrap();
    let flags = ["--no-cache", "--add-host", "gw:host-gateway"];

    let built_by = |mut command: Command, extra: &[&str]| {
        let dest = tempfile::tempdir().unwrap();
        let output = format!("type=local,dest={}", dest.path().display());
        let out = command
            .args(extra)
            .args(flags)
            .args(["-o", &output, context])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        read(&dest, "gw")
    };
    let root = tempfile::tempdir().unwrap();
    let bud_with = |host: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bud"));
        command.arg("--root").arg(root.path()).arg("build");
        match host {
            Some(host) => command.env("DOCKER_HOST", host),
            None => command.env_remove("DOCKER_HOST"),
        };
        built_by(command, &[])
    };

    let mut docker20 = Command::new("/usr/bin/docker");
    docker20
        .env("DOCKER_BUILDKIT", "1")
        .env_remove("DOCKER_HOST")
        .arg("build");
    let theirs = built_by(docker20, &[]);
    assert!(
        theirs.ends_with("\tgw") && !theirs.contains("host-gateway"),
        "{theirs}"
    );
    assert_eq!(bud_with(None), theirs);

    let mut docker28_build = docker28.command();
    docker28_build.arg("build");
    let theirs28 = built_by(docker28_build, &[]);
    assert_ne!(
        theirs28, theirs,
        "the two Dockers have bridges of their own"
    );
    assert_eq!(bud_with(Some(&docker28.host)), theirs28);
}
