//! What an image carries beyond its files, read back from the registry it was pushed to:
//! reproducible times (SOURCE_DATE_EPOCH, `rewrite-timestamp`), annotations, provenance
//! attestations, and the directives and flags bud refuses rather than ignores.

use crate::support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::*;

/// 2023-11-14T22:13:20Z.
const EPOCH: i64 = 1_700_000_000;
const EPOCH_RFC3339: &str = "2023-11-14T22:13:20Z";

fn ready() -> bool {
    require_base_image()
        && require_runc()
        && require(
            "the registry at 127.0.0.1:5000",
            std::net::TcpStream::connect(OPEN_REGISTRY).is_ok(),
        )
}

/// A repository name no other test run uses.
fn unique_repo(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("bud-test/{name}-{}-{nanos}", std::process::id())
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "bud failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const REPRO_DOCKERFILE: &str = "FROM bud-test/busybox:latest
RUN mkdir -p /made/deep && echo made > /made/deep/file && ln -s deep/file /made/link \\
 && touch -t 200101010000.00 /made/old
WORKDIR /work
COPY --chmod=640 data.txt sub/ /work/
ARG SOURCE_DATE_EPOCH
RUN echo \"epoch=$SOURCE_DATE_EPOCH\" > /work/epoch
";

/// The same context each time, its files with their own modes, owners and times where it is
/// written (`mtime` differs between copies).
fn repro_context(dir: &Path, mtime: SystemTime) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(dir.join("Dockerfile"), REPRO_DOCKERFILE).unwrap();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for (name, text, mode) in [
        ("data.txt", "data\n", 0o644),
        ("sub/inner.txt", "inner\n", 0o600),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
}

/// `bud ARGS` with the process umask set first, its stderr returned.
fn bud_with_umask(umask: &str, root: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root)
        .args(["--progress", "plain"])
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("BUILDX_NO_DEFAULT_ATTESTATIONS");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run bud")
}

/// The manifest and config pushed as `repo:tag`.
/// The image manifest pushed under `tag` (the index's image entry when buildx's default
/// provenance made it an index), its digest and its config.
fn pushed(repo: &str, tag: &str) -> (String, serde_json::Value, serde_json::Value) {
    let mut manifest_bytes = registry_get(&format!("{repo}/manifests/{tag}"));
    let top: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    if let Some(entries) = top["manifests"].as_array() {
        let image = entries
            .iter()
            .find(|e| e["platform"]["os"] != "unknown")
            .expect("an image entry");
        manifest_bytes = registry_get(&format!(
            "{repo}/manifests/{}",
            image["digest"].as_str().unwrap()
        ));
    }
    let digest = format!("sha256:{}", sha256_hex(&manifest_bytes));
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let config = registry_json(&format!(
        "{repo}/blobs/{}",
        manifest["config"]["digest"].as_str().unwrap()
    ));
    (digest, manifest, config)
}

/// Each entry's path and mtime in the gzip layer `digest` of `repo`.
fn layer_mtimes(repo: &str, digest: &str) -> Vec<(String, u64)> {
    let blob = registry_get(&format!("{repo}/blobs/{digest}"));
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(blob.as_slice())
        .read_to_end(&mut tar)
        .unwrap();
    let mut archive = tar::Archive::new(tar.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().mtime().unwrap(),
            )
        })
        .collect()
}

#[test]
fn source_date_epoch_and_rewrite_timestamp_give_the_same_image_from_any_path_umask_or_user() {
    if !ready() {
        return;
    }
    let repo = unique_repo("repro");
    let epoch = EPOCH.to_string();
    let build_arg = format!("SOURCE_DATE_EPOCH={epoch}");
    let output = |tag: &str| {
        format!("type=image,name={OPEN_REGISTRY}/{repo}:{tag},push=true,rewrite-timestamp=true")
    };

    // Root, the epoch from the environment, umask 022, files written an hour ago.
    let (root_a, ctx_a) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    repro_context(ctx_a.path(), SystemTime::now() - Duration::from_secs(3600));
    ok(&bud_with_umask(
        "022",
        root_a.path(),
        &["-o", &output("a"), ctx_a.path().to_str().unwrap()],
        &[("SOURCE_DATE_EPOCH", &epoch)],
    ));
    // Root, the epoch as a build arg, umask 077, a context elsewhere written now.
    let (root_b, ctx_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ctx_b_path = ctx_b.path().join("a/longer/path");
    std::fs::create_dir_all(&ctx_b_path).unwrap();
    repro_context(&ctx_b_path, SystemTime::now());
    ok(&bud_with_umask(
        "077",
        root_b.path(),
        &[
            "--build-arg",
            &build_arg,
            "-o",
            &output("b"),
            ctx_b_path.to_str().unwrap(),
        ],
        &[],
    ));

    let (digest_a, manifest, config) = pushed(&repo, "a");
    let (digest_b, _, _) = pushed(&repo, "b");
    assert_eq!(digest_a, digest_b, "two state roots, paths and umasks");

    // The image and this build's history entries are dated by the epoch; the base image's
    // history is its own (moby/buildkit#4614).
    assert_eq!(config["created"], EPOCH_RFC3339);
    let base: serde_json::Value = serde_json::from_str(&docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .}}",
        "bud-test/busybox:latest",
    ]))
    .unwrap();
    let history = config["history"].as_array().unwrap();
    let base_layers = base["RootFS"]["Layers"].as_array().unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(&diff_ids[..base_layers.len()], &base_layers[..]);
    let new_entries: Vec<_> = history
        .iter()
        .filter(|h| h["comment"] == "buildkit.dockerfile.v0")
        .collect();
    assert_eq!(new_entries.len(), 5, "{history:?}");
    for h in &new_entries {
        assert_eq!(h["created"], EPOCH_RFC3339, "{h}");
    }
    for h in history
        .iter()
        .filter(|h| h["comment"] != "buildkit.dockerfile.v0")
    {
        assert_ne!(
            h["created"], EPOCH_RFC3339,
            "a base image entry was redated: {h}"
        );
    }

    // No file in the new layers is later than the epoch; one made older keeps its time.
    let layers = manifest["layers"].as_array().unwrap();
    let mut seen_old = false;
    for layer in &layers[base_layers.len()..] {
        for (path, mtime) in layer_mtimes(&repo, layer["digest"].as_str().unwrap()) {
            assert!(mtime <= EPOCH as u64, "{path} at {mtime}");
            seen_old |= path == "made/old" && mtime < EPOCH as u64;
        }
    }
    assert!(seen_old, "made/old kept its own earlier time");

    // A user's rootless bud makes the very same image.
    if !require_user("bud-alice") {
        return;
    }
    let (root_c, ctx_c) = (user_dir("bud-alice"), user_dir("bud-alice"));
    repro_context(ctx_c.path(), SystemTime::now() - Duration::from_secs(60));
    chown_to("bud-alice", ctx_c.path());
    let out = bud_command_as("bud-alice")
        .arg("--root")
        .arg(root_c.path())
        .args(["--progress", "plain", "--build-arg", &build_arg])
        .args(["-o", &output("c")])
        .arg(ctx_c.path())
        .output()
        .expect("run bud");
    ok(&out);
    assert_eq!(pushed(&repo, "c").0, digest_a, "rootless, as bud-alice");
}

