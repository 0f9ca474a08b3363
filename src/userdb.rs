//! Users and groups of an image: `/etc/passwd` and `/etc/group` read inside a root
//! directory, to turn `COPY --chown` and `USER` values into ids the way BuildKit does.
//!
//! The two consumers differ on purpose, as in BuildKit:
//! - `--chown` ([`resolve_chown`]): a numeric user also sets the group (`--chown=1000` is
//!   `1000:1000`); a name takes the user's primary group; a name (user or group) that is not
//!   found leaves the id at 0 without error, and so does a missing `/etc/passwd`.
//! - `USER` ([`resolve_exec_user`]): a numeric user without a passwd entry runs with group 0;
//!   an unknown name is an error; supplementary groups come from `/etc/group` membership.
//!   Only an empty value or a `uid:gid` pair works without `/etc/passwd`.

use std::io::Read;
use std::path::Path;

use crate::fileop::{self, Owner, safe};

/// Files larger than this are refused rather than read, as BuildKit does.
const MAX_USER_FILE_BYTES: u64 = 10 << 20;
/// The largest uid/gid accepted for `USER` (Go's `user` package range check).
const MAX_ID: i64 = i32::MAX as i64;

/// Why a user or group could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `USER` names a user that `/etc/passwd` does not have (BuildKit's message).
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UserNotFound(String),
    /// `USER` names a group that `/etc/group` does not have (BuildKit's message).
    #[error("unable to find group {0}: no matching entries in group file")]
    GroupNotFound(String),
    /// `USER` names a user or group by name and the image has no file to look it up in.
    #[error("unable to find {what}: the image has no {file}")]
    NoUserFile {
        /// `user NAME` or `group NAME`.
        what: String,
        /// `/etc/passwd` or `/etc/group`.
        file: &'static str,
    },
    /// A numeric `USER` id is negative or above `i32::MAX`, as Go's `user` package refuses.
    #[error("uids and gids must be in range 0-{MAX_ID}")]
    IdRange,
    /// `/etc/passwd` or `/etc/group` resolved to something other than a file.
    #[error("{0} is not a regular file")]
    NotRegular(String),
    /// `/etc/passwd` or `/etc/group` is larger than BuildKit reads.
    #[error("\"{0}\" exceeds {MAX_USER_FILE_BYTES} bytes")]
    TooLarge(String),
    /// The file could not be read.
    #[error("failed to read {path}")]
    Read {
        /// The file, in the image's root.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file's path could not be resolved inside the root.
    #[error(transparent)]
    Resolve(#[from] fileop::Error),
}

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name (field 1).
    pub name: String,
    /// User id (field 3); 0 when not a number, as Go reads it.
    pub uid: i64,
    /// Primary group id (field 4); 0 when not a number.
    pub gid: i64,
    /// Home directory (field 6).
    pub home: String,
    /// Login shell (field 7).
    pub shell: String,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name (field 1).
    pub name: String,
    /// Group id (field 3); 0 when not a number.
    pub gid: i64,
    /// The user names listed as members (field 4, comma-separated).
    pub members: Vec<String>,
}

/// Parses passwd data. Like Go's `user` package, lines are split on `:`, malformed numbers
/// read as 0, and blank lines are skipped.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    lines(text)
        .map(|fields| PasswdEntry {
            name: field(&fields, 0).to_owned(),
            uid: number(field(&fields, 2)),
            gid: number(field(&fields, 3)),
            home: field(&fields, 5).to_owned(),
            shell: field(&fields, 6).to_owned(),
        })
        .collect()
}

/// Parses group data (`name:password:gid:member,member`).
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    lines(text)
        .map(|fields| GroupEntry {
            name: field(&fields, 0).to_owned(),
            gid: number(field(&fields, 2)),
            members: field(&fields, 3)
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect(),
        })
        .collect()
}

fn lines(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| line.split(':').collect())
}

fn field<'a>(fields: &[&'a str], index: usize) -> &'a str {
    fields.get(index).copied().unwrap_or("")
}

fn number(text: &str) -> i64 {
    text.parse().unwrap_or(0)
}

