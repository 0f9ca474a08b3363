//! bud's configuration file, `bud.toml`:
//!
//! ```toml
//! [gc]
//! enabled = true
//! keep_storage = "20GB"     # or a share of the state root's filesystem: "10%"
//! keep_duration = "48h"
//!
//! [registry."localhost:5000"]
//! insecure = true
//!
//! [worker]
//! runtime = "runc"
//! fallback = "docker"       # where the embedded solver cannot run; or "never"
//!
//! [network]                 # registries and ADD URLs; see `timeouts`
//! connect_timeout = "30s"
//! response_timeout = "60s"
//! idle_timeout = "60s"
//!
//! [[builder.nodes]]         # native nodes, as `docker buildx create --append --node`
//! name = "arm"
//! addr = "tcp://arm-builder:1234"
//! platforms = ["linux/arm64"]
//!
//! [cdi]                     # RUN --device; BuildKit's `[cdi] specDirs`
//! spec_dirs = ["/etc/cdi", "/var/run/cdi", "/etc/buildkit/cdi"]
//! ```
//!
//! It is read from `$BUD_CONFIG` if set, else `/etc/bud/bud.toml` for root and
//! `$XDG_CONFIG_HOME/bud/bud.toml` (`~/.config/bud/bud.toml`) otherwise. A missing default
//! file means the defaults; a missing `$BUD_CONFIG` file is an error, since it was asked for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::timeouts::Timeouts;

/// Why `bud.toml` cannot be used, or the cache's share of its filesystem not worked out.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists (or `$BUD_CONFIG` names it) but cannot be read.
    #[error("cannot read the configuration file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// Not TOML, or not bud's keys. toml's message is kept as text: it spans lines, with
    /// the offending line quoted, and ends in a newline the one-line chain must not carry.
    #[error("configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, trimmed.
        message: String,
    },
    /// `statvfs` failed on the state root, so a percentage has nothing to apply to.
    #[error("cannot find the size of the filesystem of {path}")]
    Statfs {
        /// The directory asked about.
        path: PathBuf,
        /// Why `statvfs` failed.
        source: std::io::Error,
    },
}

/// The whole file; every section and key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[gc]`: what builds keep of the cache.
    pub gc: GcConfig,
    /// Per-registry settings, keyed by `host[:port]`.
    #[serde(rename = "registry")]
    pub registries: BTreeMap<String, RegistryConfig>,
    /// `[worker]`: the OCI runtime and where a build goes when the embedded solver cannot
    /// run.
    pub worker: WorkerConfig,
    /// `[network]`: timeouts of registry and daemon exchanges.
    pub network: NetworkConfig,
    /// `[builder]`: BuildKit nodes to build on instead.
    pub builder: BuilderConfig,
    /// `[cdi]`: where `RUN --device`'s CDI specs are.
    pub cdi: CdiConfig,
}

/// `[builder]`: the BuildKit daemons bud builds on instead of its embedded solver, as a
/// buildx builder of several nodes: each platform is built on the node that lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuilderConfig {
    /// `[[builder.nodes]]`, in order: a platform no node lists goes to the first that lists
    /// none.
    pub nodes: Vec<NodeConfig>,
}

/// One node: a BuildKit endpoint in `--addr`'s forms and the platforms it builds (none
/// listed: every platform no other node lists).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Shown in progress and errors; `node<index>` when unset.
    pub name: Option<String>,
    /// The daemon, as `--addr` takes it (`tcp://`, `unix://`, `docker-container://`, …).
    pub addr: String,
    /// The platforms it builds (`linux/arm64`), as `--platform` writes them.
    pub platforms: Vec<String>,
}

impl NodeConfig {
    /// Its name, or `node<index>` as buildx names nodes given none.
    pub fn name_at(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("node{index}"))
    }
}

/// Where the CDI specs naming `RUN --device` devices are read from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CdiConfig {
    /// Unset: BuildKit's defaults ([`crate::executor::cdi::SPEC_DIRS`]).
    pub spec_dirs: Option<Vec<PathBuf>>,
}

