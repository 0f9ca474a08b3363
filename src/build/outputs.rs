//! Where a build's result goes, decided from `-o`, `--push`, `--load` and `-t` the way
//! `docker build` and buildx decide it.

use std::path::PathBuf;

use anyhow::bail;

use crate::cli::{BuildOptions, Output, OutputKind};
use crate::exporter::annotations::{Annotation, Annotations, ImageAnnotations, IndexAnnotations};
use crate::registry::{Compression, LayerCompression};

/// Where a tarball goes: standard output (`dest=-`, or no `dest` for `type=tar`) or a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// bud's standard output.
    Stdout,
    /// A file, created or truncated.
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

/// What an image export asks of the image itself, beyond where it goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageAttrs {
    /// `rewrite-timestamp=true`: the mtimes in the build's own layers clamped to
    /// SOURCE_DATE_EPOCH, as BuildKit does (base image layers untouched).
    pub rewrite_timestamp: bool,
    /// The output's `annotation…` attributes and the `--annotation` flags.
    pub annotations: Annotations,
}

impl ImageAttrs {
    fn of(o: &Output, flags: &[Annotation]) -> anyhow::Result<Self> {
        Ok(ImageAttrs {
            rewrite_timestamp: o
                .attrs
                .get("rewrite-timestamp")
                .is_some_and(|v| v == "true"),
            annotations: Annotations::of_output(&o.attrs, flags).map_err(anyhow::Error::msg)?,
        })
    }

    fn of_flags(flags: &[Annotation]) -> Self {
        ImageAttrs {
            annotations: Annotations(flags.to_vec()),
            ..Default::default()
        }
    }

    /// The annotations of the image built for `platform`, checked to have somewhere to go.
    pub fn annotations_for(
        &self,
        platform: &bud_frontend::convert::Platform,
    ) -> anyhow::Result<ImageAnnotations> {
        Ok(self.annotations.for_image(platform)?)
    }

    /// The annotations of an image index of `platforms`, checked to have somewhere to go.
    pub fn index_annotations_for(
        &self,
        platforms: &[bud_frontend::convert::Platform],
    ) -> anyhow::Result<IndexAnnotations> {
        Ok(self.annotations.for_index(platforms)?)
    }
}

/// One place a build's result goes, with what it asks of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// Into the local Docker daemon, tagged with every name.
    DockerLoad {
        /// `-t` names and the output's `name=`; none leaves the image untagged.
        names: Vec<String>,
        /// What the image carries beyond its files.
        image: ImageAttrs,
    },
    /// A `docker load` tarball.
    DockerArchive {
        /// The tarball's destination.
        dest: Dest,
        /// The tags its `manifest.json` and `repositories` give the image.
        names: Vec<String>,
        /// What the image carries beyond its files.
        image: ImageAttrs,
    },
    /// An OCI image layout tarball; its layers compressed when `compression=` asks.
    OciArchive {
        /// The tarball's destination.
        dest: Dest,
        /// The names `index.json` annotates the manifest with.
        names: Vec<String>,
        /// What the image carries beyond its files.
        image: ImageAttrs,
        /// `compression=` (and its level and `force-compression`); `None` keeps the layers
        /// uncompressed as the store holds them.
        compression: Option<LayerCompression>,
    },
    /// The result's filesystem as a tarball.
    Tar {
        /// The tarball's destination.
        dest: Dest,
        /// SOURCE_DATE_EPOCH: every entry's mtime, as BuildKit's tar exporter sets it.
        epoch: Option<i64>,
    },
    /// The result's filesystem into a directory.
    Local {
        /// The directory (`.` when no `dest` is given), created if missing; the result's
        /// files are copied over what it holds. A single platform asked to be split
        /// (`platform-split=true`) has its platform's directory here already.
        dest: PathBuf,
        /// `platform-split=false` with several platforms: every platform's files into `dest`
        /// itself, checked first not to overwrite one another's; otherwise each goes to
        /// its platform's directory under `dest`.
        merge_platforms: bool,
        /// `dest` ends in the single platform's directory (`platform-split=true`), which
        /// is made as BuildKit makes a platform's: 0755, mtime the epoch or 0.
        in_platform_dir: bool,
        /// SOURCE_DATE_EPOCH: every file's mtime, as BuildKit's local exporter sets it.
        epoch: Option<i64>,
    },
    /// Pushed to a registry under every name.
    Push {
        /// The references pushed, each a full name with a tag.
        names: Vec<String>,
        /// How the pushed layers are compressed (gzip by default, as BuildKit pushes).
        compression: LayerCompression,
        /// `oci-mediatypes=`, when given: single-platform images default to Docker's, as
        /// docker build pushes them, indexes to OCI's, as BuildKit writes them.
        oci_media_types: Option<bool>,
        /// `registry.insecure=true` (or `insecure=true`): plain HTTP to the registries.
        insecure: bool,
        /// What the image carries beyond its files.
        image: ImageAttrs,
    },
}

