//! bud as an ordinary user: rootless in a user namespace of its own (`bud-alice`, who has
//! subordinate ids), or through Docker's BuildKit where the embedded solver cannot run
//! (`bud-bob`, who has none). Both users are the test environment's (scripts/test-env).

use crate::support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use support::*;

fn rootless_ready() -> bool {
    require_base_image() && require_runc() && require_user(ROOTLESS_USER)
}

fn ok(out: &Output) -> String {
    let stderr = stderr_of(out);
    assert!(out.status.success(), "bud failed:\n{stderr}");
    stderr
}

/// What a container of `image` prints (its default command).
fn run_image(image: &str) -> String {
    docker_ok(&["run", "--rm", image])
}

/// Entries below `dir` owned on disk by `uid`.
fn owned_by(dir: &Path, uid: u32) -> Vec<String> {
    let out = Command::new("find")
        .arg(dir)
        .args(["-uid", &uid.to_string()])
        .output()
        .expect("run find");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_user_with_subordinate_ids_builds_rootless_into_docker() {
    if !rootless_ready() {
        return;
    }
    let (uid, home) = user_entry(ROOTLESS_USER).expect("user");
    let context = user_context(ROOTLESS_USER, "hello");
    let tag = "bud-rootless/hello:latest";
    let workers = bud_as(ROOTLESS_USER, &["debug", "workers"]);
    let workers = String::from_utf8_lossy(&workers.stdout).into_owned();
    assert!(workers.contains("embedded, rootless"), "{workers}");
    assert!(
        workers.contains(&format!("{}/.local/share/bud", home.display())),
        "the user's own state root: {workers}"
    );

    let out = bud_as(
        ROOTLESS_USER,
        &["-t", tag, context.path().to_str().unwrap()],
    );
    let stderr = ok(&out);
    assert!(!stderr.contains("Docker's BuildKit"), "{stderr}");
    // The RUN step ran as root of the image, and the file from the context is there.
    assert_eq!(
        run_image(tag),
        "hello from root\na message from the build context"
    );
    // Everything the build left in the state root is the user's (or her subordinate
    // ids'): nothing of root's.
    let state = home.join(".local/share/bud");
    assert!(state.is_dir());
    assert_eq!(owned_by(&state, 0), Vec::<String>::new());
    assert_eq!(std::fs::metadata(&state).unwrap().uid(), uid);
    docker(&["rmi", tag]);
}

#[test]
fn a_user_without_subordinate_ids_builds_through_dockers_buildkit() {
    if !require_base_image() || !require_user(PLAIN_USER) {
        return;
    }
    let context = user_context(PLAIN_USER, "hello");
    let tag = "bud-fallback/hello:latest";
    let out = bud_as(PLAIN_USER, &["-t", tag, context.path().to_str().unwrap()]);
    let stderr = ok(&out);
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("note: building with Docker's BuildKit"))
        .collect();
    assert_eq!(notes.len(), 1, "one line says why:\n{stderr}");
    assert!(
        notes[0].contains("no subordinate uids") && notes[0].contains("usermod --add-subuids"),
        "{}",
        notes[0]
    );
    assert_eq!(
        run_image(tag),
        "hello from root\na message from the build context"
    );
    // docker build's own image of the same context has the same config.
    let reference = "bud-fallback/hello-reference:latest";
    let built = Command::new(DOCKER)
        .args(["build", "-q", "-t", reference])
        .arg(context.path())
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .expect("docker build");
    assert!(built.status.success(), "{}", stderr_of(&built));
    let config = |image: &str| docker_ok(&["image", "inspect", "-f", "{{json .Config}}", image]);
    assert_eq!(config(tag), config(reference));

    // Kept off Docker by its configuration, the build fails with the reason instead.
    let conf = user_dir(PLAIN_USER);
    let conf_file = conf.path().join("bud.toml");
    std::fs::write(&conf_file, "[worker]\nfallback = \"never\"\n").unwrap();
    let out = bud_command_as(PLAIN_USER)
        .env("BUD_CONFIG", &conf_file)
        .args(["-t", tag, context.path().to_str().unwrap()])
        .output()
        .expect("run bud");
    assert_eq!(out.status.code(), Some(1));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("no subordinate uids") && stderr.contains("fallback = \"never\""),
        "{stderr}"
    );
    docker(&["rmi", tag, reference]);
}

