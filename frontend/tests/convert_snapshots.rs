//! dump-llb JSON of the Dockerfiles under testdata/convert, compared with
//! tests/snapshots/<name>.jsonl. Regenerate with BUD_UPDATE_SNAPSHOTS=1.

mod common;

use std::path::Path;

use common::*;

fn check(name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile_path = root
        .join("../testdata/convert")
        .join(name)
        .join("Dockerfile");
    let dockerfile = std::fs::read_to_string(&dockerfile_path).expect("test Dockerfile exists");
    let mut o = opts();
    o.excludes = vec!["*.tmp".into()];
    let c = build_with(&dockerfile, &o);
    let mut actual = bud_frontend::dump::to_json_lines(&c.definition).expect("decodes");
    actual.push_str(&serde_json::to_string_pretty(&c.image).expect("json"));
    actual.push('\n');
    let snapshot = root
        .join("tests/snapshots")
        .join(format!("convert-{name}.txt"));
    if std::env::var_os("BUD_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&snapshot).unwrap_or_else(|_| {
        panic!(
            "missing {}; run with BUD_UPDATE_SNAPSHOTS=1",
            snapshot.display()
        )
    });
    assert!(
        expected == actual,
        "{name}: dump differs from {}; rerun with BUD_UPDATE_SNAPSHOTS=1 and review the diff",
        snapshot.display()
    );
}

#[test]
fn multistage() {
    check("multistage");
}

#[test]
fn mounts() {
    check("mounts");
}

#[test]
fn heredoc() {
    check("heredoc");
}

#[test]
fn add_and_link() {
    check("add-link");
}