/// One side of a `--chown` value, as the Dockerfile frontend puts it in the LLB
/// (`ChownOpt.user` / `ChownOpt.group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSpec {
    /// A numeric id (or `root`, id 0), used as it is.
    Id(u32),
    /// A name to look up in the image's files.
    Name(String),
}

/// A parsed `--chown=user[:group]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChownSpec {
    /// The user part; `None` only when the LLB's `ChownOpt` has no user ([`Self::parse`]
    /// always sets it: an empty part is id 0).
    pub user: Option<IdSpec>,
    /// The group part after `:`; `None` without a `:` (the user's group is used).
    pub group: Option<IdSpec>,
}

impl ChownSpec {
    /// Parses like BuildKit's `llb.WithUser`: `root` and decimal numbers are ids, anything
    /// else a name; an empty part means id 0 (so `user:` chowns to group 0, as BuildKit does).
    pub fn parse(spec: &str) -> Self {
        let (user, group) = match spec.split_once(':') {
            Some((user, group)) => (user, Some(group)),
            None => (spec, None),
        };
        ChownSpec {
            user: Some(id_spec(user)),
            group: group.map(id_spec),
        }
    }
}

fn id_spec(part: &str) -> IdSpec {
    if part.is_empty() || part == "root" {
        return IdSpec::Id(0);
    }
    match part.parse::<u32>() {
        Ok(id) => IdSpec::Id(id),
        Err(_) => IdSpec::Name(part.to_owned()),
    }
}

/// Resolves a `--chown` value against the users of `root` (see the module docs for the
/// rules).
pub fn resolve_chown(root: &Path, spec: &str) -> Result<(u32, u32), Error> {
    let owner = resolve_owner(&ChownSpec::parse(spec), root, root)?;
    Ok((owner.uid, owner.gid))
}

/// Resolves a chown spec whose user and group names are looked up in possibly different
/// roots (the LLB names an input for each).
pub fn resolve_owner(
    spec: &ChownSpec,
    user_root: &Path,
    group_root: &Path,
) -> Result<Owner, Error> {
    let mut owner = Owner { uid: 0, gid: 0 };
    match &spec.user {
        Some(IdSpec::Id(id)) => {
            owner.uid = *id;
            owner.gid = *id;
        }
        Some(IdSpec::Name(name)) => {
            let users = read_user_file(user_root, "/etc/passwd")?
                .map(|text| parse_passwd(&text))
                .unwrap_or_default();
            if let Some(user) = users.iter().find(|u| &u.name == name) {
                owner.uid = clamp_id(user.uid);
                owner.gid = clamp_id(user.gid);
            }
        }
        None => {}
    }
    match &spec.group {
        Some(IdSpec::Id(id)) => owner.gid = *id,
        Some(IdSpec::Name(name)) => {
            let groups = read_user_file(group_root, "/etc/group")?
                .map(|text| parse_group(&text))
                .unwrap_or_default();
            if let Some(group) = groups.iter().find(|g| &g.name == name) {
                owner.gid = clamp_id(group.gid);
            }
        }
        None => {}
    }
    Ok(owner)
}

fn clamp_id(id: i64) -> u32 {
    u32::try_from(id).unwrap_or(0)
}

/// The identity a `RUN` step runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// User id.
    pub uid: u32,
    /// Primary group id: the explicit group, else the user's from `/etc/passwd`, else 0.
    pub gid: u32,
    /// Supplementary groups from `/etc/group` membership; empty when the group is explicit.
    pub additional_gids: Vec<u32>,
}

/// Resolves a `USER` value (`user[:group]`, names or ids) against the users of `root`.
///
/// As BuildKit's executor: an empty value, or a `user:group` pair of ids (or `root`), needs
/// no file at all, so a step of an image without `/etc/passwd` runs as root. Any other value
/// is looked up in `/etc/passwd`, which must then exist, even for a bare uid; `/etc/group` must
/// exist when a group is named or a passwd entry matched (for the supplementary groups).
pub fn resolve_exec_user(root: &Path, spec: &str) -> Result<ExecUser, Error> {
    if spec.is_empty() {
        return Ok(ExecUser {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
        });
    }
    if let Some((user, group)) = spec.split_once(':')
        && let (Some(uid), Some(gid)) = (fast_id(user), fast_id(group))
    {
        return Ok(ExecUser {
            uid,
            gid,
            additional_gids: Vec::new(),
        });
    }
    let passwd = read_user_file(root, "/etc/passwd")?;
    let group = read_user_file(root, "/etc/group")?;
    exec_user(
        spec,
        passwd.map(|t| parse_passwd(&t)).as_deref(),
        group.map(|t| parse_group(&t)).as_deref(),
    )
}

