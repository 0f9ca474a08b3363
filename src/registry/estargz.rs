//! eStargz layers (`compression=estargz`), laid out as containerd's stargz-snapshotter writes
//! them for BuildKit (`estargz.Writer.AppendTarLossLess`): the layer's tar, unchanged byte
//! for byte, cut into gzip members so that every regular file's content starts a member of
//! its own (a new one every 4 MiB), then the table of contents as a tar entry
//! `stargz.index.json` in a member of its own, then a 51-byte footer, an empty gzip member
//! whose header's extra field holds the TOC's offset.
//!
//! The blob is still one gzip stream: decompressed, it is the layer's tar (end-of-archive
//! blocks included, so that a tar reader stops there) followed by the TOC's tar. That whole
//! decompressed stream is the layer's diff ID, as BuildKit records it. The "prioritized
//! files" landmarks of `ctr-remote optimize` are not written; BuildKit writes none either.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::rc::Rc;

use base64::Engine as _;
use flate2::GzBuilder;
use flate2::write::GzEncoder;
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::RegistryError;
use super::compress::LayerCompression;
use super::manifest::OCI_LAYER_GZIP;
use super::metadata::{Metadata, log_cache_error};
use crate::content::{ContentStore, Digest};
use crate::exporter::{CompressedBlob, Image, Layer};

/// The layer descriptor annotation naming the TOC's digest.
pub(crate) const TOC_DIGEST_ANNOTATION: &str = "containerd.io/snapshot/stargz/toc.digest";
/// The layer descriptor annotation giving the decompressed blob's size.
const UNCOMPRESSED_SIZE_ANNOTATION: &str = "io.containers.estargz.uncompressed-size";
/// The TOC's name in the tar.
const TOC_TAR_NAME: &str = "stargz.index.json";
/// The footer's size: an empty gzip member with the TOC offset in its extra field.
const FOOTER_SIZE: usize = 51;
/// The content of a regular file goes into members of at most this many bytes.
const CHUNK_SIZE: u64 = 4 << 20;

/// What writing an eStargz blob learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    /// sha256 of the TOC JSON.
    toc_digest: Digest,
    /// sha256 of the decompressed blob: the layer's tar, then the TOC's.
    diff_id: Digest,
    /// Size of the decompressed blob.
    uncompressed_size: u64,
}

impl Written {
    /// The annotations the layer's descriptor carries.
    fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                TOC_DIGEST_ANNOTATION.to_owned(),
                self.toc_digest.to_string(),
            ),
            (
                UNCOMPRESSED_SIZE_ANNOTATION.to_owned(),
                self.uncompressed_size.to_string(),
            ),
        ])
    }
}

/// `image` with `layers` as eStargz: each layer's blob written into `store`, its diff ID in
/// the config replaced by the eStargz stream's. The returned layers keep their original
/// `tar` (the eStargz tar is that tar followed by the TOC); their `compressed` blob is the
/// one to push. Blocking.
///
/// A base image layer that has a blob is kept as it came unless `config.force`, as
/// BuildKit keeps it.
pub fn convert(
    store: &ContentStore,
    image: &Image,
    layers: &[Layer],
    config: LayerCompression,
) -> Result<(Image, Vec<Layer>), RegistryError> {
    let converted = layers
        .par_iter()
        .map(|layer| {
            if layer.base
                && let Some((digest, kind)) =
                    super::compress::base_layer_blob(store, &layer.diff_id, config)
            {
                return Ok(Layer {
                    compressed: Some(CompressedBlob {
                        path: store.path(&digest),
                        digest,
                        media_type: kind.oci_media_type().to_owned(),
                        annotations: BTreeMap::new(),
                    }),
                    ..layer.clone()
                });
            }
            let (digest, written) = blob(store, layer, config)?;
            Ok(Layer {
                tar: layer.tar.clone(),
                diff_id: written.diff_id.clone(),
                compressed: Some(CompressedBlob {
                    path: store.path(&digest),
                    digest,
                    media_type: OCI_LAYER_GZIP.to_owned(),
                    annotations: written.annotations(),
                }),
                base: layer.base,
            })
        })
        .collect::<Result<Vec<_>, RegistryError>>()?;
    let mut image = image.clone();
    image.rootfs.diff_ids = converted.iter().map(|l| l.diff_id.to_string()).collect();
    Ok((image, converted))
}

