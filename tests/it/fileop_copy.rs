//! COPY semantics of `fileop::copy`, on temporary directories (run as root for chown).

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::support::fileop::*;
use bud::fileop::{self, CopyAction, CopyFilter, Error, Owner};

/// The action the Dockerfile frontend emits for `COPY <src> <dest>`.
fn docker_copy(src: &str, dest: &str) -> CopyAction<'static> {
    CopyAction {
        src: src.to_owned(),
        dest: dest.to_owned(),
        follow_symlinks: true,
        dir_copy_contents: true,
        create_dest_path: true,
        allow_wildcard: true,
        allow_empty_wildcard: false,
        ..CopyAction::default()
    }
}

#[test]
fn file_to_new_name_creates_parents() {
    let r = Roots::new();
    r.src_file("a.txt", "A");
    fileop::copy(&r.src, &r.dst, &docker_copy("a.txt", "/x/y/b.txt")).unwrap();
    assert_eq!(fs::read_to_string(r.dst.join("x/y/b.txt")).unwrap(), "A");
    assert_eq!(mode_of(&r.dst.join("x")), 0o755);
}

#[test]
fn trailing_slash_copies_into_directory() {
    let r = Roots::new();
    r.src_file("a.txt", "A");
    fileop::copy(&r.src, &r.dst, &docker_copy("a.txt", "/d/")).unwrap();
    assert_eq!(fs::read_to_string(r.dst.join("d/a.txt")).unwrap(), "A");
}

#[test]
fn existing_directory_receives_file_without_slash() {
    let r = Roots::new();
    r.src_file("a.txt", "A");
    fs::create_dir(r.dst.join("d")).unwrap();
    fileop::copy(&r.src, &r.dst, &docker_copy("a.txt", "/d")).unwrap();
    assert_eq!(fs::read_to_string(r.dst.join("d/a.txt")).unwrap(), "A");
}

#[test]
fn without_slash_and_missing_dest_the_file_gets_that_name() {
    let r = Roots::new();
    r.src_file("a.txt", "A");
    fileop::copy(&r.src, &r.dst, &docker_copy("a.txt", "/d")).unwrap();
    assert_eq!(fs::read_to_string(r.dst.join("d")).unwrap(), "A");
}

#[test]
fn directory_source_copies_its_contents() {
    let r = Roots::new();
    r.src_file("dir/x", "X");
    r.src_file("dir/sub/y", "Y");
    // New destination.
    fileop::copy(&r.src, &r.dst, &docker_copy("dir", "/new")).unwrap();
    // Existing destination: merged, not nested.
    r.dst_file("old/keep", "K");
    fileop::copy(&r.src, &r.dst, &docker_copy("dir", "/old")).unwrap();
    let t = tree(&r.dst);
    assert_eq!(t["new/x"], "file X");
    assert_eq!(t["new/sub/y"], "file Y");
    assert_eq!(t["old/x"], "file X");
    assert_eq!(t["old/keep"], "file K");
    assert!(!t.contains_key("new/dir") && !t.contains_key("old/dir"));
}

#[test]
fn directory_without_contents_flag_nests_into_existing_dest() {
    let r = Roots::new();
    r.src_file("dir/x", "X");
    fs::create_dir(r.dst.join("out")).unwrap();
    let action = CopyAction {
        dir_copy_contents: false,
        ..docker_copy("dir", "/out")
    };
    fileop::copy(&r.src, &r.dst, &action).unwrap();
    assert_eq!(tree(&r.dst)["out/dir/x"], "file X");
}

#[test]
fn several_sources_into_a_directory() {
    // `COPY a b /dst/` is one copy action per source.
    let r = Roots::new();
    r.src_file("a", "A");
    r.src_file("b", "B");
    for src in ["a", "b"] {
        fileop::copy(&r.src, &r.dst, &docker_copy(src, "/dst/")).unwrap();
    }
    let t = tree(&r.dst);
    assert_eq!(t["dst/a"], "file A");
    assert_eq!(t["dst/b"], "file B");
}

