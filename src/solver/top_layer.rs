//! A copy from a result an imported cache holds, read from that result's top layer alone.
//!
//! `COPY --from=deps /out/deps.tar /app/` reads one file, which the stage's last step made;
//! bringing the whole stage in would download and extract every layer below it too (a
//! thousand-file `COPY deps/`, say) for nothing. When every path the copies read from such
//! an input is a regular file that the top layer holds, under directories that layer holds
//! too, the layers stacked show that very file (an entry of the top layer hides whatever
//! those below have at its path, and a directory there cannot be a link), so the copy reads
//! it from the top layer extracted alone. The input stays lazy; the layer's tar is kept for
//! whatever brings it in later.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bud_proto::pb;

use crate::fileop::wildcard;

use super::Solver;
use super::lazy::LazyRef;
use super::snapshots::View;

/// For each input of a file op that only copies read, and only by plain paths: those paths,
/// relative to the input's root. An input that an action builds on, or that a copy reads by
/// a pattern, a filter or a path with `..`, is not listed: it is brought in whole.
pub(super) fn plainly_copied(op: &pb::op::Op, inputs: usize) -> BTreeMap<usize, Vec<String>> {
    let pb::op::Op::File(file) = op else {
        return BTreeMap::new();
    };
    let mut read: BTreeMap<usize, Option<Vec<String>>> = BTreeMap::new();
    let input = |index: i64| usize::try_from(index).ok().filter(|i| *i < inputs);
    for (i, action) in file.actions.iter().enumerate() {
        if let (0, Some(base)) = (i, input(action.input)) {
            read.insert(base, None);
        }
        let Some(source) = input(action.secondary_input) else {
            continue;
        };
        let path = match &action.action {
            Some(pb::file_action::Action::Copy(c)) => plain_path(c),
            _ => None,
        };
        let entry = read.entry(source).or_insert_with(|| Some(Vec::new()));
        match (entry.as_mut(), path) {
            (Some(paths), Some(path)) => paths.push(path),
            _ => *entry = None,
        }
    }
    read.into_iter()
        .filter_map(|(index, paths)| Some((index, paths?)))
        .collect()
}

/// The source of a copy that takes one path as it is, relative and without `.`; None for
/// one that matches, filters, unpacks or climbs.
fn plain_path(c: &pb::FileActionCopy) -> Option<String> {
    let filtered = !c.include_patterns.is_empty()
        || !c.exclude_patterns.is_empty()
        || !c.required_paths.is_empty();
    let pattern =
        c.allow_wildcard && (wildcard::contains_wildcards(&c.src) || c.src.contains('\\'));
    if filtered || pattern || c.attempt_unpack_docker_compatibility || c.src.ends_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in c.src.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The top layer of `input` alone, when it holds each of `paths` as a regular file under
/// directories: the view the copies read. None otherwise, or when the layer cannot be had
/// (the input is then brought in whole, which says why if that fails too).
pub(super) async fn view(solver: &Solver, input: &LazyRef, paths: &[String]) -> Option<Arc<View>> {
    if input.brought().is_some() {
        return None;
    }
    let view = input.top_layer(&solver.snapshots).await?;
    let (root, wanted) = (view.path.clone(), paths.to_vec());
    let holds = tokio::task::spawn_blocking(move || wanted.iter().all(|p| holds_file(&root, p)))
        .await
        .unwrap_or(false);
    tracing::debug!("{input:?}: {paths:?} read from its top layer alone: {holds}");
    holds.then_some(view)
}

/// Whether `path` (relative, plain) is a regular file under `root`, each directory on the way
/// a directory itself (not a link to one, not a whiteout).
fn holds_file(root: &Path, path: &str) -> bool {
    let mut at = root.to_path_buf();
    let mut parts = path.split('/').peekable();
    while let Some(part) = parts.next() {
        at.push(part);
        let Ok(meta) = at.symlink_metadata() else {
            return false;
        };
        let fits = if parts.peek().is_some() {
            meta.is_dir()
        } else {
            meta.is_file()
        };
        if !fits {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(src: &str, from: i64) -> pb::FileAction {
        pb::FileAction {
            input: -1,
            secondary_input: from,
            output: -1,
            action: Some(pb::file_action::Action::Copy(pb::FileActionCopy {
                src: src.into(),
                dest: "/dest".into(),
                allow_wildcard: true,
                ..Default::default()
            })),
        }
    }

    fn op(actions: Vec<pb::FileAction>) -> pb::op::Op {
        pb::op::Op::File(pb::FileOp { actions })
    }

    #[test]
    fn the_plain_paths_each_input_s_copies_read_are_listed_per_input() {
        let mut first = copy("/out/./deps.tar", 1);
        first.input = 0;
        let mut second = copy("bin//tool", 1);
        second.input = 3;
        let third = pb::FileAction {
            input: 4,
            ..copy("/etc/config", 2)
        };
        let listed = plainly_copied(&op(vec![first, second, third]), 3);
        assert_eq!(
            listed,
            BTreeMap::from([
                (1, vec!["out/deps.tar".to_string(), "bin/tool".to_string()]),
                (2, vec!["etc/config".to_string()]),
            ])
        );
    }

    #[test]
    fn an_input_read_otherwise_is_not_listed() {
        let base = pb::FileAction {
            input: 0,
            ..copy("/a", 0)
        };
        assert!(plainly_copied(&op(vec![base]), 1).is_empty(), "built on");
        for src in ["/a/*.tar", "/a/\\*", "/a/../b", "/a/", "/", "."] {
            let mut c = copy(src, 1);
            c.input = 0;
            assert!(plainly_copied(&op(vec![c]), 2).is_empty(), "{src}");
        }
        let filtered = |edit: fn(&mut pb::FileActionCopy)| {
            let mut c = copy("/a", 1);
            c.input = 0;
            if let Some(pb::file_action::Action::Copy(copy)) = &mut c.action {
                edit(copy);
            }
            plainly_copied(&op(vec![c]), 2)
        };
        assert!(filtered(|c| c.include_patterns = vec!["x".into()]).is_empty());
        assert!(filtered(|c| c.exclude_patterns = vec!["x".into()]).is_empty());
        assert!(filtered(|c| c.required_paths = vec!["/a".into()]).is_empty());
        assert!(filtered(|c| c.attempt_unpack_docker_compatibility = true).is_empty());
        // Without wildcards a star is a name like any other.
        assert_eq!(
            filtered(|c| {
                c.src = "/a*".into();
                c.allow_wildcard = false;
            }),
            BTreeMap::from([(1, vec!["a*".to_string()])])
        );
        // One plain copy and one by a pattern from the same input: brought in whole.
        let (mut plain, mut pattern) = (copy("/a", 1), copy("/b*", 1));
        plain.input = 0;
        pattern.input = 2;
        assert!(plainly_copied(&op(vec![plain, pattern]), 2).is_empty());
    }

    #[test]
    fn a_file_is_held_only_under_real_directories_and_as_a_regular_file() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("out/sub")).unwrap();
        std::fs::write(r.join("out/sub/file"), "x").unwrap();
        std::os::unix::fs::symlink("out", r.join("link")).unwrap();
        std::os::unix::fs::symlink("sub/file", r.join("out/to-file")).unwrap();
        assert!(holds_file(r, "out/sub/file"));
        assert!(!holds_file(r, "link/sub/file"), "through a link");
        assert!(!holds_file(r, "out/to-file"), "a link");
        assert!(!holds_file(r, "out/sub"), "a directory");
        assert!(!holds_file(r, "out/missing"), "missing");
        assert!(!holds_file(r, "out/sub/file/below"), "below a file");
    }
}
