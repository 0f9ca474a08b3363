//! `--build-context` named contexts, `--ulimit` and `--shm-size` in the conversion.

mod common;

use bud_frontend::convert::{ConvertOptions, NamedContext};
use bud_proto::pb;
use common::*;

fn with_contexts(contexts: &[(&str, NamedContext)]) -> ConvertOptions {
    let mut o = opts();
    o.named_contexts = contexts
        .iter()
        .map(|(name, c)| ((*name).to_owned(), c.clone()))
        .collect();
    o
}

fn local(name: &str) -> NamedContext {
    NamedContext::Local {
        name: name.to_owned(),
        excludes: vec!["*.tmp".to_owned()],
    }
}

fn identifiers(c: &bud_frontend::convert::Converted) -> Vec<String> {
    sources(c)
        .iter()
        .map(|s| s["identifier"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn copy_from_a_directory_context_reads_its_local_source() {
    let o = with_contexts(&[("extra", local("extra"))]);
    let c = build_with("FROM busybox\nCOPY --from=extra /a.txt /\n", &o);
    let ids = identifiers(&c);
    assert!(ids.contains(&"local://extra".to_owned()), "{ids:?}");
    assert!(
        !ids.iter().any(|i| i.contains("library/extra")),
        "the name is not looked up as an image: {ids:?}"
    );
    let extra = sources(&c)
        .into_iter()
        .find(|s| s["identifier"] == "local://extra")
        .unwrap_or_default();
    assert_eq!(extra["attrs"]["local.excludepatterns"], "[\"*.tmp\"]");
    // Only what COPY reads is sent.
    assert_eq!(extra["attrs"]["local.followpaths"], "[\"a.txt\"]");
    assert!(names(&c).contains(&"[context extra] load from client".to_owned()));
    assert_eq!(
        files(&c)[0]["Op"]["Op"]["file"]["actions"][0]["Action"]["copy"]["src"],
        "/a.txt"
    );
}

#[test]
fn a_directory_context_is_sent_whole_when_a_run_may_read_it() {
    let o = with_contexts(&[("extra", local("extra"))]);
    let follow_paths = |dockerfile: &str| {
        let c = build_with(dockerfile, &o);
        let extra = sources(&c)
            .into_iter()
            .find(|s| s["identifier"] == "local://extra")
            .unwrap_or_default();
        assert!(extra.is_object(), "{:?}", identifiers(&c));
        extra["attrs"]["local.followpaths"].clone()
    };
    assert_eq!(
        follow_paths("FROM extra AS files\nFROM busybox\nCOPY --from=files /a.txt /\n"),
        "[\"a.txt\"]"
    );
    assert!(
        follow_paths(
            "FROM extra AS files\nRUN cat /b > /a.txt\nFROM busybox\nCOPY --from=files /a.txt /\n"
        )
        .is_null()
    );
    assert!(follow_paths("FROM extra AS files\nFROM files\nCOPY a /\n").is_null());
    assert!(follow_paths("FROM busybox\nRUN --mount=from=extra,target=/e cat /e/a\n").is_null());
}

#[test]
fn without_the_context_the_name_is_an_image() {
    let e = fail("FROM busybox\nCOPY --from=extra /a.txt /\n");
    assert!(e.to_string().contains("extra"), "{e}");
}

#[test]
fn docker_image_context_replaces_a_base_image() {
    let o = with_contexts(&[("base", NamedContext::Image("alpine:3.19".to_owned()))]);
    // `docker.io/library/base:latest` is the long form of the same name.
    for from in ["base", "docker.io/library/base:latest"] {
        let c = build_with(&format!("FROM {from}\nRUN true\n"), &o);
        let ids = identifiers(&c);
        assert_eq!(ids, ["docker-image://docker.io/library/alpine:3.19"]);
        assert!(names(&c).contains(&"[context base] alpine:3.19".to_owned()));
        // The image's config is the stage's.
        assert_eq!(c.image["config"]["Cmd"][0], "sh");
    }
}

#[test]
fn a_context_named_like_a_stage_replaces_the_stage() {
    let o = with_contexts(&[("build", local("build"))]);
    let c = build_with(
        "FROM nosuchimage AS build\nRUN make\nFROM busybox\nCOPY --from=build /out /\n",
        &o,
    );
    assert!(execs(&c).is_empty(), "the stage's RUN is not dispatched");
    let build = sources(&c)
        .into_iter()
        .find(|s| s["identifier"] == "local://build")
        .unwrap_or_default();
    assert_eq!(build["attrs"]["local.followpaths"], "[\"out\"]");
}

#[test]
fn scratch_and_context_are_never_named_contexts() {
    let o = with_contexts(&[("scratch", local("x")), ("context", local("y"))]);
    let c = build_with("FROM scratch\nCOPY a /\n", &o);
    let ids = identifiers(&c);
    assert_eq!(ids, ["local://context"]);
}

#[test]
fn http_context_is_a_file_named_context() {
    let url = "https://example.com/data.tar";
    let o = with_contexts(&[("data", NamedContext::Http(url.to_owned()))]);
    let c = build_with("FROM busybox\nCOPY --from=data /context /d\n", &o);
    let http = sources(&c)
        .into_iter()
        .find(|s| s["identifier"] == url)
        .unwrap_or_default();
    assert_eq!(http["attrs"]["http.filename"], "context");
}

#[test]
fn ulimits_are_set_on_every_run() {
    let mut o = opts();
    o.ulimits = vec![pb::Ulimit {
        name: "nofile".to_owned(),
        soft: 1024,
        hard: 2048,
    }];
    let c = build_with("FROM busybox\nRUN a\nRUN b\n", &o);
    let execs = execs(&c);
    assert_eq!(execs.len(), 2);
    for exec in &execs {
        let ulimit = &exec["meta"]["ulimit"][0];
        assert_eq!(ulimit["Name"], "nofile", "{exec}");
        assert_eq!(ulimit["Soft"], 1024);
        assert_eq!(ulimit["Hard"], 2048);
    }
    let def = definition(&c);
    let caps: Vec<String> = def
        .metadata
        .values()
        .flat_map(|m| m.caps.keys().cloned())
        .collect();
    assert!(caps.contains(&"exec.meta.ulimit".to_owned()), "{caps:?}");
}

#[test]
fn shm_size_is_a_sized_tmpfs_on_dev_shm() {
    let mut o = opts();
    o.shm_size = Some(128 << 20);
    let c = build_with("FROM busybox\nRUN a\n", &o);
    let exec = &execs(&c)[0];
    let shm = exec["mounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["dest"] == "/dev/shm"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(shm["mountType"], "TMPFS", "{exec}");
    assert_eq!(shm["TmpfsOpt"]["size"], 128 << 20);

    // A RUN that mounts its own /dev/shm keeps it.
    let c = build_with(
        "FROM busybox\nRUN --mount=type=tmpfs,target=/dev/shm,size=1024 a\n",
        &o,
    );
    let exec = &execs(&c)[0];
    let sizes: Vec<&serde_json::Value> = exec["mounts"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|m| m["dest"] == "/dev/shm")
                .map(|m| &m["TmpfsOpt"]["size"])
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(sizes, [&serde_json::json!(1024)]);

    // Without sized tmpfs mounts in the solver, /dev/shm stays the default.
    o.caps.tmpfs_size = false;
    let c = build_with("FROM busybox\nRUN a\n", &o);
    assert_eq!(execs(&c)[0]["mounts"].as_array().map(Vec::len), Some(1));
}
