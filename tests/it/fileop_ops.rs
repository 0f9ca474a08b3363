//! mkdir, mkfile, rm and symlink actions.

use std::fs;

use crate::support::fileop::*;
use bud::fileop::{self, MkdirAction, MkfileAction, Owner, RmAction, SymlinkAction};

#[test]
fn mkdir_with_parents_applies_mode_owner_and_time_to_created_dirs() {
    let r = Roots::new();
    fs::create_dir(r.dst.join("existing")).unwrap();
    let action = MkdirAction {
        path: "/existing/a/b".to_owned(),
        mode: 0o750,
        make_parents: true,
        owner: Some(Owner { uid: 10, gid: 20 }),
        timestamp: Some(86_400_000_000_000),
    };
    fileop::mkdir(&r.dst, &action).unwrap();
    for rel in ["existing/a", "existing/a/b"] {
        let p = r.dst.join(rel);
        assert_eq!(mode_of(&p), 0o750, "{rel}");
        assert_eq!(owner_of(&p), (10, 20), "{rel}");
        assert_eq!(mtime_of(&p), (86_400, 0), "{rel}");
    }
    assert_eq!(owner_of(&r.dst.join("existing")), (0, 0));
    assert_eq!(mode_of(&r.dst.join("existing")), 0o755);
}

#[test]
fn mkdir_without_parents() {
    let r = Roots::new();
    let action = MkdirAction {
        path: "/a/b".to_owned(),
        mode: 0o755,
        ..MkdirAction::default()
    };
    let err = fileop::mkdir(&r.dst, &action).unwrap_err();
    assert_eq!(err.to_string(), "mkdir /a/b: no such file or directory");
    fs::create_dir(r.dst.join("a")).unwrap();
    fileop::mkdir(&r.dst, &action).unwrap();
    // An existing directory is fine.
    fileop::mkdir(&r.dst, &action).unwrap();
    assert!(r.dst.join("a/b").is_dir());
}

#[test]
fn mkdir_through_escaping_symlinks_stays_inside() {
    let r = Roots::new();
    std::os::unix::fs::symlink(&r.outside, r.dst.join("abs")).unwrap();
    for path in ["/abs/made", "../../outside/made2"] {
        let action = MkdirAction {
            path: path.to_owned(),
            mode: 0o755,
            make_parents: true,
            ..MkdirAction::default()
        };
        fileop::mkdir(&r.dst, &action).unwrap();
    }
    r.assert_nothing_escaped();
    assert!(r.dst.join("outside/made2").is_dir());
}

#[test]
fn mkfile_writes_data_with_mode_and_owner() {
    let r = Roots::new();
    let action = MkfileAction {
        path: "/etc/motd".to_owned(),
        mode: 0o600,
        data: b"hello".to_vec(),
        owner: Some(Owner { uid: 5, gid: 6 }),
        timestamp: Some(0),
    };
    let err = fileop::mkfile(&r.dst, &action).unwrap_err();
    assert_eq!(err.to_string(), "open /etc/motd: no such file or directory");
    fs::create_dir(r.dst.join("etc")).unwrap();
    fileop::mkfile(&r.dst, &action).unwrap();
    let p = r.dst.join("etc/motd");
    assert_eq!(fs::read_to_string(&p).unwrap(), "hello");
    assert_eq!(mode_of(&p), 0o600);
    assert_eq!(owner_of(&p), (5, 6));
    assert_eq!(mtime_of(&p), (0, 0));
}

#[test]
fn mkfile_truncates_an_existing_file_and_keeps_its_mode() {
    let r = Roots::new();
    let p = r.dst_file("f", "a much longer previous content");
    set_mode(&p, 0o640);
    let action = MkfileAction {
        path: "f".to_owned(),
        mode: 0o777,
        data: b"new".to_vec(),
        ..MkfileAction::default()
    };
    fileop::mkfile(&r.dst, &action).unwrap();
    assert_eq!(fs::read_to_string(&p).unwrap(), "new");
    assert_eq!(mode_of(&p), 0o640);
}