#[test]
fn sigkill_of_a_rootless_build_leaves_nothing_the_next_build_trips_on() {
    if !rootless_ready() {
        return;
    }
    let root = user_dir(ROOTLESS_USER);
    // A step as root, then one as another user whose files (owned by a subordinate id on
    // disk, which the user cannot remove outside the namespace) are in its work directory.
    let as_root = user_context(ROOTLESS_USER, "slow");
    let as_other = user_dir(ROOTLESS_USER);
    std::fs::write(
        as_other.path().join("Dockerfile"),
        "FROM bud-test/busybox\nUSER 1000:1000\n\
         RUN mkdir -p /tmp/mine/deep && touch /tmp/mine/deep/f && chmod 500 /tmp/mine/deep \\\n\
         && echo started-sleeping && sleep 300\n",
    )
    .unwrap();
    chown_to(ROOTLESS_USER, as_other.path());
    for slow in [&as_root, &as_other] {
        let mut child = spawn_until(
            bud_command_as(ROOTLESS_USER),
            root.path(),
            slow.path(),
            "started-sleeping",
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }

    let hello = user_context(ROOTLESS_USER, "hello");
    let out_dir = user_dir(ROOTLESS_USER);
    let dest = out_dir.path().join("fs");
    let out = bud_as(
        ROOTLESS_USER,
        &[
            "--root",
            root.path().to_str().unwrap(),
            "-o",
            &format!("type=local,dest={}", dest.display()),
            hello.path().to_str().unwrap(),
        ],
    );
    ok(&out);
    assert_eq!(
        std::fs::read_to_string(dest.join("greeting")).unwrap(),
        "hello from root\n"
    );
    assert_eq!(
        runc_containers(root.path()),
        "",
        "the orphaned step was removed"
    );
    let leftovers = leftover_work(root.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(root.path().to_str().unwrap()),
        "no mount of the state root is left"
    );
}

#[test]
fn a_user_and_root_build_at_once_each_in_their_own_state() {
    if !rootless_ready() {
        return;
    }
    let (uid, _) = user_entry(ROOTLESS_USER).expect("user");
    let user_root = user_dir(ROOTLESS_USER);
    let root_root = tempfile::tempdir().unwrap();
    let user_ctx = user_context(ROOTLESS_USER, "concurrent-a");
    let user_out = user_dir(ROOTLESS_USER);
    let root_out = tempfile::tempdir().unwrap();
    let mut user_build = bud_command_as(ROOTLESS_USER);
    user_build
        .arg("--root")
        .arg(user_root.path())
        .arg("-o")
        .arg(format!("type=local,dest={}", user_out.path().display()))
        .arg(user_ctx.path());
    let mut root_build = Command::new(env!("CARGO_BIN_EXE_bud"));
    root_build
        .arg("--root")
        .arg(root_root.path())
        .arg("-o")
        .arg(format!("type=local,dest={}", root_out.path().display()))
        .arg(testdata("concurrent-b"));
    let user_child = user_build
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let root_child = root_build
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    ok(&user_child.wait_with_output().unwrap());
    ok(&root_child.wait_with_output().unwrap());
    assert_eq!(
        std::fs::read_to_string(user_out.path().join("which")).unwrap(),
        "a\n"
    );
    assert_eq!(
        std::fs::read_to_string(root_out.path().join("which")).unwrap(),
        "b\n"
    );
    assert_eq!(owned_by(user_root.path(), 0), Vec::<String>::new());
    assert_eq!(owned_by(root_root.path(), uid), Vec::<String>::new());
}

/// A rootless bud reads what its user may read, no more: a directory of root's in the
/// context fails docker build the same way. (An unreadable file is another matter: both
/// Docker 20.10 and 28.5 send it as an empty file without a word; bud refuses it.)
#[test]
fn a_context_directory_the_user_cannot_read_fails_as_with_docker() {
    if !rootless_ready() {
        return;
    }
    let context = user_context(ROOTLESS_USER, "hello");
    let secret = context.path().join("root-only");
    std::fs::create_dir(&secret).unwrap();
    std::fs::write(secret.join("key"), "root's\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();

    let out = bud_as(
        ROOTLESS_USER,
        &[
            "-t",
            "bud-rootless/denied",
            context.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = stderr_of(&out);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("root-only") && last.contains("ermission denied"),
        "the failure names the file, not a step cancelled because of it:\n{stderr}"
    );
    assert_eq!(
        last.matches("ermission denied").count(),
        1,
        "the system's error once:\n{stderr}"
    );

    let reference = command_as(ROOTLESS_USER, DOCKER)
        .args(["build", "-t", "bud-rootless/denied-reference"])
        .arg(context.path())
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .expect("docker build");
    assert!(!reference.status.success());
    let reference = stderr_of(&reference);
    assert!(
        reference.contains("root-only") && reference.contains("permission denied"),
        "{reference}"
    );
}

/// Secrets, ulimits, an isolated network, an insecure step and a non-root user's step all
/// work rootless; the local output is the user's, as docker build's is.
#[test]
fn rootless_steps_take_the_run_options_root_steps_take() {
    if !rootless_ready() {
        return;
    }
    let (uid, _) = user_entry(ROOTLESS_USER).expect("user");
    let context = user_dir(ROOTLESS_USER);
    std::fs::write(
        context.path().join("Dockerfile"),
        "# syntax=docker/dockerfile:1-labs\n\
         FROM bud-test/busybox\n\
         RUN --mount=type=secret,id=tok cat /run/secrets/tok > /secret-seen\n\
         RUN --network=none cat /proc/net/dev | tail -n +3 | wc -l > /interfaces\n\
         RUN ulimit -n > /nofile\n\
         RUN grep CapEff /proc/self/status > /caps-default\n\
         RUN --security=insecure grep CapEff /proc/self/status > /caps-insecure\n\
         USER user\n\
         RUN id -u > /tmp/uid && touch /tmp/by-user\n",
    )
    .unwrap();
    let secret = context.path().join("tok");
    std::fs::write(&secret, "s3cret").unwrap();
    chown_to(ROOTLESS_USER, context.path());
    let out_dir = user_dir(ROOTLESS_USER);
    let dest = out_dir.path().join("fs");
    let out = bud_as(
        ROOTLESS_USER,
        &[
            "--secret",
            &format!("id=tok,src={}", secret.display()),
            "--ulimit",
            "nofile=1024:1024",
            "--allow",
            "security.insecure",
            "-o",
            &format!("type=local,dest={}", dest.display()),
            context.path().to_str().unwrap(),
        ],
    );
    ok(&out);
    let read = |name: &str| std::fs::read_to_string(dest.join(name)).unwrap();
    assert_eq!(read("secret-seen"), "s3cret");
    assert_eq!(
        read("interfaces").trim(),
        "1",
        "only the loopback interface"
    );
    assert_eq!(read("nofile").trim(), "1024");
    assert_eq!(read("tmp/uid").trim(), "1000");
    assert!(
        read("caps-default").contains("00000000a80425fb"),
        "Docker's default capabilities"
    );
    assert_ne!(
        read("caps-default"),
        read("caps-insecure"),
        "an insecure step has more"
    );
    // Written by the user, as docker build -o type=local writes them for her.
    for entry in ["tmp/by-user", "home/user", "secret-seen"] {
        let meta = std::fs::symlink_metadata(dest.join(entry)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, uid), "{entry}");
    }
}

/// A base image owning files by ids the user namespace does not map cannot be unpacked
/// rootless: the error says which id and what to change.
#[test]
fn a_base_image_owner_beyond_the_subordinate_ids_is_refused_with_the_fix() {
    if !rootless_ready() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    std::fs::write(
        base.path().join("Dockerfile"),
        "FROM bud-test/busybox\nRUN touch /far && chown 200000:200000 /far\n",
    )
    .unwrap();
    let built = Command::new(DOCKER)
        .args(["build", "-q", "-t", "bud-rootless/far-owner"])
        .arg(base.path())
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", stderr_of(&built));
    let context = user_dir(ROOTLESS_USER);
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM bud-rootless/far-owner\nRUN true\n",
    )
    .unwrap();
    chown_to(ROOTLESS_USER, context.path());
    let out = bud_as(
        ROOTLESS_USER,
        &[
            "-o",
            "type=tar,dest=/dev/null",
            context.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("owner uid 200000") && stderr.contains("/etc/subuid"),
        "{stderr}"
    );
    docker(&["rmi", "bud-rootless/far-owner"]);
}

/// `RUN --device` rootless: no device node can be made in a user namespace, so the CDI
/// device's host node (`hostPath`, here /dev/null, under another name in the step) is bound
/// in its place; the step can write to it and has the device's environment.
#[test]
fn a_rootless_step_gets_its_cdi_device_bound_from_the_host() {
    if !rootless_ready() {
        return;
    }
    let dir = user_dir(ROOTLESS_USER);
    let cdi = dir.path().join("cdi");
    std::fs::create_dir(&cdi).unwrap();
    std::fs::write(
        cdi.join("bud-test.json"),
        r#"{"cdiVersion": "0.6.0", "kind": "bud-test.example.com/null",
            "annotations": {"org.mobyproject.buildkit.device.autoallow": "true"},
            "devices": [{"name": "one", "containerEdits": {"env": ["BUD_CDI=rootless"],
              "deviceNodes": [{"path": "/dev/bud-cdi-null", "hostPath": "/dev/null"}]}}]}"#,
    )
    .unwrap();
    let config = dir.path().join("bud.toml");
    std::fs::write(&config, format!("[cdi]\nspec_dirs = [{cdi:?}]\n")).unwrap();
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "# syntax=docker/dockerfile:1-labs\nFROM bud-test/busybox\n\
         RUN --device=bud-test.example.com/null=one,required sh -c \
         'test -c /dev/bud-cdi-null && echo x > /dev/bud-cdi-null && echo \"$BUD_CDI\" > /env'\n",
    )
    .unwrap();
    chown_to(ROOTLESS_USER, dir.path());
    let dest = dir.path().join("fs");
    let out = bud_command_as(ROOTLESS_USER)
        .env("BUD_CONFIG", &config)
        .args([
            "--root",
            dir.path().join("root").to_str().unwrap(),
            "-o",
            &format!("type=local,dest={}", dest.display()),
            context.to_str().unwrap(),
        ])
        .output()
        .expect("run bud");
    ok(&out);
    assert_eq!(
        std::fs::read_to_string(dest.join("env")).unwrap(),
        "rootless\n"
    );
}

