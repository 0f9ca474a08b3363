//! FileOp: copy, mkdir, mkfile, rm and symlink actions, run in Rust on a writable overlay of
//! the first action's input. The frontend chains actions linearly (each action works on
//! the previous one's result), which is the only shape this runs.

use bud_frontend::dockerignore::PatternMatcher;
use bud_proto::pb;

use crate::fileop::symbolic_mode::SymbolicMode;
use crate::fileop::{self, CopyAction, CopyFilter, Owner, wildcard};
use crate::userdb::{ChownSpec, IdSpec, resolve_owner};

use super::key::output_key;
use super::snapshots::{Ref, View};
use super::{SolveError, Solver, graph::Vertex};

pub(super) async fn run(
    solver: &Solver,
    vertex: &Vertex,
    file: &pb::FileOp,
    inputs: &[Ref],
    views: SourceViews,
    key: &str,
) -> Result<Vec<Ref>, SolveError> {
    let n = inputs.len() as i64;
    let first = file
        .actions
        .first()
        .ok_or_else(|| SolveError::InvalidDefinition("file op without actions".into()))?;
    for (i, a) in file.actions.iter().enumerate().skip(1) {
        if a.input != n + i as i64 - 1 {
            return Err(SolveError::Unsupported(
                "file actions that do not build on the previous action".into(),
            ));
        }
    }
    let base = input_ref(inputs, first.input)?;
    let snapshots = solver.snapshots.clone();
    let file = file.clone();
    let inputs = inputs.to_vec();
    let (ws, base) = tokio::task::spawn_blocking(move || -> Result<_, SolveError> {
        let ws = snapshots.workspace()?;
        if writes_only_upper(&snapshots, &base, &file)? {
            let upper = ws.upper();
            for action in &file.actions {
                apply(&snapshots, action, &inputs, &views, &upper)?;
            }
        } else {
            let root = ws.subdir("rootfs")?;
            let guard = snapshots.mount_writable(&base, &ws, &root)?;
            for action in &file.actions {
                apply(&snapshots, action, &inputs, &views, &root)?;
            }
            guard.finish()?;
        }
        Ok((ws, base))
    })
    .await
    .map_err(SolveError::failed("file operation"))??;
    let r = solver.commit_step(vertex, ws, &base, &output_key(key, 0))?;
    Ok(vec![r])
}

