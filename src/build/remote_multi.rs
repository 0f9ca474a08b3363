//! Several platforms on BuildKit daemons: `--addr` with `--platform a,b`, or the native
//! nodes of bud.toml's `[builder]` (as a buildx builder of several nodes). Each platform is
//! one solve on the node that builds it, all at once; bud joins the results as buildx
//! exports them: one directory per platform for local and tar outputs, an image index
//! pushed or written as an OCI layout from the images the nodes stored in their Docker.
//!
//! Per-platform solves rather than one solve returning a ref per platform: dockerd's
//! `moby` exporter (20.10 and 28 on Docker's own image store) takes one image only, and
//! nodes are different daemons; bud's own code writes the index either way.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use bud_frontend::convert::Platform;
use tokio_util::sync::CancellationToken;

use crate::cli::BuildOptions;
use crate::config::NodeConfig;
use crate::exporter::files_tar;
use crate::remote::TlsOptions;

use super::export::{self, BuiltImage};
use super::inputs::BuildInputs;
use super::multi::{PlatformBuilt, platform_dir};
use super::outputs::{Dest, Export};
use super::remote::{Part, Solved, solve_on};
use super::{BuildEnv, BuildReport};

/// A BuildKit endpoint and the platforms it builds (none: any platform no other node lists).
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub name: String,
    pub addr: String,
    pub tls: TlsOptions,
    pub platforms: Vec<Platform>,
}

impl Node {
    /// The one node `--addr` names: it builds every platform.
    pub(super) fn one(addr: &str, tls: &TlsOptions) -> Self {
        Node {
            name: "bud0".to_owned(),
            addr: addr.to_owned(),
            tls: tls.clone(),
            platforms: Vec::new(),
        }
    }

