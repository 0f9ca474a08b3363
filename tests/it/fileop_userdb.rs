//! `userdb`: --chown and USER resolution against an image's /etc/passwd and /etc/group.

use std::fs;

use crate::support::fileop::*;
use bud::userdb::{self, ChownSpec, Error, ExecUser, IdSpec};

const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

app:x:1000:1001:App,,,:/home/app:/bin/sh
dup:x:1000:5:second entry for uid 1000:/:/bin/sh
";

const GROUP: &str = "\
root:x:0:
wheel:x:10:app,other
staff:x:50:app
appgrp:x:1001:
other:x:2000:daemon
";

fn image() -> Roots {
    let r = Roots::new();
    r.dst_file("etc/passwd", PASSWD);
    r.dst_file("etc/group", GROUP);
    r
}

#[test]
fn parses_passwd_and_group() {
    let users = userdb::parse_passwd(PASSWD);
    assert_eq!(users.len(), 4);
    assert_eq!(users[2].name, "app");
    assert_eq!((users[2].uid, users[2].gid), (1000, 1001));
    assert_eq!(users[2].home, "/home/app");
    let groups = userdb::parse_group(GROUP);
    assert_eq!(groups[1].members, ["app", "other"]);
    assert!(groups[0].members.is_empty());
    // Malformed numbers read as 0, like Go's parser.
    assert_eq!(userdb::parse_passwd("x:x:abc:1")[0].uid, 0);
}

#[test]
fn chown_spec_parsing() {
    assert_eq!(
        ChownSpec::parse("1000"),
        ChownSpec {
            user: Some(IdSpec::Id(1000)),
            group: None
        }
    );
    assert_eq!(
        ChownSpec::parse("app:staff"),
        ChownSpec {
            user: Some(IdSpec::Name("app".into())),
            group: Some(IdSpec::Name("staff".into()))
        }
    );
    assert_eq!(ChownSpec::parse("root:root").group, Some(IdSpec::Id(0)));
    assert_eq!(ChownSpec::parse("app:").group, Some(IdSpec::Id(0)));
}

#[test]
fn chown_by_name_and_id() {
    let r = image();
    // A numeric user is also the group.
    assert_eq!(userdb::resolve_chown(&r.dst, "1000").unwrap(), (1000, 1000));
    assert_eq!(
        userdb::resolve_chown(&r.dst, "1000:50").unwrap(),
        (1000, 50)
    );
    // A name takes its primary group, or the named one.
    assert_eq!(userdb::resolve_chown(&r.dst, "app").unwrap(), (1000, 1001));
    assert_eq!(
        userdb::resolve_chown(&r.dst, "app:staff").unwrap(),
        (1000, 50)
    );
    assert_eq!(userdb::resolve_chown(&r.dst, "5:wheel").unwrap(), (5, 10));
    assert_eq!(userdb::resolve_chown(&r.dst, "root").unwrap(), (0, 0));
}

#[test]
fn chown_unknown_names_fall_back_to_zero_like_buildkit() {
    let r = image();
    assert_eq!(
        userdb::resolve_chown(&r.dst, "nobody-here").unwrap(),
        (0, 0)
    );
    assert_eq!(
        userdb::resolve_chown(&r.dst, "app:nogroup").unwrap(),
        (1000, 1001)
    );
    let empty = Roots::new();
    assert_eq!(userdb::resolve_chown(&empty.dst, "app").unwrap(), (0, 0));
}

#[test]
fn exec_user_by_name_gets_supplementary_groups() {
    let r = image();
    assert_eq!(
        userdb::resolve_exec_user(&r.dst, "app").unwrap(),
        ExecUser {
            uid: 1000,
            gid: 1001,
            additional_gids: vec![10, 50]
        }
    );
    // An explicit group replaces the primary one and drops supplementary groups.
    assert_eq!(
        userdb::resolve_exec_user(&r.dst, "app:staff").unwrap(),
        ExecUser {
            uid: 1000,
            gid: 50,
            additional_gids: vec![]
        }
    );
}

