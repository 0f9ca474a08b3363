//! `RUN --mount=…` values.

/// What a RUN mount provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    /// A directory of the context or of another stage, read-only by default.
    Bind,
    /// A persistent cache directory.
    Cache,
    /// An empty tmpfs.
    Tmpfs,
    /// A secret file.
    Secret,
    /// An SSH agent socket.
    Ssh,
}

impl MountType {
    fn name(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }

    fn takes_file_info(self) -> bool {
        matches!(self, MountType::Secret | MountType::Ssh | MountType::Cache)
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Used by all writers at once.
    Shared,
    /// Each writer gets its own copy when busy.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// One `--mount` of a RUN, values unexpanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The flag value as written (`type=cache,target=/root/.cache`).
    pub raw: String,
    /// `type=`, bind by default.
    pub mount_type: MountType,
    /// `from=`: stage or image providing the source.
    pub from: Option<String>,
    /// `source=` / `src=`.
    pub source: Option<String>,
    /// `target=` / `dst=` / `destination=`.
    pub target: Option<String>,
    /// `readonly`/`ro`/`rw`/`readwrite`; when not given, true except for cache and tmpfs.
    pub readonly: bool,
    /// `id=`: cache or secret id.
    pub id: Option<String>,
    /// `sharing=` (cache mounts only).
    pub sharing: Option<Sharing>,
    /// `required` (secret and ssh mounts only).
    pub required: bool,
    /// `size=` in bytes (tmpfs only).
    pub size: Option<u64>,
    /// `env=`: expose the secret as this environment variable.
    pub env: Option<String>,
    /// `mode=` (octal), `uid=`, `gid=` (cache, secret and ssh only).
    pub mode: Option<u32>,
    /// See `mode`.
    pub uid: Option<u32>,
    /// See `mode`.
    pub gid: Option<u32>,
}

/// Every key `RUN --mount` takes, any type (each type's own rules follow): the parser
/// refuses any other before looking at it, so a new key is added here, where the test
/// holding each to "honoured, with a test, or refused" finds it.
pub const MOUNT_KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "src",
    "target",
    "dst",
    "destination",
    "readonly",
    "ro",
    "readwrite",
    "rw",
    "required",
    "size",
    "id",
    "sharing",
    "mode",
    "uid",
    "gid",
    "env",
];

/// Parses a `--mount` value after its field values have been passed through `expand`.
///
/// `expand` is where word expansion plugs in; the instruction layer passes values
/// through unchanged. Errors are BuildKit's messages.
pub fn parse_mount(
    raw: &str,
    mut expand: impl FnMut(&str) -> Result<String, String>,
) -> Result<MountSpec, String> {
    let mut m = MountSpec {
        raw: raw.to_string(),
        mount_type: MountType::Bind,
        from: None,
        source: None,
        target: None,
        readonly: false,
        id: None,
        sharing: None,
        required: false,
        size: None,
        env: None,
        mode: None,
        uid: None,
        gid: None,
    };
    let mut readonly_given = false;
    for field in csv_fields(raw)? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        if value.is_some() && !MOUNT_KEYS.contains(&key.as_str()) {
            return Err(format!("unexpected key '{key}' in '{field}'"));
        }
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => m.readonly = true,
                "readwrite" | "rw" => m.readonly = false,
                "required" if matches!(m.mount_type, MountType::Secret | MountType::Ssh) => {
                    m.required = true;
                    continue;
                }
                "required" => return Err(unexpected_key(&key, m.mount_type)),
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            readonly_given = true;
            continue;
        };
        if key == "from" {
            if let Some(at) = value.find('$') {
                if at + 1 != value.len() {
                    return Err(
                        "'from' doesn't support variable expansion, define alias stage instead"
                            .into(),
                    );
                }
            }
        }
        let value = expand(value)?;
        let bad_value = || format!("invalid value for {key}: {value}");
        match key.as_str() {
            "type" => {
                m.mount_type = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => return Err(format!("unsupported mount type {value:?}")),
                }
            }
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => {
                m.readonly = crate::gobool::parse_go_bool(&value).ok_or_else(bad_value)?;
                readonly_given = true;
            }
            "readwrite" | "rw" => {
                m.readonly = !crate::gobool::parse_go_bool(&value).ok_or_else(bad_value)?;
                readonly_given = true;
            }
            "required" if matches!(m.mount_type, MountType::Secret | MountType::Ssh) => {
                m.required = crate::gobool::parse_go_bool(&value).ok_or_else(bad_value)?;
            }
            "size" if m.mount_type == MountType::Tmpfs => {
                m.size = Some(parse_ram_in_bytes(&value).ok_or_else(bad_value)?);
            }
            "required" | "size" => return Err(unexpected_key(&key, m.mount_type)),
            "id" => m.id = Some(value),
            "sharing" => {
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => return Err(format!("unsupported sharing value {value:?}")),
                })
            }
            "mode" => {
                m.mode =
                    Some(parse_u32(&value, 8).ok_or(format!("invalid value {value} for mode"))?)
            }
            "uid" => {
                m.uid = Some(parse_u32(&value, 10).ok_or(format!("invalid value {value} for uid"))?)
            }
            "gid" => {
                m.gid = Some(parse_u32(&value, 10).ok_or(format!("invalid value {value} for gid"))?)
            }
            "env" => m.env = Some(value),
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }

    if !m.mount_type.takes_file_info() {
        for (name, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(format!(
                    "{name} not allowed for {:?} type mounts",
                    m.mount_type.name()
                ));
            }
        }
    }
    if !readonly_given {
        m.readonly = !matches!(m.mount_type, MountType::Cache | MountType::Tmpfs);
    }
    if m.mount_type == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".into());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".into());
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".into());
        }
    }
    if m.sharing.is_some() && m.mount_type != MountType::Cache {
        return Err(format!(
            "invalid cache sharing set for {} mount",
            m.mount_type.name()
        ));
    }
    Ok(m)
}