/// `[gc]`: the garbage collection run after every embedded build.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// Whether builds collect garbage when they end.
    pub enabled: bool,
    /// How much the cache may keep; unset means min(10% of the filesystem, 20 GB).
    #[serde(deserialize_with = "de_limit")]
    pub keep_storage: Option<StorageLimit>,
    /// Records used more recently than this are kept whatever their size.
    #[serde(deserialize_with = "de_duration")]
    pub keep_duration: Option<Duration>,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            keep_storage: None,
            keep_duration: None,
        }
    }
}

/// `[registry."host:port"]`: how to talk to one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Talk plain HTTP, or HTTPS without verifying the certificate.
    pub insecure: bool,
}

/// `[worker]`: what runs the embedded solver's steps, and what happens when it cannot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// The OCI runtime: a name looked up in $PATH, or a path.
    pub runtime: Option<String>,
    /// Where a build goes when the embedded solver cannot run here.
    pub fallback: Fallback,
}

/// `[worker] fallback`: `"docker"` (the default) builds with the BuildKit of the Docker
/// the docker CLI would use; `"never"` fails with the reason instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Build with Docker's BuildKit, saying so in one line.
    #[default]
    Docker,
    /// Fail with the reason the embedded solver cannot run.
    Never,
}

/// Bounds on network exchanges; unset ones keep [`Timeouts`]' defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// TCP connect and TLS handshake.
    #[serde(deserialize_with = "de_timeout")]
    pub connect_timeout: Option<Duration>,
    /// From a request sent to the first byte of its answer.
    #[serde(deserialize_with = "de_timeout")]
    pub response_timeout: Option<Duration>,
    /// A transfer under way with no byte moving either way.
    #[serde(deserialize_with = "de_timeout")]
    pub idle_timeout: Option<Duration>,
}

impl NetworkConfig {
    /// The settings over [`Timeouts`]' defaults.
    pub fn timeouts(&self) -> Timeouts {
        let default = Timeouts::default();
        Timeouts {
            connect: self.connect_timeout.unwrap_or(default.connect),
            response: self.response_timeout.unwrap_or(default.response),
            idle: self.idle_timeout.unwrap_or(default.idle),
        }
    }
}

/// A cap on the cache's size: bytes, or a percentage of the filesystem it lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageLimit {
    /// A number of bytes.
    Bytes(u64),
    /// A share of the filesystem, 0 to 100.
    Percent(u8),
}

/// The default cap: 10% of the filesystem, at most this.
pub const DEFAULT_KEEP_BYTES_MAX: u64 = 20 << 30;
const DEFAULT_KEEP_PERCENT: u8 = 10;

impl StorageLimit {
    /// `10GB`, `512MiB`, a byte count or `N%`. A leaf parser: its message is text for
    /// serde's `custom` error (which takes only text) and names the value itself.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            let p: u8 = p
                .trim()
                .parse()
                .ok()
                .filter(|p| *p <= 100)
                .ok_or_else(|| format!("{s:?}: a percentage must be 0% to 100%"))?;
            return Ok(StorageLimit::Percent(p));
        }
        crate::cli::parse_size(t).map(StorageLimit::Bytes)
    }

    /// The limit in bytes for a cache kept on a filesystem of `fs_size` bytes.
    pub fn bytes(self, fs_size: u64) -> u64 {
        match self {
            StorageLimit::Bytes(b) => b,
            StorageLimit::Percent(p) => fs_size / 100 * u64::from(p),
        }
    }
}

impl GcConfig {
    /// The cap in bytes for a cache under `root`, resolving a percentage (or the default)
    /// against the size of its filesystem.
    pub fn keep_bytes(&self, root: &Path) -> Result<u64, ConfigError> {
        match self.keep_storage {
            Some(StorageLimit::Bytes(b)) => Ok(b),
            Some(limit) => Ok(limit.bytes(filesystem_size(root)?)),
            None => {
                let share =
                    StorageLimit::Percent(DEFAULT_KEEP_PERCENT).bytes(filesystem_size(root)?);
                Ok(share.min(DEFAULT_KEEP_BYTES_MAX))
            }
        }
    }
}

