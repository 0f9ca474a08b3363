//! Without overlayfs (forced here with BUD_SNAPSHOTTER=copy) steps run on copies and their
//! layers are found by comparison: the result must be the very tree the overlay gives.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use support::*;

fn build(root: &Path, dest: &Path, snapshotter: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root)
        .args(["--progress", "plain", "-o"])
        .arg(format!("type=local,dest={}", dest.display()))
        .arg(testdata("copy-snapshotter"))
        .env("BUD_SNAPSHOTTER", snapshotter)
        .output()
        .expect("run bud");
    assert!(
        out.status.success(),
        "{snapshotter}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Type and mode, owner, and content or link target of one path.
type Entry = (u32, (u32, u32), Vec<u8>);

fn listing(dir: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let content = if md.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if md.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            if md.is_dir() {
                stack.push(p.clone());
            }
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            out.insert(rel, (md.mode(), (md.uid(), md.gid()), content));
        }
    }
    out
}

#[test]
fn the_copy_snapshotter_gives_the_overlay_result() {
    if !require_base_image() || !require_runc() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let overlay = work.path().join("overlay");
    let copy = work.path().join("copy");
    build(&work.path().join("root-overlay"), &overlay, "overlay");
    build(&work.path().join("root-copy"), &copy, "copy");
    let (want, got) = (listing(&overlay), listing(&copy));
    assert!(!want.contains_key("data/gone/b") && !want.contains_key("bin/vi"));
    assert!(want.contains_key("data/gone/new"));
    for (path, entry) in &want {
        assert_eq!(got.get(path), Some(entry), "{path}");
    }
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        extra.is_empty(),
        "only with the copy snapshotter: {extra:?}"
    );
}