#[test]
fn rewrite_timestamp_without_an_epoch_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let out = bud_with_umask(
        "022",
        root.path(),
        &[
            "-o",
            &format!(
                "type=oci,dest={},rewrite-timestamp=true",
                ctx.path().join("o.tar").display()
            ),
            ctx.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("rewrite-timestamp=true needs SOURCE_DATE_EPOCH"),
        "{}",
        stderr_of(&out)
    );
    let out = bud_with_umask(
        "022",
        root.path(),
        &[
            "--build-arg",
            "SOURCE_DATE_EPOCH=yesterday",
            "-o",
            &format!("type=oci,dest={}", ctx.path().join("o.tar").display()),
            ctx.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("invalid SOURCE_DATE_EPOCH: yesterday"),
        "{}",
        stderr_of(&out)
    );
}

/// Docker 28.5's buildx takes SOURCE_DATE_EPOCH from the environment and dates the image and
/// the new history entries with it, leaving the base image's: bud's config says the same.
/// (Its `docker` driver's image exporter ignores `rewrite-timestamp`: the layers are not
/// compared, see the report in README's reproducibility section.)
#[test]
fn history_and_created_match_docker_28_with_source_date_epoch() {
    if !ready() {
        return;
    }
    let Some(d28) = require_docker28() else {
        return;
    };
    let repo = unique_repo("repro-d28");
    let ctx = tempfile::tempdir().unwrap();
    repro_context(ctx.path(), SystemTime::now());
    let epoch = EPOCH.to_string();
    let out = d28
        .command()
        .args(["build", "--provenance=false", "-o"])
        .arg(format!(
            "type=image,name={OPEN_REGISTRY}/{repo}:docker28,push=true"
        ))
        .arg(ctx.path())
        .env("SOURCE_DATE_EPOCH", &epoch)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let root = tempfile::tempdir().unwrap();
    ok(&bud_with_umask(
        "022",
        root.path(),
        &[
            "-o",
            &format!("type=image,name={OPEN_REGISTRY}/{repo}:bud,push=true"),
            ctx.path().to_str().unwrap(),
        ],
        &[("SOURCE_DATE_EPOCH", &epoch)],
    ));
    let (_, _, theirs) = pushed(&repo, "docker28");
    let (_, _, ours) = pushed(&repo, "bud");
    assert_eq!(ours["created"], theirs["created"]);
    assert_eq!(ours["history"], theirs["history"]);
}

const ANNOTATED_DOCKERFILE: &str = "FROM bud-test/busybox:latest\nRUN echo annotated > /a\n";

fn annotated_context() -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), ANNOTATED_DOCKERFILE).unwrap();
    ctx
}

fn string_map(value: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    serde_json::from_value(value.clone()).unwrap_or_default()
}

#[test]
fn annotations_are_written_into_the_pushed_manifest_and_the_oci_layout() {
    if !ready() {
        return;
    }
    let repo = unique_repo("annotated");
    let ctx = annotated_context();
    let root = tempfile::tempdir().unwrap();
    let platform = format!("linux/{}", host_arch());
    let flags = [
        "--annotation",
        "org.opencontainers.image.title=from a flag",
        "--annotation",
        &format!("manifest[{platform}]:org.example.platform=mine"),
        "--annotation",
        "manifest:org.example.override=flag",
    ];
    let mut args: Vec<&str> = flags.to_vec();
    let push = format!(
        "type=image,name={OPEN_REGISTRY}/{repo}:1,push=true,\
         annotation.org.example.attr=attr value,\
         annotation-manifest.org.example.override=attr"
    );
    args.extend(["-o", &push, ctx.path().to_str().unwrap()]);
    ok(&bud_with_umask("022", root.path(), &args, &[]));
    let (_, manifest, _) = pushed(&repo, "1");
    let expected: std::collections::BTreeMap<String, String> = [
        ("org.opencontainers.image.title", "from a flag"),
        ("org.example.platform", "mine"),
        ("org.example.attr", "attr value"),
        // buildx sets the flags over the output's own attributes.
        ("org.example.override", "flag"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(string_map(&manifest["annotations"]), expected, "{manifest}");

    // An OCI layout holds the descriptor too: manifest-descriptor annotations go there.
    let out = tempfile::tempdir().unwrap();
    let oci = out.path().join("image.tar");
    // The layout of the image alone: index.json's entry is its manifest's descriptor.
    let mut args: Vec<&str> = vec!["--provenance=false"];
    args.extend(flags);
    let dest = format!(
        "type=oci,dest={},annotation-manifest-descriptor.org.example.desc=on the descriptor",
        oci.display()
    );
    args.extend(["-o", &dest, ctx.path().to_str().unwrap()]);
    ok(&bud_with_umask("022", root.path(), &args, &[]));
    let mut archive = tar::Archive::new(std::fs::File::open(&oci).unwrap());
    let mut blobs = std::collections::HashMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        blobs.insert(path, bytes);
    }
    let index: serde_json::Value = serde_json::from_slice(&blobs["index.json"]).unwrap();
    let descriptor = &index["manifests"][0];
    assert_eq!(
        descriptor["annotations"]["org.example.desc"], "on the descriptor",
        "{index}"
    );
    let digest = descriptor["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &blobs[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))],
    )
    .unwrap();
    let mut from_flags = expected;
    from_flags.remove("org.example.attr");
    assert_eq!(
        string_map(&manifest["annotations"]),
        from_flags,
        "{manifest}"
    );
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

/// Annotations that would have nowhere to go are refused before the build, never dropped.
/// Docker 28.5 refuses index annotations on a single-platform image the same way (its `docker`
/// driver's image exporter drops manifest annotations, which bud does not follow).
#[test]
fn annotations_with_nowhere_to_go_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let ctx = annotated_context();
    let ctx_path = ctx.path().to_str().unwrap();
    let oci = format!("type=oci,dest={}", ctx.path().join("o.tar").display());
    let push = format!("type=image,name={OPEN_REGISTRY}/bud-test/never:1,push=true");
    for (args, says) in [
        (
            vec!["--annotation", "index:k=v", "-o", &oci],
            "bud writes no image index",
        ),
        (
            vec!["--annotation", "index-descriptor:k=v", "-o", &push],
            "bud writes no image index",
        ),
        (
            vec!["--annotation", "manifest-descriptor:k=v", "-o", &push],
            "a pushed single-platform image has no index",
        ),
        (
            vec!["--annotation", "manifest[linux/s390x]:k=v", "-o", &oci],
            "is for platform linux/s390x",
        ),
        (
            vec!["--annotation", "k=v", "-t", "bud-test/annotated:never"],
            "not written to Docker",
        ),
        (
            vec!["--annotation", "k=v", "-o", "type=local,dest=/tmp/never"],
            "annotations go to image outputs only",
        ),
    ] {
        let mut all = args.clone();
        all.push(ctx_path);
        let out = bud_with_umask("022", root.path(), &all, &[]);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains(says),
            "{args:?}: {}",
            stderr_of(&out)
        );
        assert!(
            !stderr_of(&out).contains("RUN echo"),
            "refused before the build: {}",
            stderr_of(&out)
        );
    }
    for (bad, says) in [
        ("--annotation=novalue", "expected key=value"),
        (
            "--annotation=bogus:k=v",
            "unknown annotation type \"bogus\"",
        ),
    ] {
        let out = bud_with_umask("022", root.path(), &[bad, ctx_path], &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr_of(&out));
        assert!(stderr_of(&out).contains(says), "{bad}: {}", stderr_of(&out));
    }
    let out = bud_with_umask(
        "022",
        root.path(),
        &["-o", &format!("{oci},annotation-nope.k=v"), ctx_path],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("unrecognized annotation type nope"));

    if !require_base_image() {
        return;
    }
    let Some(d28) = require_docker28() else {
        return;
    };
    let out = d28
        .command()
        .args(["build", "--provenance=false", "--annotation", "index:k=v"])
        .args(["-o", &push])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("index annotations not supported for single platform export"),
        "{}",
        stderr_of(&out)
    );
}

fn dockerfile_context(text: &str) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), text).unwrap();
    ctx
}

fn bud_tar(root: &Path, ctx: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["-o", "type=tar,dest=/dev/null"];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    bud_with_umask("022", root, &args, &[])
}