/// Total bytes of the filesystem holding `path`.
pub fn filesystem_size(path: &Path) -> Result<u64, ConfigError> {
    let st = rustix::fs::statvfs(path).map_err(|e| ConfigError::Statfs {
        path: path.to_owned(),
        source: e.into(),
    })?;
    Ok(st.f_blocks.saturating_mul(st.f_frsize))
}

impl Config {
    /// Where the configuration is read from: `$BUD_CONFIG`, else the default for this user.
    /// `None` when there is neither `$BUD_CONFIG` nor a home directory.
    pub fn path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("BUD_CONFIG").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        Self::default_path()
    }

    /// `/etc/bud/bud.toml` for root, the XDG config directory otherwise.
    pub fn default_path() -> Option<PathBuf> {
        if crate::privilege::invoked_as_root() {
            return Some(PathBuf::from("/etc/bud/bud.toml"));
        }
        if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir).join("bud/bud.toml"));
        }
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
        Some(PathBuf::from(home).join(".config/bud/bud.toml"))
    }

    /// Reads the configuration from [`Config::path`].
    pub fn load() -> Result<Self, ConfigError> {
        let explicit = std::env::var_os("BUD_CONFIG").is_some_and(|p| !p.is_empty());
        match Self::path() {
            Some(path) => Self::load_from(&path, explicit),
            None => Ok(Self::default()),
        }
    }

    /// Reads `path`; a missing file is the defaults unless `required`.
    pub fn load_from(path: &Path, required: bool) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses the text of a configuration file; `path` is only named in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// The settings for a registry host, if any.
    pub fn registry(&self, host: &str) -> Option<&RegistryConfig> {
        self.registries.get(host)
    }
}

/// A duration as Go writes them (`48h`, `1h30m`, `90s`, `500ms`), plus days (`7d`); a bare
/// number is seconds. A leaf parser: its message names the value and goes to serde's
/// `custom` error or into `gc/filter.rs`'s message for the filter it is part of.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let form = "expected a duration such as 48h, 1h30m, 7d or 3600";
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("{form}, got {s:?}"));
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{form}: {s:?} lacks a unit"))?;
        let (num, after) = rest.split_at(num_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let value: f64 = num.parse().map_err(|_| format!("{form}, got {s:?}"))?;
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(format!("{form}: unknown unit {unit:?} in {s:?}")),
        };
        total +=
            Duration::try_from_secs_f64(value * scale).map_err(|_| format!("{form}, got {s:?}"))?;
        rest = next;
    }
    Ok(total)
}

fn de_limit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<StorageLimit>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) => Ok(Some(StorageLimit::Bytes(n))),
        Raw::Text(s) => StorageLimit::parse(&s)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Seconds(n) => Ok(Some(Duration::from_secs(n))),
        Raw::Text(s) => parse_duration(&s)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// A duration that must be more than zero: a zero timeout would fail every exchange.
