//! Shared fixtures for the fileop tests: a temporary directory holding a source root, a
//! destination root and an `outside` directory that no operation may touch.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub struct Roots {
    _tmp: tempfile::TempDir,
    pub base: PathBuf,
    pub src: PathBuf,
    pub dst: PathBuf,
    pub outside: PathBuf,
}

impl Roots {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path().to_path_buf();
        let src = base.join("src");
        let dst = base.join("dst");
        let outside = base.join("outside");
        for dir in [&src, &dst, &outside] {
            fs::create_dir(dir).expect("mkdir");
        }
        fs::write(outside.join("secret"), "secret").expect("write secret");
        Roots {
            _tmp: tmp,
            base,
            src,
            dst,
            outside,
        }
    }

    /// Writes a file below the source root, creating its parents.
    pub fn src_file(&self, rel: &str, data: &str) -> PathBuf {
        write(&self.src.join(rel), data)
    }

    pub fn dst_file(&self, rel: &str, data: &str) -> PathBuf {
        write(&self.dst.join(rel), data)
    }

    /// Panics unless the directory outside both roots, and the base directory itself, hold
    /// exactly what the fixture put there.
    pub fn assert_nothing_escaped(&self) {
        assert_eq!(
            tree(&self.outside),
            BTreeMap::from([("secret".to_owned(), "file secret".to_owned())]),
            "something was written outside the roots"
        );
        let mut top: Vec<String> = fs::read_dir(&self.base)
            .expect("read base")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        assert_eq!(top, ["dst", "outside", "src"]);
        assert_eq!(
            fs::read_to_string(self.outside.join("secret")).expect("secret"),
            "secret"
        );
    }
}

pub fn write(path: &Path, data: &str) -> PathBuf {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parents");
    }
    fs::write(path, data).expect("write");
    path.to_path_buf()
}

/// A listing of every entry below `root`: relative path -> kind and content or target.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let rel = path
            .strip_prefix(root)
            .expect("below root")
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path).expect("lstat");
        let value = if meta.file_type().is_symlink() {
            format!("link {}", fs::read_link(&path).expect("readlink").display())
        } else if meta.is_dir() {
            walk(root, &path, out);
            "dir".to_owned()
        } else {
            format!("file {}", fs::read_to_string(&path).unwrap_or_default())
        };
        out.insert(rel, value);
    }
}

pub fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .expect("lstat")
        .permissions()
        .mode()
        & 0o7777
}

pub fn owner_of(path: &Path) -> (u32, u32) {
    let meta = fs::symlink_metadata(path).expect("lstat");
    (meta.uid(), meta.gid())
}

pub fn mtime_of(path: &Path) -> (i64, i64) {
    let meta = fs::symlink_metadata(path).expect("lstat");
    (meta.mtime(), meta.mtime_nsec())
}

pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

pub fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("lchown");
}
