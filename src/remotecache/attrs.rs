//! The attributes a `--cache-to` or `--cache-from` takes, per cache type, and which solver
//! honours each: one table for the embedded solver and a BuildKit daemon (`--addr`), both
//! checked by [`check`] before the build.
//!
//! The table is BuildKit 0.32's: its cache exporters and importers (`cache/remotecache/local`,
//! `registry`, `inline`, `gha`, `s3`, `azblob`, the compression attributes of
//! `util/compression`), the `mode` and `ignore-error` its controller reads for every export,
//! and what its client reads itself (`dest`, `src`, `tag`, `digest` of a local cache).
//! BuildKit passes over an attribute it does not know and over a `mode` or `ignore-error` it
//! cannot read (`mode=maxx` exports as `min`); bud refuses both, naming them. Left out, so
//! refused: BuildKit 0.31's client's `reset=true` of a local cache, which bud does not do.

use std::fmt;

use crate::cli::CacheOption;

use super::CacheOptionError;

/// Which solver a cache option is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    /// bud's own.
    Embedded,
    /// A BuildKit daemon, with `--addr`.
    Daemon,
}

impl fmt::Display for Solver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Solver::Embedded => "the embedded solver",
            Solver::Daemon => "bud with --addr",
        })
    }
}

/// `--cache-to` or `--cache-from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `--cache-to`.
    Export,
    /// `--cache-from`.
    Import,
}

/// Who honours an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    /// Both solvers.
    Both,
    /// A BuildKit daemon only (a cache type the embedded solver does not have).
    Daemon,
    /// bud's own extension, which a daemon cannot do.
    Embedded,
}

impl By {
    fn honours(self, solver: Solver) -> bool {
        matches!(
            (self, solver),
            (By::Both, _) | (By::Daemon, Solver::Daemon) | (By::Embedded, Solver::Embedded)
        )
    }
}

/// One cache type's attributes; an export also takes [`EVERY_EXPORT`]'s.
struct CacheType {
    kind: &'static str,
    /// Whether the embedded solver has the type at all (it refuses the others by type).
    embedded: bool,
    /// Taken by an export and an import alike.
    shared: &'static [(&'static str, By)],
    export: &'static [(&'static str, By)],
    import: &'static [(&'static str, By)],
}

/// What BuildKit's controller reads of every cache export.
const EVERY_EXPORT: &[(&str, By)] = &[("mode", By::Both), ("ignore-error", By::Both)];

/// `util/compression`'s, read by the local and registry exporters.
const COMPRESSION: [(&str, By); 3] = [
    ("compression", By::Both),
    ("compression-level", By::Both),
    ("force-compression", By::Both),
];

const TYPES: &[CacheType] = &[
    CacheType {
        kind: "local",
        embedded: true,
        shared: &[("tag", By::Both)],
        export: &[
            ("dest", By::Both),
            COMPRESSION[0],
            COMPRESSION[1],
            COMPRESSION[2],
            ("oci-mediatypes", By::Both),
            ("image-manifest", By::Both),
            ("cache-mounts", By::Embedded),
        ],
        import: &[("src", By::Both), ("digest", By::Both)],
    },
    CacheType {
        kind: "registry",
        embedded: true,
        shared: &[("ref", By::Both), ("registry.insecure", By::Both)],
        export: &[
            COMPRESSION[0],
            COMPRESSION[1],
            COMPRESSION[2],
            ("oci-mediatypes", By::Both),
            ("image-manifest", By::Both),
            ("cache-mounts", By::Embedded),
        ],
        import: &[],
    },
    CacheType {
        kind: "inline",
        embedded: true,
        shared: &[],
        export: &[],
        import: &[],
    },
    CacheType {
        kind: "gha",
        embedded: false,
        shared: &[
            ("scope", By::Daemon),
            ("timeout", By::Daemon),
            ("token", By::Daemon),
            ("url", By::Daemon),
            ("url_v2", By::Daemon),
            ("repository", By::Daemon),
            ("ghtoken", By::Daemon),
            ("version", By::Daemon),
        ],
        export: &[],
        import: &[],
    },
    CacheType {
        kind: "s3",
        embedded: false,
        shared: &[
            ("bucket", By::Daemon),
            ("region", By::Daemon),
            ("prefix", By::Daemon),
            ("manifests_prefix", By::Daemon),
            ("blobs_prefix", By::Daemon),
            ("name", By::Daemon),
            ("touch_refresh", By::Daemon),
            ("endpoint_url", By::Daemon),
            ("access_key_id", By::Daemon),
            ("secret_access_key", By::Daemon),
            ("session_token", By::Daemon),
            ("use_path_style", By::Daemon),
            ("upload_parallelism", By::Daemon),
            ("disable_accept_encoding", By::Daemon),
            ("retry_mode", By::Daemon),
            ("retry_max_attempts", By::Daemon),
        ],
        export: &[],
        import: &[],
    },
    CacheType {
        kind: "azblob",
        embedded: false,
        shared: &[
            ("secret_access_key", By::Daemon),
            ("account_name", By::Daemon),
            ("account_url", By::Daemon),
            ("prefix", By::Daemon),
            ("manifests_prefix", By::Daemon),
            ("blobs_prefix", By::Daemon),
            ("name", By::Daemon),
            ("container", By::Daemon),
        ],
        export: &[],
        import: &[],
    },
];

impl CacheType {
    fn attrs(&self, direction: Direction) -> impl Iterator<Item = &(&'static str, By)> {
        let own = match direction {
            Direction::Export => EVERY_EXPORT.iter().chain(self.export),
            Direction::Import => [].iter().chain(self.import),
        };
        self.shared.iter().chain(own)
    }
}