#[test]
fn exec_user_by_id() {
    let r = image();
    // A numeric user matching an entry takes that entry's group (first match wins).
    let u = userdb::resolve_exec_user(&r.dst, "1000").unwrap();
    assert_eq!((u.uid, u.gid), (1000, 1001));
    // Without an entry, the group is root's.
    let u = userdb::resolve_exec_user(&r.dst, "4242").unwrap();
    assert_eq!((u.uid, u.gid, u.additional_gids), (4242, 0, vec![]));
    let u = userdb::resolve_exec_user(&r.dst, "4242:77").unwrap();
    assert_eq!((u.uid, u.gid), (4242, 77));
    let u = userdb::resolve_exec_user(&r.dst, "").unwrap();
    assert_eq!((u.uid, u.gid), (0, 0));
}

#[test]
fn exec_user_without_passwd_file() {
    // As Docker 20.10 and 28.5 run a step of an image without /etc/passwd: as root when
    // no USER is set, and with a `uid:gid` pair; any other value needs the file.
    let r = Roots::new();
    let u = userdb::resolve_exec_user(&r.dst, "").unwrap();
    assert_eq!((u.uid, u.gid, u.additional_gids), (0, 0, vec![]));
    for (spec, ids) in [("5:7", (5, 7)), ("root:root", (0, 0)), ("5:root", (5, 0))] {
        let u = userdb::resolve_exec_user(&r.dst, spec).unwrap();
        assert_eq!((u.uid, u.gid), ids, "{spec}");
    }
    for (spec, shown) in [
        ("1000", "user 1000"),
        ("0", "user 0"),
        ("root", "user root"),
        ("root:", "user root"),
        ("+5:7", "user +5"),
        ("app", "user app"),
    ] {
        let err = userdb::resolve_exec_user(&r.dst, spec).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("unable to find {shown}: the image has no /etc/passwd"),
            "{spec}"
        );
    }
}

#[test]
fn exec_user_without_group_file() {
    // With /etc/passwd alone, a matched user needs /etc/group for its supplementary groups,
    // and so does a named group; a uid without an entry does not.
    let r = Roots::new();
    fs::create_dir(r.dst.join("etc")).unwrap();
    fs::write(
        r.dst.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh
",
    )
    .unwrap();
    let u = userdb::resolve_exec_user(&r.dst, "5").unwrap();
    assert_eq!((u.uid, u.gid), (5, 0));
    for (spec, shown) in [
        ("root", "the groups of user root"),
        ("0", "the groups of user root"),
        ("5:staff", "group staff"),
    ] {
        let err = userdb::resolve_exec_user(&r.dst, spec).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("unable to find {shown}: the image has no /etc/group"),
            "{spec}"
        );
    }
}

#[test]
fn exec_user_errors() {
    let r = image();
    let err = userdb::resolve_exec_user(&r.dst, "ghost").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to find user ghost: no matching entries in passwd file"
    );
    let err = userdb::resolve_exec_user(&r.dst, "app:ghosts").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to find group ghosts: no matching entries in group file"
    );
    assert!(matches!(
        userdb::resolve_exec_user(&r.dst, "-1"),
        Err(Error::IdRange)
    ));
}

#[test]
fn user_files_are_read_inside_the_root() {
    let r = Roots::new();
    fs::write(r.outside.join("passwd"), "evil:x:666:666::/:/bin/sh\n").unwrap();
    fs::create_dir(r.dst.join("etc")).unwrap();
    std::os::unix::fs::symlink(r.outside.join("passwd"), r.dst.join("etc/passwd")).unwrap();
    // Resolved inside the root, the link leads nowhere: there is no passwd to read.
    assert!(matches!(
        userdb::resolve_exec_user(&r.dst, "evil"),
        Err(Error::NoUserFile { .. })
    ));
    assert_eq!(userdb::resolve_chown(&r.dst, "evil").unwrap(), (0, 0));

    // A passwd that is not a regular file is refused.
    let d = Roots::new();
    fs::create_dir_all(d.dst.join("etc/passwd")).unwrap();
    assert!(matches!(
        userdb::resolve_exec_user(&d.dst, "app"),
        Err(Error::NotRegular(_))
    ));
}