fn de_timeout<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match de_duration(d)? {
        Some(t) if t.is_zero() => Err(serde::de::Error::custom("a timeout must be more than zero")),
        t => Ok(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("bud.toml"))
    }

    #[test]
    fn full_file() {
        let c = parse(
            r#"
            [gc]
            enabled = false
            keep_storage = "10%"
            keep_duration = "48h"

            [registry."localhost:5000"]
            insecure = true

            [worker]
            runtime = "/usr/bin/crun"
            "#,
        )
        .unwrap();
        assert!(!c.gc.enabled);
        assert_eq!(c.gc.keep_storage, Some(StorageLimit::Percent(10)));
        assert_eq!(c.gc.keep_duration, Some(Duration::from_secs(48 * 3600)));
        assert!(c.registry("localhost:5000").unwrap().insecure);
        assert!(c.registry("docker.io").is_none());
        assert_eq!(c.worker.runtime.as_deref(), Some("/usr/bin/crun"));
    }

    #[test]
    fn builder_nodes() {
        let c = parse(
            r#"
            [[builder.nodes]]
            name = "arm"
            addr = "tcp://arm-builder:1234"
            platforms = ["linux/arm64"]

            [[builder.nodes]]
            addr = "docker://"
            "#,
        )
        .unwrap();
        assert_eq!(
            c.builder.nodes,
            [
                NodeConfig {
                    name: Some("arm".into()),
                    addr: "tcp://arm-builder:1234".into(),
                    platforms: vec!["linux/arm64".into()],
                },
                NodeConfig {
                    name: None,
                    addr: "docker://".into(),
                    platforms: Vec::new(),
                },
            ]
        );
        let err = parse("[[builder.nodes]]\naddr = \"docker://\"\nplatform = \"linux/arm64\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `platform`"), "{err}");
    }

    #[test]
    fn network_timeouts() {
        let c = parse("[network]\nresponse_timeout = \"2s\"\nidle_timeout = 5").unwrap();
        let t = c.network.timeouts();
        assert_eq!(t.response, Duration::from_secs(2));
        assert_eq!(t.idle, Duration::from_secs(5));
        assert_eq!(t.connect, Timeouts::default().connect);
        let err = parse("[network]\nconnect_timeout = \"0s\"").unwrap_err();
        assert!(err.to_string().contains("more than zero"), "{err}");
    }

    #[test]
    fn cdi_spec_dirs() {
        let c = parse("[cdi]\nspec_dirs = [\"/opt/cdi\", \"/run/cdi\"]").unwrap();
        assert_eq!(
            c.cdi.spec_dirs,
            Some(vec![PathBuf::from("/opt/cdi"), PathBuf::from("/run/cdi")])
        );
        assert_eq!(parse("").unwrap().cdi.spec_dirs, None);
        assert!(parse("[cdi]\nspecdirs = []").is_err());
    }

    #[test]
    fn empty_file_is_the_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, Config::default());
        assert!(c.gc.enabled);
    }

    #[test]
    fn sizes_and_numbers() {
        let c = parse("[gc]\nkeep_storage = \"20GB\"\nkeep_duration = 60").unwrap();
        assert_eq!(c.gc.keep_storage, Some(StorageLimit::Bytes(20 << 30)));
        assert_eq!(c.gc.keep_duration, Some(Duration::from_secs(60)));
        let c = parse("[gc]\nkeep_storage = 1000").unwrap();
        assert_eq!(c.gc.keep_storage, Some(StorageLimit::Bytes(1000)));
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        for (text, needle) in [
            ("[gc]\nkeep_storage = \"lots\"", "keep_storage"),
            ("[gc]\nkeep_storage = \"150%\"", "0% to 100%"),
            ("[gc]\nkeep_duration = \"2 weeks\"", "keep_duration"),
            ("[gc]\nkeep = 1", "unknown field"),
            ("[workers]\n", "unknown field"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains("bud.toml"), "{err}");
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.toml");
        assert_eq!(Config::load_from(&path, false).unwrap(), Config::default());
        assert!(matches!(
            Config::load_from(&path, true),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("48h"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        for bad in ["", "h", "5x", "1h-2m", "3.5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_resolve_against_the_filesystem() {
        assert_eq!(StorageLimit::Percent(10).bytes(1000), 100);
        assert_eq!(StorageLimit::Bytes(5).bytes(1000), 5);
        let dir = tempfile::tempdir().unwrap();
        let keep = GcConfig::default().keep_bytes(dir.path()).unwrap();
        let fs = filesystem_size(dir.path()).unwrap();
        assert_eq!(keep, (fs / 100 * 10).min(DEFAULT_KEEP_BYTES_MAX));
    }
}