fn unexpected_key(key: &str, t: MountType) -> String {
    format!("unexpected key '{key}' for mount type '{}'", t.name())
}

/// Go's `strconv.ParseUint(s, radix, 32)`: digits only, no sign.
fn parse_u32(s: &str, radix: u32) -> Option<u32> {
    if s.is_empty() || !s.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(s, radix).ok()
}

/// docker/go-units' `RAMInBytes`: `64m`, `1.5GiB`, `512 kb`, `100` (binary multiples).
fn parse_ram_in_bytes(s: &str) -> Option<u64> {
    let num_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(num_len);
    if !number.starts_with(|c: char| c.is_ascii_digit())
        || number.ends_with('.')
        || number.contains("..")
    {
        return None;
    }
    let size: f64 = number.parse().ok()?;
    let mut suffix = suffix
        .strip_prefix(' ')
        .unwrap_or(suffix)
        .chars()
        .peekable();
    let mut multiplier = 1f64;
    if let Some(&c) = suffix.peek() {
        let power = match c.to_ascii_lowercase() {
            'k' => Some(1),
            'm' => Some(2),
            'g' => Some(3),
            't' => Some(4),
            'p' => Some(5),
            _ => None,
        };
        if let Some(p) = power {
            multiplier = 1024f64.powi(p);
            suffix.next();
        }
    }
    if suffix.peek().is_some_and(|c| matches!(c, 'i' | 'I')) {
        suffix.next();
    }
    if suffix.peek().is_some_and(|c| matches!(c, 'b' | 'B')) {
        suffix.next();
    }
    if suffix.next().is_some() {
        return None;
    }
    Some((size * multiplier) as u64)
}

/// Splits one CSV record as Go's `encoding/csv` reads it: `"` quotes a whole field,
/// `""` inside quotes is a quote.
pub(super) fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let err = |what: &str| format!("failed to parse csv mounts: {what}");
    let mut fields = Vec::new();
    if s.is_empty() {
        return Ok(fields);
    }
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(err("extraneous or missing \" in quoted-field")),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err(err("extraneous or missing \" in quoted-field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err(err("bare \" in non-quoted-field")),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(s: &str) -> Result<MountSpec, String> {
        parse_mount(s, |v| Ok(v.to_string()))
    }

    #[test]
    fn bind_defaults_readonly() {
        let m = mount("target=/src,source=app,from=build").unwrap();
        assert_eq!(m.mount_type, MountType::Bind);
        assert!(m.readonly);
        assert_eq!(m.target.as_deref(), Some("/src"));
        assert_eq!(m.source.as_deref(), Some("app"));
        assert_eq!(m.from.as_deref(), Some("build"));
        assert!(!mount("target=/a,rw").unwrap().readonly);
        assert!(!mount("target=/a,readwrite=true").unwrap().readonly);
        assert!(mount("type=cache,target=/a,ro").unwrap().readonly);
    }

    #[test]
    fn cache_options() {
        let m =
            mount("type=CACHE,dst=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1000,gid=1000")
                .unwrap();
        assert_eq!(m.mount_type, MountType::Cache);
        assert!(!m.readonly);
        assert_eq!(m.id.as_deref(), Some("pip"));
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert_eq!(
            (m.mode, m.uid, m.gid),
            (Some(0o755), Some(1000), Some(1000))
        );
    }

    #[test]
    fn tmpfs_size() {
        assert_eq!(
            mount("type=tmpfs,target=/t,size=64m").unwrap().size,
            Some(64 << 20)
        );
        assert_eq!(
            mount("type=tmpfs,target=/t,size=1.5GiB").unwrap().size,
            Some(3 << 29)
        );
        assert_eq!(
            mount("type=tmpfs,target=/t,size=100").unwrap().size,
            Some(100)
        );
        assert!(mount("type=tmpfs,target=/t,size=lots").is_err());
        assert!(mount("type=bind,target=/t,size=1m").is_err());
    }

    #[test]
    fn secret_and_ssh() {
        let m = mount("type=secret,id=tok,env=TOKEN,required").unwrap();
        assert!(m.required && m.readonly);
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
        assert!(mount("type=ssh,required=false").is_ok());
        assert_eq!(
            mount("type=secret").unwrap_err(),
            "invalid secret mount. one of source, target required"
        );
        assert!(mount("type=secret,id=a,source=b").is_err());
        assert!(mount("type=secret,id=a,from=b").is_err());
        assert!(mount("type=bind,target=/a,required").is_err());
    }

    #[test]
    fn rejects_bad_fields() {
        for bad in [
            "type=nfs,target=/a",
            "target=/a,sharing=shared",
            "type=cache,target=/a,sharing=sometimes",
            "target=/a,mode=0755",
            "type=cache,target=/a,mode=9",
            "type=cache,target=/a,uid=+1",
            "target=/a,bogus=1",
            "target=/a,bogus",
            "target=/a,ro=maybe",
            "from=$STAGE,target=/a",
            "target=\"/a",
            "target=/a\"b",
        ] {
            assert!(mount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_quoting() {
        let m = mount("\"target=/a,b\",type=cache").unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
        assert_eq!(csv_fields("\"a\"\"b\",c").unwrap(), ["a\"b", "c"]);
        assert_eq!(csv_fields("a,,b").unwrap(), ["a", "", "b"]);
    }

    #[test]
    fn expander_sees_values() {
        let m = parse_mount("type=cache,target=$DIR", |v| Ok(v.replace("$DIR", "/x"))).unwrap();
        assert_eq!(m.target.as_deref(), Some("/x"));
    }
}
