//! Typed values of the build flags, parsed the way docker/cli and buildx parse them, with
//! errors that name the accepted forms (clap adds the flag's name).
//!
//! The parsers here (and the leaf parsers they call) return `Result<_, String>`: clap's
//! `value_parser` takes any displayable error and prints it after the flag's name, so a
//! typed error would add nothing a user sees; every other module boundary has typed errors.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::ValueEnum;

/// `--progress`: how the build reports what it does. The variants' docs are not shown as
/// help for the values (`help = None`), so that `--help` keeps listing them on one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// tty when stderr is a terminal, plain otherwise.
    #[value(help = None::<&str>)]
    Auto,
    /// buildx's live view, redrawn in place.
    #[value(help = None::<&str>)]
    Tty,
    /// BuildKit's line format (`#N ...`).
    #[value(help = None::<&str>)]
    Plain,
    /// One SolveStatus-shaped JSON object per line.
    #[value(help = None::<&str>)]
    Rawjson,
    /// No progress at all; a failure is still reported.
    #[value(help = None::<&str>)]
    Quiet,
}

/// `--build-arg KEY=VALUE`, or `--build-arg KEY` taking the value from the environment.
/// A bare key that the environment does not set has no value, and is dropped, as docker does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildArg {
    /// The variable's name.
    pub key: String,
    /// Its value; `None` when a bare key is not in the environment.
    pub value: Option<String>,
}

impl BuildArg {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        let (key, value) = match s.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (s, std::env::var(s).ok()),
        };
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(format!("expected KEY=VALUE or KEY, got {s:?}"));
        }
        Ok(Self {
            key: key.to_string(),
            value,
        })
    }
}

/// `--label KEY=VALUE` (a bare KEY gets an empty value, as buildx does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The label's key.
    pub key: String,
    /// Its value, empty for a bare key.
    pub value: String,
}

impl KeyValue {
    pub(super) fn parse_label(s: &str) -> Result<Self, String> {
        let (key, value) = s.split_once('=').unwrap_or((s, ""));
        if key.is_empty() {
            return Err(format!("expected KEY=VALUE, got {s:?}"));
        }
        Ok(Self {
            key: key.to_string(),
            value: value.to_string(),
        })
    }
}

/// `--add-host HOST:IP` (or HOST=IP, as buildx also accepts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddHost {
    /// The name `/etc/hosts` maps.
    pub host: String,
    /// An IPv4 or IPv6 address (brackets removed), or `host-gateway`, resolved before the
    /// graph is made.
    pub ip: String,
}

impl AddHost {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        let form = "expected HOST:IP or HOST=IP (IP may be host-gateway)";
        let (host, ip) = s
            .split_once('=')
            .or_else(|| s.split_once(':'))
            .ok_or_else(|| format!("{form}, got {s:?}"))?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || (ip != "host-gateway" && ip.parse::<IpAddr>().is_err()) {
            return Err(format!("{form}, got {s:?}"));
        }
        Ok(Self {
            host: host.to_string(),
            ip: ip.to_string(),
        })
    }
}

/// `--build-context NAME=VALUE`: a directory, a URL, `docker-image://REF` or
/// `oci-layout://DIR`; the value is read by `build/contexts.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildContext {
    /// The name a `FROM` or `COPY --from` uses (a stage's or image's name, or a new one).
    pub name: String,
    /// What it stands for, as given.
    pub value: String,
}

impl BuildContext {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((name, value)) if !name.is_empty() && !value.is_empty() => Ok(Self {
                name: name.to_string(),
                value: value.to_string(),
            }),
            _ => Err(format!(
                "expected NAME=PATH, NAME=URL or NAME=docker-image://REF, got {s:?}"
            )),
        }
    }
}

/// `--cache-from` / `--cache-to`: `type=TYPE,KEY=VALUE...`, or a bare image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOption {
    /// `type=`: `registry` for a bare reference. The types bud's own solver cannot use are
    /// refused by `remotecache` (they still go to a daemon with `--addr`).
    pub kind: String,
    /// Every other attribute (`ref`, `dest`, `src`, `mode`, ...), `type` removed.
    pub attrs: BTreeMap<String, String>,
}

