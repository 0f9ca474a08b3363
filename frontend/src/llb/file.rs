//! File ops: a chain of filesystem actions applied one after the other.

use bud_proto::pb::{self, caps};

use super::constraints::Constraints;
use super::error::LlbError;
use super::state::{InputList, Output, State, Vertex};

/// A user or group, by number or by name (looked up in the base state's
/// `/etc/passwd` or `/etc/group`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserRef {
    /// A numeric id.
    Id(u32),
    /// A name, looked up when the op runs.
    Name(String),
}

/// The owner a file action gives what it creates (`--chown`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chown {
    /// The user; `None` is root.
    pub user: Option<UserRef>,
    /// The group; `None` is the user's primary group (0 for a numeric user).
    pub group: Option<UserRef>,
}

/// How [`FileBuilder::mkdir`] makes its directory.
#[derive(Clone, Debug, Default)]
pub struct MkdirOptions {
    /// Create missing parents too (`mkdir -p`); without it they must exist.
    pub make_parents: bool,
    /// Owner of what is created; `None` is root.
    pub owner: Option<Chown>,
    /// Nanoseconds since the epoch.
    pub timestamp: Option<i64>,
}

/// How [`FileBuilder::mkfile`] makes its file.
#[derive(Clone, Debug, Default)]
pub struct MkfileOptions {
    /// Owner of the file; `None` is root.
    pub owner: Option<Chown>,
    /// Modification time, nanoseconds since the epoch; `None` is when the op runs.
    pub timestamp: Option<i64>,
}

/// How [`FileBuilder::rm`] removes its path.
#[derive(Clone, Debug, Default)]
pub struct RmOptions {
    /// A missing path is not an error.
    pub allow_not_found: bool,
    /// The path may hold wildcards; every match is removed.
    pub allow_wildcard: bool,
}

/// How [`FileBuilder::symlink`] makes its link.
#[derive(Clone, Debug, Default)]
pub struct SymlinkOptions {
    /// Owner of the link itself; `None` is root.
    pub owner: Option<Chown>,
    /// The link's modification time, nanoseconds since the epoch.
    pub timestamp: Option<i64>,
}

/// Permissions given to copied files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyMode {
    /// Permission bits for every copied entry (`--chmod=755`).
    Octal(u32),
    /// chmod syntax such as `u+x` (needs a BuildKit newer than v0.8).
    Symbolic(String),
}

/// How [`FileBuilder::copy`] copies (the flags of `COPY` and `ADD`).
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// Owner of everything copied; `None` keeps the sources' owners.
    pub owner: Option<Chown>,
    /// Permissions of everything copied; `None` keeps the sources' modes.
    pub mode: Option<CopyMode>,
    /// A symlink named by the source itself is followed (those inside a tree are kept).
    pub follow_symlinks: bool,
    /// A source directory's contents are copied, not the directory itself (`COPY dir/ dest`).
    pub copy_dir_contents_only: bool,
    /// Unpack archives instead of copying them (Dockerfile `ADD`).
    pub attempt_unpack: bool,
    /// Missing parents of the destination are created.
    pub create_dest_path: bool,
    /// The source may hold wildcards.
    pub allow_wildcard: bool,
    /// A wildcard matching nothing is not an error.
    pub allow_empty_wildcard: bool,
    /// Modification time of everything copied, nanoseconds since the epoch
    /// (SOURCE_DATE_EPOCH); `None` keeps the sources' times.
    pub timestamp: Option<i64>,
    /// Only paths below the source matching one of these are copied (`COPY --parents`).
    pub include_patterns: Vec<String>,
    /// Paths below the source matching these are not copied (`COPY --exclude`).
    pub exclude_patterns: Vec<String>,
    /// Paths that must exist in the source, or the copy fails (`COPY --parents` of a
    /// path without wildcards).
    pub required_paths: Vec<String>,
    /// An existing destination path is replaced even when its type differs.
    pub always_replace_existing_dest_paths: bool,
}

/// The actions of one file op, each applied to the result of the previous
/// one, the first to `base`. Paths are used as given: make them absolute.
#[derive(Clone, Debug)]
pub struct FileBuilder {
    base: State,
    actions: Vec<Action>,
    constraints: Constraints,
}