/// `COPY --parents` with a labs syntax: each stage of testdata/copy-parents checks its own
/// result against what BuildKit's integration tests expect of the labs frontend (Docker's
/// frontends here refuse the flag, and the labs image cannot be pulled offline).
#[test]
fn copy_parents_keeps_the_paths_buildkit_s_labs_frontend_keeps() {
    if !build_ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = testdata("copy-parents");
    let out_dir = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", out_dir.path().display());
    let out = bud_at(
        root.path(),
        &[
            "build",
            "--target",
            "from-context",
            "-o",
            &dest,
            ctx.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    for (path, content) in [
        ("src/pkg/lib/one.txt", "one"),
        ("in/src/pkg/lib/two.txt", "two"),
    ] {
        let file = out_dir.path().join(path);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap_or_default(),
            content,
            "{path}"
        );
    }
    // Only what the patterns name: not the sibling, not one.txt under /in.
    assert!(!out_dir.path().join("src/pkg/mod.txt").exists());
    assert!(!out_dir.path().join("in/src/pkg/lib/one.txt").exists());

    for target in [
        "pivot",
        "whole",
        "trailing-dot",
        "relative",
        "two-pivots",
        "wildcard",
        "double-star",
        "two-sources",
        "wildcard-none",
        "wildcard-none-after-pivot",
    ] {
        let out = bud_tar(root.path(), &ctx, &["--target", target]);
        assert!(out.status.success(), "{target}: {}", stderr_of(&out));
    }
    let out = bud_tar(root.path(), &ctx, &["--target", "missing"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("\"/tree/no-such-file\"") && stderr_of(&out).contains("not found"),
        "{}",
        stderr_of(&out)
    );
}

const FOREIGN: &str = "127.0.0.1:5000/bud-test/no-such-frontend:1";

#[test]
fn another_frontend_image_is_refused_by_the_embedded_solver_and_handed_to_buildkit_with_addr() {
    let root = tempfile::tempdir().unwrap();
    let ctx = dockerfile_context(&format!(
        "# syntax={FOREIGN}\nFROM bud-test/busybox:latest\nRUN true\n"
    ));
    let out = bud_tar(root.path(), ctx.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "line 1: `# syntax={FOREIGN}` names a frontend image"
        )),
        "{err}"
    );
    assert!(err.contains("build with --addr"), "{err}");

    // BUILDKIT_SYNTAX comes before the directive, as in BuildKit.
    let own = dockerfile_context("# syntax=docker/dockerfile:1\nFROM bud-test/busybox:latest\n");
    let arg = format!("BUILDKIT_SYNTAX={FOREIGN}");
    let out = bud_tar(root.path(), own.path(), &["--build-arg", &arg]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!("BUILDKIT_SYNTAX={FOREIGN} names a frontend image")),
        "{}",
        stderr_of(&out)
    );

    // With a BuildKit daemon, the image is its frontend: the daemon resolves it as the
    // gateway frontend's source (and, the image being absent, fails on that).
    if !require_docker() {
        return;
    }
    let out = bud_tar(root.path(), ctx.path(), &["--addr", "docker://"]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("frontend gateway.v0") && err.contains(FOREIGN),
        "{err}"
    );
}

#[test]
fn docker_dockerfile_1_syntaxes_are_bud_s_own_frontend() {
    if !(require_base_image() && require_runc()) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let digest = "sha256:e2a8561e419ab1ba6b2fe6cbdf49fd92b95912df1cf7d313c3e2230a333fdbcc";
    for syntax in [
        "docker/dockerfile:1".to_owned(),
        format!("docker/dockerfile:1.19@{digest}"),
        "docker.io/docker/dockerfile-upstream:1.7-labs".to_owned(),
    ] {
        // No registry is asked: there is no docker/dockerfile image to be had here.
        let ctx = dockerfile_context(&format!(
            "# syntax={syntax}\nFROM bud-test/busybox:latest\nRUN echo {syntax} > /syntax\n"
        ));
        ok(&bud_tar(root.path(), ctx.path(), &[]));
    }
    let ctx = dockerfile_context("FROM bud-test/busybox:latest\nRUN --security=insecure true\n");
    ok(&bud_tar(
        root.path(),
        ctx.path(),
        &[
            "--allow",
            "security.insecure",
            "--build-arg",
            "BUILDKIT_SYNTAX=docker/dockerfile:1-labs",
        ],
    ));
}

/// The flags only BuildKit's labs frontend has are unknown without a labs syntax, as with
/// Docker 28.5's built-in frontend (`RUN --device` is labs only too, with its own message).
#[test]
fn labs_flags_need_a_labs_syntax_and_an_absent_device_is_skipped() {
    let root = tempfile::tempdir().unwrap();
    let cases = [
        (
            "RUN --security=insecure true",
            "line 2: unknown flag: --security",
        ),
        ("COPY --parents f /x/", "line 2: unknown flag: --parents"),
        (
            "RUN --device=/dev/null true",
            "line 2: device feature is only supported in Dockerfile frontend 1.14.0-labs",
        ),
    ];
    let d28 = if require_base_image() {
        require_docker28()
    } else {
        None
    };
    for (line, says) in cases {
        let ctx = dockerfile_context(&format!("FROM bud-test/busybox:latest\n{line}\n"));
        std::fs::write(ctx.path().join("f"), "f").unwrap();
        let out = bud_tar(root.path(), ctx.path(), &[]);
        assert_eq!(out.status.code(), Some(1), "{line}: {}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains(says),
            "{line}: {}",
            stderr_of(&out)
        );
        if let Some(d28) = &d28 {
            let theirs = d28
                .command()
                .args(["build", "-o", "type=tar,dest=/dev/null"])
                .arg(ctx.path())
                .output()
                .unwrap();
            assert!(!theirs.status.success(), "{line}");
            let reference = says.trim_start_matches("line 2: ");
            assert!(
                stderr_of(&theirs).contains(reference),
                "{line}: {}",
                stderr_of(&theirs)
            );
        }
    }
    // With a labs syntax the flag is BuildKit's: `/dev/kvm` is no CDI device registered
    // here, and an optional device that is not there is skipped with a warning
    // (tests/build_entitlements.rs runs a registered one).
    let ctx = dockerfile_context(
        "# syntax=docker/dockerfile:1-labs\nFROM bud-test/busybox:latest\nRUN --device=/dev/kvm true\n",
    );
    let out = bud_tar(root.path(), ctx.path(), &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("optional device \"/dev/kvm\" is not registered"),
        "{}",
        stderr_of(&out)
    );
}

/// Each layer blob decompressed as its media type says, and hashed: the diff IDs.
fn decompressed_digest(media_type: &str, blob: &[u8]) -> String {
    let mut tar = Vec::new();
    if media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip") {
        flate2::read::MultiGzDecoder::new(blob)
            .read_to_end(&mut tar)
            .unwrap();
    } else if media_type.ends_with("+zstd") {
        tar = zstd::decode_all(blob).unwrap();
    } else {
        assert!(
            media_type.ends_with(".tar") || media_type.ends_with("diff.tar"),
            "{media_type}"
        );
        tar = blob.to_vec();
    }
    format!("sha256:{}", sha256_hex(&tar))
}