/// The attributes `solver` honours for `kind` in `direction`: none for a type it does not
/// have.
pub fn honoured(kind: &str, direction: Direction, solver: Solver) -> Vec<&'static str> {
    let Some(t) = TYPES.iter().find(|t| t.kind == kind) else {
        return Vec::new();
    };
    if solver == Solver::Embedded && !t.embedded {
        return Vec::new();
    }
    t.attrs(direction)
        .filter(|(_, by)| by.honours(solver))
        .map(|(name, _)| *name)
        .collect()
}

/// Refuses, by name, an attribute of `opt` that `solver` would not honour, and a `mode`,
/// `ignore-error` or `cache-mounts` whose value it would pass over. A type the embedded
/// solver does not have is left to its own refusal (of the type, not of each attribute).
pub fn check(
    opt: &CacheOption,
    direction: Direction,
    solver: Solver,
) -> Result<(), CacheOptionError> {
    let Some(t) = TYPES.iter().find(|t| t.kind == opt.kind) else {
        return Ok(());
    };
    if solver == Solver::Embedded && !t.embedded {
        return Ok(());
    }
    for (key, value) in &opt.attrs {
        match t.attrs(direction).find(|(name, _)| name == key) {
            Some((_, by)) if by.honours(solver) => {}
            Some((_, By::Embedded)) => {
                // `false` asks for what the daemon does anyway.
                if super::parse_bool(key, value)? {
                    return Err(CacheOptionError::Extension {
                        key: key.clone(),
                        value: value.clone(),
                    });
                }
            }
            _ => {
                return Err(CacheOptionError::Attribute {
                    key: key.clone(),
                    kind: opt.kind.clone(),
                    solver,
                    takes: honoured(&opt.kind, direction, solver).join(", "),
                });
            }
        }
    }
    if direction == Direction::Export {
        match opt.attrs.get("mode").map(String::as_str) {
            None | Some("min") => {}
            Some("max") if opt.kind == "inline" => return Err(CacheOptionError::InlineMax),
            Some("max") => {}
            Some(other) => return Err(CacheOptionError::Mode(other.to_owned())),
        }
        if let Some(value) = opt.attrs.get("ignore-error") {
            super::parse_bool("ignore-error", value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::opt;
    use super::*;

    /// What BuildKit passes over, either solver refuses by name; what BuildKit takes, a
    /// daemon is sent.
    #[test]
    fn buildkit_s_attributes_go_to_a_daemon_and_others_are_refused_by_name() {
        let daemon = |o: &CacheOption, d| check(o, d, Solver::Daemon);
        for (kind, attrs) in [
            (
                "local",
                &[("dest", "d"), ("mode", "max"), ("compression", "estargz")][..],
            ),
            ("registry", &[("ref", "r"), ("registry.insecure", "true")]),
            ("inline", &[("mode", "min")]),
            ("gha", &[("scope", "s"), ("url_v2", "u"), ("mode", "max")]),
            ("s3", &[("bucket", "b"), ("retry_max_attempts", "3")]),
            ("azblob", &[("account_url", "u"), ("container", "c")]),
            ("local", &[("dest", "d"), ("cache-mounts", "false")]),
        ] {
            assert!(
                daemon(&opt(kind, attrs), Direction::Export).is_ok(),
                "{kind}"
            );
        }
        assert!(
            daemon(
                &opt("local", &[("src", "d"), ("tag", "t")]),
                Direction::Import
            )
            .is_ok()
        );
        assert!(daemon(&opt("gha", &[("scope", "s")]), Direction::Import).is_ok());

        for (kind, key, value, direction) in [
            ("local", "reset", "true", Direction::Export),
            ("local", "dst", "d", Direction::Export),
            ("registry", "store", "true", Direction::Export),
            ("gha", "compression", "zstd", Direction::Export),
            ("local", "mode", "max", Direction::Import),
            ("registry", "mode", "max", Direction::Import),
            ("s3", "mode", "max", Direction::Import),
        ] {
            let err = daemon(&opt(kind, &[(key, value)]), direction)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!(
                    "{key}: not supported for type={kind} by bud with --addr (it takes "
                )),
                "{err}"
            );
        }
        for (attrs, message) in [
            (&[("mode", "maxx")][..], "mode=maxx: not min or max"),
            (
                &[("ignore-error", "yes")],
                "ignore-error=yes: not a boolean",
            ),
            (&[("cache-mounts", "true")], "cache-mounts=true: bud's own"),
        ] {
            let err = daemon(&opt("local", attrs), Direction::Export)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(message), "{err}");
        }
        let err = daemon(&opt("inline", &[("mode", "max")]), Direction::Export).unwrap_err();
        assert!(matches!(err, CacheOptionError::InlineMax), "{err}");
    }

    /// The embedded solver takes its extension, refuses by type what only a daemon has.
    #[test]
    fn the_embedded_solver_takes_its_extension_and_leaves_daemon_types_to_their_refusal() {
        let embedded = |o: &CacheOption| check(o, Direction::Export, Solver::Embedded);
        assert!(embedded(&opt("registry", &[("ref", "r"), ("cache-mounts", "true")])).is_ok());
        assert!(embedded(&opt("gha", &[("scope", "s")])).is_ok());
        let err = embedded(&opt("local", &[("reset", "true")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("reset: not supported for type=local by the embedded solver"),
            "{err}"
        );
        assert!(!honoured("local", Direction::Export, Solver::Daemon).contains(&"cache-mounts"));
        assert!(honoured("local", Direction::Export, Solver::Embedded).contains(&"cache-mounts"));
    }
}
