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
//!
//! Each type and attribute carries the first BuildKit release that reads it (`since`, the
//! minor of 0.x, from BuildKit's history: `cache/remotecache/*`, `util/compression`, the
//! controller): a daemon whose BuildKit is older passes over it, so [`unread_by`] names it
//! for `--addr` to refuse before the solve. What bud's client reads itself (a local cache's
//! `dest`, `src`, `tag`) is `since` 0.

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

/// One attribute: its name, who honours it, and the first BuildKit that reads it (0.`since`).
#[derive(Clone, Copy)]
struct Attr {
    name: &'static str,
    by: By,
    since: u64,
}

const fn attr(name: &'static str, by: By, since: u64) -> Attr {
    Attr { name, by, since }
}

/// One cache type's attributes; an export also takes [`EVERY_EXPORT`]'s.
struct CacheType {
    kind: &'static str,
    /// The first BuildKit (0.`since`) with the type's exporter and importer.
    since: u64,
    /// Whether the embedded solver has the type at all (it refuses the others by type).
    embedded: bool,
    /// Taken by an export and an import alike.
    shared: &'static [Attr],
    export: &'static [Attr],
    import: &'static [Attr],
}

/// What BuildKit's controller reads of every cache export.
const EVERY_EXPORT: &[Attr] = &[
    attr("mode", By::Both, 5),
    attr("ignore-error", By::Both, 11),
];

/// `util/compression`'s, read by the local and registry exporters since 0.10.
const COMPRESSION: [Attr; 3] = [
    attr("compression", By::Both, 10),
    attr("compression-level", By::Both, 10),
    attr("force-compression", By::Both, 10),
];

const TYPES: &[CacheType] = &[
    CacheType {
        kind: "local",
        since: 5,
        embedded: true,
        // `tag`, `dest` and `src` are read by bud's client, which hands the daemon a
        // directory of the session and a manifest's `digest`.
        shared: &[attr("tag", By::Both, 0)],
        export: &[
            attr("dest", By::Both, 0),
            COMPRESSION[0],
            COMPRESSION[1],
            COMPRESSION[2],
            attr("oci-mediatypes", By::Both, 8),
            attr("image-manifest", By::Both, 12),
            attr("cache-mounts", By::Embedded, 0),
        ],
        import: &[attr("src", By::Both, 0), attr("digest", By::Both, 5)],
    },
    CacheType {
        kind: "registry",
        since: 5,
        embedded: true,
        shared: &[
            attr("ref", By::Both, 5),
            attr("registry.insecure", By::Both, 12),
        ],
        export: &[
            COMPRESSION[0],
            COMPRESSION[1],
            COMPRESSION[2],
            attr("oci-mediatypes", By::Both, 8),
            attr("image-manifest", By::Both, 12),
            attr("cache-mounts", By::Embedded, 0),
        ],
        import: &[],
    },
    CacheType {
        kind: "inline",
        since: 5,
        embedded: true,
        shared: &[],
        export: &[],
        import: &[],
    },
    CacheType {
        kind: "gha",
        since: 9,
        embedded: false,
        shared: &[
            attr("scope", By::Daemon, 9),
            attr("timeout", By::Daemon, 13),
            attr("token", By::Daemon, 9),
            attr("url", By::Daemon, 9),
            attr("url_v2", By::Daemon, 20),
            attr("repository", By::Daemon, 14),
            attr("ghtoken", By::Daemon, 14),
            attr("version", By::Daemon, 20),
        ],
        export: &[],
        import: &[],
    },
    CacheType {
        kind: "s3",
        since: 11,
        embedded: false,
        shared: &[
            attr("bucket", By::Daemon, 11),
            attr("region", By::Daemon, 11),
            attr("prefix", By::Daemon, 11),
            attr("manifests_prefix", By::Daemon, 11),
            attr("blobs_prefix", By::Daemon, 11),
            attr("name", By::Daemon, 11),
            attr("touch_refresh", By::Daemon, 11),
            attr("endpoint_url", By::Daemon, 11),
            attr("access_key_id", By::Daemon, 11),
            attr("secret_access_key", By::Daemon, 11),
            attr("session_token", By::Daemon, 11),
            attr("use_path_style", By::Daemon, 11),
            attr("upload_parallelism", By::Daemon, 16),
            attr("disable_accept_encoding", By::Daemon, 30),
            attr("retry_mode", By::Daemon, 30),
            attr("retry_max_attempts", By::Daemon, 30),
        ],
        export: &[],
        import: &[],
    },
    CacheType {
        kind: "azblob",
        since: 11,
        embedded: false,
        shared: &[
            attr("secret_access_key", By::Daemon, 11),
            attr("account_name", By::Daemon, 12),
            attr("account_url", By::Daemon, 11),
            attr("prefix", By::Daemon, 11),
            attr("manifests_prefix", By::Daemon, 11),
            attr("blobs_prefix", By::Daemon, 11),
            attr("name", By::Daemon, 11),
            attr("container", By::Daemon, 11),
        ],
        export: &[],
        import: &[],
    },
];