#[test]
fn compression_is_what_the_pushed_and_written_blobs_are() {
    if !ready() {
        return;
    }
    let repo = unique_repo("compressed");
    let ctx = annotated_context();
    let root = tempfile::tempdir().unwrap();
    for (tag, attrs, manifest_type, layer_type) in [
        (
            "zstd",
            "compression=zstd,oci-mediatypes=true,force-compression=true",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
        (
            "uncompressed-docker",
            "compression=uncompressed",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.image.rootfs.diff.tar",
        ),
        (
            "uncompressed-oci",
            "compression=uncompressed,oci-mediatypes=true",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.layer.v1.tar",
        ),
        (
            "gzip",
            "compression=gzip,force-compression=false",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ),
    ] {
        let output = format!("type=registry,name={OPEN_REGISTRY}/{repo}:{tag},{attrs}");
        ok(&bud_with_umask(
            "022",
            root.path(),
            &[
                "--provenance=false",
                "-o",
                &output,
                ctx.path().to_str().unwrap(),
            ],
            &[],
        ));
        let (_, manifest, config) = pushed(&repo, tag);
        assert_eq!(manifest["mediaType"], manifest_type, "{tag}: {manifest}");
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), diff_ids.len());
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            assert_eq!(layer["mediaType"], layer_type, "{tag}: {manifest}");
            let blob = registry_get(&format!(
                "{repo}/blobs/{}",
                layer["digest"].as_str().unwrap()
            ));
            assert_eq!(
                decompressed_digest(layer_type, &blob),
                diff_id.as_str().unwrap(),
                "{tag}"
            );
        }
        // What bud pushes it takes as a base, as Docker does (containerd knows every one of
        // these layer types). On a root of its own: a pulled blob is reused by the next push.
        let child = tempfile::tempdir().unwrap();
        let child_root = tempfile::tempdir().unwrap();
        std::fs::write(
            child.path().join("Dockerfile"),
            format!("FROM {OPEN_REGISTRY}/{repo}:{tag}\nRUN true\n"),
        )
        .unwrap();
        ok(&bud_with_umask(
            "022",
            child_root.path(),
            &[
                "-o",
                "type=tar,dest=/dev/null",
                child.path().to_str().unwrap(),
            ],
            &[],
        ));
    }

    // An OCI layout's layers are compressed as asked, and read back to the diff IDs.
    let out = tempfile::tempdir().unwrap();
    for (compression, layer_type) in [
        ("gzip", "application/vnd.oci.image.layer.v1.tar+gzip"),
        ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
        ("uncompressed", "application/vnd.oci.image.layer.v1.tar"),
        ("estargz", "application/vnd.oci.image.layer.v1.tar+gzip"),
    ] {
        let oci = out.path().join(format!("{compression}.tar"));
        let output = format!("type=oci,dest={},compression={compression}", oci.display());
        ok(&bud_with_umask(
            "022",
            root.path(),
            &[
                "--provenance=false",
                "-o",
                &output,
                ctx.path().to_str().unwrap(),
            ],
            &[],
        ));
        let mut blobs = std::collections::HashMap::new();
        let mut archive = tar::Archive::new(std::fs::File::open(&oci).unwrap());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            blobs.insert(path, bytes);
        }
        let blob = |digest: &str| &blobs[&format!("blobs/sha256/{}", &digest[7..])];
        let index: serde_json::Value = serde_json::from_slice(&blobs["index.json"]).unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(blob(index["manifests"][0]["digest"].as_str().unwrap()))
                .unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        for (layer, diff_id) in manifest["layers"].as_array().unwrap().iter().zip(diff_ids) {
            assert_eq!(layer["mediaType"], layer_type, "{compression}");
            assert_eq!(
                decompressed_digest(layer_type, blob(layer["digest"].as_str().unwrap())),
                diff_id.as_str().unwrap(),
                "{compression}"
            );
            if compression == "estargz" {
                check_estargz_layer(layer, blob(layer["digest"].as_str().unwrap()));
            }
        }
    }
}

/// Each pushed layer's media type, digest and decompressed digest, checked against the
/// config's diff IDs.
fn pushed_layers(repo: &str, tag: &str) -> (serde_json::Value, Vec<(String, String, String)>) {
    let (_, manifest, config) = pushed(repo, tag);
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), diff_ids.len(), "{manifest}");
    let described = layers
        .iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| {
            let media_type = layer["mediaType"].as_str().unwrap().to_owned();
            let digest = layer["digest"].as_str().unwrap().to_owned();
            let blob = registry_get(&format!("{repo}/blobs/{digest}"));
            assert_eq!(
                decompressed_digest(&media_type, &blob),
                diff_id.as_str().unwrap(),
                "{tag}: {manifest}"
            );
            (media_type, digest, diff_id.as_str().unwrap().to_owned())
        })
        .collect();
    (manifest, described)
}

fn push_with(root: &Path, ctx: &Path, repo: &str, tag: &str, attrs: &str) {
    let output = format!("type=registry,name={OPEN_REGISTRY}/{repo}:{tag}{attrs}");
    ok(&bud_with_umask(
        "022",
        root,
        &["--provenance=false", "-o", &output, ctx.to_str().unwrap()],
        &[],
    ));
}

/// `compression-level`: other blobs of the same layers (the diff IDs equal), remembered per
/// level, so asking for the default again gives the default's blobs back.
#[test]
fn compression_level_gives_other_blobs_of_the_same_layers() {
    if !ready() {
        return;
    }
    let repo = unique_repo("levels");
    let ctx = annotated_context();
    let root = tempfile::tempdir().unwrap();
    let mut sizes = std::collections::BTreeMap::new();
    let mut digests = std::collections::BTreeMap::new();
    let mut diff_ids = None;
    for (tag, attrs) in [
        ("gzip", ""),
        ("gzip-0", ",compression-level=0"),
        ("gzip-9", ",compression=gzip,compression-level=9"),
        ("gzip-again", ",compression=gzip"),
        ("zstd", ",compression=zstd"),
        ("zstd-19", ",compression=zstd,compression-level=19"),
        ("estargz-1", ",compression=estargz,compression-level=1"),
        ("estargz", ",compression=estargz"),
    ] {
        push_with(root.path(), ctx.path(), &repo, tag, attrs);
        let (_, layers) = pushed_layers(&repo, tag);
        let ids: Vec<String> = layers.iter().map(|l| l.2.clone()).collect();
        if !tag.starts_with("estargz") {
            // eStargz has diff IDs of its own (the TOC is in the tar).
            assert_eq!(diff_ids.get_or_insert_with(|| ids.clone()), &ids, "{tag}");
        }
        let total: u64 = layers
            .iter()
            .map(|l| registry_get(&format!("{repo}/blobs/{}", l.1)).len() as u64)
            .sum();
        sizes.insert(tag, total);
        digests.insert(tag, layers.iter().map(|l| l.1.clone()).collect::<Vec<_>>());
    }
    let distinct = |a: &str, b: &str| digests[a].iter().all(|d| !digests[b].contains(d));
    for (a, b) in [
        ("gzip", "gzip-0"),
        ("gzip", "gzip-9"),
        ("gzip-0", "gzip-9"),
        ("zstd", "zstd-19"),
        ("estargz", "estargz-1"),
    ] {
        assert!(distinct(a, b), "{a} and {b} share a blob: {digests:?}");
    }
    assert_eq!(digests["gzip"], digests["gzip-again"]);
    // Level 0 stores; 9 compresses harder than 1's estargz and the default.
    assert!(sizes["gzip-0"] > sizes["gzip"], "{sizes:?}");
    assert!(sizes["gzip-9"] <= sizes["gzip"], "{sizes:?}");
    assert!(sizes["zstd-19"] < sizes["zstd"], "{sizes:?}");
    assert!(sizes["estargz-1"] > sizes["estargz"], "{sizes:?}");
}