/// An id as BuildKit's `parseUID` reads one: `root`, or decimal digits within 32 bits.
fn fast_id(part: &str) -> Option<u32> {
    if part == "root" {
        return Some(0);
    }
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Go's `user.GetExecUser` with root defaults. `None` files are missing ones.
fn exec_user(
    spec: &str,
    passwd: Option<&[PasswdEntry]>,
    group: Option<&[GroupEntry]>,
) -> Result<ExecUser, Error> {
    let mut parts = spec.split(':');
    let user_arg = parts.next().unwrap_or("");
    let group_arg = parts.next().unwrap_or("");
    let uid_arg: Option<i64> = user_arg.parse().ok();
    let gid_arg: Option<i64> = group_arg.parse().ok();

    let Some(passwd) = passwd else {
        let user = if user_arg.is_empty() { "0" } else { user_arg };
        return Err(Error::NoUserFile {
            what: format!("user {user}"),
            file: "/etc/passwd",
        });
    };
    let found = passwd.iter().find(|u| match uid_arg {
        Some(id) => u.uid == id,
        None => u.name == user_arg,
    });
    let (uid, mut gid, matched_name) = match (found, uid_arg) {
        (Some(user), _) => (user.uid, user.gid, Some(user.name.as_str())),
        // A numeric user needs no passwd entry; its group is then root's.
        (None, Some(id)) => (check_range(id)?, 0, None),
        (None, None) => return Err(Error::UserNotFound(user_arg.to_owned())),
    };

    let mut additional = Vec::new();
    if !group_arg.is_empty() || matched_name.is_some() {
        let Some(groups) = group else {
            let what = match matched_name {
                Some(name) => format!("the groups of user {name}"),
                None => format!("group {group_arg}"),
            };
            return Err(Error::NoUserFile {
                what,
                file: "/etc/group",
            });
        };
        if group_arg.is_empty() {
            let name = matched_name.unwrap_or_default();
            additional = groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m == name))
                .map(|g| clamp_id(g.gid))
                .collect();
        } else {
            let found = groups.iter().find(|g| match gid_arg {
                Some(id) => g.gid == id,
                None => g.name == group_arg,
            });
            gid = match (found, gid_arg) {
                (Some(g), _) => g.gid,
                (None, Some(id)) => check_range(id)?,
                (None, None) => return Err(Error::GroupNotFound(group_arg.to_owned())),
            };
        }
    }
    Ok(ExecUser {
        uid: u32::try_from(check_range(uid)?).map_err(|_| Error::IdRange)?,
        gid: u32::try_from(check_range(gid)?).map_err(|_| Error::IdRange)?,
        additional_gids: additional,
    })
}

fn check_range(id: i64) -> Result<i64, Error> {
    if (0..=MAX_ID).contains(&id) {
        Ok(id)
    } else {
        Err(Error::IdRange)
    }
}

/// Reads a user database file inside `root`; `None` when it does not exist.
fn read_user_file(root: &Path, path: &str) -> Result<Option<String>, Error> {
    let resolved = safe::resolve(root, path)?;
    let shown = safe::display(root, &resolved);
    let read_error = |source| Error::Read {
        path: shown.clone(),
        source,
    };
    let file = match std::fs::File::open(&resolved) {
        Ok(file) => file,
        Err(err) if safe::is_absent(&err) => return Ok(None),
        Err(source) => return Err(read_error(source)),
    };
    if !file.metadata().map_err(read_error)?.is_file() {
        return Err(Error::NotRegular(shown));
    }
    let mut bytes = Vec::new();
    file.take(MAX_USER_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_USER_FILE_BYTES {
        return Err(Error::TooLarge(shown));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}
