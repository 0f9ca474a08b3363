//! BuildKit's cache config (`application/vnd.buildkit.cacheconfig.v0`,
//! `cache/remotecache/v1/types/spec.go`): a list of layers, each a blob with the index of
//! its parent layer, and a list of records, each a cache key digest with links to the
//! records of its inputs and results (the top layer of a chain, and when it was made).

use serde::{Deserialize, Serialize};

/// The config blob's media type in a cache manifest.
pub const MEDIA_TYPE: &str = "application/vnd.buildkit.cacheconfig.v0";

/// Descriptor annotations BuildKit writes on (and reads from) cache layer blobs: the diff
/// ID.
pub const ANNOTATION_UNCOMPRESSED: &str = "containerd.io/uncompressed";
/// When the layer was made (RFC 3339), which becomes the image's history time on a hit.
pub const ANNOTATION_CREATED_AT: &str = "buildkit/createdat";

/// Larger cache configs are refused, as BuildKit's importer refuses them (1 MiB).
pub const MAX_CONFIG_SIZE: u64 = 1 << 20;

/// The whole config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// Every layer blob, a parent before its children.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub layers: Vec<CacheLayer>,
    /// Every cache record, linked to each other by index.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub records: Vec<CacheRecord>,
}

/// One layer: a blob of the manifest on top of its parent layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheLayer {
    /// The blob's digest.
    pub blob: String,
    /// -1 for a bottom layer. Go's `omitempty` leaves out 0, which therefore is the default.
    #[serde(rename = "parent", default, skip_serializing_if = "is_zero")]
    pub parent_index: i64,
    /// The blob's diff ID, media type, size and time, when the config carries them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<LayerAnnotations>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
/// What BuildKit's config says of a layer blob, so an importer need not fetch it to know.
pub struct LayerAnnotations {
    /// The blob's media type (its compression).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// The uncompressed tar's digest.
    #[serde(rename = "diffID", default, skip_serializing_if = "String::is_empty")]
    pub diff_id: String,
    /// The blob's size in bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: i64,
    /// When the layer was made (RFC 3339).
    #[serde(default)]
    pub created_at: String,
}

/// One cache key and what it resolves to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// Results as the top layer of a chain (`layers` in BuildKit's JSON).
    #[serde(
        rename = "layers",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub results: Vec<CacheResult>,
    /// Results as whole chains of layers (`chains`), which bud reads and never writes.
    #[serde(
        rename = "chains",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub chained_results: Vec<ChainedResult>,
    /// The record's digest: the cache key it is found under.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// Per input of the op, the records that input may come from.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub inputs: Vec<Vec<CacheInput>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
/// A result: the layer index of the top of its chain.
pub struct CacheResult {
    /// Index into [`CacheConfig::layers`].
    #[serde(rename = "layer")]
    pub layer_index: i64,
    /// When the result was made (RFC 3339).
    #[serde(default)]
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
/// A result given as its whole chain of layers, bottom first.
pub struct ChainedResult {
    /// Indexes into [`CacheConfig::layers`].
    #[serde(rename = "layers", default, deserialize_with = "null_as_default")]
    pub layer_indexes: Vec<i64>,
    /// When the result was made (RFC 3339).
    #[serde(default)]
    pub created_at: String,
}

/// A link from a record to the record of one of its inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheInput {
    /// What of the input the op reads (a path digest for a context), empty for all of it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Index into [`CacheConfig::records`].
    #[serde(rename = "link")]
    pub link_index: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Go reads a JSON `null` as an empty slice: so does bud.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Why a cache config is refused: nothing in one is trusted until checked.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON of a cache config.
    #[error("not a cache config")]
    Json(#[from] serde_json::Error),
    /// A layer's parent index is not that of an earlier layer.
    #[error("layer {0} has parent {1}, which is not an earlier layer")]
    BadParent(usize, i64),
    /// A record's result names a layer index out of range.
    #[error("record {record} refers to layer {layer}, which does not exist")]
    BadLayer {
        /// The record's index.
        record: usize,
        /// The layer index it names.
        layer: i64,
    },
    /// A record's input links to a record index out of range.
    #[error("record {record} links to record {link}, which does not exist")]
    BadLink {
        /// The record's index.
        record: usize,
        /// The record index it links to.
        link: i64,
    },
    /// A blob or record digest that is not `sha256:` and 64 hex digits.
    #[error("{what} {value:?} is not a sha256 digest")]
    BadDigest {
        /// What carries it: a layer blob, a record.
        what: &'static str,
        /// The value found.
        value: String,
    },
    /// A layer's chain of parents never reaches a bottom layer.
    #[error("layer {0} has a loop in its parents")]
    Loop(usize),
}

impl CacheConfig {
    /// Parses and checks a config: every index in range, every chain ending, every digest a
    /// digest. Nothing in a cache config is trusted until this passed.
    pub fn parse(bytes: &[u8]) -> Result<CacheConfig, ConfigError> {
        let config: CacheConfig = serde_json::from_slice(bytes)?;
        config.check()?;
        Ok(config)
    }

