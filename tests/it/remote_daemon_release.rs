//! `--addr` to a daemon whose BuildKit is too old to read a cache type or attribute: Docker
//! 20.10's (BuildKit 0.8, no Control.Info: judged by Docker's version) would pass over it,
//! so bud refuses it by name before the solve, naming the daemon's BuildKit and the first
//! that reads it, and leaves out an export with `ignore-error=true`. Docker 28.5 (BuildKit
//! 0.25) takes the same command line and honours it, as buildx does there.

use crate::support;

use support::*;

fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}-{}", std::process::id(), t.as_nanos())
}

/// A context whose step no daemon has built before.
fn context(marker: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {BASE_IMAGE}\nRUN echo h-olddaemon {marker} > /m\n"),
    )
    .unwrap();
    dir
}

/// The cache manifest a registry cache export left at `reference` (`NAME:TAG` on the open
/// registry): its media type and its config's.
fn cache_manifest_types(reference: &str) -> (String, String) {
    let (name, tag) = reference
        .strip_prefix(&format!("{OPEN_REGISTRY}/"))
        .and_then(|r| r.rsplit_once(':'))
        .unwrap();
    let manifest = registry_json(&format!("{name}/manifests/{tag}"));
    (
        manifest["mediaType"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        manifest["config"]["mediaType"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[test]
fn what_an_old_daemon_cannot_read_is_refused_and_a_new_one_honours_it() {
    if !(build_ready() && require_docker() && require_base_image()) {
        return;
    }
    let Some(docker28) = require_docker28_containerd() else {
        return;
    };
    let marker = nonce();
    let context = context(&marker);
    let root = tempfile::tempdir().unwrap();
    let cache_ref = format!("{OPEN_REGISTRY}/bud-test/h-olddaemon-cache:{marker}");
    let old = "unix:///var/run/docker.sock";

    // Docker 20.10: refused before the solve, by name, with the first BuildKit reading it.
    for (flag, spec, what, since) in [
        (
            "--cache-from",
            format!("type=registry,ref={cache_ref},registry.insecure=true"),
            "--cache-from type=registry: registry.insecure",
            12,
        ),
        (
            "--cache-to",
            "type=inline,ignore-error=false".to_owned(),
            "--cache-to type=inline: ignore-error",
            11,
        ),
        (
            "--cache-from",
            // With a token and a URL: without them it is left out, as buildx leaves it.
            "type=gha,scope=h-olddaemon,token=t,url=http://127.0.0.1:9/".to_owned(),
            "--cache-from type=gha: type=gha",
            9,
        ),
        (
            "--cache-from",
            "type=s3,bucket=h-olddaemon,region=eu-west-1".to_owned(),
            "--cache-from type=s3: type=s3",
            11,
        ),
    ] {
        let out = bud_addr(
            old,
            root.path(),
            &[flag, &spec, "-o", "type=tar,dest=/dev/null"],
            context.path(),
        );
        let text = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{spec}: {text}");
        assert!(
            text.contains(&format!("{what}: the daemon's BuildKit 0.8 (Docker 20.10.")),
            "{spec}: {text}"
        );
        assert!(
            text.contains(&format!(
                "'s) does not read it (BuildKit 0.{since} is the first that does)"
            )),
            "{spec}: {text}"
        );
        assert!(
            !text.contains("#1 "),
            "refused before the solve: {spec}: {text}"
        );
    }
    // With ignore-error=true, the export is left out with a warning and the build goes on.
    let out = bud_addr(
        old,
        root.path(),
        &[
            "--cache-to",
            "type=inline,ignore-error=true",
            "-o",
            "type=tar,dest=/dev/null",
        ],
        context.path(),
    );
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(
            "--cache-to type=inline: not exported (ignore-error=true): ignore-error: the \
             daemon's BuildKit 0.8 (Docker 20.10."
        ),
        "{text}"
    );

    // Docker 28.5 (BuildKit 0.25) takes the same attributes and honours them: the cache is
    // an image manifest (image-manifest=true), as buildx exports it there, and is read back
    // with registry.insecure.
    let exported = |reference: &str, with_bud: bool| {
        let cache_to = format!(
            "type=registry,ref={reference},image-manifest=true,oci-mediatypes=true,\
             registry.insecure=true,mode=max"
        );
        let out = if with_bud {
            bud_addr(
                docker28.host(),
                root.path(),
                &["--cache-to", &cache_to, "-o", "type=tar,dest=/dev/null"],
                context.path(),
            )
        } else {
            docker28.build(&[
                "--cache-to",
                &cache_to,
                "-o",
                "type=tar,dest=/dev/null",
                context.path().to_str().unwrap(),
            ])
        };
        assert!(out.status.success(), "{}", stderr_of(&out));
        cache_manifest_types(reference)
    };
    let by_bud = exported(&cache_ref, true);
    let by_buildx = exported(&format!("{cache_ref}-buildx"), false);
    assert_eq!(
        by_bud,
        (
            "application/vnd.oci.image.manifest.v1+json".to_owned(),
            "application/vnd.buildkit.cacheconfig.v0".to_owned()
        )
    );
    assert_eq!(by_bud, by_buildx);
    let out = bud_addr(
        docker28.host(),
        root.path(),
        &[
            "--cache-from",
            &format!("type=registry,ref={cache_ref},registry.insecure=true"),
            "-o",
            "type=tar,dest=/dev/null",
        ],
        context.path(),
    );
    let text = stderr_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("importing cache manifest from"), "{text}");
}