/// The eStargz blob of `layer`: made once, then found again (and read back for what the
/// descriptor and config need).
fn blob(
    store: &ContentStore,
    layer: &Layer,
    config: LayerCompression,
) -> Result<(Digest, Written), RegistryError> {
    let metadata = Metadata::new(store);
    // Remembered per level; whether base layers were forced does not change a blob.
    let config = LayerCompression {
        force: false,
        ..config
    };
    if let Some(digest) = metadata.compressed(store, &layer.diff_id, config) {
        let path = store.path(&digest);
        let read = std::fs::File::open(&path).and_then(|file| describe(io::BufReader::new(file)));
        match read {
            Ok(written) => return Ok((digest, written)),
            Err(e) => tracing::debug!("reading back {}: {e}; writing it again", path.display()),
        }
    }
    let file = std::fs::File::open(&layer.tar).map_err(RegistryError::io("opening", &layer.tar))?;
    let mut writer = store.writer()?;
    let written = write(
        io::BufReader::new(file),
        &mut writer,
        config.effective_level(),
    )
    .map_err(RegistryError::io("writing the eStargz blob of", &layer.tar))?;
    let digest = writer.commit(None)?;
    log_cache_error(metadata.set_compressed(&layer.diff_id, config, &digest));
    Ok((digest, written))
}

/// What [`write`](fn@write) learnt, read back from an eStargz blob: the TOC found from the footer, the
/// diff ID by decompressing it all.
fn describe(mut blob: impl Read + Seek) -> io::Result<Written> {
    let len = blob.seek(SeekFrom::End(0))?;
    let mut footer_bytes = [0; FOOTER_SIZE];
    blob.seek(SeekFrom::Start(len.saturating_sub(FOOTER_SIZE as u64)))?;
    blob.read_exact(&mut footer_bytes)?;
    let not_estargz = || io::Error::other("not an eStargz blob");
    let toc_offset = parse_footer(&footer_bytes).ok_or_else(not_estargz)?;
    blob.seek(SeekFrom::Start(toc_offset))?;
    let mut toc_tar = tar::Archive::new(flate2::read::GzDecoder::new(&mut blob));
    let mut toc_json = Vec::new();
    {
        let mut entries = toc_tar.entries()?;
        let mut toc = entries.next().ok_or_else(not_estargz)??;
        if *toc.path_bytes() != *TOC_TAR_NAME.as_bytes() {
            return Err(not_estargz());
        }
        toc.read_to_end(&mut toc_json)?;
    }
    drop(toc_tar);
    blob.seek(SeekFrom::Start(0))?;
    let mut plain = Sha256::new();
    let uncompressed_size = io::copy(
        &mut flate2::read::MultiGzDecoder::new(blob),
        &mut Hashing(&mut [&mut plain]),
    )?;
    Ok(Written {
        toc_digest: Digest::of(&toc_json),
        diff_id: Digest::from_hasher(plain),
        uncompressed_size,
    })
}