#[test]
fn wildcard_matches_files_by_go_rules() {
    let r = Roots::new();
    r.src_file("one.txt", "1");
    r.src_file("two.txt", "2");
    r.src_file("three.md", "3");
    r.src_file("sub/deep.txt", "4");
    fileop::copy(&r.src, &r.dst, &docker_copy("*.txt", "/d/")).unwrap();
    let names: Vec<String> = tree(&r.dst).into_keys().collect();
    assert_eq!(names, ["d", "d/one.txt", "d/two.txt"]);
}

#[test]
fn wildcard_matching_a_directory_copies_its_contents() {
    let r = Roots::new();
    r.src_file("pkg-a/f", "A");
    r.src_file("pkg-b/g", "B");
    r.src_file("other/h", "H");
    fileop::copy(&r.src, &r.dst, &docker_copy("pkg-?", "/d/")).unwrap();
    let t = tree(&r.dst);
    assert_eq!(t["d/f"], "file A");
    assert_eq!(t["d/g"], "file B");
    assert!(!t.contains_key("d/h"));
}

#[test]
fn wildcard_in_a_parent_component() {
    let r = Roots::new();
    r.src_file("app1/cfg.json", "1");
    r.src_file("app2/cfg.json", "2");
    r.src_file("app2/other", "x");
    fs::create_dir(r.dst.join("d")).unwrap();
    let action = docker_copy("app*/cfg.json", "/d/");
    fileop::copy(&r.src, &r.dst, &action).unwrap();
    // Both match and land under the same name; the last one wins.
    assert_eq!(tree(&r.dst)["d/cfg.json"], "file 2");
}

#[test]
fn wildcard_without_match() {
    let r = Roots::new();
    r.src_file("a.txt", "A");
    let err = fileop::copy(&r.src, &r.dst, &docker_copy("*.nope", "/d/")).unwrap_err();
    assert!(
        matches!(err, Error::SourceNotFound { ref path } if path == "/*.nope"),
        "{err}"
    );
    let allowed = CopyAction {
        allow_empty_wildcard: true,
        ..docker_copy("*.nope", "/d/")
    };
    fileop::copy(&r.src, &r.dst, &allowed).unwrap();
    assert!(tree(&r.dst).is_empty());
}

#[test]
fn missing_source_names_the_path() {
    let r = Roots::new();
    let err = fileop::copy(&r.src, &r.dst, &docker_copy("missing", "/d")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to compute cache key: \"/missing\" not found: not found"
    );
    let plain = CopyAction {
        allow_wildcard: false,
        ..docker_copy("/missing", "/d")
    };
    let err = fileop::copy(&r.src, &r.dst, &plain).unwrap_err();
    assert!(matches!(err, Error::SourceNotFound { .. }), "{err}");
}

#[test]
fn dest_parent_must_exist_without_create_dest_path() {
    let r = Roots::new();
    r.src_file("a", "A");
    let action = CopyAction {
        create_dest_path: false,
        ..docker_copy("a", "/no/such/file")
    };
    let err = fileop::copy(&r.src, &r.dst, &action).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("failed to stat /no/such/file: "),
        "{err}"
    );
    assert!(tree(&r.dst).is_empty());
}