impl Export {
    /// What the export asks of the image; `None` for exports of a filesystem.
    pub fn image_attrs(&self) -> Option<&ImageAttrs> {
        match self {
            Export::DockerLoad { image, .. }
            | Export::DockerArchive { image, .. }
            | Export::OciArchive { image, .. }
            | Export::Push { image, .. } => Some(image),
            Export::Tar { .. } | Export::Local { .. } => None,
        }
    }
}

/// The exports of a build; empty means the result stays in the cache only.
pub fn plan(opts: &BuildOptions) -> anyhow::Result<Vec<Export>> {
    let mut exports = Vec::new();
    let platforms = super::dockerfile::target_platforms(opts)?;
    for o in &opts.outputs {
        let mut export = from_output(o, &opts.tags, &opts.annotations)?;
        super::platform_split::apply(o, &platforms, &mut export)?;
        if let Export::Local { epoch, .. } | Export::Tar { epoch, .. } = &mut export {
            // The output's own `source-date-epoch` first, even empty, as BuildKit gives its
            // exporters SOURCE_DATE_EPOCH only where they have none.
            *epoch = match o.source_date_epoch() {
                Some(own) => own,
                None => super::dockerfile::source_date_epoch(opts)?,
            };
        }
        exports.push(export);
    }
    if opts.push && !exports.iter().any(|e| matches!(e, Export::Push { .. })) {
        if opts.tags.is_empty() {
            bail!("--push needs a name: add -t NAME[:TAG]");
        }
        exports.push(Export::Push {
            names: opts.tags.clone(),
            compression: LayerCompression::default(),
            oci_media_types: None,
            insecure: false,
            image: ImageAttrs::of_flags(&opts.annotations),
        });
    }
    let rewrites = exports
        .iter()
        .filter_map(Export::image_attrs)
        .any(|a| a.rewrite_timestamp);
    if rewrites && super::dockerfile::source_date_epoch(opts)?.is_none() {
        bail!(
            "rewrite-timestamp=true needs SOURCE_DATE_EPOCH: set it in the environment or \
             with --build-arg SOURCE_DATE_EPOCH=SECONDS"
        );
    }
    let loads = exports
        .iter()
        .any(|e| matches!(e, Export::DockerLoad { .. }));
    // `docker build` always leaves the image in Docker; so does bud, unless other outputs
    // were asked for without --load.
    if !loads && (opts.load || opts.outputs.is_empty() && !opts.push) {
        exports.push(Export::DockerLoad {
            names: opts.tags.clone(),
            image: ImageAttrs::of_flags(&opts.annotations),
        });
    }
    check_annotations(opts, &exports)?;
    Ok(exports)
}