/// Writes the tar read from `tar` to `out` as an eStargz blob, its gzip members at `level`.
fn write(tar: impl Read, out: impl Write, level: i32) -> io::Result<Written> {
    let level = super::compress::gzip_level(level)?;
    let members = Rc::new(RefCell::new(Members::new(out, level)));
    let mut archive = tar::Archive::new(Tee {
        inner: tar,
        members: Rc::clone(&members),
    });
    let mut toc = Toc {
        version: 1,
        entries: Vec::new(),
    };
    let mut owners = Owners::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let mut ent = toc_entry(&mut entry, &mut owners)?;
        if ent.kind != "reg" {
            toc.entries.push(ent);
            continue;
        }
        let size = entry.size();
        let mut whole = Sha256::new();
        let first = toc.entries.len();
        let mut written = 0;
        while written < size {
            let len = CHUNK_SIZE.min(size - written);
            if len == CHUNK_SIZE {
                ent.chunk_size = len;
            }
            let mut members_now = members.borrow_mut();
            members_now.close()?;
            ent.offset = members_now.offset()?;
            drop(members_now);
            ent.chunk_offset = written;
            let mut chunk = Sha256::new();
            let copied = io::copy(
                &mut (&mut entry).take(len),
                &mut Hashing(&mut [&mut chunk, &mut whole]),
            )?;
            if copied != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the tar ends inside {}", ent.name),
                ));
            }
            ent.chunk_digest = Some(Digest::from_hasher(chunk).to_string());
            written += len;
            let next = TocEntry::chunk(&ent.name);
            toc.entries.push(std::mem::replace(&mut ent, next));
        }
        if size == 0 {
            toc.entries.push(ent);
        }
        toc.entries[first].digest = Some(Digest::from_hasher(whole).to_string());
    }
    // The end-of-archive blocks and whatever follows them stay, as the lossless writer keeps
    // them: the decompressed blob starts with the layer's tar exactly.
    io::copy(&mut archive.into_inner(), &mut io::sink())?;

    let toc_json = toc_json(&toc)?;
    let mut members = members.borrow_mut();
    members.close()?;
    let toc_offset = members.offset()?;
    members.write_plain(&toc_tar(&toc_json)?)?;
    members.close()?;
    members.write_raw(&footer(toc_offset))?;
    let (diff_id, uncompressed_size) = members.finish()?;
    Ok(Written {
        toc_digest: Digest::of(&toc_json),
        diff_id,
        uncompressed_size,
    })
}

/// The footer: an empty gzip member, written as Go's gzip writer at `NoCompression` writes
/// it, whose extra field's `SG` subfield is the TOC offset as `%016xSTARGZ`.
fn footer(toc_offset: u64) -> [u8; FOOTER_SIZE] {
    let mut footer = [0u8; FOOTER_SIZE];
    let subfield = format!("{toc_offset:016x}STARGZ");
    // ID1 ID2 CM=deflate FLG=FEXTRA, MTIME 0, XFL 0, OS unknown.
    footer[..10].copy_from_slice(&[0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255]);
    footer[10..12].copy_from_slice(&26u16.to_le_bytes());
    footer[12..14].copy_from_slice(b"SG");
    footer[14..16].copy_from_slice(&22u16.to_le_bytes());
    footer[16..38].copy_from_slice(subfield.as_bytes());
    // An empty final stored block; CRC32 and size of nothing are 0.
    footer[38..43].copy_from_slice(&[1, 0, 0, 0xff, 0xff]);
    footer
}

/// The TOC offset a footer gives, if `footer` is one.
fn parse_footer(footer: &[u8]) -> Option<u64> {
    if footer.len() != FOOTER_SIZE || footer[..4] != [0x1f, 0x8b, 8, 4] || &footer[12..14] != b"SG"
    {
        return None;
    }
    let subfield = std::str::from_utf8(&footer[16..38]).ok()?;
    let hex = subfield.strip_suffix("STARGZ")?;
    u64::from_str_radix(hex, 16).ok()
}

/// The TOC as stargz-snapshotter's `JTOC` marshals it.
#[derive(Serialize)]
struct Toc {
    version: u32,
    entries: Vec<TocEntry>,
}

