//! Without overlayfs (forced here with BUD_SNAPSHOTTER=copy) steps run on copies and their
//! layers are found by comparison: the result must be the very tree the overlay gives.

use crate::support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use support::*;

fn build(root: &Path, dest: &Path, snapshotter: &str) {
    build_with(
        root,
        &format!("type=local,dest={}", dest.display()),
        Some(snapshotter),
    );
}

/// Builds the test case into `output`, with `BUD_SNAPSHOTTER` as given (unset: bud
/// chooses); returns the progress output.
fn build_with(root: &Path, output: &str, snapshotter: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bud"));
    cmd.arg("--root")
        .arg(root)
        .args(["--progress", "plain", "-o", output])
        .arg(testdata("copy-snapshotter"));
    match snapshotter {
        Some(s) => cmd.env("BUD_SNAPSHOTTER", s),
        None => cmd.env_remove("BUD_SNAPSHOTTER"),
    };
    let out = cmd.output().expect("run bud");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{snapshotter:?}: {stderr}");
    stderr
}

/// A layer tar's entry: path, type, mode, owner and content (times differ from build to
/// build).
type TarEntry = (String, u8, u32, (u64, u64), Vec<u8>);

/// Each layer of a `docker load` archive, as its entries.
fn layers(archive: &Path) -> Vec<Vec<TarEntry>> {
    use std::io::Read;
    let mut files = BTreeMap::new();
    let mut outer = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for entry in outer.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            let mut inner = tar::Archive::new(files[layer.as_str().unwrap()].as_slice());
            inner
                .entries()
                .unwrap()
                .map(|e| {
                    let mut e = e.unwrap();
                    let h = e.header().clone();
                    let mut data = Vec::new();
                    e.read_to_end(&mut data).unwrap();
                    (
                        e.path().unwrap().display().to_string(),
                        h.entry_type().as_byte(),
                        h.mode().unwrap(),
                        (h.uid().unwrap(), h.gid().unwrap()),
                        data,
                    )
                })
                .collect()
        })
        .collect()
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

#[test]
fn a_state_root_on_overlayfs_falls_back_to_copies_with_a_note() {
    if !require_base_image() || !require_runc() || !require_root("to mount an overlay") {
        return;
    }
    // A state root on overlayfs, as under /tmp in a container: no overlay upper fits there.
    let work = tempfile::tempdir().unwrap();
    let container = Mounted::overlay(&work.path().join("layers"), &work.path().join("rootfs"));
    let root = container.path().join("bud");
    let plain_root = work.path().join("plain");
    let (nested, plain) = (work.path().join("nested"), work.path().join("plain-out"));

    let progress = build_with(
        &root,
        &format!("type=local,dest={}", nested.display()),
        None,
    );
    let notes: Vec<&str> = progress
        .lines()
        .filter(|l| l.starts_with("WARNING: overlay mounts do not work"))
        .collect();
    assert_eq!(notes.len(), 1, "{progress}");
    assert!(notes[0].contains("steps run on copies"), "{progress}");
    build_with(
        &plain_root,
        &format!("type=local,dest={}", plain.display()),
        None,
    );
    assert_eq!(listing(&nested), listing(&plain));

    // The same layers as on a plain root, whiteouts included.
    let (nested_tar, plain_tar) = (
        work.path().join("nested.tar"),
        work.path().join("plain.tar"),
    );
    build_with(
        &root,
        &format!("type=docker,dest={}", nested_tar.display()),
        None,
    );
    build_with(
        &plain_root,
        &format!("type=docker,dest={}", plain_tar.display()),
        None,
    );
    let (got, want) = (layers(&nested_tar), layers(&plain_tar));
    assert!(
        want.iter().flatten().any(|e| e.0.ends_with(".wh.vi")),
        "the case removes /bin/vi"
    );
    assert_eq!(got, want);

    // The answer is kept in the state root and used instead of testing again.
    let kept = root.join("overlay-check/root");
    let text = std::fs::read_to_string(&kept).unwrap();
    assert!(
        text.lines().nth(1).unwrap().starts_with("failed: "),
        "{text}"
    );
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "failed: the answer kept";
    std::fs::write(&kept, lines.join("\n")).unwrap();
    let progress = build_with(&root, "type=tar,dest=/dev/null", None);
    assert!(progress.contains("(the answer kept;"), "{progress}");
}
