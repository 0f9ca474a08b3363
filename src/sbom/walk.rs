//! One walk of the root filesystem for the manifests of language packages, wherever they
//! are installed (system site-packages, virtual environments, global and local
//! `node_modules`), as syft looks for them. Symlinks are never followed, so the walk stays in
//! the root and a symlink loop cannot trap it; depth and entries are bounded.

use std::path::PathBuf;

use super::Inventory;
use super::rootfs::RootFs;

/// Deeper than any real install (a `node_modules` nests a few levels per dependency).
const MAX_DEPTH: usize = 64;
/// A large image has a few hundred thousand files; the walk stops, with a warning, here.
const MAX_ENTRIES: usize = 2_000_000;
/// Kernel filesystems an image may have mount points for, never content.
const SKIPPED_TOP: [&str; 3] = ["proc", "sys", "dev"];

/// The manifests found, as paths in the image, in the order the walk found them.
#[derive(Debug, Default)]
pub(super) struct Manifests {
    /// `…/x.dist-info/METADATA`, `…/x.egg-info/PKG-INFO` and `…/x.egg-info` files.
    pub python: Vec<String>,
    /// `…/node_modules/[@scope/]name/package.json`.
    pub node: Vec<String>,
}

/// Walks the image for language package manifests; directories it cannot read, names that
/// are not UTF-8 and directories too deep are warnings.
pub(super) fn find_manifests(fs: &RootFs, inventory: &mut Inventory) -> Manifests {
    let mut found = Manifests::default();
    let mut entries = 0usize;
    let mut non_utf8 = Vec::new();
    let mut too_deep = Vec::new();
    // (path in the image, its components) of each directory still to read.
    let mut stack: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
    'walk: while let Some((dir, components)) = stack.pop() {
        let host: PathBuf = fs.root().join(dir.trim_start_matches('/'));
        let read = match std::fs::read_dir(&host) {
            Ok(read) => read,
            Err(e) => {
                inventory.warn(if dir.is_empty() { "/" } else { &dir }, e);
                continue;
            }
        };
        let mut children = Vec::new();
        for entry in read {
            entries += 1;
            if entries > MAX_ENTRIES {
                inventory.warn(
                    "/",
                    format_args!(
                        "Python and Node packages looked for in the first {MAX_ENTRIES} files only"
                    ),
                );
                break 'walk;
            }
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    inventory.warn(&dir, e);
                    continue;
                }
            };
            let Ok(name) = entry.file_name().into_string() else {
                non_utf8.push(format!("{dir}/{}", entry.file_name().to_string_lossy()));
                continue;
            };
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            children.push((name, file_type));
        }
        children.sort_by(|a, b| b.0.cmp(&a.0));
        for (name, file_type) in children {
            let path = format!("{dir}/{name}");
            if file_type.is_dir() {
                if components.is_empty() && SKIPPED_TOP.contains(&name.as_str()) {
                    continue;
                }
                if name.ends_with(".dist-info") {
                    found.python.push(format!("{path}/METADATA"));
                } else if name.ends_with(".egg-info") {
                    found.python.push(format!("{path}/PKG-INFO"));
                } else if components.len() + 1 >= MAX_DEPTH {
                    too_deep.push(path);
                } else {
                    let mut below = components.clone();
                    below.push(name);
                    stack.push((path, below));
                }
            } else if file_type.is_file() {
                if name.ends_with(".egg-info") {
                    found.python.push(path);
                } else if name == "package.json" && in_node_modules(&components) {
                    found.node.push(path);
                }
            }
        }
    }
    if let Some(first) = non_utf8.first() {
        inventory.warn(
            first.clone(),
            format_args!(
                "{} names that are not UTF-8 not looked into for packages",
                non_utf8.len()
            ),
        );
    }
    if let Some(first) = too_deep.first() {
        inventory.warn(
            first.clone(),
            format_args!(
                "{} directories deeper than {MAX_DEPTH} levels not looked into for packages",
                too_deep.len()
            ),
        );
    }
    found
}

/// Whether a directory with these components is a package's in `node_modules`.
fn in_node_modules(components: &[String]) -> bool {
    let n = components.len();
    if n < 2 {
        return false;
    }
    if components[n - 2] == "node_modules" {
        return !components[n - 1].starts_with(['.', '@']);
    }
    n >= 3 && components[n - 2].starts_with('@') && components[n - 3] == "node_modules"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_bounded_and_said() {
        let dir = tempfile::tempdir().unwrap();
        let shallow = dir.path().join("a/node_modules/x");
        std::fs::create_dir_all(&shallow).unwrap();
        std::fs::write(shallow.join("package.json"), "{}").unwrap();
        let mut deep = dir.path().to_path_buf();
        for _ in 0..MAX_DEPTH + 5 {
            deep.push("d");
        }
        deep.push("node_modules/y");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("package.json"), "{}").unwrap();

        let mut inventory = Inventory::default();
        let found = find_manifests(&RootFs::new(dir.path()), &mut inventory);
        assert_eq!(found.node, ["/a/node_modules/x/package.json"]);
        assert_eq!(inventory.warnings.len(), 1, "{:?}", inventory.warnings);
        assert!(
            inventory.warnings[0]
                .message
                .contains("1 directories deeper than 64 levels"),
            "{}",
            inventory.warnings[0]
        );
    }

    #[test]
    fn node_modules_layouts() {
        let c = |s: &str| s.split('/').map(str::to_string).collect::<Vec<_>>();
        assert!(in_node_modules(&c("app/node_modules/left-pad")));
        assert!(in_node_modules(&c("node_modules/@babel/core")));
        assert!(in_node_modules(&c("a/node_modules/b/node_modules/c")));
        assert!(!in_node_modules(&c("app")));
        assert!(!in_node_modules(&c("node_modules/left-pad/lib")));
        assert!(!in_node_modules(&c("node_modules/.bin")));
        assert!(!in_node_modules(&c("node_modules/@babel")));
    }
}