#[test]
fn mkfile_through_a_symlink_to_outside_is_rerooted() {
    let r = Roots::new();
    std::os::unix::fs::symlink(r.outside.join("secret"), r.dst.join("f")).unwrap();
    fs::create_dir_all(r.dst.join(r.outside.strip_prefix("/").unwrap())).unwrap();
    let action = MkfileAction {
        path: "/f".to_owned(),
        mode: 0o644,
        data: b"overwritten".to_vec(),
        ..MkfileAction::default()
    };
    fileop::mkfile(&r.dst, &action).unwrap();
    r.assert_nothing_escaped();
}

#[test]
fn rm_missing_path() {
    let r = Roots::new();
    let mut action = RmAction {
        path: "/nope".to_owned(),
        ..RmAction::default()
    };
    let err = fileop::rm(&r.dst, &action).unwrap_err();
    assert_eq!(err.to_string(), "stat /nope: no such file or directory");
    action.allow_not_found = true;
    fileop::rm(&r.dst, &action).unwrap();
}

#[test]
fn rm_removes_trees_and_wildcard_matches() {
    let r = Roots::new();
    r.dst_file("tree/a/b", "B");
    r.dst_file("x.log", "");
    r.dst_file("y.log", "");
    r.dst_file("keep.txt", "");
    fileop::rm(
        &r.dst,
        &RmAction {
            path: "tree".to_owned(),
            ..RmAction::default()
        },
    )
    .unwrap();
    fileop::rm(
        &r.dst,
        &RmAction {
            path: "/*.log".to_owned(),
            allow_wildcard: true,
            ..RmAction::default()
        },
    )
    .unwrap();
    let names: Vec<String> = tree(&r.dst).into_keys().collect();
    assert_eq!(names, ["keep.txt"]);
}

#[test]
fn rm_removes_a_symlink_not_its_target_and_never_outside() {
    let r = Roots::new();
    std::os::unix::fs::symlink(&r.outside, r.dst.join("abs")).unwrap();
    std::os::unix::fs::symlink(r.outside.join("secret"), r.dst.join("file-link")).unwrap();
    let inside = r.dst.join(r.outside.strip_prefix("/").unwrap());
    write(&inside.join("secret"), "inside copy");
    for path in ["/abs/secret", "../outside/secret", "/file-link"] {
        let action = RmAction {
            path: path.to_owned(),
            allow_not_found: true,
            ..RmAction::default()
        };
        fileop::rm(&r.dst, &action).unwrap();
    }
    r.assert_nothing_escaped();
    assert!(!inside.join("secret").exists());
    assert!(fs::symlink_metadata(r.dst.join("file-link")).is_err());
    assert!(fs::symlink_metadata(r.dst.join("abs")).is_ok());
}

#[test]
fn rm_of_the_root_is_refused() {
    let r = Roots::new();
    let action = RmAction {
        path: "/".to_owned(),
        ..RmAction::default()
    };
    let err = fileop::rm(&r.dst, &action).unwrap_err();
    assert_eq!(err.to_string(), "rmPath: invalid empty path");
    assert!(r.dst.is_dir());
}

#[test]
fn symlink_is_created_verbatim() {
    let r = Roots::new();
    fs::create_dir(r.dst.join("bin")).unwrap();
    let action = SymlinkAction {
        oldpath: "/usr/bin/python3".to_owned(),
        newpath: "/bin/python".to_owned(),
        owner: Some(Owner { uid: 3, gid: 4 }),
        timestamp: None,
    };
    fileop::symlink(&r.dst, &action).unwrap();
    assert_eq!(tree(&r.dst)["bin/python"], "link /usr/bin/python3");
    assert_eq!(owner_of(&r.dst.join("bin/python")), (3, 4));
    let err = fileop::symlink(&r.dst, &action).unwrap_err();
    assert!(err.to_string().ends_with("file exists"), "{err}");
}

#[test]
fn symlink_under_an_escaping_parent_stays_inside() {
    let r = Roots::new();
    std::os::unix::fs::symlink(&r.outside, r.dst.join("abs")).unwrap();
    fs::create_dir_all(r.dst.join(r.outside.strip_prefix("/").unwrap())).unwrap();
    let action = SymlinkAction {
        oldpath: "x".to_owned(),
        newpath: "/abs/new-link".to_owned(),
        ..SymlinkAction::default()
    };
    fileop::symlink(&r.dst, &action).unwrap();
    r.assert_nothing_escaped();
}
