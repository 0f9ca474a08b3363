//! Which Dockerfile frontend a build asks for: `BUILDKIT_SYNTAX` (a build arg, first, as in
//! BuildKit) or the `# syntax=` directive. `docker/dockerfile` and
//! `docker/dockerfile-upstream` of major version 1, with or without a digest, are bud's own
//! frontend; a `-labs` (or old `-experimental`) tag turns on the flags only BuildKit's labs
//! frontend has. Any other image is another frontend, which only BuildKit can run.

use std::collections::BTreeMap;

use crate::parser::Directives;
use crate::reference::Reference;

/// The build arg that names the frontend ahead of any `# syntax=`.
pub const BUILDKIT_SYNTAX: &str = "BUILDKIT_SYNTAX";

/// The frontend a Dockerfile is to be built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Syntax {
    /// bud's own Dockerfile frontend, with the labs flags or without.
    Own {
        /// Whether the labs flags are on (a `-labs` tag).
        labs: bool,
    },
    /// Another frontend image.
    Foreign(ForeignFrontend),
}

/// A frontend image bud does not implement, and where it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignFrontend {
    /// The image reference, as written.
    pub image: String,
    /// The whole value (`IMAGE [ARGS]`), BuildKit's `cmdline` frontend attribute.
    pub cmdline: String,
    /// The `# syntax=` line (1-based); `None` when `BUILDKIT_SYNTAX` asked for it.
    pub line: Option<usize>,
}

impl std::fmt::Display for ForeignFrontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "line {line}: `# syntax={}` names a frontend image bud does not implement \
                 (bud's own frontend is docker/dockerfile:1 and docker/dockerfile:1-labs); \
                 only BuildKit can run it: build with --addr",
                self.cmdline
            ),
            None => write!(
                f,
                "{BUILDKIT_SYNTAX}={} names a frontend image bud does not implement (bud's own \
                 frontend is docker/dockerfile:1 and docker/dockerfile:1-labs); only BuildKit \
                 can run it: build with --addr",
                self.cmdline
            ),
        }
    }
}

/// The frontend asked for by `build_args` or the directives (`syntax_line` is the directive's
/// line).
pub fn resolve(
    directives: &Directives,
    syntax_line: Option<usize>,
    build_args: &BTreeMap<String, String>,
) -> Syntax {
    let (cmdline, line) = match build_args.get(BUILDKIT_SYNTAX).map(|v| v.trim()) {
        Some(v) if !v.is_empty() => (v, None),
        _ => match directives.syntax.as_deref() {
            Some(v) => (v.trim(), syntax_line),
            None => return Syntax::Own { labs: false },
        },
    };
    let image = cmdline.split_whitespace().next().unwrap_or_default();
    match own_frontend_labs(image) {
        Some(labs) => Syntax::Own { labs },
        None => Syntax::Foreign(ForeignFrontend {
            image: image.to_owned(),
            cmdline: cmdline.to_owned(),
            line,
        }),
    }
}

/// Whether `image` is a `docker/dockerfile[-upstream]` of major version 1 (`Some(labs)`).
fn own_frontend_labs(image: &str) -> Option<bool> {
    let r = Reference::parse(image).ok()?;
    if !matches!(
        r.name().as_str(),
        "docker.io/docker/dockerfile" | "docker.io/docker/dockerfile-upstream"
    ) {
        return None;
    }
    let tag = match (&r.tag, &r.digest) {
        (Some(tag), _) => tag.as_str(),
        // A digest alone pins an image bud cannot tell the version of: it is taken as
        // docker/dockerfile:1, as the digest of a `:1` tag most often is.
        (None, _) => "latest",
    };
    let (version, labs) = match tag
        .strip_suffix("-labs")
        .or_else(|| tag.strip_suffix("-experimental"))
    {
        Some(version) => (version, true),
        None => (tag, false),
    };
    let version_ok = match version {
        "latest" | "master" => true,
        "labs" | "experimental" => return Some(true),
        v => {
            let mut parts = v.split('.');
            parts.next() == Some("1")
                && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        }
    };
    version_ok.then_some(labs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_directive(value: &str) -> Syntax {
        let directives = Directives {
            syntax: Some(value.to_owned()),
            ..Directives::default()
        };
        resolve(&directives, Some(1), &BTreeMap::new())
    }

    const DIGEST: &str = "sha256:e2a8561e419ab1ba6b2fe6cbdf49fd92b95912df1cf7d313c3e2230a333fdbcc";

    #[test]
    fn docker_dockerfile_1_is_bud_s_own() {
        for own in [
            "docker/dockerfile:1",
            "docker/dockerfile:1.7",
            "docker/dockerfile:1.19.0",
            "docker.io/docker/dockerfile:1",
            "docker/dockerfile-upstream:1.19",
            "docker/dockerfile",
            "docker/dockerfile:master",
            &format!("docker/dockerfile:1@{DIGEST}"),
            &format!("docker/dockerfile@{DIGEST}"),
        ] {
            assert_eq!(with_directive(own), Syntax::Own { labs: false }, "{own}");
        }
        for labs in [
            "docker/dockerfile:1-labs",
            "docker/dockerfile:1.7-labs",
            "docker/dockerfile-upstream:master-labs",
            "docker/dockerfile:1.2-experimental",
            "docker/dockerfile:labs",
            &format!("docker/dockerfile:1.19-labs@{DIGEST}"),
        ] {
            assert_eq!(with_directive(labs), Syntax::Own { labs: true }, "{labs}");
        }
    }

    #[test]
    fn other_images_are_foreign_with_their_line() {
        for foreign in [
            "registry.example/custom-frontend:1",
            "docker/dockerfile:2",
            "docker/dockerfile:0.9",
            "docker/dockerfile:1.x",
            "tonistiigi/dockerfile:1",
        ] {
            match with_directive(foreign) {
                Syntax::Foreign(f) => {
                    assert_eq!(f.image, foreign);
                    assert_eq!(f.line, Some(1));
                    assert!(f.to_string().starts_with("line 1: `# syntax="), "{f}");
                    assert!(f.to_string().contains("--addr"), "{f}");
                }
                own => panic!("{foreign}: {own:?}"),
            }
        }
    }

    #[test]
    fn buildkit_syntax_comes_first() {
        let directives = Directives {
            syntax: Some("docker/dockerfile:1".to_owned()),
            ..Directives::default()
        };
        let args = BTreeMap::from([(
            BUILDKIT_SYNTAX.to_owned(),
            "example/frontend:2 --flag".to_owned(),
        )]);
        let Syntax::Foreign(f) = resolve(&directives, Some(1), &args) else {
            panic!("not foreign")
        };
        assert_eq!((f.image.as_str(), f.line), ("example/frontend:2", None));
        assert_eq!(f.cmdline, "example/frontend:2 --flag");
        assert!(
            f.to_string()
                .starts_with("BUILDKIT_SYNTAX=example/frontend:2 --flag")
        );
        let args = BTreeMap::from([(
            BUILDKIT_SYNTAX.to_owned(),
            "docker/dockerfile:1-labs".to_owned(),
        )]);
        assert_eq!(
            resolve(&Directives::default(), None, &args),
            Syntax::Own { labs: true }
        );
        assert_eq!(
            resolve(&Directives::default(), None, &BTreeMap::new()),
            Syntax::Own { labs: false }
        );
    }
}