#[derive(Clone, Debug)]
enum Action {
    Mkdir {
        path: String,
        mode: u32,
        opts: MkdirOptions,
    },
    Mkfile {
        path: String,
        mode: u32,
        data: Vec<u8>,
        opts: MkfileOptions,
    },
    Rm {
        path: String,
        opts: RmOptions,
    },
    Symlink {
        oldpath: String,
        newpath: String,
        opts: SymlinkOptions,
    },
    Copy {
        from: State,
        src: String,
        dest: String,
        opts: Box<CopyOptions>,
    },
}

impl FileBuilder {
    /// A file op applying its actions to `base`.
    pub fn new(base: State) -> Self {
        FileBuilder {
            base,
            actions: Vec::new(),
            constraints: Constraints::default(),
        }
    }

    /// The op's platform, progress name and source locations.
    pub fn constraints(mut self, constraints: Constraints) -> Self {
        self.constraints = constraints;
        self
    }

    /// `mode` keeps only the permission bits (0o777), as BuildKit does.
    pub fn mkdir(mut self, path: impl Into<String>, mode: u32, opts: MkdirOptions) -> Self {
        self.actions.push(Action::Mkdir {
            path: path.into(),
            mode,
            opts,
        });
        self
    }

    /// `mode` keeps only the permission bits (0o777), as BuildKit does.
    pub fn mkfile(
        mut self,
        path: impl Into<String>,
        mode: u32,
        data: impl Into<Vec<u8>>,
        opts: MkfileOptions,
    ) -> Self {
        self.actions.push(Action::Mkfile {
            path: path.into(),
            mode,
            data: data.into(),
            opts,
        });
        self
    }

    /// Removes `path` (recursively).
    pub fn rm(mut self, path: impl Into<String>, opts: RmOptions) -> Self {
        self.actions.push(Action::Rm {
            path: path.into(),
            opts,
        });
        self
    }

    /// Creates `newpath` pointing at `oldpath`.
    pub fn symlink(
        mut self,
        oldpath: impl Into<String>,
        newpath: impl Into<String>,
        opts: SymlinkOptions,
    ) -> Self {
        self.actions.push(Action::Symlink {
            oldpath: oldpath.into(),
            newpath: newpath.into(),
            opts,
        });
        self
    }

    /// Copies `src` of `from` to `dest`.
    pub fn copy(
        mut self,
        from: &State,
        src: impl Into<String>,
        dest: impl Into<String>,
        opts: CopyOptions,
    ) -> Self {
        self.actions.push(Action::Copy {
            from: from.clone(),
            src: src.into(),
            dest: dest.into(),
            opts: Box::new(opts),
        });
        self
    }
}

