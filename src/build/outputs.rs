//! Where a build's result goes, decided from `-o`, `--push`, `--load` and `-t` the way
//! `docker build` and buildx decide it.

use std::path::PathBuf;

use anyhow::bail;

use crate::cli::{BuildOptions, Output, OutputKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Stdout,
    File(PathBuf),
}

impl Dest {
    fn parse(s: &str) -> Self {
        if s == "-" {
            Dest::Stdout
        } else {
            Dest::File(PathBuf::from(s))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// Into the local Docker daemon, tagged with every name.
    DockerLoad { names: Vec<String> },
    /// A `docker load` tarball.
    DockerArchive { dest: Dest, names: Vec<String> },
    /// An OCI image layout tarball.
    OciArchive { dest: Dest, names: Vec<String> },
    /// The result's filesystem as a tarball.
    Tar { dest: Dest },
    /// The result's filesystem into a directory.
    Local { dest: PathBuf },
    /// Pushed to a registry under every name.
    Push {
        names: Vec<String>,
        zstd: bool,
        /// `oci-mediatypes=`, when given: single-platform images default to Docker's, as
        /// docker build pushes them, indexes to OCI's, as BuildKit writes them.
        oci_media_types: Option<bool>,
    },
}

/// The exports of a build; empty means the result stays in the cache only.
pub fn plan(opts: &BuildOptions) -> anyhow::Result<Vec<Export>> {
    let mut exports = Vec::new();
    for o in &opts.outputs {
        exports.push(from_output(o, &opts.tags)?);
    }
    if opts.push && !exports.iter().any(|e| matches!(e, Export::Push { .. })) {
        if opts.tags.is_empty() {
            bail!("--push needs a name: add -t NAME[:TAG]");
        }
        exports.push(Export::Push {
            names: opts.tags.clone(),
            zstd: false,
            oci_media_types: None,
        });
    }
    let loads = exports
        .iter()
        .any(|e| matches!(e, Export::DockerLoad { .. }));
    // `docker build` always leaves the image in Docker; so does bud, unless other outputs
    // were asked for without --load.
    if !loads && (opts.load || opts.outputs.is_empty() && !opts.push) {
        exports.push(Export::DockerLoad {
            names: opts.tags.clone(),
        });
    }
    Ok(exports)
}

fn from_output(o: &Output, tags: &[String]) -> anyhow::Result<Export> {
    let names = match o.attrs.get("name") {
        Some(n) => n.split(',').map(str::to_string).collect(),
        None => tags.to_vec(),
    };
    let dest = o.dest().map(Dest::parse);
    let zstd = o.attrs.get("compression").is_some_and(|c| c == "zstd");
    let oci_media_types = o.attrs.get("oci-mediatypes").map(|v| v == "true");
    Ok(match o.kind {
        OutputKind::Local => Export::Local {
            dest: PathBuf::from(o.dest().unwrap_or(".")),
        },
        OutputKind::Tar => Export::Tar {
            dest: dest.unwrap_or(Dest::Stdout),
        },
        OutputKind::Oci => match dest {
            Some(dest) => Export::OciArchive { dest, names },
            None => bail!("type=oci needs dest=FILE (or dest=- for stdout)"),
        },
        OutputKind::Docker => match dest {
            Some(dest) => Export::DockerArchive { dest, names },
            None => Export::DockerLoad { names },
        },
        OutputKind::Image | OutputKind::Registry if o.pushes() => {
            if names.is_empty() {
                bail!(
                    "type={} needs name=NAME to push (or -t NAME)",
                    o.kind.name()
                );
            }
            Export::Push {
                names,
                zstd,
                oci_media_types,
            }
        }
        OutputKind::Image | OutputKind::Registry => Export::DockerLoad { names },
        OutputKind::CacheOnly => bail!("type=cacheonly is not supported yet"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};

    fn plan_for(line: &str) -> anyhow::Result<Vec<Export>> {
        let cli =
            Cli::try_parse_implied(std::iter::once("bud").chain(line.split_whitespace())).unwrap();
        let Command::Build(b) = cli.command else {
            panic!("not a build")
        };
        plan(&b)
    }

    #[test]
    fn like_docker_build() {
        assert_eq!(
            plan_for("-t a:1 .").unwrap(),
            [Export::DockerLoad {
                names: vec!["a:1".into()]
            }]
        );
        assert_eq!(
            plan_for(".").unwrap(),
            [Export::DockerLoad { names: vec![] }]
        );
        assert_eq!(
            plan_for("-o out .").unwrap(),
            [Export::Local { dest: "out".into() }]
        );
        assert_eq!(
            plan_for("-o out --load -t x .").unwrap().len(),
            2,
            "--load adds Docker to other outputs"
        );
        assert!(matches!(
            plan_for("--push -t r/a .").unwrap()[..],
            [Export::Push { .. }]
        ));
        assert!(plan_for("--push .").is_err());
        assert!(matches!(
            plan_for("-o type=docker,dest=- .").unwrap()[..],
            [Export::DockerArchive {
                dest: Dest::Stdout,
                ..
            }]
        ));
    }
}