    /// The checks of [`CacheConfig::parse`], for a config made otherwise (an inline cache's).
    pub fn check(&self) -> Result<(), ConfigError> {
        let layers = self.layers.len() as i64;
        for (i, l) in self.layers.iter().enumerate() {
            check_digest("layer blob", &l.blob)?;
            if l.parent_index < -1 || l.parent_index >= layers || l.parent_index == i as i64 {
                return Err(ConfigError::BadParent(i, l.parent_index));
            }
        }
        for i in 0..self.layers.len() {
            self.chain(i as i64).ok_or(ConfigError::Loop(i))?;
        }
        for (i, r) in self.records.iter().enumerate() {
            check_digest("record digest", &r.digest)?;
            let in_range = |layer: i64| (0..layers).contains(&layer);
            for layer in r.results.iter().map(|r| r.layer_index).chain(
                r.chained_results
                    .iter()
                    .flat_map(|c| c.layer_indexes.clone()),
            ) {
                if !in_range(layer) {
                    return Err(ConfigError::BadLayer { record: i, layer });
                }
            }
            for link in r.inputs.iter().flatten().map(|i| i.link_index) {
                if !(0..self.records.len() as i64).contains(&link) {
                    return Err(ConfigError::BadLink { record: i, link });
                }
            }
        }
        Ok(())
    }

    /// The layers of the chain whose top is `top`, bottom first; None if it loops or
    /// leaves the list.
    pub fn chain(&self, top: i64) -> Option<Vec<&CacheLayer>> {
        let mut chain = Vec::new();
        let mut at = top;
        while at != -1 {
            let layer = self.layers.get(usize::try_from(at).ok()?)?;
            chain.push(layer);
            if chain.len() > self.layers.len() {
                return None;
            }
            at = layer.parent_index;
        }
        chain.reverse();
        Some(chain)
    }
}

fn check_digest(what: &'static str, value: &str) -> Result<(), ConfigError> {
    crate::content::Digest::parse(value)
        .map(drop)
        .map_err(|_| ConfigError::BadDigest {
            what,
            value: value.to_string(),
        })
}

/// Seconds since the epoch of an RFC 3339 time as Go writes it (`2024-01-02T03:04:05.6Z`,
/// or with a `+hh:mm` offset); None if it is not one.
pub fn parse_time(text: &str) -> Option<i64> {
    let (date, rest) = text.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let (clock, offset) = match rest.find(['Z', '+', '-']) {
        Some(at) => rest.split_at(at),
        None => return None,
    };
    let clock = clock.split('.').next()?;
    let mut c = clock.splitn(3, ':');
    let (h, m, s): (i64, i64, i64) = (
        c.next()?.parse().ok()?,
        c.next()?.parse().ok()?,
        c.next()?.parse().ok()?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let offset = match offset {
        "Z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (oh, om) = o[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s - offset)
}

/// Howard Hinnant's days_from_civil, the inverse of `timefmt::civil_from_days`.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn reads_what_buildkit_writes() {
        // The shape of a BuildKit v0.12 registry cache config, parent 0 left out by Go.
        let json = format!(
            r#"{{"layers":[{{"blob":"{D}","parent":-1}},{{"blob":"{D}"}}],
                "records":[{{"digest":"{D}"}},
                           {{"layers":[{{"layer":1,"createdAt":"2024-01-02T03:04:05.123456789Z"}}],
                             "digest":"{D}","inputs":[[{{"selector":"sha256:x","link":0}}]]}}]}}"#
        );
        let c = CacheConfig::parse(json.as_bytes()).unwrap();
        assert_eq!(c.layers[1].parent_index, 0);
        assert_eq!(c.chain(1).unwrap().len(), 2);
        assert_eq!(c.records[1].inputs[0][0].link_index, 0);
        let back = serde_json::to_string(&c).unwrap();
        assert!(back.contains(r#""parent":-1"#) && !back.contains(r#""parent":0"#));
    }

    #[test]
    fn refuses_what_cannot_be_followed() {
        let looping = format!(r#"{{"layers":[{{"blob":"{D}","parent":1}},{{"blob":"{D}"}}]}}"#);
        assert!(matches!(
            CacheConfig::parse(looping.as_bytes()),
            Err(ConfigError::Loop(_))
        ));
        let bad_layer = format!(r#"{{"records":[{{"digest":"{D}","layers":[{{"layer":3}}]}}]}}"#);
        assert!(CacheConfig::parse(bad_layer.as_bytes()).is_err());
        let bad_link = format!(r#"{{"records":[{{"digest":"{D}","inputs":[[{{"link":7}}]]}}]}}"#);
        assert!(CacheConfig::parse(bad_link.as_bytes()).is_err());
        let bad_digest = r#"{"layers":[{"blob":"../../etc/passwd","parent":-1}]}"#;
        assert!(CacheConfig::parse(bad_digest.as_bytes()).is_err());
        assert!(CacheConfig::parse(b"{\"layers\":[{").is_err());
        // Go writes and reads a nil slice as null.
        let nulls = format!(
            r#"{{"layers":null,"records":[{{"digest":"{D}","layers":null,"inputs":null}}]}}"#
        );
        assert_eq!(
            CacheConfig::parse(nulls.as_bytes()).unwrap().records.len(),
            1
        );
    }

    #[test]
    fn times_round_trip_through_go_format() {
        for secs in [0, 1_700_000_000, 951_782_400 /* 2000-02-29 */] {
            let text = crate::timefmt::rfc3339(secs, 5);
            assert_eq!(parse_time(&text), Some(secs), "{text}");
        }
        assert_eq!(
            parse_time("2024-01-02T03:04:05+01:00"),
            parse_time("2024-01-02T02:04:05Z")
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}