/// Whether the actions can run on the workspace's upper directory itself, leaving in it
/// exactly what they would leave through the overlay, with no mount, no overlay per-file work
/// and no cross-device copies:
/// - on scratch, where the "overlay" is a bind mount of the upper directory anyway;
/// - for a single copy whose destination's top-level directory is in none of the lower
///   layers (`COPY . /app` into a new directory). Everything the copy writes is then below a
///   directory that overlayfs would create as a plain upper directory (no lower entry, so no
///   whiteout to turn it opaque, no copy-up). The copy resolves its destination before it
///   writes anything, and that path only crosses `/` and the new directory, so symlinks in
///   the lowers cannot matter. Left to the overlay are what could look at the lowers after
///   writing (several actions, wildcard sources, archive unpacking, which follows links it
///   has just extracted) and what reads them (`--chown` by name, from /etc/passwd).
fn writes_only_upper(
    snapshots: &super::Snapshots,
    base: &Ref,
    file: &pb::FileOp,
) -> Result<bool, SolveError> {
    let rec = match base {
        Ref::Scratch => return Ok(true),
        Ref::Snapshot(rec) => rec,
        Ref::Context(_) => return Ok(false),
        Ref::Lazy(_) => return Err(SolveError::NotBroughtIn),
    };
    let [action] = file.actions.as_slice() else {
        return Ok(false);
    };
    let Some(pb::file_action::Action::Copy(c)) = &action.action else {
        return Ok(false);
    };
    let by_name = |u: Option<&pb::UserOpt>| {
        matches!(
            u.and_then(|u| u.user.as_ref()),
            Some(pb::user_opt::User::ByName(_))
        )
    };
    if c.attempt_unpack_docker_compatibility
        || (c.allow_wildcard && wildcard::contains_wildcards(&c.src))
        || c.owner
            .as_ref()
            .is_some_and(|o| by_name(o.user.as_ref()) || by_name(o.group.as_ref()))
    {
        return Ok(false);
    }
    let dest = fileop::safe::clean_abs(&c.dest);
    let top = dest.trim_start_matches('/').split('/').next().unwrap_or("");
    if top.is_empty() {
        return Ok(false);
    }
    for lower in snapshots.lowers(&rec.id)? {
        match std::fs::symlink_metadata(lower.join(top)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Present (a whiteout included), or unknown: the overlay decides.
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// Views of inputs made before the step (by input index), which copies read instead of the
/// inputs' own: the top layer of an imported result ([`super::top_layer`]).
pub(super) type SourceViews = std::collections::BTreeMap<usize, std::sync::Arc<View>>;

fn input_ref(inputs: &[Ref], index: i64) -> Result<Ref, SolveError> {
    if index < 0 {
        return Ok(Ref::Scratch);
    }
    inputs.get(index as usize).cloned().ok_or_else(|| {
        SolveError::Unsupported("a file action reading another action's result".into())
    })
}

fn apply(
    snapshots: &super::Snapshots,
    action: &pb::FileAction,
    inputs: &[Ref],
    views: &SourceViews,
    root: &std::path::Path,
) -> Result<(), SolveError> {
    let Some(kind) = &action.action else {
        return Err(SolveError::InvalidDefinition(
            "file action without a kind".into(),
        ));
    };
    match kind {
        pb::file_action::Action::Copy(c) => {
            let src_ref = input_ref(inputs, action.secondary_input)?;
            let made = usize::try_from(action.secondary_input)
                .ok()
                .and_then(|i| views.get(&i));
            match made {
                Some(view) => copy(view, &src_ref, c, root),
                None => copy(&snapshots.view(&src_ref)?, &src_ref, c, root),
            }
        }
        pb::file_action::Action::Mkdir(m) => Ok(fileop::mkdir(
            root,
            &fileop::MkdirAction {
                path: m.path.clone(),
                mode: mode_or(m.mode, 0o755),
                make_parents: m.make_parents,
                owner: owner(m.owner.as_ref(), root)?,
                timestamp: timestamp(m.timestamp),
            },
        )?),
        pb::file_action::Action::Mkfile(m) => Ok(fileop::mkfile(
            root,
            &fileop::MkfileAction {
                path: m.path.clone(),
                mode: mode_or(m.mode, 0o644),
                data: m.data.clone(),
                owner: owner(m.owner.as_ref(), root)?,
                timestamp: timestamp(m.timestamp),
            },
        )?),
        pb::file_action::Action::Rm(r) => Ok(fileop::rm(
            root,
            &fileop::RmAction {
                path: r.path.clone(),
                allow_not_found: r.allow_not_found,
                allow_wildcard: r.allow_wildcard,
            },
        )?),
        pb::file_action::Action::Symlink(s) => Ok(fileop::symlink(
            root,
            &fileop::SymlinkAction {
                oldpath: s.oldpath.clone(),
                newpath: s.newpath.clone(),
                owner: owner(s.owner.as_ref(), root)?,
                timestamp: timestamp(s.timestamp),
            },
        )?),
    }
}

fn copy(
    view: &View,
    src_ref: &Ref,
    c: &pb::FileActionCopy,
    root: &std::path::Path,
) -> Result<(), SolveError> {
    // BuildKit parses the symbolic mode here, at solve time, not in the frontend.
    let symbolic_mode = if c.mode_str.is_empty() {
        None
    } else {
        Some(SymbolicMode::parse(&c.mode_str)?)
    };
    let excludes = if c.exclude_patterns.is_empty() {
        None
    } else {
        Some(PatternMatcher::new(&c.exclude_patterns).map_err(SolveError::failed("--exclude"))?)
    };
    let includes = if c.include_patterns.is_empty() {
        None
    } else {
        Some(
            PatternMatcher::new(&c.include_patterns)
                .map_err(SolveError::failed("include patterns"))?,
        )
    };
    let base = CopyAction {
        src: c.src.clone(),
        dest: c.dest.clone(),
        owner: owner(c.owner.as_ref(), root)?,
        source_owner: None,
        mode: (c.mode >= 0).then_some(c.mode as u32),
        symbolic_mode,
        follow_symlinks: c.follow_symlink,
        dir_copy_contents: c.dir_copy_contents,
        attempt_unpack_docker_compatibility: c.attempt_unpack_docker_compatibility,
        create_dest_path: c.create_dest_path,
        allow_wildcard: c.allow_wildcard,
        allow_empty_wildcard: c.allow_empty_wildcard,
        timestamp: timestamp(c.timestamp),
        always_replace_existing_dest_paths: c.always_replace_existing_dest_paths,
        filter: CopyFilter::default(),
    };
    // Paths the copy must find (COPY --parents of a literal path): one missing fails the
    // step, as BuildKit's content checksum of them does, although the include patterns
    // alone would copy nothing and succeed.
    for required in &c.required_paths {
        let ignored = match src_ref {
            Ref::Context(ctx) => ctx.excluded(required.trim_start_matches('/')),
            _ => false,
        };
        let found = !ignored
            && fileop::safe::resolve(&view.path, required)
                .is_ok_and(|path| path.symlink_metadata().is_ok());
        if !found {
            return Err(SolveError::File(fileop::Error::SourceNotFound {
                path: required.clone(),
            }));
        }
    }
    let user_exclude = |rel: &str| excludes.as_ref().is_some_and(|m| m.matches(rel));
    let user_include = |rel: &str| includes.as_ref().is_none_or(|m| m.matches(rel));
    let descend = excludes.as_ref().is_some_and(PatternMatcher::exclusions);

    let Ref::Context(ctx) = src_ref else {
        let filter = CopyFilter {
            include: includes
                .as_ref()
                .map(|_| &user_include as &dyn Fn(&str) -> bool),
            exclude: excludes
                .as_ref()
                .map(|_| &user_exclude as &dyn Fn(&str) -> bool),
            descend_excluded_dirs: descend,
        };
        return Ok(fileop::copy(
            &view.path,
            root,
            &CopyAction { filter, ..base },
        )?);
    };

    // A context is read from the client's directory itself, so .dockerignore applies here:
    // expand the sources, drop the excluded ones, and filter below each by its full path.
    let sources = if c.allow_wildcard {
        wildcard::resolve(&view.path, &c.src, c.follow_symlink)?
    } else {
        vec![c.src.clone()]
    };
    let sources: Vec<String> = sources
        .into_iter()
        .filter(|s| {
            let rel = s.trim_start_matches('/');
            // An excluded directory still comes along with what an exception (`!`) keeps
            // beneath it, as BuildKit sends the parents of every file it sends.
            rel.is_empty()
                || !ctx.excluded(rel)
                || ctx
                    .snapshot
                    .entries
                    .iter()
                    .any(|e| e.path.strip_prefix(rel).is_some_and(|r| r.starts_with('/')))
        })
        .collect();
    if sources.is_empty() {
        // Only a pattern may match nothing. A literal path that .dockerignore excludes was
        // never part of the context BuildKit sees, so it is missing like any other.
        if c.allow_empty_wildcard && c.allow_wildcard && wildcard::contains_wildcards(&c.src) {
            return Ok(());
        }
        return Err(SolveError::File(fileop::Error::SourceNotFound {
            path: c.src.clone(),
        }));
    }
    let ctx_descend = ctx
        .excludes
        .as_ref()
        .is_some_and(PatternMatcher::exclusions);
    for src in sources {
        let prefix = src.trim_matches('/').to_string();
        let exclude = |rel: &str| {
            let full = if prefix.is_empty() {
                rel.to_string()
            } else {
                format!("{prefix}/{rel}")
            };
            ctx.excluded(&full) || user_exclude(rel)
        };
        // Each match goes to the destination as written, as BuildKit copies them: files
        // matched to a path without a trailing `/` overwrite each other there.
        let dest = c.dest.clone();
        let action = CopyAction {
            src: src.clone(),
            dest,
            allow_wildcard: false,
            filter: CopyFilter {
                include: includes
                    .as_ref()
                    .map(|_| &user_include as &dyn Fn(&str) -> bool),
                exclude: Some(&exclude),
                descend_excluded_dirs: descend || ctx_descend,
            },
            // The docker CLI and buildx send a context with every owner reset to root, so a
            // file copied without --chown is root's whoever owns it on the client.
            source_owner: Some(Owner { uid: 0, gid: 0 }),
            ..base.clone()
        };
        fileop::copy(&view.path, root, &action)?;
    }
    Ok(())
}

fn mode_or(mode: i32, default: u32) -> u32 {
    if mode >= 0 { mode as u32 } else { default }
}

fn timestamp(t: i64) -> Option<i64> {
    (t >= 0).then_some(t)
}

/// Resolves a chown option: ids pass through; names are looked up in the destination's
/// /etc/passwd and /etc/group, as the Dockerfile frontend points them at the stage itself.
fn owner(opt: Option<&pb::ChownOpt>, root: &std::path::Path) -> Result<Option<Owner>, SolveError> {
    let Some(opt) = opt else { return Ok(None) };
    let id_spec = |u: Option<&pb::UserOpt>| -> Option<IdSpec> {
        match u?.user.as_ref()? {
            pb::user_opt::User::ById(id) => Some(IdSpec::Id(*id)),
            pb::user_opt::User::ByName(n) => Some(IdSpec::Name(n.name.clone())),
        }
    };
    let spec = ChownSpec {
        user: id_spec(opt.user.as_ref()),
        group: id_spec(opt.group.as_ref()),
    };
    if spec.user.is_none() && spec.group.is_none() {
        return Ok(None);
    }
    Ok(Some(resolve_owner(&spec, root, root)?))
}