/// A base image pulled with gzip layers: pushed with compression=zstd its layers stay the
/// blobs they came as (force-compression=false, BuildKit's default), and only
/// force-compression=true makes them zstd; the diff IDs are the same either way.
#[test]
fn force_compression_decides_whether_base_layers_are_converted() {
    if !ready() {
        return;
    }
    let repo = unique_repo("force");
    let root = tempfile::tempdir().unwrap();
    let base_ctx = dockerfile_context("FROM bud-test/busybox:latest\nRUN echo base > /base\n");
    push_with(root.path(), base_ctx.path(), &repo, "base", "");
    let (_, base) = pushed_layers(&repo, "base");
    assert!(base.iter().all(|l| l.0.ends_with("tar.gzip")), "{base:?}");

    // A state root that never saw the base: it is pulled from the registry.
    let fresh = tempfile::tempdir().unwrap();
    let ctx = dockerfile_context(&format!(
        "FROM {OPEN_REGISTRY}/{repo}:base\nRUN echo new > /new\n"
    ));
    push_with(fresh.path(), ctx.path(), &repo, "kept", ",compression=zstd");
    push_with(
        fresh.path(),
        ctx.path(),
        &repo,
        "forced",
        ",compression=zstd,force-compression=true",
    );
    push_with(
        fresh.path(),
        ctx.path(),
        &repo,
        "gzip-9",
        ",compression=gzip,compression-level=9,force-compression=true",
    );
    let (manifest, kept) = pushed_layers(&repo, "kept");
    assert_eq!(kept.len(), base.len() + 1, "{manifest}");
    // Docker's schema has no zstd layer: the manifest is OCI's, its gzip layers too.
    assert_eq!(
        manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{manifest}"
    );
    for (kept, base) in kept.iter().zip(&base) {
        assert_eq!(
            kept.0, "application/vnd.oci.image.layer.v1.tar+gzip",
            "{manifest}"
        );
        assert_eq!((&kept.1, &kept.2), (&base.1, &base.2), "{manifest}");
    }
    assert_eq!(
        kept.last().unwrap().0,
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "{manifest}"
    );

    let (manifest, forced) = pushed_layers(&repo, "forced");
    for (forced, kept) in forced.iter().zip(&kept) {
        assert_eq!(
            forced.0, "application/vnd.oci.image.layer.v1.tar+zstd",
            "{manifest}"
        );
        assert_eq!(forced.2, kept.2, "the same diff IDs: {manifest}");
    }
    for (forced, base) in forced.iter().zip(&base) {
        assert_ne!(forced.1, base.1, "converted: {manifest}");
    }

    // Forcing gzip on gzip layers converts nothing: a level does not recompress them.
    let (manifest, gzip) = pushed_layers(&repo, "gzip-9");
    for (gzip, base) in gzip.iter().zip(&base) {
        assert_eq!(gzip.1, base.1, "{manifest}");
    }
    assert_ne!(gzip.last().unwrap().1, kept.last().unwrap().1);

    // The OCI layout keeps them too.
    let oci = root.path().join("kept.tar");
    ok(&bud_with_umask(
        "022",
        fresh.path(),
        &[
            "--provenance=false",
            "-o",
            &format!("type=oci,dest={},compression=zstd", oci.display()),
            ctx.path().to_str().unwrap(),
        ],
        &[],
    ));
    let mut blobs = std::collections::HashMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&oci).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        blobs.insert(path, bytes);
    }
    let blob = |digest: &str| &blobs[&format!("blobs/sha256/{}", &digest[7..])];
    let index: serde_json::Value = serde_json::from_slice(&blobs["index.json"]).unwrap();
    let layout: serde_json::Value =
        serde_json::from_slice(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let layers: Vec<(String, String)> = layout["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap().to_owned(),
                l["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = kept.iter().map(|l| (l.0.clone(), l.1.clone())).collect();
    assert_eq!(layers, expected, "{layout}");
}

const ESTARGZ_DOCKERFILE: &str = "FROM bud-test/busybox:latest
RUN mkdir -p /d/e && echo hi > /d/e/f && ln -s e/f /d/l && ln /d/e/f /d/h && mkfifo /d/p \\
 && chmod 4755 /d/e/f && touch /d/empty && head -c 9000000 /dev/urandom > /d/big
";

#[test]
fn estargz_layers_carry_a_toc_that_points_at_every_file() {
    if !ready() {
        return;
    }
    let repo = unique_repo("estargz");
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), ESTARGZ_DOCKERFILE).unwrap();
    let root = tempfile::tempdir().unwrap();
    let output = format!(
        "type=registry,name={OPEN_REGISTRY}/{repo}:1,compression=estargz,force-compression=true"
    );
    ok(&bud_with_umask(
        "022",
        root.path(),
        &[
            "--provenance=false",
            "-o",
            &output,
            ctx.path().to_str().unwrap(),
        ],
        &[],
    ));
    let (_, manifest, config) = pushed(&repo, "1");
    // BuildKit turns OCI media types on for eStargz: only OCI descriptors carry its
    // annotations.
    assert_eq!(
        manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{manifest}"
    );
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{manifest}");
    let mut names = Vec::new();
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        assert_eq!(
            layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
            "{manifest}"
        );
        let blob = registry_get(&format!(
            "{repo}/blobs/{}",
            layer["digest"].as_str().unwrap()
        ));
        assert_eq!(
            decompressed_digest("+gzip", &blob),
            diff_id.as_str().unwrap(),
            "the diff ID is the whole decompressed blob's, TOC entry included"
        );
        names.push(check_estargz_layer(layer, &blob));
    }
    // The base image's layer was converted too (force-compression=true), its names as its
    // tar spells them.
    assert!(
        names[0]
            .iter()
            .any(|(n, t)| n.trim_start_matches("./") == "bin/busybox" && t == "reg"),
        "{:?}",
        names[0]
    );
    let built: Vec<(&str, &str)> = names[1]
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    for expected in [
        // A directory's name ends in `/` in the layer tar, as in Docker's.
        ("d/", "dir"),
        ("d/e/f", "reg"),
        ("d/l", "symlink"),
        ("d/h", "hardlink"),
        ("d/p", "fifo"),
        ("d/empty", "reg"),
        ("d/big", "reg"),
        ("d/big", "chunk"),
        ("d/big", "chunk"),
    ] {
        assert!(built.contains(&expected), "{expected:?} not in {built:?}");
    }

    // Any client reads it as the gzip layer it also is: Docker pulls it (checking the
    // diff IDs over the whole decompressed stream) and runs it.
    let name = format!("{OPEN_REGISTRY}/{repo}:1");
    docker_ok(&["pull", &name]);
    let out = docker(&[
        "run",
        "--rm",
        &name,
        "sh",
        "-c",
        "cat /d/h && wc -c < /d/big",
    ]);
    docker(&["rmi", &name]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n9000000\n");
}