impl CacheOption {
    /// `--cache-from`: a bare value is `type=registry,ref=VALUE`.
    pub(super) fn parse_from(s: &str) -> Result<Self, String> {
        Self::parse(s, &["registry", "local", "inline", "gha", "s3", "azblob"])
    }

    /// `--cache-to`: a bare value is `type=registry,ref=VALUE`.
    pub(super) fn parse_to(s: &str) -> Result<Self, String> {
        Self::parse(s, &["registry", "local", "inline", "gha", "s3", "azblob"])
    }

    fn parse(s: &str, kinds: &[&str]) -> Result<Self, String> {
        if !s.contains('=') {
            let mut attrs = BTreeMap::new();
            attrs.insert("ref".to_string(), s.to_string());
            return Ok(Self {
                kind: "registry".to_string(),
                attrs,
            });
        }
        let mut attrs = parse_csv_attrs(s)?;
        let kind = attrs
            .remove("type")
            .ok_or_else(|| format!("type is required in {s:?} (type={})", kinds.join("|")))?;
        if !kinds.contains(&kind.as_str()) {
            return Err(format!(
                "unknown cache type {kind:?}; accepted: {}",
                kinds.join(", ")
            ));
        }
        Ok(Self { kind, attrs })
    }
}

/// Where `-o/--output` sends the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// Load into Docker, or a `docker load` tarball with dest.
    Docker,
    /// An image, pushed when push=true.
    Image,
    /// An image pushed to a registry (image with push=true).
    Registry,
    /// An OCI image layout tarball.
    Oci,
    /// The result's filesystem as a tarball.
    Tar,
    /// The result's filesystem into a directory.
    Local,
    /// Build only, keep the cache.
    CacheOnly,
}

impl OutputKind {
    const ALL: &'static [(&'static str, OutputKind)] = &[
        ("docker", OutputKind::Docker),
        ("image", OutputKind::Image),
        ("registry", OutputKind::Registry),
        ("oci", OutputKind::Oci),
        ("tar", OutputKind::Tar),
        ("local", OutputKind::Local),
        ("cacheonly", OutputKind::CacheOnly),
    ];

    /// The attributes each type accepts; `annotation*` keys are accepted where images are made.
    fn accepted_attrs(self) -> &'static [&'static str] {
        const IMAGE: &[&str] = &[
            "name",
            "push",
            "push-by-digest",
            "insecure",
            "registry.insecure",
            "compression",
            "compression-level",
            "force-compression",
            "oci-mediatypes",
            "unpack",
            "store",
            "dangling-name-prefix",
            "name-canonical",
            "rewrite-timestamp",
        ];
        match self {
            OutputKind::Docker | OutputKind::Oci => &[
                "dest",
                "name",
                "tar",
                "compression",
                "compression-level",
                "force-compression",
                "oci-mediatypes",
                "context",
                "rewrite-timestamp",
            ],
            OutputKind::Image | OutputKind::Registry => IMAGE,
            OutputKind::Tar | OutputKind::Local => &["dest", "platform-split", "source-date-epoch"],
            OutputKind::CacheOnly => &[],
        }
    }

    fn takes_annotations(self) -> bool {
        matches!(
            self,
            OutputKind::Docker | OutputKind::Oci | OutputKind::Image | OutputKind::Registry
        )
    }

    /// As `type=` spells it.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// Output attributes bud parses but does not act on: each is refused unless its value is
/// what bud does anyway (the second field), never ignored.
pub(super) const UNHONOURED_ATTRS: &[(&str, Option<&str>, &str)] = &[
    (
        "push-by-digest",
        Some("false"),
        "bud pushes the image under its names",
    ),
    (
        "unpack",
        Some("false"),
        "there is no containerd snapshotter to unpack into",
    ),
    (
        "store",
        Some("true"),
        "an image not pushed is stored in Docker",
    ),
    (
        "dangling-name-prefix",
        None,
        "bud names images only as asked",
    ),
    ("name-canonical", None, "bud names images only as asked"),
    (
        "tar",
        Some("true"),
        "bud writes archives only, not layout directories",
    ),
    (
        "context",
        None,
        "bud loads into the Docker DOCKER_HOST or the current context names",
    ),
];

/// One `-o/--output` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// `type=` (`local` for a bare directory, `tar` for `-`).
    pub kind: OutputKind,
    /// Every other attribute, `type` removed, each checked to be one the type accepts.
    pub attrs: BTreeMap<String, String>,
}