/// One TOC entry, fields in `TOCEntry`'s order, empty ones left out as Go's `omitempty`.
#[derive(Serialize, Default)]
struct TocEntry {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "is_zero")]
    size: u64,
    #[serde(rename = "modtime", skip_serializing_if = "Option::is_none")]
    mod_time: Option<String>,
    #[serde(rename = "linkName", skip_serializing_if = "Option::is_none")]
    link_name: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    mode: u64,
    #[serde(skip_serializing_if = "is_zero")]
    uid: u64,
    #[serde(skip_serializing_if = "is_zero")]
    gid: u64,
    #[serde(rename = "userName", skip_serializing_if = "Option::is_none")]
    user_name: Option<String>,
    #[serde(rename = "groupName", skip_serializing_if = "Option::is_none")]
    group_name: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    offset: u64,
    #[serde(rename = "devMajor", skip_serializing_if = "is_zero")]
    dev_major: u64,
    #[serde(rename = "devMinor", skip_serializing_if = "is_zero")]
    dev_minor: u64,
    /// Values base64, as Go marshals `[]byte`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    xattrs: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(rename = "chunkOffset", skip_serializing_if = "is_zero")]
    chunk_offset: u64,
    #[serde(rename = "chunkSize", skip_serializing_if = "is_zero")]
    chunk_size: u64,
    #[serde(rename = "chunkDigest", skip_serializing_if = "Option::is_none")]
    chunk_digest: Option<String>,
}

