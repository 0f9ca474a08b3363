//! Image names as `docker load` and OCI layouts record them.

use std::fmt;

/// A tagged image name, e.g. `app` read as `docker.io/library/app:latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// Registry host (`docker.io` for Docker Hub).
    pub domain: String,
    /// Repository path (`library/app`).
    pub path: String,
    pub tag: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image name {name:?}: {reason}")]
pub struct ImageNameError {
    pub name: String,
    pub reason: &'static str,
}

const DOCKER_HUB: &str = "docker.io";

impl ImageName {
    /// Parses a name the way `docker build -t` reads it: a missing registry means Docker
    /// Hub, a missing tag means `latest`. Digest references are rejected: an image being
    /// loaded or exported can only be given tags.
    pub fn parse(name: &str) -> Result<ImageName, ImageNameError> {
        let err = |reason| ImageNameError {
            name: name.to_owned(),
            reason,
        };
        if name.contains('@') {
            return Err(err(
                "a digest cannot name an image being created; use a tag",
            ));
        }
        let (repo, tag) = match name.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (name, "latest"),
        };
        if !valid_tag(tag) {
            return Err(err("a tag is up to 128 letters, digits, '_', '.' or '-'"));
        }
        let (domain, path) = match repo.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first, rest.to_owned())
            }
            _ => (DOCKER_HUB, repo.to_owned()),
        };
        let domain = if domain == "index.docker.io" {
            DOCKER_HUB
        } else {
            domain
        };
        if domain.is_empty()
            || !domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            return Err(err("invalid registry host"));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(err(
                "repository names are lowercase letters, digits and separators ('.', '_', '-')",
            ));
        }
        let path = if domain == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(ImageName {
            domain: domain.to_owned(),
            path,
            tag: tag.to_owned(),
        })
    }

    /// The short form Docker shows and `docker save` writes (`app:latest`, `user/app:1`).
    pub fn familiar(&self) -> String {
        if self.domain == DOCKER_HUB {
            let path = self.path.strip_prefix("library/").unwrap_or(&self.path);
            format!("{path}:{}", self.tag)
        } else {
            self.to_string()
        }
    }
}

/// The fully qualified form (`docker.io/library/app:latest`).
impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.domain, self.path, self.tag)
    }
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b))
}

/// `[a-z0-9]+` groups joined by `.`, `_`, `__` or any run of `-`.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    let mut separator = String::new();
    for &b in bytes {
        if alnum(&b) {
            let ok = matches!(separator.as_str(), "" | "." | "_" | "__")
                || separator.bytes().all(|s| s == b'-');
            if !ok {
                return false;
            }
            separator.clear();
        } else if b".-_".contains(&b) {
            separator.push(b as char);
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forms(name: &str) -> (String, String) {
        let n = ImageName::parse(name).unwrap();
        (n.familiar(), n.to_string())
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(
            forms("app"),
            ("app:latest".into(), "docker.io/library/app:latest".into())
        );
        assert_eq!(
            forms("docker.io/library/app:1.0"),
            ("app:1.0".into(), "docker.io/library/app:1.0".into())
        );
        assert_eq!(
            forms("index.docker.io/user/app"),
            ("user/app:latest".into(), "docker.io/user/app:latest".into())
        );
        assert_eq!(
            forms("127.0.0.1:5000/bud-test/busybox"),
            (
                "127.0.0.1:5000/bud-test/busybox:latest".into(),
                "127.0.0.1:5000/bud-test/busybox:latest".into()
            )
        );
        assert_eq!(
            forms("localhost/a__b.c---d:v_1.2-x"),
            (
                "localhost/a__b.c---d:v_1.2-x".into(),
                "localhost/a__b.c---d:v_1.2-x".into()
            )
        );
        assert_eq!(ImageName::parse("x:5000/app").unwrap().tag, "latest");
    }

    #[test]
    fn rejects_what_docker_rejects() {
        for bad in [
            "",
            "App",
            "app@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "app:",
            "app:-x",
            "a//b",
            "a/-b",
            "a_._b",
            "app:with space",
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