impl Output {
    const FORMS: &'static str = "accepted forms: type=docker|image|registry|oci|tar|local|cacheonly[,KEY=VALUE...], \
         DIR (local directory) or - (tar on stdout)";

    /// `-o VALUE`, as buildx reads it: a CSV record of attributes, else a destination.
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err(format!("empty output; {}", Self::FORMS));
        }
        // buildx: a value with neither '=' nor ',' is a destination, not a spec.
        if !s.contains('=') && !s.contains(',') {
            let kind = if s == "-" {
                OutputKind::Tar
            } else {
                OutputKind::Local
            };
            let mut attrs = BTreeMap::new();
            attrs.insert("dest".to_string(), s.to_string());
            return Ok(Self { kind, attrs });
        }
        let mut attrs = parse_csv_attrs(s).map_err(|e| format!("{e}; {}", Self::FORMS))?;
        let kind_name = attrs
            .remove("type")
            .ok_or_else(|| format!("type is required in {s:?}; {}", Self::FORMS))?;
        let kind = OutputKind::ALL
            .iter()
            .find(|(n, _)| *n == kind_name)
            .map(|(_, k)| *k)
            .ok_or_else(|| format!("unknown output type {kind_name:?}; {}", Self::FORMS))?;
        for (key, value) in &attrs {
            let annotation = crate::exporter::annotations::is_annotation_attr(key);
            if annotation && kind.takes_annotations() {
                crate::exporter::annotations::parse_attr(key, value)?;
            } else if !kind.accepted_attrs().contains(&key.as_str()) {
                return Err(format!(
                    "unknown attribute {key:?} for type={kind_name}; accepted: {}",
                    kind.accepted_attrs().join(", ")
                ));
            }
        }
        if matches!(kind, OutputKind::Local | OutputKind::Tar) && !attrs.contains_key("dest") {
            return Err(format!("type={kind_name} needs dest=PATH"));
        }
        for key in [
            "push",
            "push-by-digest",
            "oci-mediatypes",
            "unpack",
            "store",
            "force-compression",
            "rewrite-timestamp",
            "platform-split",
        ] {
            if let Some(v) = attrs.get(key) {
                parse_go_bool(v).ok_or_else(|| format!("{key}={v:?}: expected true or false"))?;
            }
        }
        for (key, value) in &attrs {
            if let Some((_, honoured, why)) = UNHONOURED_ATTRS.iter().find(|(k, ..)| k == key)
                && Some(value.as_str()) != *honoured
            {
                return Err(format!("{key}={value}: not supported yet ({why})"));
            }
        }
        if let Some(v) = attrs.get("source-date-epoch")
            && !v.is_empty()
            && v.parse::<i64>().is_err()
        {
            return Err(format!(
                "source-date-epoch={v:?}: expected seconds since 1970-01-01 UTC, an integer"
            ));
        }
        if let Some(c) = attrs.get("compression")
            && !matches!(c.as_str(), "gzip" | "zstd" | "uncompressed" | "estargz")
        {
            return Err(format!(
                "compression={c:?}: accepted: gzip, zstd, uncompressed, estargz"
            ));
        }
        Ok(Self { kind, attrs })
    }

    /// `dest=`: the file, directory or `-` the output is written to.
    pub fn dest(&self) -> Option<&str> {
        self.attrs.get("dest").map(String::as_str)
    }

    /// `platform-split=`, when given: whether each platform's files go to a directory of
    /// their own (checked to be a boolean when parsed).
    pub fn platform_split(&self) -> Option<bool> {
        self.attrs
            .get("platform-split")
            .and_then(|v| parse_go_bool(v))
    }

    /// `source-date-epoch=`, when given: the time, in seconds since 1970, that this output
    /// dates its files with, or none when it is empty. BuildKit's local and tar exporters
    /// take it over SOURCE_DATE_EPOCH, which they are given only when it is not there
    /// (`control.go`), so an empty one dates nothing. Checked to be an integer when parsed.
    pub fn source_date_epoch(&self) -> Option<Option<i64>> {
        self.attrs.get("source-date-epoch").map(|v| v.parse().ok())
    }

    /// Whether this output pushes to a registry.
    pub fn pushes(&self) -> bool {
        self.kind == OutputKind::Registry
            || self
                .attrs
                .get("push")
                .is_some_and(|v| parse_go_bool(v) == Some(true))
    }
}