/// Checks an eStargz layer's blob against its descriptor and returns its TOC entries' names
/// and types: the blob is one gzip stream whose tar ends with `stargz.index.json`, its
/// footer points at the TOC, whose entries match the tar's and point at gzip members that
/// hold each file's content.
fn check_estargz_layer(descriptor: &serde_json::Value, blob: &[u8]) -> Vec<(String, String)> {
    use flate2::read::{GzDecoder, MultiGzDecoder};
    let annotations = &descriptor["annotations"];
    let mut plain = Vec::new();
    MultiGzDecoder::new(blob).read_to_end(&mut plain).unwrap();
    assert_eq!(
        annotations["io.containers.estargz.uncompressed-size"],
        plain.len().to_string(),
        "{descriptor}"
    );

    // The footer: an empty gzip member whose extra field says where the TOC is.
    let footer = &blob[blob.len() - 51..];
    assert_eq!(&footer[..4], &[0x1f, 0x8b, 8, 4], "FEXTRA set");
    assert_eq!(u16::from_le_bytes([footer[10], footer[11]]), 26);
    assert_eq!(&footer[12..14], b"SG");
    let subfield = std::str::from_utf8(&footer[16..38]).unwrap();
    let toc_offset = usize::from_str_radix(subfield.strip_suffix("STARGZ").unwrap(), 16).unwrap();
    let mut rest = Vec::new();
    GzDecoder::new(footer).read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    let mut toc_tar = tar::Archive::new(GzDecoder::new(&blob[toc_offset..]));
    let mut toc_entries = toc_tar.entries().unwrap();
    let mut toc_entry = toc_entries.next().unwrap().unwrap();
    assert_eq!(
        toc_entry.path().unwrap().to_str(),
        Some("stargz.index.json")
    );
    let mut toc_json = Vec::new();
    toc_entry.read_to_end(&mut toc_json).unwrap();
    assert!(
        toc_entries.next().is_none(),
        "the TOC's member holds it alone"
    );
    assert_eq!(
        annotations["containerd.io/snapshot/stargz/toc.digest"],
        format!("sha256:{}", sha256_hex(&toc_json)),
        "{descriptor}"
    );
    let toc: serde_json::Value = serde_json::from_slice(&toc_json).unwrap();
    assert_eq!(toc["version"], 1);
    let toc = toc["entries"].as_array().unwrap();

    // The layer's own tar, then the TOC's: reading past end-of-archive blocks, the TOC is
    // the last entry; every other entry is in the TOC, in order, with its type.
    let mut archive = tar::Archive::new(&plain[..]);
    archive.set_ignore_zeros(true);
    let mut files = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = String::from_utf8(entry.path_bytes().to_vec()).unwrap();
        let kind = match entry.header().entry_type() {
            tar::EntryType::Regular => "reg",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Link => "hardlink",
            tar::EntryType::Fifo => "fifo",
            tar::EntryType::Char => "char",
            tar::EntryType::Block => "block",
            other => panic!("{name}: {other:?}"),
        };
        let mode = entry.header().mode().unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.push((name, kind, mode, data));
    }
    let (last, ..) = files.pop().unwrap();
    assert_eq!(last, "stargz.index.json");
    let described: Vec<&serde_json::Value> = toc.iter().filter(|e| e["type"] != "chunk").collect();
    assert_eq!(described.len(), files.len(), "{toc:?}");
    for ((name, kind, mode, data), entry) in files.iter().zip(described) {
        assert_eq!(entry["name"], name.as_str());
        assert_eq!(entry["type"], *kind, "{name}");
        assert_eq!(
            entry["mode"].as_u64().unwrap_or(0),
            u64::from(*mode),
            "{name}"
        );
        if *kind != "reg" {
            continue;
        }
        assert_eq!(
            entry["size"].as_u64().unwrap_or(0),
            data.len() as u64,
            "{name}"
        );
        assert_eq!(
            entry["digest"],
            format!("sha256:{}", sha256_hex(data)),
            "{name}"
        );
        // Every chunk of the file starts a gzip member holding its bytes.
        let mut covered = 0;
        for chunk in toc
            .iter()
            .filter(|e| e["name"] == name.as_str() && e["type"] != "dir")
        {
            let start = chunk["chunkOffset"].as_u64().unwrap_or(0) as usize;
            assert_eq!(start, covered, "{name}: chunks in order");
            let len = chunk["chunkSize"]
                .as_u64()
                .map_or(data.len() - start, |n| n as usize);
            if len == 0 {
                continue;
            }
            let offset = chunk["offset"].as_u64().unwrap() as usize;
            let mut member = GzDecoder::new(&blob[offset..]);
            let mut content = vec![0; len];
            member.read_exact(&mut content).unwrap();
            assert!(content == data[start..start + len], "{name} at {start}");
            assert_eq!(
                chunk["chunkDigest"],
                format!("sha256:{}", sha256_hex(&content)),
                "{name}"
            );
            covered += len;
        }
        assert_eq!(covered, data.len(), "{name}: the chunks cover the file");
    }
    toc.iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn compression_attributes_bud_cannot_honour_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let ctx = annotated_context();
    let oci = format!("type=oci,dest={}", ctx.path().join("o.tar").display());
    let push = format!("type=registry,name={OPEN_REGISTRY}/bud-test/never:1");
    for (output, says) in [
        (
            format!("{push},compression=gzip,compression-level=10"),
            "compression-level=10: gzip levels are 0 (none) to 9 (best)",
        ),
        (
            format!("{push},compression=uncompressed,compression-level=1"),
            "compression=uncompressed has no level",
        ),
        (
            format!("{push},compression-level=fast"),
            "compression-level=fast: not an integer",
        ),
        (
            "type=docker,dest=/tmp/never.tar,compression=zstd".to_owned(),
            "compression= has no effect on an image for Docker",
        ),
        (
            "type=image,name=bud-test/never:1,oci-mediatypes=true".to_owned(),
            "oci-mediatypes= has no effect on an image for Docker",
        ),
        (
            format!("{oci},oci-mediatypes=false"),
            "writes OCI media types only",
        ),
    ] {
        let out = bud_with_umask(
            "022",
            root.path(),
            &[
                "--provenance=false",
                "-o",
                &output,
                ctx.path().to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(1), "{output}: {}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains(says),
            "{output}: {}",
            stderr_of(&out)
        );
    }
}

const PROVENANCE_DOCKERFILE: &str = "FROM bud-test/busybox:latest
ARG GREETING
RUN echo \"$GREETING\" > /greeting
";

/// The index under `repo:tag`, its image manifest's digest, and the in-toto statement of
/// its attestation manifest, each checked to be where BuildKit puts it.
fn pushed_provenance(repo: &str, tag: &str) -> (serde_json::Value, String, serde_json::Value) {
    let index = registry_json(&format!("{repo}/manifests/{tag}"));
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    let image = &entries[0];
    assert_eq!(image["platform"]["architecture"], host_arch(), "{index}");
    let image_digest = image["digest"].as_str().unwrap().to_owned();
    let attestation = &entries[1];
    assert_attestation_entry(attestation, &image_digest);
    let manifest = registry_json(&format!(
        "{repo}/manifests/{}",
        attestation["digest"].as_str().unwrap()
    ));
    let config = registry_json(&format!(
        "{repo}/blobs/{}",
        manifest["config"]["digest"].as_str().unwrap()
    ));
    assert_eq!(config["os"], "unknown", "{config}");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], "application/vnd.in-toto+json");
    assert_eq!(
        layers[0]["annotations"]["in-toto.io/predicate-type"],
        "https://slsa.dev/provenance/v0.2"
    );
    assert_eq!(config["rootfs"]["diff_ids"][0], layers[0]["digest"]);
    let statement = registry_json(&format!(
        "{repo}/blobs/{}",
        layers[0]["digest"].as_str().unwrap()
    ));
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v0.1");
    assert_eq!(
        statement["predicateType"],
        "https://slsa.dev/provenance/v0.2"
    );
    let subject = &statement["subject"][0];
    assert_eq!(
        subject["name"],
        format!(
            "pkg:docker/127.0.0.1%3A5000/{}@{tag}?platform=linux%2F{}",
            repo.replace(':', "%3A"),
            host_arch()
        ),
        "{statement}"
    );
    assert_eq!(
        format!("sha256:{}", subject["digest"]["sha256"].as_str().unwrap()),
        image_digest
    );
    (index, image_digest, statement)
}