impl TocEntry {
    fn chunk(name: &str) -> TocEntry {
        TocEntry {
            name: name.to_owned(),
            kind: "chunk",
            ..TocEntry::default()
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// User and group names are given only where they change for an ID (`nameIfChanged`).
#[derive(Default)]
struct Owners {
    users: HashMap<u64, String>,
    groups: HashMap<u64, String>,
}

fn name_if_changed(seen: &mut HashMap<u64, String>, id: u64, name: String) -> Option<String> {
    if name.is_empty() || seen.get(&id) == Some(&name) {
        return None;
    }
    seen.insert(id, name.clone());
    Some(name)
}

/// The TOC entry of a tar entry, as Go's tar reader sees its header (PAX records applied).
fn toc_entry<R: Read>(entry: &mut tar::Entry<R>, owners: &mut Owners) -> io::Result<TocEntry> {
    let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    if name.trim_start_matches("./").trim_start_matches('/') == TOC_TAR_NAME {
        return Err(io::Error::other(format!(
            "the layer has its own {TOC_TAR_NAME}, which an eStargz layer's TOC would replace"
        )));
    }
    let link_name = entry
        .link_name_bytes()
        .map(|l| String::from_utf8_lossy(&l).into_owned());
    let mut pax: HashMap<String, Vec<u8>> = HashMap::new();
    if let Some(extensions) = entry.pax_extensions()? {
        for extension in extensions {
            let extension = extension?;
            if let Ok(key) = extension.key() {
                pax.insert(key.to_owned(), extension.value_bytes().to_vec());
            }
        }
    }
    let header = entry.header();
    let text = |key: &str| {
        pax.get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let number = |key: &str, from_header: io::Result<u64>| -> io::Result<u64> {
        match text(key) {
            Some(v) => v
                .parse()
                .map_err(|_| io::Error::other(format!("{name}: PAX {key}={v} is not a number"))),
            None => from_header,
        }
    };
    let uid = number("uid", header.uid())?;
    let gid = number("gid", header.gid())?;
    let user = match text("uname") {
        Some(u) => u,
        None => header
            .username()
            .ok()
            .flatten()
            .unwrap_or_default()
            .to_owned(),
    };
    let group = match text("gname") {
        Some(g) => g,
        None => header
            .groupname()
            .ok()
            .flatten()
            .unwrap_or_default()
            .to_owned(),
    };
    let mtime = match text("mtime") {
        // Go rounds a PAX time to the second for the TOC.
        Some(v) => v
            .parse::<f64>()
            .map(|t| t.round() as i64)
            .map_err(|_| io::Error::other(format!("{name}: PAX mtime={v} is not a time")))?,
        None => header.mtime()? as i64,
    };
    let xattrs = pax
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("SCHILY.xattr.").map(|x| {
                (
                    x.to_owned(),
                    base64::engine::general_purpose::STANDARD.encode(v),
                )
            })
        })
        .collect();
    let mut ent = TocEntry {
        mode: u64::from(header.mode()?),
        uid,
        gid,
        user_name: name_if_changed(&mut owners.users, uid, user),
        group_name: name_if_changed(&mut owners.groups, gid, group),
        mod_time: (mtime != 0).then(|| modtime(mtime)),
        xattrs,
        ..TocEntry::default()
    };
    use tar::EntryType;
    match header.entry_type() {
        EntryType::Regular => {
            ent.kind = "reg";
            ent.size = entry.size();
        }
        EntryType::Directory => ent.kind = "dir",
        EntryType::Link => {
            ent.kind = "hardlink";
            ent.link_name = link_name;
        }
        EntryType::Symlink => {
            ent.kind = "symlink";
            ent.link_name = link_name;
        }
        t @ (EntryType::Char | EntryType::Block) => {
            ent.kind = if t == EntryType::Char {
                "char"
            } else {
                "block"
            };
            ent.dev_major = u64::from(header.device_major()?.unwrap_or(0));
            ent.dev_minor = u64::from(header.device_minor()?.unwrap_or(0));
        }
        EntryType::Fifo => ent.kind = "fifo",
        other => {
            return Err(io::Error::other(format!(
                "{name}: an eStargz layer cannot hold a tar entry of type {:?}",
                other.as_byte() as char
            )));
        }
    }
    ent.name = name;
    Ok(ent)
}

/// `2006-01-02T15:04:05Z`, Go's RFC 3339 of a whole second in UTC.
fn modtime(secs: i64) -> String {
    let (y, m, d) = crate::timefmt::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The TOC as `json.MarshalIndent(toc, "", "\t")` writes it, HTML characters escaped too.
fn toc_json(toc: &Toc) -> io::Result<Vec<u8>> {
    let mut json = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut json, formatter);
    toc.serialize(&mut serializer).map_err(io::Error::other)?;
    // These characters can only be inside strings, where Go writes them escaped.
    let text = String::from_utf8(json).map_err(io::Error::other)?;
    Ok(text
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
        .into_bytes())
}

/// The tar holding the TOC, as Go's tar writer writes it: one USTAR entry, end-of-archive.
fn toc_tar(toc_json: &[u8]) -> io::Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header.set_path(TOC_TAR_NAME)?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(toc_json.len() as u64);
    header.set_mode(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_device_major(0)?;
    header.set_device_minor(0)?;
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, toc_json)?;
    builder.into_inner()
}

/// The blob being written: gzip members opened as bytes come and closed where a file's
/// content must start a new one, counting the compressed and the uncompressed bytes.
struct Members<W: Write> {
    level: flate2::Compression,
    state: State<W>,
    plain: Sha256,
    plain_size: u64,
}

enum State<W: Write> {
    Between(Counted<W>),
    InMember(Box<GzEncoder<Counted<W>>>),
    /// A write failed halfway through a state change.
    Broken,
}

impl<W: Write> Members<W> {
    fn new(out: W, level: flate2::Compression) -> Self {
        Members {
            level,
            state: State::Between(Counted { inner: out, n: 0 }),
            plain: Sha256::new(),
            plain_size: 0,
        }
    }

    /// Writes layer bytes, into the open member or a new one.
    fn write_plain(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.plain.update(bytes);
        self.plain_size += bytes.len() as u64;
        self.state = match std::mem::replace(&mut self.state, State::Broken) {
            // No name and mtime 0 (GzBuilder's defaults): the same tar, the same blob.
            State::Between(out) => {
                State::InMember(Box::new(GzBuilder::new().write(out, self.level)))
            }
            other => other,
        };
        match &mut self.state {
            State::InMember(member) => member.write_all(bytes),
            _ => Err(broken()),
        }
    }

    /// Ends the open member, if any.
    fn close(&mut self) -> io::Result<()> {
        self.state = match std::mem::replace(&mut self.state, State::Broken) {
            State::InMember(member) => State::Between(member.finish()?),
            other => other,
        };
        Ok(())
    }