/// `--secret id=ID[,src=PATH|env=VAR][,type=file|env]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The id a `RUN --mount=type=secret,id=ID` asks for.
    pub id: String,
    /// Where its value is read, when a step asks for it.
    pub source: SecretSource,
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The bytes of this file.
    File(PathBuf),
    /// The value of this environment variable of bud's.
    Env(String),
}

impl SecretSpec {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        let form = "expected id=ID[,src=PATH|env=VAR][,type=file|env]";
        let attrs = parse_csv_attrs(s).map_err(|e| format!("{e}; {form}"))?;
        let mut id = None;
        let mut src = None;
        let mut env = None;
        let mut kind = None;
        for (k, v) in attrs {
            match k.as_str() {
                "id" => id = Some(v),
                "src" | "source" => src = Some(v),
                "env" => env = Some(v),
                "type" if v == "file" || v == "env" => kind = Some(v),
                "type" => {
                    return Err(format!(
                        "unsupported secret type {v:?}; accepted: file, env"
                    ));
                }
                _ => return Err(format!("unexpected key {k:?} in {s:?}; {form}")),
            }
        }
        let id = id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| format!("id is required; {form}"))?;
        let source = match (kind.as_deref(), src, env) {
            (_, Some(_), Some(_)) => return Err(format!("src and env both given; {form}")),
            (Some("env"), Some(var), None) | (_, None, Some(var)) => SecretSource::Env(var),
            (_, Some(path), None) => SecretSource::File(PathBuf::from(path)),
            (Some("env"), None, None) => SecretSource::Env(id.clone()),
            // buildx: with neither, an environment variable named like the id, else a file.
            (_, None, None) if std::env::var_os(&id).is_some() => SecretSource::Env(id.clone()),
            (_, None, None) => SecretSource::File(PathBuf::from(&id)),
        };
        Ok(Self { id, source })
    }
}

/// TLS to a `tcp://` daemon, with buildctl's flag names.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct TlsOptions {
    /// With a tcp:// --addr: the CA certificate the daemon's certificate is verified with
    #[arg(
        long = "tlscacert",
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub ca_cert: Option<PathBuf>,
    /// With a tcp:// --addr: the client certificate
    #[arg(
        long = "tlscert",
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub cert: Option<PathBuf>,
    /// With a tcp:// --addr: the client certificate's key
    #[arg(
        long = "tlskey",
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub key: Option<PathBuf>,
    /// With a tcp:// --addr: the name the daemon's certificate must carry [default: the host]
    #[arg(
        long = "tlsservername",
        global = true,
        value_name = "NAME",
        help_heading = "Global options"
    )]
    pub server_name: Option<String>,
    /// With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt,
    /// tls.crt and tls.key)
    #[arg(
        long = "tlsdir",
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub dir: Option<PathBuf>,
}

/// `--ssh default|ID[=SOCKET|KEY[,KEY...]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSpec {
    /// The id a `RUN --mount=type=ssh,id=ID` asks for (`default` when it names none).
    pub id: String,
    /// Agent sockets or key files; empty means $SSH_AUTH_SOCK.
    pub paths: Vec<PathBuf>,
}

impl SshSpec {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        let (id, paths) = s.split_once('=').unwrap_or((s, ""));
        if id.is_empty() {
            return Err(format!(
                "expected default or ID[=SOCKET|KEY,...], got {s:?}"
            ));
        }
        Ok(Self {
            id: id.to_string(),
            paths: paths
                .split(',')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect(),
        })
    }
}

/// `--ulimit NAME=SOFT[:HARD]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    /// The resource, as Docker names it (`nofile`, `nproc`, ...): `RLIMIT_` and the name.
    pub name: String,
    /// The soft limit, as given (a count, or bytes or seconds as the resource measures).
    pub soft: i64,
    /// The hard limit; the soft one when not given, never below it.
    pub hard: i64,
}