/// Every annotation asked for has a place in every export it is given to, before the build
/// runs: none is dropped.
fn check_annotations(opts: &BuildOptions, exports: &[Export]) -> anyhow::Result<()> {
    let mut platforms = super::dockerfile::target_platforms(opts)?;
    if platforms.len() > 1 {
        return check_index_annotations(opts, exports, &platforms);
    }
    let platform = platforms
        .pop()
        .unwrap_or_else(bud_frontend::convert::Platform::host);
    for e in exports {
        let Some(attrs) = e.image_attrs() else {
            if !opts.annotations.is_empty() {
                bail!(
                    "--annotation: a type=local or type=tar output is files, not an image; \
                     annotations go to image outputs only (type=image, registry or oci)"
                );
            }
            continue;
        };
        if attrs.annotations.is_empty() {
            continue;
        }
        if matches!(e, Export::DockerLoad { .. } | Export::DockerArchive { .. }) {
            bail!(
                "annotations are not written to Docker or to type=docker archives yet (neither \
                 keeps the image manifest): push the image, or use -o type=oci"
            );
        }
        let resolved = attrs.annotations_for(&platform)?;
        if matches!(e, Export::Push { .. }) && !resolved.manifest_descriptor.is_empty() {
            bail!(
                "manifest-descriptor annotations go on an image index's entry for the \
                 manifest, and a pushed single-platform image has no index: use manifest \
                 annotations, or -o type=oci (its index.json holds the descriptor)"
            );
        }
    }
    Ok(())
}

/// `check_annotations` for an image index of several `platforms`: manifest and index
/// annotations go to every image export that writes an index (exports that cannot hold
/// several platforms are refused with the build, by `multi`).
fn check_index_annotations(
    opts: &BuildOptions,
    exports: &[Export],
    platforms: &[bud_frontend::convert::Platform],
) -> anyhow::Result<()> {
    for e in exports {
        let Some(attrs) = e.image_attrs() else {
            if !opts.annotations.is_empty() {
                bail!(
                    "--annotation: a type=local or type=tar output is files, not an image; \
                     annotations go to image outputs only (type=image, registry or oci)"
                );
            }
            continue;
        };
        let resolved = attrs.index_annotations_for(platforms)?;
        if matches!(e, Export::Push { .. }) && !resolved.index_descriptor.is_empty() {
            bail!(
                "index-descriptor annotations go on the descriptor of the image index in an \
                 OCI layout's index.json, and a registry keeps no such descriptor: use index \
                 annotations, or -o type=oci"
            );
        }
    }
    Ok(())
}

fn from_output(o: &Output, tags: &[String], flags: &[Annotation]) -> anyhow::Result<Export> {
    let names = match o.attrs.get("name") {
        Some(n) => n.split(',').map(str::to_string).collect(),
        None => tags.to_vec(),
    };
    let dest = o.dest().map(Dest::parse);
    let compression = layer_compression(o)?;
    let oci_media_types = o.attrs.get("oci-mediatypes").map(|v| v == "true");
    let image = ImageAttrs::of(o, flags)?;
    let pushes = matches!(o.kind, OutputKind::Image | OutputKind::Registry) && o.pushes();
    let docker_load = !pushes
        && (matches!(o.kind, OutputKind::Image | OutputKind::Registry)
            || (o.kind == OutputKind::Docker && dest.is_none()));
    let layer_attrs = [
        "compression",
        "compression-level",
        "force-compression",
        "oci-mediatypes",
    ];
    if docker_load || o.kind == OutputKind::Docker {
        // Docker's image store and `docker save`'s manifest.json keep no blobs or media
        // types: compressing would change nothing there.
        let uncompressed = compression.is_some_and(|c| c.kind == Compression::Uncompressed);
        if let Some(attr) = layer_attrs
            .iter()
            .find(|a| o.attrs.contains_key(**a) && !(**a == "compression" && uncompressed))
        {
            bail!(
                "{attr}= has no effect on an image for Docker or a type=docker archive (their \
                 layers are uncompressed tars without media types): push the image, or use \
                 -o type=oci"
            );
        }
    }
    if o.kind == OutputKind::Oci && oci_media_types == Some(false) {
        bail!("oci-mediatypes=false: bud's type=oci output writes OCI media types only");
    }
    Ok(match o.kind {
        OutputKind::Local => Export::Local {
            dest: PathBuf::from(o.dest().unwrap_or(".")),
            merge_platforms: false,
            in_platform_dir: false,
            epoch: None,
        },
        OutputKind::Tar => Export::Tar {
            dest: dest.unwrap_or(Dest::Stdout),
            epoch: None,
        },
        OutputKind::Oci => match dest {
            Some(dest) => Export::OciArchive {
                dest,
                names,
                image,
                compression,
            },
            None => bail!("type=oci needs dest=FILE (or dest=- for stdout)"),
        },
        OutputKind::Docker => match dest {
            Some(dest) => Export::DockerArchive { dest, names, image },
            None => Export::DockerLoad { names, image },
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
                compression: compression.unwrap_or_default(),
                oci_media_types,
                insecure: ["registry.insecure", "insecure"]
                    .iter()
                    .any(|k| o.attrs.get(*k).is_some_and(|v| v == "true")),
                image,
            }
        }
        OutputKind::Image | OutputKind::Registry => Export::DockerLoad { names, image },
        OutputKind::CacheOnly => bail!("type=cacheonly is not supported yet"),
    })
}