/// `--sbom` through Docker's BuildKit on its own image store: bud scans the image the daemon
/// built in its state root, its layers extracted as a base image's are. An ordinary user
/// with subordinate ids does it in her user namespace (the SBOM lists the image's packages,
/// the state root holds nothing of root's); one without them is refused with the reason,
/// before anything is built.
#[test]
fn an_sbom_through_docker_s_buildkit_is_made_rootless_or_refused() {
    if !rootless_ready() || !require_user(PLAIN_USER) || !require_docker() {
        return;
    }
    let marker = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let build = |user: &str| -> (Output, String, tempfile::TempDir) {
        let context = user_dir(user);
        std::fs::write(
            context.path().join("Dockerfile"),
            format!(
                "FROM {BASE_IMAGE}\nRUN mkdir -p /var/lib/dpkg && echo {marker} \\\n \
                 && printf 'Package: hello\\nStatus: install ok installed\\nVersion: 2.10-3\\n\\n' \
                 > /var/lib/dpkg/status\n"
            ),
        )
        .unwrap();
        chown_to(user, context.path());
        let repository = format!("bud-test/h-sbom-{user}-{marker}");
        let tag = format!("{OPEN_REGISTRY}/{repository}:1");
        let root = user_dir(user);
        let out = bud_as(
            user,
            &[
                "--root",
                root.path().to_str().unwrap(),
                "--addr",
                "docker://",
                "--sbom=true",
                "--push",
                "-t",
                &tag,
                context.path().to_str().unwrap(),
            ],
        );
        (out, repository, root)
    };

    let (out, repository, root) = build(ROOTLESS_USER);
    ok(&out);
    let index = registry_json(&format!("{repository}/manifests/1"));
    let attestation = registry_json(&format!(
        "{repository}/manifests/{}",
        index["manifests"][1]["digest"].as_str().unwrap()
    ));
    let sbom = registry_json(&format!(
        "{repository}/blobs/{}",
        attestation["layers"][0]["digest"].as_str().unwrap()
    ));
    let names: Vec<&str> = sbom["predicate"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"hello"), "{names:?}");
    assert_eq!(owned_by(root.path(), 0), Vec::<String>::new());
    docker(&["rmi", &format!("{OPEN_REGISTRY}/{repository}:1")]);

    let (out, _, _) = build(PLAIN_USER);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--sbom with --addr on Docker's own image store")
            && stderr.contains("subordinate ids"),
        "{stderr}"
    );
    assert!(!stderr.contains(&marker), "the build ran: {stderr}");
}

