//! Conversion of multi-stage Dockerfiles: targets, stage references and the stages pruned.

mod common;

use bud_frontend::convert::{ConvertError, ConvertErrorKind, LineError};
use common::*;
use serde_json::json;

#[test]
fn target_is_case_insensitive_and_prunes_unreachable_stages() {
    let df = "FROM busybox AS Build\nRUN make\nFROM nosuchimage AS broken\nRUN x\nFROM busybox\nCOPY --from=build /out /\n";
    let mut o = opts();
    o.target = Some("BUILD".into());
    let c = build_with(df, &o);
    assert_eq!(c.target, "build");
    assert_eq!(execs(&c).len(), 1);
    // The default target is the last stage; the broken stage is not needed.
    let c = build(df);
    assert_eq!(c.target, "stage-2");
    let copy = files(&c);
    assert_eq!(
        copy[0]["Op"]["Op"]["file"]["actions"][0]["Action"]["copy"]["src"],
        "/out"
    );
    assert!(names(&c).contains(&"[stage-2 2/2] COPY --from=build /out /".to_owned()));
}

#[test]
fn copy_from_index_and_image() {
    let c = build(
        "FROM busybox\nRUN a\nFROM scratch\nCOPY --from=0 /a /\nCOPY --from=alpine:3.19 /b /\n",
    );
    let ids: Vec<String> = sources(&c)
        .iter()
        .map(|s| s["identifier"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.contains(&format!(
        "docker-image://docker.io/library/alpine:3.19@{DIGEST}"
    )));
    assert!(
        !ids.iter().any(|i| i.starts_with("local://")),
        "COPY --from reads no context"
    );
}

#[test]
fn stage_as_base_inherits_state_and_config() {
    let c = build("FROM busybox AS base\nENV X=1\nWORKDIR /w\nFROM base\nRUN pwd\n");
    let exec = &execs(&c)[0];
    assert_eq!(exec["meta"]["cwd"], "/w");
    assert!(
        exec["meta"]["env"]
            .as_array()
            .unwrap()
            .contains(&json!("X=1"))
    );
    assert!(names(&c).contains(&"[stage-1 1/1] RUN pwd".to_owned()));
}

fn line_of(e: &ConvertError) -> usize {
    match e {
        ConvertError::At(LineError { line, .. }) => *line,
        other => panic!("no line in {other}"),
    }
}

#[test]
fn errors_name_the_line() {
    let e = fail("FROM busybox AS a\nCOPY --from=b /x /\nFROM busybox AS b\nCOPY --from=a /y /\n");
    assert!(
        matches!(
            e,
            ConvertError::At(LineError {
                kind: ConvertErrorKind::CircularDependency(_),
                ..
            })
        ),
        "{e}"
    );
    let e = fail("FROM busybox\nCOPY --from=5 /x /\n");
    assert!(
        matches!(
            e,
            ConvertError::At(LineError {
                line: 2,
                kind: ConvertErrorKind::StageIndex(5)
            })
        ),
        "{e}"
    );
    let e = fail("FROM busybox\nRUN a\nFROM nosuchimage\n");
    assert_eq!(line_of(&e), 3);
    assert!(e.to_string().contains("nosuchimage"), "{e}");
    let e = fail("FROM busybox\nCOPY --from=$X /a /\n");
    assert!(
        matches!(
            e,
            ConvertError::At(LineError {
                line: 2,
                kind: ConvertErrorKind::VariableInFrom
            })
        ),
        "{e}"
    );
    let e = fail("ARG E\nFROM $E\n");
    assert!(
        matches!(
            e,
            ConvertError::At(LineError {
                line: 2,
                kind: ConvertErrorKind::BlankBaseName(_)
            })
        ),
        "{e}"
    );
    let mut o = opts();
    o.target = Some("nope".into());
    assert!(matches!(
        bud_frontend::convert::convert("FROM busybox\n", &o, &FakeRegistry),
        Err(ConvertError::TargetNotFound(_))
    ));
    let e = fail("FROM busybox AS a\nCOPY --from=b /x /\nFROM busybox AS b\nFROM a\n");
    assert!(
        matches!(
            e,
            ConvertError::At(LineError {
                line: 2,
                kind: ConvertErrorKind::CopyFromLaterStage { .. }
            })
        ),
        "{e}"
    );
}

#[test]
fn onbuild_triggers_of_the_base_image_run_first() {
    let c = build("FROM onbuild\nRUN after\n");
    let e = execs(&c);
    assert_eq!(e[0]["meta"]["args"][2], "echo triggered");
    assert_eq!(e[0]["meta"]["cwd"], "/app");
    assert_eq!(e[0]["meta"]["user"], "app");
    assert!(c.image["config"].get("OnBuild").is_none());
    assert!(names(&c).contains(&"[2/3] ONBUILD RUN echo triggered".to_owned()));
}

#[test]
fn deterministic() {
    let df = "FROM busybox AS a\nRUN --mount=type=cache,target=/c x\nFROM alpine:3.19\nCOPY --from=a / /\nADD https://example.com/f.tgz /\nRUN <<EOF\necho hi\nEOF\n";
    let one = build(df);
    let two = build(df);
    assert_eq!(one.definition, two.definition);
    assert_eq!(one.image, two.image);
}