    /// Bytes written out so far; only between members.
    fn offset(&self) -> io::Result<u64> {
        match &self.state {
            State::Between(out) => Ok(out.n),
            _ => Err(broken()),
        }
    }

    /// Bytes that are not layer content (the footer), between members.
    fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.state {
            State::Between(out) => out.write_all(bytes),
            _ => Err(broken()),
        }
    }

    /// The digest and size of the decompressed blob.
    fn finish(&mut self) -> io::Result<(Digest, u64)> {
        self.close()?;
        if let State::Between(out) = &mut self.state {
            out.flush()?;
        }
        let plain = std::mem::replace(&mut self.plain, Sha256::new());
        Ok((Digest::from_hasher(plain), self.plain_size))
    }
}

fn broken() -> io::Error {
    io::Error::other("the eStargz writer failed earlier")
}

struct Counted<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The layer's tar as the tar reader reads it, every byte also written to the blob: the tar
/// comes out of the blob exactly as it went in.
struct Tee<R, W: Write> {
    inner: R,
    members: Rc<RefCell<Members<W>>>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.members.borrow_mut().write_plain(&buf[..n])?;
        Ok(n)
    }
}

/// Feeds every hasher.
struct Hashing<'a, 'b>(&'a mut [&'b mut Sha256]);

impl Write for Hashing<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for hasher in self.0.iter_mut() {
            hasher.update(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Compression;
    use flate2::read::{GzDecoder, MultiGzDecoder};

    const ESTARGZ: LayerCompression = LayerCompression {
        kind: Compression::Estargz,
        level: None,
        force: false,
    };

    fn layer_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_ustar();
        dir.set_path("etc/").unwrap();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_uid(0);
        dir.set_gid(0);
        dir.set_mtime(1_700_000_000);
        dir.set_size(0);
        dir.set_cksum();
        b.append(&dir, &[][..]).unwrap();
        for (name, data) in [
            ("etc/small", b"hello\n".to_vec()),
            ("etc/empty", Vec::new()),
            (
                "big",
                (0..CHUNK_SIZE as usize * 2 + 100)
                    .map(|i| (i % 251) as u8)
                    .collect(),
            ),
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_path(name).unwrap();
            h.set_mode(0o644);
            h.set_uid(1000);
            h.set_gid(1000);
            h.set_username("user").unwrap();
            h.set_mtime(0);
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, &data[..]).unwrap();
        }
        let mut link = tar::Header::new_ustar();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_mode(0o777);
        link.set_uid(0);
        link.set_gid(0);
        link.set_mtime(0);
        b.append_link(&mut link, "etc/link", "small").unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn blob_is_the_tar_then_the_toc_and_the_toc_points_at_the_files() {
        let tar = layer_tar();
        let mut blob = Vec::new();
        let written = write(&tar[..], &mut blob, 6).unwrap();

        let mut plain = Vec::new();
        MultiGzDecoder::new(&blob[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(&plain[..tar.len()], &tar[..]);
        assert_eq!(written.diff_id, Digest::of(&plain));
        assert_eq!(written.uncompressed_size, plain.len() as u64);

        let toc_offset = parse_footer(&blob[blob.len() - FOOTER_SIZE..]).unwrap() as usize;
        let mut toc_tar = tar::Archive::new(GzDecoder::new(&blob[toc_offset..]));
        let mut entries = toc_tar.entries().unwrap();
        let mut toc_entry = entries.next().unwrap().unwrap();
        assert_eq!(&*toc_entry.path_bytes(), TOC_TAR_NAME.as_bytes());
        let mut json = Vec::new();
        toc_entry.read_to_end(&mut json).unwrap();
        assert_eq!(written.toc_digest, Digest::of(&json));
        let toc: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let entries = toc["entries"].as_array().unwrap();
        let kinds: Vec<_> = entries
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["name"].as_str().unwrap(),
                    e["type"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "etc/ dir",
                "etc/small reg",
                "etc/empty reg",
                "big reg",
                "big chunk",
                "big chunk",
                "etc/link symlink"
            ]
        );
        assert_eq!(entries[0]["modtime"], "2023-11-14T22:13:20Z");
        assert_eq!(entries[1]["userName"], "user");
        // The same owner again: the name is not repeated.
        assert!(entries[2].get("userName").is_none());
        assert_eq!(entries[3]["chunkSize"], CHUNK_SIZE);
        assert!(entries[5].get("chunkSize").is_none());
        // Every chunk's member decompresses to (at least) its bytes.
        let mut archive = tar::Archive::new(&tar[..]);
        let mut files = HashMap::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            files.insert(String::from_utf8(e.path_bytes().to_vec()).unwrap(), data);
        }
        for e in entries
            .iter()
            .filter(|e| e["type"] == "reg" || e["type"] == "chunk")
        {
            let data = &files[e["name"].as_str().unwrap()];
            if e["type"] == "reg" {
                assert_eq!(e["digest"], Digest::of(data).to_string());
            }
            if data.is_empty() {
                continue;
            }
            let start = e["chunkOffset"].as_u64().unwrap_or(0) as usize;
            let len = e["chunkSize"]
                .as_u64()
                .map_or(data.len() - start, |n| n as usize);
            let mut member = Vec::new();
            GzDecoder::new(&blob[e["offset"].as_u64().unwrap() as usize..])
                .read_to_end(&mut member)
                .unwrap();
            assert_eq!(&member[..len], &data[start..start + len]);
            assert_eq!(
                e["chunkDigest"],
                Digest::of(&data[start..start + len]).to_string()
            );
        }
    }