impl Ulimit {
    const NAMES: &'static [&'static str] = &[
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];

    pub(super) fn parse(s: &str) -> Result<Self, String> {
        let form = "expected NAME=SOFT[:HARD]";
        let (name, limits) = s
            .split_once('=')
            .ok_or_else(|| format!("{form}, got {s:?}"))?;
        if !Self::NAMES.contains(&name) {
            return Err(format!(
                "unknown ulimit {name:?}; accepted: {}",
                Self::NAMES.join(", ")
            ));
        }
        let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
        let number = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| format!("{form}: {v:?} is not a number"))
        };
        let (soft, hard) = (number(soft)?, number(hard)?);
        if soft > hard {
            return Err(format!("soft limit {soft} is above hard limit {hard}"));
        }
        Ok(Self {
            name: name.to_string(),
            soft,
            hard,
        })
    }
}

/// A size with docker's units (`64m`, `1.5GB`, `1024`): powers of 1024, as docker's
/// RAMInBytes reads them.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let form = "expected a size such as 512, 64m, 1.5g or 10GB";
    let t = s.trim();
    let digits_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let number: f64 = number.parse().map_err(|_| format!("{form}, got {s:?}"))?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(format!("{form}, got {s:?}")),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("{form}, got {s:?}"));
    }
    Ok(bytes as u64)
}

pub use bud_frontend::gobool::parse_go_bool;

/// The fields of one CSV record, as Go's encoding/csv reads them: commas separate, double
/// quotes protect commas and double a quote.
pub fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    if in_quotes {
        return Err(format!("unterminated quote in {s:?}"));
    }
    fields.push(field);
    Ok(fields)
}