#[test]
fn pushes_and_oci_layouts_carry_buildkit_s_provenance_unless_turned_off() {
    if !ready() {
        return;
    }
    let ctx = dockerfile_context(PROVENANCE_DOCKERFILE);
    let root = tempfile::tempdir().unwrap();
    let repo = unique_repo("provenance");
    let name = |tag: &str| format!("{OPEN_REGISTRY}/{repo}:{tag}");
    let build = |extra: &[&str], tag: &str, envs: &[(&str, &str)]| {
        let name = name(tag);
        let mut args = vec!["--build-arg", "GREETING=hello", "--push", "-t", &name];
        args.extend(extra);
        args.push(ctx.path().to_str().unwrap());
        ok(&bud_with_umask("022", root.path(), &args, envs));
    };

    // buildx's default with a driver that attaches attestations: minimal provenance.
    build(&[], "min", &[]);
    let (_, image, statement) = pushed_provenance(&repo, "min");
    let predicate = &statement["predicate"];
    assert_eq!(
        predicate["buildType"],
        "https://mobyproject.org/buildkit@v1"
    );
    assert_eq!(
        predicate["invocation"]["configSource"]["entryPoint"],
        "Dockerfile"
    );
    assert_eq!(
        predicate["invocation"]["parameters"]["frontend"],
        "dockerfile.v0"
    );
    assert_eq!(
        predicate["invocation"]["environment"]["platform"],
        format!("linux/{}", host_arch())
    );
    let material = &predicate["materials"][0];
    assert_eq!(
        material["uri"],
        format!(
            "pkg:docker/bud-test/busybox@latest?platform=linux%2F{}",
            host_arch()
        ),
        "{predicate}"
    );
    assert_eq!(
        material["digest"]["sha256"].as_str().map(str::len),
        Some(64),
        "{predicate}"
    );
    // min leaves out build argument values, and says so.
    assert!(!predicate.to_string().contains("hello"), "{predicate}");
    assert_eq!(
        predicate["metadata"]["completeness"].get("parameters"),
        None
    );
    assert_eq!(predicate.get("buildConfig"), None);
    assert!(
        predicate["metadata"]["buildInvocationID"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    // The image under the index is the image an unattested push gives.
    build(&["--provenance=false"], "plain", &[]);
    let (plain_digest, plain, _) = pushed(&repo, "plain");
    assert_eq!(
        plain["mediaType"], "application/vnd.docker.distribution.manifest.v2+json",
        "--provenance=false pushes the manifest alone: {plain}"
    );
    let (attested_digest, _, _) = pushed(&repo, "min");
    assert_eq!(attested_digest, image);
    assert_ne!(
        plain_digest, attested_digest,
        "OCI media types with an attestation"
    );
    build(&[], "env", &[("BUILDX_NO_DEFAULT_ATTESTATIONS", "1")]);
    let env = registry_json(&format!("{repo}/manifests/env"));
    assert_eq!(
        env["mediaType"], "application/vnd.docker.distribution.manifest.v2+json",
        "BUILDX_NO_DEFAULT_ATTESTATIONS=1: {env}"
    );

    // max: the build arguments and the build steps.
    build(
        &["--provenance=mode=max,builder-id=https://ci.example/run/7"],
        "max",
        &[],
    );
    let (_, _, statement) = pushed_provenance(&repo, "max");
    let predicate = &statement["predicate"];
    assert_eq!(predicate["builder"]["id"], "https://ci.example/run/7");
    assert_eq!(
        predicate["invocation"]["parameters"]["args"]["build-arg:GREETING"],
        "hello"
    );
    let steps = predicate["buildConfig"]["llbDefinition"]
        .as_array()
        .unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s.to_string().contains(r#"echo \"$GREETING\" > /greeting"#)),
        "{predicate}"
    );
    let mapping = predicate["buildConfig"]["digestMapping"]
        .as_object()
        .unwrap();
    assert_eq!(mapping.len(), steps.len());

    // An OCI layout: index.json names the image index, which lists the attestation.
    let oci = root.path().join("o.tar");
    let dest = format!("type=oci,dest={},name=example.com/app:v1", oci.display());
    ok(&bud_with_umask(
        "022",
        root.path(),
        &["-o", &dest, ctx.path().to_str().unwrap()],
        &[],
    ));
    let mut blobs = std::collections::HashMap::new();
    for entry in tar::Archive::new(std::fs::File::open(&oci).unwrap())
        .entries()
        .unwrap()
    {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        blobs.insert(path, bytes);
    }
    let blob = |digest: &str| -> serde_json::Value {
        let bytes = &blobs[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))];
        assert_eq!(format!("sha256:{}", sha256_hex(bytes)), digest);
        serde_json::from_slice(bytes).unwrap()
    };
    let top: serde_json::Value = serde_json::from_slice(&blobs["index.json"]).unwrap();
    assert_eq!(
        top["manifests"][0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let index = blob(top["manifests"][0]["digest"].as_str().unwrap());
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    assert_attestation_entry(&entries[1], entries[0]["digest"].as_str().unwrap());
    let attestation = blob(entries[1]["digest"].as_str().unwrap());
    let statement = blob(attestation["layers"][0]["digest"].as_str().unwrap());
    let subject = &statement["subject"][0];
    assert_eq!(
        subject["name"],
        format!(
            "pkg:docker/example.com/app@v1?platform=linux%2F{}",
            host_arch()
        )
    );
    assert_eq!(
        format!("sha256:{}", subject["digest"]["sha256"].as_str().unwrap()),
        entries[0]["digest"].as_str().unwrap(),
        "{statement}"
    );
}

/// As in BuildKit (moby/buildkit#3421), the provenance records the invocation: two
/// reproducible builds give the same image manifest, each with a provenance of its own.
#[test]
fn reproducible_builds_give_one_image_manifest_and_two_provenances() {
    if !ready() {
        return;
    }
    let ctx = dockerfile_context(PROVENANCE_DOCKERFILE);
    let repo = unique_repo("provenance-repro");
    let mut results = Vec::new();
    for tag in ["first", "second"] {
        let root = tempfile::tempdir().unwrap();
        let output = format!(
            "type=image,name={OPEN_REGISTRY}/{repo}:{tag},push=true,rewrite-timestamp=true"
        );
        ok(&bud_with_umask(
            "022",
            root.path(),
            &["-o", &output, ctx.path().to_str().unwrap()],
            &[("SOURCE_DATE_EPOCH", &EPOCH.to_string())],
        ));
        results.push(pushed_provenance(&repo, tag));
    }
    let (first_index, first_image, first) = &results[0];
    let (second_index, second_image, second) = &results[1];
    assert_eq!(first_image, second_image, "the image manifests differ");
    assert_ne!(
        first["predicate"]["metadata"]["buildInvocationID"],
        second["predicate"]["metadata"]["buildInvocationID"]
    );
    assert_ne!(first_index, second_index);
}

/// An attestation that no export could carry is refused, as is one bud cannot make yet;
/// malformed values are refused as buildx refuses them.
#[test]
fn attestations_bud_cannot_attach_are_refused() {
    let ctx = dockerfile_context("FROM scratch\n");
    let root = tempfile::tempdir().unwrap();
    let c = ctx.path().to_str().unwrap();
    let local = root.path().join("out");
    let local = format!("type=local,dest={}", local.display());
    let out = bud_with_umask(
        "022",
        root.path(),
        &["--provenance=true", "-o", &local, c],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("attestations are attached to pushed images and -o type=oci"),
        "{}",
        stderr_of(&out)
    );
    // The default only goes where it can: a local output builds without it.
    ok(&bud_with_umask("022", root.path(), &["-o", &local, c], &[]));
    let out = bud_with_umask("022", root.path(), &["--sbom=true", "-o", &local, c], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("attestations are attached to pushed images"),
        "{}",
        stderr_of(&out)
    );
    // Turned off, it is no longer asked for.
    ok(&bud_with_umask(
        "022",
        root.path(),
        &["--attest", "type=sbom,disabled=true", "-o", &local, c],
        &[],
    ));
    for (args, message) in [
        (
            &["--attest", "mode=max"][..],
            "attestation type not specified",
        ),
        (
            &["--attest", "type=provenance,mode"][..],
            "invalid value mode",
        ),
        (&["--attest", "type=bogus"][..], "unknown attestation type"),
        (
            &["--sbom=generator=docker/buildkit-syft-scanner"][..],
            "sbom attribute \"generator\" is not supported",
        ),
        (&["--provenance=mode=medium"][..], "invalid provenance mode"),
        (&["--provenance"][..], "--provenance"),
    ] {
        let mut all = args.to_vec();
        all.push(c);
        let out = bud_with_umask("022", root.path(), &all, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains(message),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
    // buildx 0.29 refuses the same values, before any driver is involved.
    if let Some(docker28) = require_docker28() {
        for (args, message) in [
            (
                &["--attest", "mode=max"][..],
                "attestation type not specified",
            ),
            (
                &["--attest", "type=provenance,mode"][..],
                "invalid value mode",
            ),
            // The value is not optional: the context is taken for it.
            (&["--provenance"][..], "requires 1 argument"),
        ] {
            let mut all = args.to_vec();
            all.push(c);
            let out = docker28.build(&all);
            assert!(!out.status.success());
            assert!(
                stderr_of(&out).contains(message),
                "{args:?}: {}",
                stderr_of(&out)
            );
        }
    }
}

/// `--sbom` / `--attest type=sbom`: an SPDX document of the packages the image's databases
/// list (dpkg and Python here), in the attestation manifest before the provenance, as
/// BuildKit orders them; the same bytes from two state roots with SOURCE_DATE_EPOCH.
#[test]
fn sbom_attestations_list_the_image_s_packages() {
    if !ready() {
        return;
    }
    let ctx = dockerfile_context(
        "FROM bud-test/busybox:latest
RUN mkdir -p /var/lib/dpkg /usr/lib/python3/dist-packages/requests-2.31.0.dist-info \\
 && printf 'Package: hello\\nStatus: install ok installed\\nVersion: 2.10-3\\nArchitecture: amd64\\nMaintainer: Someone <s@example.org>\\n\\n' > /var/lib/dpkg/status \\
 && printf 'Metadata-Version: 2.1\\nName: requests\\nVersion: 2.31.0\\nLicense: Apache-2.0\\n' > /usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA
",
    );
    let repo = unique_repo("sbom");
    let sbom_of = |flags: &[&str], tag: &str| -> serde_json::Value {
        let root = tempfile::tempdir().unwrap();
        let name = format!("{OPEN_REGISTRY}/{repo}:{tag}");
        let mut args = flags.to_vec();
        args.extend(["--push", "-t", &name, ctx.path().to_str().unwrap()]);
        ok(&bud_with_umask(
            "022",
            root.path(),
            &args,
            &[("SOURCE_DATE_EPOCH", "1000000000")],
        ));
        let index = registry_json(&format!("{repo}/manifests/{tag}"));
        let attestation = &index["manifests"][1];
        assert_attestation_entry(
            attestation,
            index["manifests"][0]["digest"].as_str().unwrap(),
        );
        let manifest = registry_json(&format!(
            "{repo}/manifests/{}",
            attestation["digest"].as_str().unwrap()
        ));
        let layers = manifest["layers"].as_array().unwrap();
        let types: Vec<&str> = layers
            .iter()
            .map(|l| {
                l["annotations"]["in-toto.io/predicate-type"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            types,
            [
                "https://spdx.dev/Document",
                "https://slsa.dev/provenance/v0.2"
            ],
            "{manifest}"
        );
        let statement = registry_json(&format!(
            "{repo}/blobs/{}",
            layers[0]["digest"].as_str().unwrap()
        ));
        assert_eq!(statement["predicateType"], "https://spdx.dev/Document");
        assert_eq!(
            format!(
                "sha256:{}",
                statement["subject"][0]["digest"]["sha256"]
                    .as_str()
                    .unwrap()
            ),
            index["manifests"][0]["digest"].as_str().unwrap()
        );
        statement["predicate"].clone()
    };

    let spdx = sbom_of(&["--sbom=true"], "one");
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3", "{spdx}");
    let purls: Vec<&str> = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["externalRefs"].as_array().into_iter().flatten())
        .filter(|r| r["referenceType"] == "purl")
        .map(|r| r["referenceLocator"].as_str().unwrap())
        .collect();
    assert!(
        purls
            .iter()
            .any(|p| p.starts_with("pkg:deb/") && p.contains("hello@2.10-3")),
        "{purls:?}"
    );
    assert!(purls.contains(&"pkg:pypi/requests@2.31.0"), "{purls:?}");

    // The same inputs on another state root: the same document (the statement's subject
    // names the tag, so only the predicate is compared).
    let again = sbom_of(
        &[
            "--attest",
            "type=sbom",
            "--attest",
            "type=provenance,mode=min",
        ],
        "two",
    );
    assert_eq!(again, spdx);
}

/// `--provenance=mode=max` lists, as BuildKit's `layers` metadata does, the layer chain of
/// each step whose result's layers the export wrote: each chain the first layers of the
/// pushed image, each a blob the registry holds; a step of another stage, whose layers the
/// image does not carry, is left out, as BuildKit leaves out results without blobs.
#[test]
fn max_provenance_lists_the_layers_each_step_gave_the_image() {
    if !ready() {
        return;
    }
    let ctx = dockerfile_context(
        "FROM bud-test/busybox:latest AS build
RUN echo built > /built
FROM bud-test/busybox:latest
RUN echo one > /one
COPY --from=build /built /built
",
    );
    let repo = unique_repo("provenance-layers");
    let root = tempfile::tempdir().unwrap();
    for (mode, tag) in [("mode=max", "max"), ("mode=min", "min")] {
        let name = format!("{OPEN_REGISTRY}/{repo}:{tag}");
        let provenance = format!("--provenance={mode}");
        ok(&bud_with_umask(
            "022",
            root.path(),
            &[
                &provenance,
                "--push",
                "-t",
                &name,
                ctx.path().to_str().unwrap(),
            ],
            &[],
        ));
    }
    let (_, _, min) = pushed_provenance(&repo, "min");
    let buildkit_metadata = "https://mobyproject.org/buildkit@v1#metadata";
    assert_eq!(
        min["predicate"]["metadata"][buildkit_metadata].get("layers"),
        None
    );

    let (_, image_digest, statement) = pushed_provenance(&repo, "max");
    let predicate = &statement["predicate"];
    let image = registry_json(&format!("{repo}/manifests/{image_digest}"));
    let image_layers = image["layers"].as_array().unwrap();
    assert_eq!(image_layers.len(), 3, "{image}");
    let layers = predicate["metadata"][buildkit_metadata]["layers"]
        .as_object()
        .unwrap_or_else(|| panic!("no layers: {predicate}"));
    let steps = predicate["buildConfig"]["llbDefinition"]
        .as_array()
        .unwrap();
    let step_of = |text: &str| -> String {
        steps
            .iter()
            .find(|s| s["op"].to_string().contains(text))
            .unwrap_or_else(|| panic!("no step runs {text}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut lengths = Vec::new();
    for (step, chains) in layers {
        let (id, output) = step.split_once(':').unwrap();
        assert!(steps.iter().any(|s| s["id"] == id), "{step}");
        assert_eq!(output, "0");
        let chains = chains.as_array().unwrap();
        assert_eq!(chains.len(), 1, "{step}: {chains:?}");
        let chain = chains[0].as_array().unwrap();
        assert_eq!(
            chain[..],
            image_layers[..chain.len()],
            "{step}: the image's first layers"
        );
        for descriptor in chain {
            let digest = descriptor["digest"].as_str().unwrap();
            let blob = registry_get(&format!("{repo}/blobs/{digest}"));
            assert_eq!(format!("sha256:{}", sha256_hex(&blob)), digest);
            assert_eq!(descriptor["size"], blob.len());
        }
        lengths.push(chain.len());
    }
    lengths.sort();
    // The base image, the RUN and the COPY of the final stage; the other stage's RUN made
    // a layer the image does not carry.
    assert_eq!(lengths, [1, 2, 3], "{layers:?}");
    assert!(layers.contains_key(&format!("{}:0", step_of("echo one > /one"))));
    assert!(!layers.contains_key(&format!("{}:0", step_of("echo built > /built"))));
}