#[test]
fn owner_and_mode_apply_to_everything_copied_and_created_parents() {
    let r = Roots::new();
    r.src_file("dir/f", "F");
    r.src_file("dir/sub/g", "G");
    std::os::unix::fs::symlink("f", r.src.join("dir/link")).unwrap();
    let action = CopyAction {
        owner: Some(Owner {
            uid: 1234,
            gid: 5678,
        }),
        mode: Some(0o640),
        ..docker_copy("dir", "/p/q/")
    };
    fileop::copy(&r.src, &r.dst, &action).unwrap();
    for rel in ["p", "p/q", "p/q/f", "p/q/sub", "p/q/sub/g", "p/q/link"] {
        assert_eq!(owner_of(&r.dst.join(rel)), (1234, 5678), "{rel}");
    }
    for rel in ["p", "p/q", "p/q/f", "p/q/sub", "p/q/sub/g"] {
        assert_eq!(mode_of(&r.dst.join(rel)), 0o640, "{rel}");
    }
    assert!(
        fs::symlink_metadata(r.dst.join("p/q/link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn without_owner_source_ownership_and_modes_are_kept() {
    let r = Roots::new();
    let f = r.src_file("dir/f", "F");
    chown(&f, 42, 43);
    set_mode(&f, 0o4751);
    fileop::copy(&r.src, &r.dst, &docker_copy("dir", "/out")).unwrap();
    assert_eq!(owner_of(&r.dst.join("out/f")), (42, 43));
    assert_eq!(mode_of(&r.dst.join("out/f")), 0o4751);
    // Parents created for the copy belong to the creator (root).
    assert_eq!(owner_of(&r.dst.join("out")), (0, 0));
}

#[test]
fn timestamp_override_applies_to_copied_and_created_dirs() {
    let r = Roots::new();
    r.src_file("dir/f", "F");
    let ts = 1_600_000_000_123_456_789i64;
    let action = CopyAction {
        timestamp: Some(ts),
        ..docker_copy("dir", "/a/b/")
    };
    fileop::copy(&r.src, &r.dst, &action).unwrap();
    for rel in ["a", "a/b", "a/b/f"] {
        assert_eq!(
            mtime_of(&r.dst.join(rel)),
            (1_600_000_000, 123_456_789),
            "{rel}"
        );
    }
}

#[test]
fn source_times_are_kept_without_override() {
    let r = Roots::new();
    let f = r.src_file("f", "F");
    fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    fileop::copy(&r.src, &r.dst, &docker_copy("f", "/f")).unwrap();
    assert_eq!(mtime_of(&r.dst.join("f")).0, 1_000_000);
}

#[test]
fn symlinks_are_followed_only_for_the_named_source() {
    let r = Roots::new();
    r.src_file("real/data", "D");
    std::os::unix::fs::symlink("real", r.src.join("top")).unwrap();
    std::os::unix::fs::symlink("data", r.src.join("real/inner")).unwrap();

    fileop::copy(&r.src, &r.dst, &docker_copy("top", "/followed")).unwrap();
    let t = tree(&r.dst);
    assert_eq!(t["followed"], "dir");
    assert_eq!(t["followed/data"], "file D");
    assert_eq!(t["followed/inner"], "link data");

    let nofollow = CopyAction {
        follow_symlinks: false,
        ..docker_copy("top", "/kept")
    };
    fileop::copy(&r.src, &r.dst, &nofollow).unwrap();
    assert_eq!(tree(&r.dst)["kept"], "link real");
}

#[test]
fn hardlinks_inside_the_tree_are_kept() {
    let r = Roots::new();
    let a = r.src_file("dir/a", "same");
    fs::hard_link(&a, r.src.join("dir/b")).unwrap();
    fileop::copy(&r.src, &r.dst, &docker_copy("dir", "/out")).unwrap();
    let ia = fs::metadata(r.dst.join("out/a")).unwrap();
    let ib = fs::metadata(r.dst.join("out/b")).unwrap();
    assert_eq!(ia.ino(), ib.ino());
    assert_eq!(ia.nlink(), 2);
    assert_ne!(ia.ino(), fs::metadata(&a).unwrap().ino());
}

#[test]
fn xattrs_are_copied() {
    let r = Roots::new();
    let f = r.src_file("f", "F");
    rustix::fs::setxattr(&f, "user.bud", b"v1", rustix::fs::XattrFlags::empty()).unwrap();
    fileop::copy(&r.src, &r.dst, &docker_copy("f", "/g")).unwrap();
    let mut buf = [0u8; 16];
    let n = rustix::fs::getxattr(r.dst.join("g"), "user.bud", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"v1");
}

#[test]
fn exclusion_predicate_skips_paths_relative_to_the_source() {
    let r = Roots::new();
    r.src_file("dir/keep.txt", "K");
    r.src_file("dir/skip.md", "S");
    r.src_file("dir/node_modules/m", "M");
    r.src_file("dir/sub/note.md", "N");
    let exclude = |p: &str| p.ends_with(".md") || p == "node_modules";
    let action = CopyAction {
        filter: CopyFilter {
            exclude: Some(&exclude),
            ..CopyFilter::default()
        },
        ..docker_copy("dir", "/out")
    };
    fileop::copy(&r.src, &r.dst, &action).unwrap();
    let names: Vec<String> = tree(&r.dst).into_keys().collect();
    assert_eq!(names, ["out", "out/keep.txt", "out/sub"]);
}

#[test]
fn excluded_directory_is_searched_when_negations_may_apply() {
    let r = Roots::new();
    r.src_file("dir/cache/drop", "D");
    r.src_file("dir/cache/keep", "K");
    // Like `--exclude=cache --exclude=!cache/keep`.
    let exclude = |p: &str| p == "cache" || p == "cache/drop";
    let action = CopyAction {
        filter: CopyFilter {
            exclude: Some(&exclude),
            descend_excluded_dirs: true,
            ..CopyFilter::default()
        },
        ..docker_copy("dir", "/out")
    };
    fileop::copy(&r.src, &r.dst, &action).unwrap();
    let names: Vec<String> = tree(&r.dst).into_keys().collect();
    assert_eq!(names, ["out", "out/cache", "out/cache/keep"]);
}

#[test]
fn include_predicate_creates_only_needed_parents() {
    let r = Roots::new();
    r.src_file("dir/a/x/c", "C");
    r.src_file("dir/b/y/other", "O");
    let include = |p: &str| p.ends_with("/c") || p == "c";
    let action = CopyAction {
        filter: CopyFilter {
            include: Some(&include),
            ..CopyFilter::default()
        },
        ..docker_copy("dir", "/out")
    };
    fileop::copy(&r.src, &r.dst, &action).unwrap();
    let names: Vec<String> = tree(&r.dst).into_keys().collect();
    assert_eq!(names, ["out", "out/a", "out/a/x", "out/a/x/c"]);
}

#[test]
fn file_never_replaces_a_directory_unless_asked() {
    let r = Roots::new();
    r.src_file("dir/x", "file");
    r.dst_file("out/x/inner", "I");
    let err = fileop::copy(&r.src, &r.dst, &docker_copy("dir", "/out")).unwrap_err();
    assert!(matches!(err, Error::ReplaceDirWithFile { .. }), "{err}");
    let replace = CopyAction {
        always_replace_existing_dest_paths: true,
        ..docker_copy("dir", "/out")
    };
    fileop::copy(&r.src, &r.dst, &replace).unwrap();
    assert_eq!(tree(&r.dst)["out/x"], "file file");
}

#[test]
fn directory_onto_file_fails() {
    let r = Roots::new();
    r.src_file("dir/sub/f", "F");
    r.dst_file("out/sub", "file");
    let err = fileop::copy(&r.src, &r.dst, &docker_copy("dir", "/out")).unwrap_err();
    assert!(matches!(err, Error::CopyToNonDir { .. }), "{err}");
}

#[test]
fn existing_file_is_replaced_not_written_through() {
    let r = Roots::new();
    r.src_file("f", "new");
    r.dst_file("target", "old");
    // A link in place of the copied file is replaced, not followed.
    fs::create_dir(r.dst.join("e")).unwrap();
    std::os::unix::fs::symlink("../target", r.dst.join("e/f")).unwrap();
    fileop::copy(&r.src, &r.dst, &docker_copy("f", "/e/")).unwrap();
    let t = tree(&r.dst);
    assert_eq!(t["e/f"], "file new");
    assert_eq!(t["target"], "file old");
}

#[test]
fn dotdot_in_dest_stays_inside() {
    let r = Roots::new();
    r.src_file("evil", "E");
    fileop::copy(&r.src, &r.dst, &docker_copy("evil", "../../outside/evil")).unwrap();
    assert_eq!(tree(&r.dst)["outside/evil"], "file E");
    r.assert_nothing_escaped();
}

#[test]
fn absolute_symlink_in_dest_parents_is_rerooted() {
    let r = Roots::new();
    r.src_file("evil", "E");
    std::os::unix::fs::symlink(&r.outside, r.dst.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../outside", r.dst.join("rel")).unwrap();
    fileop::copy(&r.src, &r.dst, &docker_copy("evil", "/abs/evil")).unwrap();
    fileop::copy(&r.src, &r.dst, &docker_copy("evil", "/rel/")).unwrap();
    fileop::copy(
        &r.src,
        &r.dst,
        &docker_copy("evil", "/rel/../abs/../rel/again"),
    )
    .unwrap();
    r.assert_nothing_escaped();
    let rerooted = r.dst.join(r.outside.strip_prefix("/").unwrap());
    assert_eq!(fs::read_to_string(rerooted.join("evil")).unwrap(), "E");
    assert_eq!(fs::read_to_string(r.dst.join("outside/evil")).unwrap(), "E");
}

#[test]
fn dest_that_is_a_symlink_to_outside_is_rerooted() {
    let r = Roots::new();
    r.src_file("f", "E");
    std::os::unix::fs::symlink(r.outside.join("secret"), r.dst.join("target")).unwrap();
    fileop::copy(&r.src, &r.dst, &docker_copy("f", "/target")).unwrap();
    r.assert_nothing_escaped();
}

#[test]
fn source_symlinks_cannot_read_outside_the_source_root() {
    let r = Roots::new();
    std::os::unix::fs::symlink(r.outside.join("secret"), r.src.join("abs")).unwrap();
    std::os::unix::fs::symlink("../outside/secret", r.src.join("rel")).unwrap();
    std::os::unix::fs::symlink("../outside", r.src.join("dirlink")).unwrap();
    for src in ["abs", "rel", "dirlink/secret", "dirlink/*"] {
        let err = fileop::copy(&r.src, &r.dst, &docker_copy(src, "/d/")).unwrap_err();
        assert!(matches!(err, Error::SourceNotFound { .. }), "{src}: {err}");
    }
    // Inside a copied tree they stay links, their targets unread.
    fs::create_dir(r.src.join("tree")).unwrap();
    std::os::unix::fs::symlink(r.outside.join("secret"), r.src.join("tree/l")).unwrap();
    fileop::copy(&r.src, &r.dst, &docker_copy("tree", "/t")).unwrap();
    assert!(
        fs::symlink_metadata(r.dst.join("t/l"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!tree(&r.dst).values().any(|v| v.contains("file secret")));
    r.assert_nothing_escaped();
}

#[test]
fn context_root_copies_into_new_directory() {
    // `COPY . /app`
    let r = Roots::new();
    r.src_file("main.rs", "fn main() {}");
    r.src_file("src/lib.rs", "");
    set_mode(&r.src, 0o750);
    fileop::copy(&r.src, &r.dst, &docker_copy(".", "/app")).unwrap();
    let names: Vec<String> = tree(&r.dst).into_keys().collect();
    assert_eq!(names, ["app", "app/main.rs", "app/src", "app/src/lib.rs"]);
    // The destination is created as a parent (0755), as BuildKit does, not as a copy of
    // the context directory.
    assert_eq!(mode_of(&r.dst.join("app")), 0o755);
}

#[test]
fn wildcard_through_a_symlinked_parent_stays_in_the_source_root() {
    let r = Roots::new();
    r.src_file("real/a.txt", "A");
    std::os::unix::fs::symlink("/real", r.src.join("alias")).unwrap();
    fileop::copy(&r.src, &r.dst, &docker_copy("alias/*.txt", "/d/")).unwrap();
    assert_eq!(tree(&r.dst)["d/a.txt"], "file A");
}