/// Splits `k=v,k2="a,b"` as buildx does with encoding/csv: one record, fields separated by
/// commas, double quotes protecting commas.
fn parse_csv_attrs(s: &str) -> Result<BTreeMap<String, String>, String> {
    let fields = csv_fields(s)?;
    let mut attrs = BTreeMap::new();
    for f in fields {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| format!("invalid field {f:?}: expected KEY=VALUE"))?;
        attrs.insert(k.trim().to_ascii_lowercase(), v.to_string());
    }
    Ok(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output attributes bud honours, with the test that shows each; with `UNHONOURED_ATTRS`
    /// they cover every attribute of `OutputKind::accepted_attrs` (a unit test checks it).
    const HONOURED_ATTRS: &[(&str, &str)] = &[
        (
            "dest",
            "build_outputs::writes_local_tar_docker_and_oci_outputs",
        ),
        (
            "name",
            "registry_push, image_metadata::annotations_are_written_…",
        ),
        ("push", "build_outputs, image_metadata"),
        (
            "insecure",
            "image_metadata::compression_is_what_the_pushed_and_written_blobs_are",
        ),
        (
            "registry.insecure",
            "image_metadata::compression_is_what_the_pushed_and_written_blobs_are",
        ),
        (
            "compression",
            "image_metadata::compression_is_what_the_pushed_and_written_blobs_are",
        ),
        (
            "compression-level",
            "image_metadata::compression_level_gives_other_blobs_of_the_same_layers",
        ),
        (
            "force-compression",
            "image_metadata::force_compression_decides_whether_base_layers_are_converted",
        ),
        (
            "oci-mediatypes",
            "image_metadata::compression_is_what_the_pushed_and_written_blobs_are",
        ),
        (
            "rewrite-timestamp",
            "image_metadata::source_date_epoch_and_rewrite_timestamp_…",
        ),
        (
            "source-date-epoch",
            "build_platforms::an_outputs_source_date_epoch_and_one_before_1970_date_it_as_buildx_does",
        ),
        (
            "platform-split",
            "build_platforms::platform_split_of_a_local_output_writes_what_buildx_writes, \
             build_platforms::platform_split_of_a_tar_output_is_refused_where_buildkit_ignores_it",
        ),
    ];

    /// Every output attribute bud accepts is honoured or refused: a new one cannot be added
    /// to `accepted_attrs` without that decision.
    #[test]
    fn every_output_attribute_is_honoured_or_refused() {
        for (kind_name, kind) in OutputKind::ALL {
            for attr in kind.accepted_attrs() {
                let honoured = HONOURED_ATTRS.iter().any(|(a, _)| a == attr);
                let refused = UNHONOURED_ATTRS.iter().find(|(a, ..)| a == attr);
                assert!(
                    honoured != refused.is_some(),
                    "type={kind_name} attribute {attr}: decide whether it is honoured or refused"
                );
                let Some((_, fine, _)) = refused else {
                    continue;
                };
                let other = match fine {
                    Some("true") => "false",
                    Some("false") => "true",
                    _ => "some-value",
                };
                let mut spec = format!("type={kind_name},{attr}={other}");
                if matches!(kind, OutputKind::Local | OutputKind::Tar) {
                    spec.push_str(",dest=x");
                }
                let err = Output::parse(&spec).unwrap_err();
                assert!(err.contains("not supported yet"), "{spec}: {err}");
                if let Some(fine) = fine {
                    let mut spec = format!("type={kind_name},{attr}={fine}");
                    if matches!(kind, OutputKind::Local | OutputKind::Tar) {
                        spec.push_str(",dest=x");
                    }
                    assert!(Output::parse(&spec).is_ok(), "{spec}");
                }
            }
        }
    }

    #[test]
    fn output_shorthands() {
        let o = Output::parse("out").unwrap();
        assert_eq!((o.kind, o.dest()), (OutputKind::Local, Some("out")));
        let o = Output::parse("-").unwrap();
        assert_eq!((o.kind, o.dest()), (OutputKind::Tar, Some("-")));
    }

    #[test]
    fn output_specs() {
        let o = Output::parse("type=image,name=r/a:1,push=true").unwrap();
        assert!(o.pushes());
        let o = Output::parse("type=registry,\"name=a,b\"").unwrap();
        assert_eq!(o.attrs["name"], "a,b");
        assert!(Output::parse("type=oci,dest=o.tar,annotation.x=y").is_ok());
    }

    #[test]
    fn output_errors_name_the_accepted_forms() {
        for bad in [
            "type=floppy",
            "dest=x,foo=bar",
            "type=local",
            "type=local,dest=x,bogus=1",
            "type=image,push=maybe",
            "type=image,compression=lz4",
            "type=tar,dest",
        ] {
            let err = Output::parse(bad).unwrap_err();
            assert!(
                err.contains("accepted") || err.contains("expected") || err.contains("needs"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn build_args() {
        assert_eq!(
            BuildArg::parse("A=b=c").unwrap(),
            BuildArg {
                key: "A".into(),
                value: Some("b=c".into())
            }
        );
        let a = BuildArg::parse("BUD_SURELY_UNSET_VARIABLE").unwrap();
        assert_eq!(a.value, None);
        assert!(BuildArg::parse("=x").is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(AddHost::parse("db:10.0.0.2").unwrap().ip, "10.0.0.2");
        assert_eq!(AddHost::parse("v6=::1").unwrap().ip, "::1");
        assert_eq!(
            AddHost::parse("gw:host-gateway").unwrap().ip,
            "host-gateway"
        );
        assert!(AddHost::parse("db:not-an-ip").is_err());
        assert!(AddHost::parse("db").is_err());
    }

    #[test]
    fn secrets() {
        let s = SecretSpec::parse("id=tok,src=/run/tok").unwrap();
        assert_eq!(s.source, SecretSource::File("/run/tok".into()));
        let s = SecretSpec::parse("id=tok,env=TOKEN").unwrap();
        assert_eq!(s.source, SecretSource::Env("TOKEN".into()));
        let s = SecretSpec::parse("type=env,id=tok,src=TOKEN").unwrap();
        assert_eq!(s.source, SecretSource::Env("TOKEN".into()));
        assert!(SecretSpec::parse("src=/x").is_err());
        assert!(SecretSpec::parse("id=a,color=red").is_err());
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("10GB"), Ok(10 << 30));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5x").is_err());
    }

    #[test]
    fn ulimits() {
        assert_eq!(
            Ulimit::parse("nofile=1024:2048").unwrap(),
            Ulimit {
                name: "nofile".into(),
                soft: 1024,
                hard: 2048
            }
        );
        assert!(Ulimit::parse("nofile=10:5").is_err());
        assert!(Ulimit::parse("files=10").is_err());
    }

    #[test]
    fn cache_options() {
        let c = CacheOption::parse_from("reg/app:cache").unwrap();
        assert_eq!(
            (c.kind.as_str(), c.attrs["ref"].as_str()),
            ("registry", "reg/app:cache")
        );
        assert!(CacheOption::parse_to("type=floppy").is_err());
    }
}