/// A rootless bud reads its Dockerfile and opens its state root before its user namespace
/// is mapped (as the user, while the map helpers run), but a context archive on stdin is
/// unpacked inside it: its entries keep their owners, as with Docker 28.5, even owners the
/// user could not give a file outside the namespace.
#[test]
fn a_rootless_context_archive_from_stdin_keeps_its_owners_as_with_docker() {
    if !rootless_ready() {
        return;
    }
    let Some(docker28) = require_docker28() else {
        return;
    };
    let dockerfile = "FROM bud-test/busybox\n\
                      RUN --mount=type=bind,target=/ctx stat -c '%u:%g %a' /ctx/owned > /owner\n";
    let mut archive = tar::Builder::new(Vec::new());
    for (name, body, mode, owner) in [
        ("Dockerfile", dockerfile, 0o644, 0),
        ("owned", "hi\n", 0o640, 1234),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(mode);
        header.set_uid(owner);
        header.set_gid(owner + 1);
        header.set_cksum();
        archive
            .append_data(&mut header, name, body.as_bytes())
            .unwrap();
    }
    let archive = archive.into_inner().unwrap();
    let piped = |mut cmd: Command| {
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), &archive).unwrap();
        child.wait_with_output().unwrap()
    };

    let out = user_dir(ROOTLESS_USER);
    let mut bud = bud_command_as(ROOTLESS_USER);
    bud.args(["--progress", "plain", "-o"])
        .arg(format!(
            "type=local,dest={}",
            out.path().join("bud").display()
        ))
        .arg("-");
    let stderr = ok(&piped(bud));
    assert!(!stderr.contains("Docker's BuildKit"), "{stderr}");

    let reference = tempfile::tempdir().unwrap();
    let mut docker = docker28.command();
    docker
        .args(["build", "-q", "-o"])
        .arg(format!("type=local,dest={}", reference.path().display()))
        .arg("-");
    let built = piped(docker);
    assert!(built.status.success(), "{}", stderr_of(&built));

    let owner = |dir: &Path| std::fs::read_to_string(dir.join("owner")).unwrap();
    assert_eq!(owner(reference.path()), "1234:1235 640\n");
    assert_eq!(owner(&out.path().join("bud")), owner(reference.path()));
}

/// An error found while the user namespace is being mapped (the build reads its Dockerfile
/// then) ends the build as it ends root's: the same message, exit 1, the entry given up.
#[test]
fn a_rootless_build_without_a_dockerfile_fails_as_roots_does() {
    if !rootless_ready() {
        return;
    }
    let context = user_dir(ROOTLESS_USER);
    let state = user_dir(ROOTLESS_USER);
    let as_user = bud_as(
        ROOTLESS_USER,
        &[
            "--root",
            state.path().to_str().unwrap(),
            context.path().to_str().unwrap(),
        ],
    );
    let root_state = tempfile::tempdir().unwrap();
    let as_root = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root_state.path())
        .arg(context.path())
        .output()
        .unwrap();
    assert_eq!(as_root.status.code(), Some(1), "{}", stderr_of(&as_root));
    assert_eq!(as_user.status.code(), Some(1), "{}", stderr_of(&as_user));
    assert!(
        stderr_of(&as_root).contains("Dockerfile"),
        "{}",
        stderr_of(&as_root)
    );
    assert_eq!(stderr_of(&as_user), stderr_of(&as_root));
}
