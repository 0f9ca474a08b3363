//! Image references as Docker reads them (distribution/reference): `busybox`,
//! `127.0.0.1:5000/team/app:1`, `app@sha256:…`, normalised to `docker.io/library/busybox:latest`.

use std::fmt;

/// The registry a reference without a domain names (Docker Hub).
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const MAX_NAME_LEN: usize = 255;

/// Why a text is not an image reference; each variant holds the text as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The text is empty.
    #[error("{0:?}: empty reference")]
    Empty(String),
    /// The repository path has an uppercase letter, which distribution refuses.
    #[error("{0:?}: repository name must be lowercase")]
    Uppercase(String),
    /// The name (domain and path) is longer than distribution allows.
    #[error("{0:?}: repository name must not be longer than {MAX_NAME_LEN} characters")]
    TooLong(String),
    /// A domain or path component breaks distribution's grammar.
    #[error("{0:?}: invalid reference format")]
    Invalid(String),
    /// The part after the last `:` of the name is not a tag.
    #[error("{0:?}: invalid tag (expected [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})")]
    InvalidTag(String),
    /// The part after `@` is not a sha256 digest.
    #[error("{0:?}: invalid digest (expected sha256:<64 hex digits>)")]
    InvalidDigest(String),
}

/// A normalised image reference: domain and path always set, tag and digest as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host, with its port if any (`docker.io`, `127.0.0.1:5000`).
    pub domain: String,
    /// Repository path in the registry (`library/busybox` for an official image).
    pub path: String,
    /// The tag, without `:`.
    pub tag: Option<String>,
    /// The digest, `sha256:<hex>`.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises `s` the way `docker build -t` and `FROM` do.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty(s.to_string()));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((name, digest)) => {
                validate_digest(digest).map_err(|()| ReferenceError::InvalidDigest(s.into()))?;
                (name, Some(digest.to_string()))
            }
            None => (s, None),
        };
        // A tag follows the last ':' that comes after the last '/', so that a registry port
        // (`host:5000/app`) is not mistaken for one.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                if !valid_tag(tag) {
                    return Err(ReferenceError::InvalidTag(s.into()));
                }
                (&rest[..last_slash + i], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        if name.len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong(s.into()));
        }
        let (domain, path) = split_domain(name);
        if !valid_domain(&domain) {
            return Err(ReferenceError::Invalid(s.into()));
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(s.into()));
        }
        if path.is_empty() || !path.split('/').all(valid_path_component) {
            return Err(ReferenceError::Invalid(s.into()));
        }
        Ok(Self {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The reference with `latest` as tag when it names neither a tag nor a digest.
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".to_string());
        }
        self
    }

    /// `domain/path`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short form Docker shows: `busybox:latest` for `docker.io/library/busybox:latest`.
    pub fn familiar(&self) -> String {
        let name = if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_REPO_PREFIX)
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.name()
        };
        self.with_suffix(name)
    }

    fn with_suffix(&self, mut name: String) -> String {
        if let Some(tag) = &self.tag {
            name.push(':');
            name.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            name.push('@');
            name.push_str(digest);
        }
        name
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.with_suffix(self.name()))
    }
}

/// The first component is a registry when it looks like a host: it has a '.' or a ':', or is
/// `localhost`; otherwise the image lives on Docker Hub.
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path
    };
    (domain, path)
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // [ipv6]:port
        match rest.split_once(']') {
            Some((addr, tail)) if addr.parse::<std::net::Ipv6Addr>().is_ok() => {
                return tail.is_empty()
                    || tail
                        .strip_prefix(':')
                        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            }
            _ => return false,
        }
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    port_ok && labels_ok
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn valid_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn validate_digest(d: &str) -> Result<(), ()> {
    let (algo, hex) = d.split_once(':').ok_or(())?;
    let expected_len = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(()),
    };
    if hex.len() == expected_len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().with_default_tag().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("team/app:1.0"), "docker.io/team/app:1.0");
        assert_eq!(
            norm("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("127.0.0.1:5000/bud-test/busybox"),
            "127.0.0.1:5000/bud-test/busybox:latest"
        );
        assert_eq!(norm("localhost/app:x"), "localhost/app:x");
        assert_eq!(norm("[::1]:5000/app"), "[::1]:5000/app:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            norm(&format!("app@{d}")),
            format!("docker.io/library/app@{d}")
        );
        assert_eq!(
            norm(&format!("app:1@{d}")),
            format!("docker.io/library/app:1@{d}")
        );
    }

    #[test]
    fn familiar_names() {
        let r = Reference::parse("busybox:1").unwrap();
        assert_eq!(r.familiar(), "busybox:1");
        let r = Reference::parse("127.0.0.1:5000/x/y").unwrap();
        assert_eq!(r.familiar(), "127.0.0.1:5000/x/y");
    }

    #[test]
    fn rejects_what_docker_rejects() {
        for bad in [
            "",
            "Busybox",
            "app:",
            "app:-x",
            "a//b",
            "app@sha256:abc",
            "-app",
            "app-",
            "a...b",
            "host:port/app",
            &"a".repeat(256),
            "app:has space",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn separators() {
        assert!(Reference::parse("a__b.c-d---e_f").is_ok());
        assert!(Reference::parse("a___b").is_err());
    }
}