/// The state after all of `builder`'s actions.
pub fn file(builder: FileBuilder) -> Result<State, LlbError> {
    let FileBuilder {
        base,
        actions,
        constraints,
    } = builder;
    if actions.is_empty() {
        return Err(LlbError::NoFileActions);
    }
    let mut inputs = InputList::default();
    let base_index = inputs.add(&base);
    let mut needs = vec![caps::FILE_BASE];
    let last = actions.len() - 1;

    // Secondary inputs become op inputs as they are met, so the input count,
    // and with it the numbering of action results, is only known at the end.
    let mut pending = Vec::with_capacity(actions.len());
    for action in actions {
        let secondary = match &action {
            Action::Copy { from, .. } => inputs.add(from),
            _ => -1,
        };
        pending.push((action, secondary));
    }
    let input_count = inputs.len();

    let mut pb_actions = Vec::with_capacity(pending.len());
    for (i, (action, secondary)) in pending.into_iter().enumerate() {
        // Action i reads the base, or the result of action i-1, numbered after the op inputs.
        let input = if i == 0 {
            base_index
        } else {
            input_count + i as i64 - 1
        };
        let owner = |chown: &Option<Chown>| chown.as_ref().map(|c| chown_opt(c, base_index));
        let body = match action {
            Action::Mkdir { path, mode, opts } => {
                pb::file_action::Action::Mkdir(pb::FileActionMkDir {
                    path,
                    mode: (mode & 0o777) as i32,
                    make_parents: opts.make_parents,
                    owner: owner(&opts.owner),
                    timestamp: opts.timestamp.unwrap_or(-1),
                })
            }
            Action::Mkfile {
                path,
                mode,
                data,
                opts,
            } => pb::file_action::Action::Mkfile(pb::FileActionMkFile {
                path,
                mode: (mode & 0o777) as i32,
                data,
                owner: owner(&opts.owner),
                timestamp: opts.timestamp.unwrap_or(-1),
            }),
            Action::Rm { path, opts } => pb::file_action::Action::Rm(pb::FileActionRm {
                path,
                allow_not_found: opts.allow_not_found,
                allow_wildcard: opts.allow_wildcard,
            }),
            Action::Symlink {
                oldpath,
                newpath,
                opts,
            } => {
                needs.push(caps::FILE_SYMLINK_CREATE);
                pb::file_action::Action::Symlink(pb::FileActionSymlink {
                    oldpath,
                    newpath,
                    owner: owner(&opts.owner),
                    timestamp: opts.timestamp.unwrap_or(-1),
                })
            }
            Action::Copy {
                src, dest, opts, ..
            } => {
                pb::file_action::Action::Copy(copy_action(src, dest, *opts, base_index, &mut needs))
            }
        };
        pb_actions.push(pb::FileAction {
            input,
            secondary_input: secondary,
            output: if i == last { 0 } else { -1 },
            action: Some(body),
        });
    }

    let op = pb::op::Op::File(pb::FileOp {
        actions: pb_actions,
    });
    let vertex = Vertex::new(inputs.into_outputs(), op, &constraints, &needs, false);
    Ok(State::from_output(Output::new(vertex, 0)))
}

fn copy_action(
    src: String,
    dest: String,
    opts: CopyOptions,
    base_index: i64,
    needs: &mut Vec<&'static str>,
) -> pb::FileActionCopy {
    if !opts.include_patterns.is_empty() || !opts.exclude_patterns.is_empty() {
        needs.push(caps::FILE_COPY_INCLUDE_EXCLUDE_PATTERNS);
    }
    if !opts.required_paths.is_empty() {
        needs.push(caps::FILE_COPY_REQUIRED_PATHS);
    }
    if opts.always_replace_existing_dest_paths {
        needs.push(caps::FILE_COPY_ALWAYS_REPLACE_EXISTING_DEST_PATHS);
    }
    let (mode, mode_str) = match opts.mode {
        None => (-1, String::new()),
        Some(CopyMode::Octal(mode)) => (mode as i32, String::new()),
        // As BuildKit's llb writes it: the mode is unset (so created parents stay 0755) and
        // the string says what to apply to each copied entry.
        Some(CopyMode::Symbolic(s)) => {
            needs.push(caps::FILE_COPY_MODE_STRING_FORMAT);
            (-1, s)
        }
    };
    pb::FileActionCopy {
        src,
        dest,
        owner: opts.owner.as_ref().map(|c| chown_opt(c, base_index)),
        mode,
        follow_symlink: opts.follow_symlinks,
        dir_copy_contents: opts.copy_dir_contents_only,
        attempt_unpack_docker_compatibility: opts.attempt_unpack,
        create_dest_path: opts.create_dest_path,
        allow_wildcard: opts.allow_wildcard,
        allow_empty_wildcard: opts.allow_empty_wildcard,
        timestamp: opts.timestamp.unwrap_or(-1),
        include_patterns: opts.include_patterns,
        exclude_patterns: opts.exclude_patterns,
        always_replace_existing_dest_paths: opts.always_replace_existing_dest_paths,
        mode_str,
        required_paths: opts.required_paths,
    }
}

/// Names are resolved against the base state (`base_index`, -1 for scratch).
fn chown_opt(chown: &Chown, base_index: i64) -> pb::ChownOpt {
    let user = |u: &UserRef| pb::UserOpt {
        user: Some(match u {
            UserRef::Id(id) => pb::user_opt::User::ById(*id),
            UserRef::Name(name) => pb::user_opt::User::ByName(pb::NamedUserOpt {
                name: name.clone(),
                input: base_index,
            }),
        }),
    };
    pb::ChownOpt {
        user: chown.user.as_ref().map(user),
        group: chown.group.as_ref().map(user),
    }
}
