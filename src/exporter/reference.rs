//! Image names as `docker load` and OCI layouts record them: the tags of an image being
//! created, read by the one reference parser bud has (`bud_frontend::reference`).

use std::fmt;

use bud_frontend::reference::Reference;

/// A tagged image name, e.g. `app` read as `docker.io/library/app:latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// Registry host (`docker.io` for Docker Hub).
    pub domain: String,
    /// Repository path (`library/app`).
    pub path: String,
    /// Tag, `latest` when the name gives none.
    pub tag: String,
}

/// A tag that is not a valid image name, or that names a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image name {name:?}: {reason}")]
pub struct ImageNameError {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ImageName {
    /// Parses a name the way `docker build -t` reads it: a missing registry means Docker
    /// Hub, a missing tag means `latest`. Digest references are rejected: an image being
    /// loaded or exported can only be given tags.
    pub fn parse(name: &str) -> Result<ImageName, ImageNameError> {
        let err = |reason: String| ImageNameError {
            name: name.to_owned(),
            reason,
        };
        let reference = Reference::parse(name).map_err(|e| err(e.to_string()))?;
        if reference.digest.is_some() {
            return Err(err(
                "a digest cannot name an image being created; use a tag".into(),
            ));
        }
        let reference = reference.with_default_tag();
        Ok(ImageName {
            tag: reference.tag.clone().unwrap_or_default(),
            domain: reference.domain,
            path: reference.path,
        })
    }

    /// The short form Docker shows and `docker save` writes (`app:latest`, `user/app:1`).
    pub fn familiar(&self) -> String {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(self.tag.clone()),
            digest: None,
        }
        .familiar()
    }
}

/// The fully qualified form (`docker.io/library/app:latest`).
impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.domain, self.path, self.tag)
    }
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