    #[test]
    fn the_same_tar_makes_the_same_blob_and_the_blob_tells_what_was_written() {
        let tar = layer_tar();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let written = write(&tar[..], &mut a, 6).unwrap();
        write(&tar[..], &mut b, 6).unwrap();
        assert_eq!(a, b);
        assert_eq!(describe(io::Cursor::new(&a)).unwrap(), written);
        let mut gzip = Vec::new();
        crate::registry::compress::gzip_parallel(&tar[..], &mut gzip, 6).unwrap();
        assert!(describe(io::Cursor::new(&gzip)).is_err());
    }

    #[test]
    fn a_converted_layer_is_made_once_and_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("content")).unwrap();
        let tar = layer_tar();
        let path = dir.path().join("layer.tar");
        std::fs::write(&path, &tar).unwrap();
        let layer = Layer {
            tar: path,
            diff_id: Digest::of(&tar),
            compressed: None,
            base: false,
        };
        let mut image = Image::default();
        image.rootfs.diff_ids = vec![layer.diff_id.to_string()];
        let (first_image, first) =
            convert(&store, &image, std::slice::from_ref(&layer), ESTARGZ).unwrap();
        let blob = first[0].compressed.clone().unwrap();
        assert_ne!(first[0].diff_id, layer.diff_id);
        assert_eq!(first_image.rootfs.diff_ids, [first[0].diff_id.to_string()]);
        assert_eq!(
            Metadata::new(&store).compressed(&store, &layer.diff_id, ESTARGZ),
            Some(blob.digest.clone())
        );
        // Found, not made again: the tar is not read.
        std::fs::remove_file(&layer.tar).unwrap();
        let (_, again) = convert(&store, &image, std::slice::from_ref(&layer), ESTARGZ).unwrap();
        assert_eq!(again, first);
    }

    #[test]
    fn a_layer_with_its_own_toc_is_refused() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, TOC_TAR_NAME, &b"{}"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let err = write(&tar[..], Vec::new(), 6).unwrap_err();
        assert!(err.to_string().contains(TOC_TAR_NAME), "{err}");
    }

    #[test]
    fn footer_is_51_bytes_and_an_empty_gzip_member() {
        let footer = footer(0x1234);
        assert_eq!(parse_footer(&footer), Some(0x1234));
        let mut out = Vec::new();
        GzDecoder::new(&footer[..]).read_to_end(&mut out).unwrap();
        assert!(out.is_empty());
    }
}