/// `compression=`, `compression-level` and `force-compression`, as BuildKit reads them.
fn layer_compression(o: &Output) -> anyhow::Result<Option<LayerCompression>> {
    LayerCompression::from_attrs(&o.attrs).map_err(|e| anyhow::anyhow!(e))
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
    fn platform_split_places_a_local_output() {
        let local = |line: &str| match &plan_for(line).unwrap()[..] {
            [
                Export::Local {
                    dest,
                    merge_platforms,
                    ..
                },
            ] => (dest.display().to_string(), *merge_platforms),
            other => panic!("{other:?}"),
        };
        let split = "-o type=local,dest=out,platform-split=true";
        assert_eq!(
            local(&format!("--platform linux/arm/v7 {split} .")),
            ("out/linux_arm_v7".into(), false)
        );
        let two = "--platform linux/amd64,linux/arm64";
        assert_eq!(local(&format!("{two} {split} .")), ("out".into(), false));
        let merge = "-o type=local,dest=out,platform-split=false";
        assert_eq!(local(&format!("{two} {merge} .")), ("out".into(), true));
        assert_eq!(
            local(&format!("--platform linux/amd64 {merge} .")),
            ("out".into(), false)
        );
        let err = plan_for(&format!(
            "{two} -o type=tar,dest=o.tar,platform-split=false ."
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("platform-split=false: BuildKit's tar"),
            "{err}"
        );
    }

    /// An output's `source-date-epoch` dates its files over SOURCE_DATE_EPOCH, as BuildKit's
    /// exporters take it; an empty one dates nothing, and one that is no integer is refused.
    #[test]
    fn an_outputs_own_epoch_comes_first() {
        let epoch = |line: &str| match &plan_for(line).unwrap()[..] {
            [Export::Tar { epoch, .. } | Export::Local { epoch, .. }] => *epoch,
            other => panic!("{other:?}"),
        };
        let arg = "--build-arg SOURCE_DATE_EPOCH=5";
        assert_eq!(
            epoch(&format!("{arg} -o type=tar,dest=t,source-date-epoch=-7 .")),
            Some(-7)
        );
        assert_eq!(
            epoch(&format!("{arg} -o type=local,dest=d,source-date-epoch= .")),
            None
        );
        assert_eq!(epoch(&format!("{arg} -o type=local,dest=d .")), Some(5));
        assert_eq!(
            epoch("-o type=local,dest=d,source-date-epoch=12 ."),
            Some(12)
        );
        let err = Cli::try_parse_implied(
            "bud -o type=tar,dest=t,source-date-epoch=now .".split_whitespace(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("source-date-epoch=\"now\": expected seconds"),
            "{err}"
        );
    }

    #[test]
    fn like_docker_build() {
        assert_eq!(
            plan_for("-t a:1 .").unwrap(),
            [Export::DockerLoad {
                names: vec!["a:1".into()],
                image: ImageAttrs::default(),
            }]
        );
        assert_eq!(
            plan_for(".").unwrap(),
            [Export::DockerLoad {
                names: vec![],
                image: ImageAttrs::default(),
            }]
        );
        assert_eq!(
            plan_for("-o out .").unwrap(),
            [Export::Local {
                dest: "out".into(),
                merge_platforms: false,
                in_platform_dir: false,
                epoch: None,
            }]
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
