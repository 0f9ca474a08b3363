//! `--filter` for `bud du` and `bud prune`: `type=`, `id=`, `description~=`, `until=`.

use std::time::Duration;

use crate::cache::meta::{SnapshotKind, SnapshotRecord};

/// All clauses must match (as BuildKit combines repeated filters).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordFilter {
    clauses: Vec<Clause>,
}

#[derive(Debug, Clone, PartialEq)]
enum Clause {
    Id {
        negate: bool,
        value: String,
    },
    Kind {
        negate: bool,
        kind: SnapshotKind,
    },
    Description {
        op: TextOp,
        negate: bool,
        value: String,
    },
    /// Last used longer ago than this.
    Until(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TextOp {
    Equals,
    Contains,
}

const FORMS: &str = "accepted filters: type=layer|image-layer|cache-mount|content-blob|orphan, id=ID, description~=TEXT, until=DURATION";

/// A `--filter` value bud does not take; the message lists the accepted forms.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// Not `KEY=VALUE`.
    #[error("invalid filter {spec:?}: expected KEY=VALUE; {FORMS}")]
    Syntax {
        /// The value given.
        spec: String,
    },
    /// A key (or operator for it) bud does not filter by.
    #[error("unsupported filter {spec:?}; {FORMS}")]
    Unsupported {
        /// The value given.
        spec: String,
    },
    /// `type=` with no kind of record bud knows.
    #[error(
        "filter {spec:?}: unknown type {kind:?}; accepted: layer, image-layer, cache-mount, \
         content-blob, orphan"
    )]
    Kind {
        /// The value given.
        spec: String,
        /// The type named.
        kind: String,
    },
    /// `until=` with no duration.
    #[error("filter {spec:?}: {reason}")]
    Duration {
        /// The value given.
        spec: String,
        /// Why it is no duration (`config::parse_duration`, a leaf parser).
        reason: String,
    },
}

impl RecordFilter {
    /// Parses `--filter` values, each `KEY=VALUE` (or `==`), `KEY!=VALUE` (`description~=TEXT`
    /// for a substring).
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Self, FilterError> {
        let clauses = specs
            .iter()
            .map(|s| parse_clause(s.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { clauses })
    }

    /// No clause: every record matches.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Whether `record` matches at `now` (seconds since the epoch).
    pub fn matches(&self, record: &SnapshotRecord, now: i64) -> bool {
        self.clauses.iter().all(|c| match c {
            Clause::Id { negate, value } => (record.id == *value) != *negate,
            Clause::Kind { negate, kind } => (record.kind == *kind) != *negate,
            Clause::Description { op, negate, value } => {
                let hit = match op {
                    TextOp::Equals => record.description == *value,
                    TextOp::Contains => record.description.contains(value.as_str()),
                };
                hit != *negate
            }
            Clause::Until(age) => {
                let age = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
                record.last_used < now.saturating_sub(age)
            }
        })
    }
}

fn parse_clause(spec: &str) -> Result<Clause, FilterError> {
    // Longest operators first: "!=" before "=", "~=" before "=".
    let (key, op, value) = ["==", "!=", "~=", "="]
        .iter()
        .filter_map(|op| spec.split_once(op).map(|(k, v)| (k, *op, v)))
        .min_by_key(|(k, _, _)| k.len())
        .ok_or_else(|| FilterError::Syntax {
            spec: spec.to_owned(),
        })?;
    let key = key.trim();
    let negate = op == "!=";
    match key {
        "id" if op != "~=" => Ok(Clause::Id {
            negate,
            value: value.to_string(),
        }),
        "type" if op != "~=" => Ok(Clause::Kind {
            negate,
            kind: parse_kind(value).ok_or_else(|| FilterError::Kind {
                spec: spec.to_owned(),
                kind: value.to_owned(),
            })?,
        }),
        "description" => Ok(Clause::Description {
            op: if op == "~=" {
                TextOp::Contains
            } else {
                TextOp::Equals
            },
            negate,
            value: value.to_string(),
        }),
        "until" if op == "=" || op == "==" => crate::config::parse_duration(value)
            .map(Clause::Until)
            .map_err(|reason| FilterError::Duration {
                spec: spec.to_owned(),
                reason,
            }),
        _ => Err(FilterError::Unsupported {
            spec: spec.to_owned(),
        }),
    }
}

/// bud's kinds, and the names BuildKit gives the matching record types.
fn parse_kind(s: &str) -> Option<SnapshotKind> {
    match s {
        "layer" | "regular" => Some(SnapshotKind::Layer),
        "image-layer" => Some(SnapshotKind::ImageLayer),
        "cache-mount" | "exec.cachemount" => Some(SnapshotKind::CacheMount),
        "content-blob" => Some(SnapshotKind::ContentBlob),
        "orphan" => Some(SnapshotKind::Orphan),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: SnapshotKind, description: &str, last_used: i64) -> SnapshotRecord {
        SnapshotRecord {
            id: "x".into(),
            parent: None,
            kind,
            size: 0,
            diff_id: None,
            description: description.into(),
            created: 0,
            last_used,
            usage_count: 0,
            tar_format: 0,
        }
    }

    #[test]
    fn clauses_combine() {
        let f = RecordFilter::parse(&["type=layer", "description~=make", "until=1h"]).unwrap();
        let now = 10_000;
        assert!(f.matches(&rec(SnapshotKind::Layer, "RUN make all", 100), now));
        assert!(!f.matches(&rec(SnapshotKind::Layer, "RUN make all", 9_000), now));
        assert!(!f.matches(&rec(SnapshotKind::CacheMount, "RUN make", 100), now));
        assert!(!f.matches(&rec(SnapshotKind::Layer, "COPY .", 100), now));
        let f = RecordFilter::parse(&["type!=cache-mount", "id==x"]).unwrap();
        assert!(f.matches(&rec(SnapshotKind::ImageLayer, "", 0), now));
        assert!(RecordFilter::default().matches(&rec(SnapshotKind::Layer, "", 0), now));
    }

    #[test]
    fn errors_list_the_accepted_filters() {
        for bad in [
            "type=blob",
            "color=red",
            "until=soon",
            "until~=1h",
            "nonsense",
        ] {
            let e = RecordFilter::parse(&[bad]).unwrap_err().to_string();
            assert!(
                e.contains("accepted") || e.contains("expected"),
                "{bad}: {e}"
            );
        }
    }
}