impl CacheType {
    fn attrs(&self, direction: Direction) -> impl Iterator<Item = &Attr> {
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
        .filter(|a| a.by.honours(solver))
        .map(|a| a.name)
        .collect()
}

/// What a daemon passes over: the type (`type=gha`) or attribute of an entry, and the first
/// BuildKit (0.`since`) that reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unread {
    /// `type=KIND` or the attribute's name.
    pub what: String,
    /// The first BuildKit that reads it: 0.`since`.
    pub since: u64,
}

/// The first of `kind` and its attributes `keys` that a daemon whose BuildKit `reads(since)`
/// only from 0.`since` would pass over; `None` when it reads them all. Names the table does
/// not have are [`check`]'s to refuse.
pub fn unread_by<'k>(
    kind: &str,
    keys: impl IntoIterator<Item = &'k str>,
    direction: Direction,
    reads: impl Fn(u64) -> bool,
) -> Option<Unread> {
    let t = TYPES.iter().find(|t| t.kind == kind)?;
    if !reads(t.since) {
        return Some(Unread {
            what: format!("type={kind}"),
            since: t.since,
        });
    }
    keys.into_iter().find_map(|key| {
        let a = t.attrs(direction).find(|a| a.name == key)?;
        (!reads(a.since)).then(|| Unread {
            what: key.to_owned(),
            since: a.since,
        })
    })
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
        match t.attrs(direction).find(|a| a.name == key).map(|a| a.by) {
            Some(by) if by.honours(solver) => {}
            Some(By::Embedded) => {
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

    /// Docker 20.10's BuildKit (0.8) reads none of what came later; 0.12 reads
    /// `image-manifest` but not gha's `url_v2`; what bud's client reads, any daemon "reads".
    #[test]
    fn each_type_and_attribute_is_read_from_its_first_buildkit() {
        let unread = |kind: &str, keys: &[&str], direction, minor: u64| {
            unread_by(kind, keys.iter().copied(), direction, |since| {
                minor >= since
            })
            .map(|u| (u.what, u.since))
        };
        let export = Direction::Export;
        assert_eq!(
            unread("registry", &["ref", "image-manifest"], export, 8),
            Some(("image-manifest".to_owned(), 12))
        );
        assert_eq!(
            unread("registry", &["ref", "image-manifest"], export, 12),
            None
        );
        assert_eq!(
            unread(
                "registry",
                &["ref", "registry.insecure"],
                Direction::Import,
                8
            ),
            Some(("registry.insecure".to_owned(), 12))
        );
        for key in ["compression", "compression-level", "force-compression"] {
            assert_eq!(
                unread("local", &["dest", key], export, 9),
                Some((key.to_owned(), 10))
            );
        }
        assert_eq!(
            unread("inline", &["ignore-error"], export, 10),
            Some(("ignore-error".to_owned(), 11))
        );
        assert_eq!(
            unread("inline", &["mode", "ignore-error"], export, 11),
            None
        );
        assert_eq!(
            unread("local", &["src", "tag", "digest"], Direction::Import, 8),
            None
        );
        assert_eq!(
            unread("s3", &["bucket"], Direction::Import, 10),
            Some(("type=s3".to_owned(), 11))
        );
        assert_eq!(
            unread("gha", &["scope", "url_v2"], export, 8),
            Some(("type=gha".to_owned(), 9))
        );
        assert_eq!(
            unread("gha", &["scope", "url_v2"], export, 19),
            Some(("url_v2".to_owned(), 20))
        );
        assert_eq!(
            unread("azblob", &["account_name"], export, 11),
            Some(("account_name".to_owned(), 12))
        );
        assert_eq!(unread("nosuch", &["x"], export, 8), None);
    }
}