    /// bud.toml's `[[builder.nodes]]`, checked: an address each, platforms as `--platform`
    /// takes them, names unique (`node0`, `node1`… when not given, as buildx names them).
    pub(super) fn from_config(nodes: &[NodeConfig]) -> anyhow::Result<Vec<Node>> {
        let mut out: Vec<Node> = Vec::with_capacity(nodes.len());
        for (i, n) in nodes.iter().enumerate() {
            let name = n.name_at(i);
            if n.addr.is_empty() {
                bail!("bud.toml: [[builder.nodes]] {name} has no addr");
            }
            crate::remote::Addr::parse(&n.addr)
                .with_context(|| format!("bud.toml: [[builder.nodes]] {name}"))?;
            if out.iter().any(|o| o.name == name) {
                bail!("bud.toml: two [[builder.nodes]] are named {name}");
            }
            let platforms = n
                .platforms
                .iter()
                .map(|p| {
                    Platform::parse(p.trim()).map_err(|e| {
                        anyhow::anyhow!("bud.toml: [[builder.nodes]] {name}: platform {p}: {e}")
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            out.push(Node {
                name,
                addr: n.addr.clone(),
                tls: TlsOptions::default(),
                platforms,
            });
        }
        Ok(out)
    }
}

/// The node each platform is built on: the first that lists it, else the first that lists
/// none; a platform no node builds is refused, naming what each node builds.
pub(super) fn assign<'a>(
    nodes: &'a [Node],
    platforms: &[Platform],
) -> anyhow::Result<Vec<&'a Node>> {
    platforms
        .iter()
        .map(|p| {
            nodes
                .iter()
                .find(|n| n.platforms.contains(p))
                .or_else(|| nodes.iter().find(|n| n.platforms.is_empty()))
                .ok_or_else(|| {
                    let listed: Vec<String> = nodes
                        .iter()
                        .map(|n| {
                            let platforms: Vec<String> =
                                n.platforms.iter().map(|p| p.to_string()).collect();
                            format!("{} ({})", n.name, platforms.join(", "))
                        })
                        .collect();
                    anyhow::anyhow!(
                        "no node of the builder builds {p}: its nodes are {}; add one for {p} \
                         to [[builder.nodes]] in bud.toml",
                        listed.join("; ")
                    )
                })
        })
        .collect()
}

/// Builds `platforms` (one or more), each on its node, and exports the results where
/// `exports` say.
pub(super) async fn build(
    env: &BuildEnv,
    nodes: &[Node],
    opts: &BuildOptions,
    inputs: &BuildInputs,
    exports: &[Export],
    platforms: Vec<Platform>,
    cancel: CancellationToken,
) -> anyhow::Result<BuildReport> {
    let assigned = assign(nodes, &platforms)?;
    if platforms.len() == 1 {
        // One platform is an ordinary build on its node.
        let node = assigned[0];
        let solved = solve_on(
            env,
            &node.addr,
            &node.tls,
            opts,
            inputs,
            exports,
            Part::default(),
            cancel,
        )
        .await?;
        return Ok(solved.report);
    }
    // Per-platform solves leave one image per platform in the node's Docker: no index to load.
    super::multi::refuse_single_image_exports(exports, false)?;
    // The daemons' images are read back as they stored them: bud cannot clamp their times.
    if exports
        .iter()
        .any(|e| e.image_attrs().is_some_and(|a| a.rewrite_timestamp))
    {
        bail!("rewrite-timestamp=true with several platforms on BuildKit is not supported yet");
    }
    if !opts.cache_to.is_empty() {
        bail!("--cache-to with several platforms is not supported yet");
    }
    if exports.is_empty() {
        bail!("with --addr or [[builder.nodes]], give an output (-t, --load, --push or -o)");
    }
    let scratch = tempfile::Builder::new()
        .prefix("platforms-")
        .tempdir_in(env.state.tmp_dir())
        .context("making a directory for the platforms' tarballs")?;
    let wants_image = exports
        .iter()
        .any(|e| matches!(e, Export::Push { .. } | Export::OciArchive { .. }));
    let solves = platforms
        .iter()
        .zip(&assigned)
        .enumerate()
        .map(|(i, (platform, node))| {
            let part_exports = platform_exports(exports, platform, scratch.path(), wants_image);
            let cancel = cancel.clone();
            async move {
                // One solve per output: dockerd 20.10's BuildKit runs one exporter per solve,
                // and the solves after the first find every step in its cache.
                let mut image = None;
                for (j, e) in part_exports.iter().enumerate() {
                    let part = Part {
                        platform: Some(platform.clone()),
                        platforms: Vec::new(),
                        quiet: i > 0 || j > 0,
                    };
                    let solved = solve_on(
                        env,
                        &node.addr,
                        &node.tls,
                        opts,
                        inputs,
                        std::slice::from_ref(e),
                        part,
                        cancel.clone(),
                    )
                    .await
                    .with_context(|| {
                        if nodes.len() > 1 {
                            format!("{platform} on node {} ({})", node.name, node.addr)
                        } else {
                            platform.to_string()
                        }
                    })?;
                    if matches!(e, Export::DockerLoad { .. }) {
                        image = Some(solved);
                    }
                }
                anyhow::Ok(image)
            }
        });
    let solved = futures_util::future::try_join_all(solves).await?;

    let mut images = Vec::new();
    if wants_image {
        for (platform, s) in platforms.iter().zip(&solved) {
            let Some(s) = s else {
                bail!("internal error: no image of {platform} stored in the node's Docker");
            };
            images.push(stored_image(env, platform, s).await?);
        }
    }
    let mut report = BuildReport::default();
    // The joined exports show as one more step, as the embedded build's do.
    env.progress
        .started(super::multi::EXPORT_VERTEX, "exporting to image");
    let exported = join_exports(
        exports,
        &platforms,
        &images,
        scratch.path(),
        env,
        &mut report,
    )
    .await;
    super::multi::finish_export_vertex(&env.progress, &report, &exported);
    exported?;
    Ok(report)
}

/// Writes what the platforms' solves made into the outputs: tarballs joined, images into an
/// index, local outputs with `platform-split=false` merged (the others are written by each
/// solve).
async fn join_exports(
    exports: &[Export],
    platforms: &[Platform],
    images: &[BuiltImage],
    scratch: &Path,
    env: &BuildEnv,
    report: &mut BuildReport,
) -> anyhow::Result<()> {
    for (k, e) in exports.iter().enumerate() {
        match e {
            Export::Local {
                dest,
                merge_platforms: true,
                ..
            } => {
                let parts: Vec<(Platform, PathBuf)> = platforms
                    .iter()
                    .map(|p| (p.clone(), part_dir(scratch, k, p)))
                    .collect();
                let dest = dest.clone();
                tokio::task::spawn_blocking(move || merge_parts(&parts, &dest))
                    .await
                    .context("writing the platforms' files")??;
            }
            // Written by each platform's solve.
            Export::Local { .. } => {}
            Export::Tar { dest, epoch } => {
                let parts: Vec<(String, PathBuf)> = platforms
                    .iter()
                    .map(|p| (platform_dir(p), part_tar(scratch, k, p)))
                    .collect();
                let dest = dest.clone();
                let epoch = *epoch;
                tokio::task::spawn_blocking(move || join_tars(&parts, &dest, epoch))
                    .await
                    .context("writing the tarball")??;
            }
            Export::Push { .. } | Export::OciArchive { .. } => {
                let built: Vec<PlatformBuilt<'_>> = platforms
                    .iter()
                    .zip(images)
                    .map(|(platform, image)| PlatformBuilt {
                        platform,
                        image,
                        attestations: &[],
                    })
                    .collect();
                super::multi::export_index(e, &built, env, report).await?;
            }
            Export::DockerLoad { .. } | Export::DockerArchive { .. } => {
                bail!("internal error: an export of one image for several platforms")
            }
        }
    }
    Ok(())
}

/// The platforms' files, each received into a directory of its own, into `dest`, once they
/// are known not to overwrite one another's.
fn merge_parts(parts: &[(Platform, PathBuf)], dest: &Path) -> anyhow::Result<()> {
    let refs: Vec<(&Platform, &Path)> = parts.iter().map(|(p, d)| (p, d.as_path())).collect();
    super::platform_split::check_disjoint(&refs)?;
    for (_, dir) in parts {
        super::export::received_dir(dir, dest)?;
    }
    Ok(())
}

/// What a solve of several platforms on a BuildKit with its own image exporters cannot do,
/// refused before anything runs: an archive of one image (as buildx refuses it), or a load
/// anywhere but into the daemon's own containerd store (`docker://`, its `moby` exporter).
pub(super) fn refuse_in_one_solve(exports: &[Export], addr: &str) -> anyhow::Result<()> {
    super::multi::refuse_single_image_exports(exports, addr.starts_with("docker://"))
}

/// What one platform's solve exports: its own directory of a local output, its tarball
/// into `scratch`, and, for the index, its image stored untagged in the node's Docker.
fn platform_exports(
    exports: &[Export],
    platform: &Platform,
    scratch: &Path,
    wants_image: bool,
) -> Vec<Export> {
    let mut part = Vec::new();
    if wants_image {
        part.push(Export::DockerLoad {
            names: Vec::new(),
            image: Default::default(),
        });
    }
    for (k, e) in exports.iter().enumerate() {
        match e {
            Export::Local {
                dest,
                merge_platforms,
                epoch,
                ..
            } => part.push(Export::Local {
                // Merged once every platform's files are there and checked to fit together.
                dest: if *merge_platforms {
                    part_dir(scratch, k, platform)
                } else {
                    dest.join(platform_dir(platform))
                },
                merge_platforms: false,
                in_platform_dir: !*merge_platforms,
                epoch: *epoch,
            }),
            Export::Tar { epoch, .. } => part.push(Export::Tar {
                dest: Dest::File(part_tar(scratch, k, platform)),
                epoch: *epoch,
            }),
            _ => {}
        }
    }
    part
}

/// Where a platform's files for the `export`-th output, a local directory with
/// `platform-split=false`, are written first.
fn part_dir(scratch: &Path, export: usize, platform: &Platform) -> PathBuf {
    scratch.join(format!("{export}-{}", platform_dir(platform)))
}

/// Where a platform's part of the `export`-th output, a tarball, is written first.
fn part_tar(scratch: &Path, export: usize, platform: &Platform) -> PathBuf {
    scratch.join(format!("{export}-{}.tar", platform_dir(platform)))
}

/// The image a platform's solve stored in its node's Docker, read into the content store;
/// the untagged image is then removed from that Docker, where nobody asked for it.
async fn stored_image(
    env: &BuildEnv,
    platform: &Platform,
    solved: &Solved,
) -> anyhow::Result<BuiltImage> {
    let (Some(image_id), Some(docker)) = (&solved.report.image_id, &solved.docker) else {
        bail!("internal error: no image of {platform} stored in the node's Docker");
    };
    let built = super::remote_outputs::read_back(docker, image_id, env).await?;
    let untagged = docker
        .inspect_image(image_id)
        .await
        .is_ok_and(|i| i.repo_tags.unwrap_or_default().is_empty());
    if untagged {
        // Best effort: an image a concurrent build tagged meanwhile is left, as Docker
        // refuses to remove it.
        let _ = docker
            .remove_image(
                image_id,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }
    Ok(built)
}

/// One tarball of the platforms' tarballs, each under its own directory, as buildx's tar
/// output of several platforms holds them. `epoch` (SOURCE_DATE_EPOCH) is every entry's
/// mtime, as BuildKit's tar exporter sets it, which a daemon's older BuildKit did not.
fn join_tars(parts: &[(String, PathBuf)], dest: &Dest, epoch: Option<i64>) -> anyhow::Result<()> {
    let mut writer = files_tar::Writer::new(export::open_dest(dest)?);
    for (dir, tarball) in parts {
        writer
            .append(
                &export::platform_dir_entry(dir.as_bytes(), epoch),
                &mut std::io::empty(),
            )
            .context("writing the tarball")?;
        copy_entries(&mut writer, tarball, dir.as_bytes(), epoch)?;
    }
    writer.finish().context("writing the tarball")?;
    Ok(())
}

/// Rewrites the tarball a daemon sent with `epoch` as every entry's mtime: a BuildKit
/// older than 0.11 (dockerd 20.10's) ignores the tar exporter's `source-date-epoch`.
pub(super) fn restamp_tar(tarball: &Path, epoch: i64) -> anyhow::Result<()> {
    let dir = tarball.parent().unwrap_or(Path::new("."));
    let out = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    let mut writer = files_tar::Writer::new(std::io::BufWriter::new(out));
    copy_entries(&mut writer, tarball, b"", Some(epoch))?;
    let out = writer
        .finish()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .with_context(|| format!("writing {}", tarball.display()))?;
    // The tarball's own mode, not the temporary file's 0600.
    std::fs::metadata(tarball)
        .and_then(|m| out.as_file().set_permissions(m.permissions()))
        .with_context(|| format!("copying the mode of {}", tarball.display()))?;
    out.persist(tarball)
        .with_context(|| format!("replacing {}", tarball.display()))?;
    Ok(())
}

/// Every entry of `tarball` (a daemon's tar exporter's) into `writer` under the directory
/// `under` (none when empty), with `epoch` as its mtime where given, its header otherwise
/// what the daemon wrote. Hard links name paths in the archive, so they move under `under`
/// too.
fn copy_entries<W: std::io::Write>(
    writer: &mut files_tar::Writer<W>,
    tarball: &Path,
    under: &[u8],
    epoch: Option<i64>,
) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(tarball).with_context(|| format!("opening {}", tarball.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let read = || format!("reading {}", tarball.display());
    for entry in archive.entries().with_context(read)? {
        let mut entry = entry.with_context(read)?;
        let mut copied = received_entry(&mut entry, under).with_context(read)?;
        if let Some(epoch) = epoch {
            copied.mtime = epoch;
        }
        writer.append(&copied, &mut entry).with_context(|| {
            format!(
                "writing {} into the tarball",
                String::from_utf8_lossy(&copied.name)
            )
        })?;
    }
    Ok(())
}

/// The header of `entry`, read through its PAX records, named under `under`.
fn received_entry<R: std::io::Read>(
    entry: &mut tar::Entry<'_, R>,
    under: &[u8],
) -> anyhow::Result<files_tar::Entry> {
    use files_tar::Kind;
    let below = |name: &[u8]| {
        let mut joined = under.to_vec();
        if !joined.is_empty() {
            joined.push(b'/');
        }
        joined.extend_from_slice(name);
        joined
    };
    let header = entry.header();
    let kind = match header.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
        tar::EntryType::Directory => Kind::Dir,
        tar::EntryType::Symlink => Kind::Symlink,
        tar::EntryType::Link => Kind::HardLink,
        tar::EntryType::Char => Kind::Char,
        tar::EntryType::Block => Kind::Block,
        tar::EntryType::Fifo => Kind::Fifo,
        other => bail!("an entry of type {:?}", char::from(other.as_byte())),
    };
    let mut copied = files_tar::Entry::new(below(&entry.path_bytes()), kind);
    copied.mode = header.mode()? & 0o7777;
    copied.uid = header.uid()?;
    copied.gid = header.gid()?;
    copied.mtime = i64::try_from(header.mtime()?).unwrap_or(i64::MAX);
    // Only a device's are read: other writers leave the fields empty.
    if matches!(kind, Kind::Char | Kind::Block) {
        copied.device = (
            header.device_major()?.unwrap_or(0).into(),
            header.device_minor()?.unwrap_or(0).into(),
        );
    }
    copied.size = entry.size();
    if let Some(link) = entry.link_name_bytes() {
        copied.link = match kind {
            Kind::HardLink => below(&link),
            _ => link.into_owned(),
        };
    }
    if let Some(records) = entry.pax_extensions()? {
        for record in records {
            let record = record?;
            let Ok(key) = record.key() else {
                continue;
            };
            let number = || -> anyhow::Result<i64> {
                let value = record.value().map_err(|_| anyhow::anyhow!("a PAX {key}"))?;
                let whole = value.split('.').next().unwrap_or(value);
                whole
                    .parse()
                    .with_context(|| format!("a PAX {key} of {value:?}"))
            };
            match key {
                "mtime" => copied.mtime = number()?,
                "uid" => copied.uid = u64::try_from(number()?).context("a negative uid")?,
                "gid" => copied.gid = u64::try_from(number()?).context("a negative gid")?,
                // Read by the tar crate already, or not written by Go's archive/tar.
                "path" | "linkpath" | "size" | "atime" | "ctime" | "uname" | "gname" => {}
                other => {
                    copied
                        .records
                        .insert(other.to_owned(), record.value_bytes().to_vec());
                }
            }
        }
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, platforms: &[&str]) -> Node {
        Node {
            name: name.to_owned(),
            addr: "docker://".to_owned(),
            tls: TlsOptions::default(),
            platforms: platforms
                .iter()
                .map(|p| Platform::parse(p).unwrap())
                .collect(),
        }
    }

    #[test]
    fn each_platform_goes_to_the_node_that_lists_it() {
        let nodes = [
            node("amd", &["linux/amd64"]),
            node("arm", &["linux/arm64/v8"]),
        ];
        let platforms: Vec<Platform> = ["linux/arm64", "linux/amd64"]
            .iter()
            .map(|p| Platform::parse(p).unwrap())
            .collect();
        let names: Vec<&str> = assign(&nodes, &platforms)
            .unwrap()
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(names, ["arm", "amd"]);

        let err = assign(&nodes, &[Platform::parse("linux/s390x").unwrap()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no node of the builder builds linux/s390x"),
            "{err}"
        );
        assert!(
            err.contains("amd (linux/amd64); arm (linux/arm64)"),
            "{err}"
        );

        let any = [node("arm", &["linux/arm64"]), node("rest", &[])];
        let names: Vec<&str> = assign(&any, &platforms)
            .unwrap()
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(names, ["arm", "rest"]);
    }

    #[test]
    fn nodes_are_checked_as_bud_toml_gives_them() {
        let config = |addr: &str, platforms: &[&str]| NodeConfig {
            name: None,
            addr: addr.to_owned(),
            platforms: platforms.iter().map(|p| p.to_string()).collect(),
        };
        let nodes = Node::from_config(&[
            config("tcp://arm:1234", &["linux/arm64"]),
            config("unix:///run/buildkit.sock", &[]),
        ])
        .unwrap();
        assert_eq!(nodes[0].name, "node0");
        assert_eq!(nodes[1].name, "node1");
        assert_eq!(nodes[0].platforms[0].to_string(), "linux/arm64");
        for (bad, why) in [
            (config("", &[]), "has no addr"),
            (config("ftp://x", &[]), "invalid --addr"),
            (config("tcp://a:1", &["nonsense"]), "platform nonsense"),
        ] {
            let err = format!("{:#}", Node::from_config(&[bad]).unwrap_err());
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn joined_tarballs_put_each_platform_under_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("a.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&part).unwrap());
        let header = |kind: tar::EntryType, size: u64, uid: u64| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(size);
            h.set_mode(0o644);
            h.set_uid(uid);
            h.set_gid(0);
            h.set_mtime(0);
            h
        };
        let mut h = header(tar::EntryType::Regular, 2, 1000);
        b.append_data(&mut h, "etc/f", &b"hi"[..]).unwrap();
        let mut l = header(tar::EntryType::Link, 0, 0);
        b.append_link(&mut l, "etc/g", "etc/f").unwrap();
        let mut s = header(tar::EntryType::Symlink, 0, 0);
        b.append_link(&mut s, "etc/s", "/etc/f").unwrap();
        b.into_inner().unwrap();

        let out = dir.path().join("out.tar");
        join_tars(
            &[("linux_arm64".to_owned(), part)],
            &Dest::File(out.clone()),
            None,
        )
        .unwrap();
        let mut archive = tar::Archive::new(std::fs::File::open(&out).unwrap());
        let entries: Vec<(String, Option<String>, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned()),
                    e.header().uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("linux_arm64/".to_owned(), None, 0),
                ("linux_arm64/etc/f".to_owned(), None, 1000),
                (
                    "linux_arm64/etc/g".to_owned(),
                    Some("linux_arm64/etc/f".to_owned()),
                    0
                ),
                ("linux_arm64/etc/s".to_owned(), Some("/etc/f".to_owned()), 0),
            ]
        );
    }

    /// What a daemon's tarball says in PAX records (a time before 1970, xattrs, a long
    /// name) is kept when bud joins or restamps it: the result is the tarball bud would
    /// write itself.
    #[test]
    fn rewritten_tarballs_keep_what_pax_records_say() {
        use files_tar::{Entry, Kind, Writer};
        // `under`'s own entry is dated as joined tarballs date a platform's: 0 unless an
        // epoch is given.
        let write = |path: &Path, under: &str, mtime: i64| {
            let mut writer = Writer::new(std::fs::File::create(path).unwrap());
            if !under.is_empty() {
                writer
                    .append(
                        &export::platform_dir_entry(under.as_bytes(), None),
                        &mut std::io::empty(),
                    )
                    .unwrap();
            }
            let prefix = |name: &str| match under {
                "" => name.to_owned(),
                dir => format!("{dir}/{name}"),
            };
            let mut dir = Entry::new(prefix(&"d".repeat(200)), Kind::Dir);
            dir.mode = 0o755;
            dir.mtime = mtime;
            writer.append(&dir, &mut std::io::empty()).unwrap();
            let mut file = Entry::new(prefix("f"), Kind::File);
            file.mode = 0o4755;
            file.uid = 1000;
            file.mtime = mtime;
            file.size = 2;
            file.records
                .insert("SCHILY.xattr.user.a".to_owned(), b"v".to_vec());
            writer.append(&file, &mut &b"hi"[..]).unwrap();
            writer.finish().unwrap();
        };
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("part.tar");
        write(&part, "", -100);

        let joined = dir.path().join("joined.tar");
        join_tars(
            &[("linux_arm64".to_owned(), part.clone())],
            &Dest::File(joined.clone()),
            None,
        )
        .unwrap();
        let expected = dir.path().join("expected.tar");
        write(&expected, "linux_arm64", -100);
        assert!(std::fs::read(&joined).unwrap() == std::fs::read(&expected).unwrap());

        restamp_tar(&part, 7).unwrap();
        write(&expected, "", 7);
        assert!(std::fs::read(&part).unwrap() == std::fs::read(&expected).unwrap());
    }
}
