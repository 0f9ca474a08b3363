//! Layer compression for pushes, on every core, and done once per layer.
//!
//! gzip is made parallel by cutting the tar into fixed-size chunks and compressing each into
//! its own gzip member: concatenated members are one valid gzip stream (RFC 1952, 2.2) that
//! every registry client reads, at the cost of restarting the dictionary every chunk (well
//! under 1% at 1 MiB). Fixed chunks and fixed headers keep the output reproducible, so the
//! same layer always gets the same digest. zstd has its own multithreaded mode.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use flate2::GzBuilder;
use rayon::prelude::*;

use super::RegistryError;
use super::manifest::{DOCKER_LAYER, DOCKER_LAYER_GZIP, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD};
use super::metadata::Metadata;
use crate::content::{ContentStore, Digest};
use crate::exporter::{CompressedBlob, Layer};

/// gzip member size: large enough that the dictionary restart costs little.
const GZIP_CHUNK: usize = 1 << 20;
/// zlib's default level, and Go's: what BuildKit uses for `compression=gzip` and `estargz`.
const GZIP_DEFAULT_LEVEL: i32 = 6;
/// zstd's default level; what BuildKit uses for `compression=zstd`.
const ZSTD_DEFAULT_LEVEL: i32 = 3;

/// How pushed layers are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// gzip in parallel members (`compression=gzip`), Docker's and BuildKit's default.
    #[default]
    Gzip,
    /// zstd, multithreaded (`compression=zstd`): OCI manifests only.
    Zstd,
    /// The tar itself (`compression=uncompressed`): its digest is the diff ID.
    Uncompressed,
    /// gzip with a table of contents (`compression=estargz`), made by
    /// [`super::estargz::convert`] before a push, as it changes the image's diff IDs.
    Estargz,
}

impl Compression {
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Uncompressed => "tar",
            Compression::Estargz => "estargz",
        }
    }

    /// Its `compression=` value.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Uncompressed => "uncompressed",
            Compression::Estargz => "estargz",
        }
    }

    /// The `compression=` value that asks for it.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "gzip" => Some(Compression::Gzip),
            "zstd" => Some(Compression::Zstd),
            "uncompressed" => Some(Compression::Uncompressed),
            "estargz" => Some(Compression::Estargz),
            _ => None,
        }
    }

    /// The layer media type in an OCI manifest.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::Gzip | Compression::Estargz => OCI_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
            Compression::Uncompressed => OCI_LAYER,
        }
    }

    /// The layer media type in a Docker v2 schema 2 manifest, which has none for zstd, and
    /// none for eStargz in BuildKit, whose TOC annotations only OCI descriptors carry.
    pub fn docker_media_type(self) -> Option<&'static str> {
        match self {
            Compression::Gzip => Some(DOCKER_LAYER_GZIP),
            Compression::Zstd | Compression::Estargz => None,
            Compression::Uncompressed => Some(DOCKER_LAYER),
        }
    }

    fn accepts(self, blob: &CompressedBlob) -> bool {
        let media_type = blob.media_type.as_str();
        match self {
            Compression::Gzip => media_type == OCI_LAYER_GZIP || media_type == DOCKER_LAYER_GZIP,
            Compression::Zstd => media_type == OCI_LAYER_ZSTD,
            Compression::Uncompressed => media_type == OCI_LAYER || media_type == DOCKER_LAYER,
            Compression::Estargz => {
                media_type == OCI_LAYER_GZIP
                    && blob
                        .annotations
                        .contains_key(super::estargz::TOC_DIGEST_ANNOTATION)
            }
        }
    }
}

/// The compression an export asks for, as BuildKit's compression `Config`: the kind, its
/// `compression-level` and `force-compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerCompression {
    /// `compression=`, gzip by default.
    pub kind: Compression,
    /// `compression-level=` as given (checked to be one the kind has); `None`: its default.
    pub level: Option<i32>,
    /// `force-compression=true`: base image layers in another compression are converted.
    /// Without it they keep the blob they came with, as BuildKit keeps them.
    pub force: bool,
}

impl From<Compression> for LayerCompression {
    fn from(kind: Compression) -> Self {
        LayerCompression {
            kind,
            level: None,
            force: false,
        }
    }
}

impl LayerCompression {
    /// `compression`, `compression-level` and `force-compression` from an output's or a
    /// cache's attributes, checked; `None` when none of them is given.
    pub fn from_attrs(
        attrs: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<LayerCompression>, String> {
        let (name, level, force) = (
            attrs.get("compression"),
            attrs.get("compression-level"),
            attrs.get("force-compression"),
        );
        if name.is_none() && level.is_none() && force.is_none() {
            return Ok(None);
        }
        // BuildKit's default compression, with or without a level.
        let kind = match name {
            None => Compression::Gzip,
            Some(name) => Compression::parse(name).ok_or_else(|| {
                format!(
                    "compression={name}: not a layer compression (gzip, estargz, zstd or \
                     uncompressed)"
                )
            })?,
        };
        let level = level
            .map(|text| {
                let level: i32 = text
                    .parse()
                    .map_err(|_| format!("compression-level={text}: not an integer"))?;
                check_level(kind, level).map(|()| level)
            })
            .transpose()?;
        // BuildKit: an empty value means true.
        let force = match force.map(String::as_str) {
            None | Some("false") => false,
            Some("" | "true") => true,
            Some(other) => {
                return Err(format!("force-compression={other}: expected true or false"));
            }
        };
        Ok(Some(LayerCompression { kind, level, force }))
    }

    /// The level the compressor runs at. zstd levels are mapped as BuildKit's zstd encoder
    /// (klauspost's `EncoderLevelFromZstd`) maps them to its four speeds, each the zstd
    /// level its speed is modelled on.
    pub(crate) fn effective_level(self) -> i32 {
        match self.kind {
            Compression::Gzip | Compression::Estargz => self.level.unwrap_or(GZIP_DEFAULT_LEVEL),
            Compression::Zstd => match self.level {
                None => ZSTD_DEFAULT_LEVEL,
                Some(level) if level < 3 => 1,
                Some(level) if level < 6 => 3,
                Some(level) if level < 10 => 7,
                Some(_) => 11,
            },
            Compression::Uncompressed => 0,
        }
    }

    /// The name its blobs are remembered under: the kind's own at its default level (as
    /// pulled blobs are remembered), with the level otherwise.
    pub(crate) fn memo_name(self) -> String {
        let default = LayerCompression::from(self.kind).effective_level();
        match self.effective_level() {
            level if level == default => self.kind.extension().to_owned(),
            level => format!("{}-{level}", self.kind.extension()),
        }
    }
}

/// BuildKit passes gzip levels to Go's gzip writer, which takes 0 to 9 (and -1, -2 for its
/// default and Huffman-only modes: bud asks for a number); zstd maps any level.
fn check_level(kind: Compression, level: i32) -> Result<(), String> {
    match kind {
        Compression::Gzip | Compression::Estargz if !(0..=9).contains(&level) => Err(format!(
            "compression-level={level}: {} levels are 0 (none) to 9 (best)",
            kind.name()
        )),
        Compression::Uncompressed => Err(format!(
            "compression-level={level}: compression=uncompressed has no level"
        )),
        _ => Ok(()),
    }
}

/// The blob of `layer` for `config` if the store already holds it, with the compression it
/// is in: the build's own compressed blob, the one made by an earlier push (or pull) at
/// the same level, or, for a base image layer, the blob it came with. `None` means the
/// layer has to be compressed. Blocking.
pub(crate) fn known_compressed_layer(
    store: &ContentStore,
    layer: &Layer,
    config: LayerCompression,
) -> Result<Option<(Digest, Compression)>, RegistryError> {
    if let Some(blob) = &layer.compressed
        && config.kind.accepts(blob)
    {
        if !store.exists(&blob.digest) {
            let file = File::open(&blob.path).map_err(RegistryError::io("opening", &blob.path))?;
            store.import(BufReader::new(file), Some(&blob.digest))?;
        }
        return Ok(Some((blob.digest.clone(), config.kind)));
    }
    if layer.base
        && let Some(found) = base_layer_blob(store, &layer.diff_id, config)
    {
        return Ok(Some(found));
    }
    if config.kind == Compression::Uncompressed {
        // The tar is the blob.
        if !store.exists(&layer.diff_id) {
            let file = File::open(&layer.tar).map_err(RegistryError::io("opening", &layer.tar))?;
            store.import(BufReader::new(file), Some(&layer.diff_id))?;
        }
        return Ok(Some((layer.diff_id.clone(), Compression::Uncompressed)));
    }
    if config.kind == Compression::Estargz {
        // Its blob comes with the layer (`estargz::convert`), with the annotations it needs.
        return Ok(None);
    }
    Ok(Metadata::new(store)
        .compressed(store, &layer.diff_id, config)
        .map(|digest| (digest, config.kind)))
}

/// The blob a base image layer was pulled as, kept as BuildKit keeps it: in the compression
/// asked for, whatever its level (BuildKit converts a layer only to change its kind), or,
/// unless `force-compression`, in any other. A layer that came from Docker's image store
/// has no blob of its own: it is compressed as asked. Blocking.
pub(crate) fn base_layer_blob(
    store: &ContentStore,
    diff_id: &Digest,
    config: LayerCompression,
) -> Option<(Digest, Compression)> {
    let origins = Metadata::new(store).origins(store, diff_id);
    // A plain gzip blob is not an eStargz one: only `estargz::convert` makes those.
    let same = origins
        .iter()
        .find(|(_, kind)| *kind == config.kind && config.kind != Compression::Estargz);
    same.or_else(|| origins.first().filter(|_| !config.force))
        .cloned()
}

/// `layer` compressed as `config` asks, made once and kept in the store (as a push keeps
/// it): the blob an OCI layout's `compression=` asks for. Blocking.
pub fn compressed_layer(
    store: &ContentStore,
    layer: &Layer,
    config: LayerCompression,
) -> Result<CompressedBlob, RegistryError> {
    let (digest, kind) = match known_compressed_layer(store, layer, config)? {
        Some(known) => known,
        None => {
            let mut writer = store.writer()?;
            compress_file(&layer.tar, config, &mut writer)?;
            let digest = writer.commit(None)?;
            Metadata::new(store).set_compressed(&layer.diff_id, config, &digest)?;
            (digest, config.kind)
        }
    };
    Ok(CompressedBlob {
        path: store.path(&digest),
        digest,
        media_type: kind.oci_media_type().to_owned(),
        annotations: std::collections::BTreeMap::new(),
    })
}

/// Compresses the file at `tar` into `out`. Blocking.
pub(crate) fn compress_file(
    tar: &Path,
    config: LayerCompression,
    out: &mut impl Write,
) -> Result<(), RegistryError> {
    let file = File::open(tar).map_err(RegistryError::io("opening", tar))?;
    let level = config.effective_level();
    let result = match config.kind {
        Compression::Gzip => gzip_parallel(BufReader::new(file), out, level),
        Compression::Zstd => zstd_parallel(BufReader::new(file), out, level),
        Compression::Uncompressed => io::copy(&mut BufReader::new(file), out).map(drop),
        // Its diff ID and annotations are not the tar's: made by `estargz::convert` only.
        Compression::Estargz => Err(io::Error::other(
            "internal error: an eStargz layer is made before the push",
        )),
    };
    result.map_err(RegistryError::io("compressing", tar))
}

/// gzip at `level` (0–9) on all cores: `GZIP_CHUNK`-sized members, a batch of them
/// compressed at a time.
pub fn gzip_parallel(mut input: impl Read, out: &mut impl Write, level: i32) -> io::Result<()> {
    let level = gzip_level(level)?;
    let batch = rayon::current_num_threads().max(1) * 2;
    let mut wrote = false;
    loop {
        let mut chunks = Vec::with_capacity(batch);
        while chunks.len() < batch {
            let chunk = read_chunk(&mut input, GZIP_CHUNK)?;
            if chunk.is_empty() {
                break;
            }
            chunks.push(chunk);
        }
        if chunks.is_empty() {
            break;
        }
        let members: Vec<io::Result<Vec<u8>>> = chunks
            .par_iter()
            .map(|chunk| gzip_member(chunk, level))
            .collect();
        for member in members {
            out.write_all(&member?)?;
        }
        wrote = true;
    }
    if !wrote {
        // An empty layer still needs a valid (empty) gzip stream.
        out.write_all(&gzip_member(&[], level)?)?;
    }
    out.flush()
}

/// flate2's level for a gzip `compression-level`.
pub(crate) fn gzip_level(level: i32) -> io::Result<flate2::Compression> {
    u32::try_from(level)
        .ok()
        .filter(|level| *level <= 9)
        .map(flate2::Compression::new)
        .ok_or_else(|| io::Error::other(format!("gzip level {level} is not 0 to 9")))
}

fn gzip_member(data: &[u8], level: flate2::Compression) -> io::Result<Vec<u8>> {
    // No name and mtime 0 (GzBuilder's defaults): the same bytes always compress the same.
    let mut encoder = GzBuilder::new().write(Vec::with_capacity(data.len() / 3), level);
    encoder.write_all(data)?;
    encoder.finish()
}

fn read_chunk(input: &mut impl Read, size: usize) -> io::Result<Vec<u8>> {
    let mut chunk = Vec::with_capacity(size);
    input.take(size as u64).read_to_end(&mut chunk)?;
    Ok(chunk)
}

/// zstd at `level` with one worker per core.
pub fn zstd_parallel(mut input: impl Read, out: &mut impl Write, level: i32) -> io::Result<()> {
    let mut encoder = zstd::stream::Encoder::new(out, level)?;
    let workers = u32::try_from(rayon::current_num_threads()).unwrap_or(1);
    if workers > 1 {
        encoder.multithread(workers)?;
    }
    io::copy(&mut input, &mut encoder)?;
    encoder.finish()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivially so.
        (0..len)
            .map(|i| ((i * 7919) % 251) as u8 ^ (i / 4096) as u8)
            .collect()
    }

    #[test]
    fn parallel_gzip_is_one_valid_stream_and_reproducible() {
        for len in [0, 10, GZIP_CHUNK, 3 * GZIP_CHUNK + 17] {
            let data = sample(len);
            let mut first = Vec::new();
            gzip_parallel(&data[..], &mut first, GZIP_DEFAULT_LEVEL).unwrap();
            let mut second = Vec::new();
            gzip_parallel(&data[..], &mut second, GZIP_DEFAULT_LEVEL).unwrap();
            assert_eq!(first, second, "output differs between runs (len {len})");
            let mut back = Vec::new();
            MultiGzDecoder::new(&first[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "len {len}");
        }
    }

    #[test]
    fn gzip_levels_give_other_blobs_of_the_same_bytes() {
        let data = sample(2 * GZIP_CHUNK + 5);
        let blobs: Vec<Vec<u8>> = [0, 1, 9]
            .into_iter()
            .map(|level| {
                let mut out = Vec::new();
                gzip_parallel(&data[..], &mut out, level).unwrap();
                let mut back = Vec::new();
                MultiGzDecoder::new(&out[..])
                    .read_to_end(&mut back)
                    .unwrap();
                assert_eq!(back, data, "level {level}");
                out
            })
            .collect();
        // Level 0 stores, 9 compresses hardest.
        assert!(blobs[0].len() > data.len(), "{}", blobs[0].len());
        assert!(blobs[2].len() < blobs[1].len());
        assert!(gzip_parallel(&data[..], &mut Vec::new(), 10).is_err());
    }

    #[test]
    fn zstd_round_trips_at_each_level_buildkit_maps_to() {
        let data = sample(2 * GZIP_CHUNK + 5);
        for level in [1, ZSTD_DEFAULT_LEVEL, 7, 11] {
            let mut compressed = Vec::new();
            zstd_parallel(&data[..], &mut compressed, level).unwrap();
            assert!(compressed.len() < data.len());
            assert_eq!(zstd::decode_all(&compressed[..]).unwrap(), data);
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn attributes_are_read_as_buildkit_reads_them() {
        assert_eq!(LayerCompression::from_attrs(&attrs(&[])), Ok(None));
        let zstd = |level| {
            LayerCompression::from_attrs(&attrs(&[
                ("compression", "zstd"),
                ("compression-level", level),
            ]))
            .unwrap()
            .unwrap()
        };
        // klauspost's EncoderLevelFromZstd: four speeds, modelled on zstd 1, 3, 7 and 11.
        for (given, runs_at) in [
            ("-5", 1),
            ("0", 1),
            ("2", 1),
            ("3", 3),
            ("5", 3),
            ("6", 7),
            ("9", 7),
            ("10", 11),
            ("22", 11),
        ] {
            assert_eq!(zstd(given).effective_level(), runs_at, "level {given}");
        }
        assert_eq!(zstd("4").memo_name(), "zstd");
        assert_eq!(zstd("19").memo_name(), "zstd-11");
        // A level alone is gzip's, BuildKit's default compression.
        let gzip = LayerCompression::from_attrs(&attrs(&[("compression-level", "0")]))
            .unwrap()
            .unwrap();
        assert_eq!((gzip.kind, gzip.effective_level()), (Compression::Gzip, 0));
        assert_eq!(gzip.memo_name(), "gzip-0");
        assert_eq!(
            LayerCompression::from(Compression::Gzip).memo_name(),
            "gzip"
        );
        let forced = |value| {
            LayerCompression::from_attrs(&attrs(&[("force-compression", value)]))
                .map(|c| c.unwrap().force)
        };
        assert_eq!(forced("true"), Ok(true));
        assert_eq!(forced(""), Ok(true));
        assert_eq!(forced("false"), Ok(false));
        for (bad, says) in [
            (&[("compression-level", "10")][..], "0 (none) to 9"),
            (
                &[("compression", "estargz"), ("compression-level", "-1")],
                "estargz levels",
            ),
            (&[("compression-level", "x")], "not an integer"),
            (
                &[("compression", "uncompressed"), ("compression-level", "1")],
                "no level",
            ),
            (&[("compression", "lz4")], "not a layer compression"),
            (&[("force-compression", "yes")], "expected true or false"),
        ] {
            let err = LayerCompression::from_attrs(&attrs(bad)).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    fn stored_layer(store: &ContentStore, dir: &Path, base: bool) -> Layer {
        let tar = dir.join(format!("layer-{base}.tar"));
        let data = sample(5000 + usize::from(base));
        std::fs::write(&tar, &data).unwrap();
        Layer {
            tar,
            diff_id: store.put(&data).unwrap(),
            compressed: None,
            base,
        }
    }

    fn compressed_into(store: &ContentStore, layer: &Layer, config: LayerCompression) -> Digest {
        let mut writer = store.writer().unwrap();
        compress_file(&layer.tar, config, &mut writer).unwrap();
        let digest = writer.commit(None).unwrap();
        Metadata::new(store)
            .set_compressed(&layer.diff_id, config, &digest)
            .unwrap();
        digest
    }

    #[test]
    fn known_blobs_are_found_per_compression_and_level() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("content")).unwrap();
        let layer = stored_layer(&store, dir.path(), false);
        let gzip = LayerCompression::from(Compression::Gzip);
        let best = LayerCompression {
            level: Some(9),
            ..gzip
        };
        assert_eq!(known_compressed_layer(&store, &layer, gzip).unwrap(), None);
        let digest = compressed_into(&store, &layer, gzip);
        assert_eq!(
            known_compressed_layer(&store, &layer, gzip).unwrap(),
            Some((digest.clone(), Compression::Gzip))
        );
        // The build's own layer is compressed again for another level or kind, forced or not.
        assert_eq!(known_compressed_layer(&store, &layer, best).unwrap(), None);
        assert_eq!(
            known_compressed_layer(&store, &layer, Compression::Zstd.into()).unwrap(),
            None
        );
        let at_9 = compressed_into(&store, &layer, best);
        assert_ne!(at_9, digest);
        assert_eq!(
            known_compressed_layer(&store, &layer, best).unwrap(),
            Some((at_9, Compression::Gzip))
        );
    }

    #[test]
    fn a_base_layer_keeps_its_blob_unless_forced_into_another_compression() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("content")).unwrap();
        let layer = stored_layer(&store, dir.path(), true);
        let gzip = compressed_into(&store, &layer, Compression::Gzip.into());
        // Compressed by bud (a layer from Docker's store): not a blob the layer came with.
        let zstd = LayerCompression::from(Compression::Zstd);
        assert_eq!(known_compressed_layer(&store, &layer, zstd).unwrap(), None);
        // As a pull remembers a gzip base layer.
        let pulled = gzip;
        Metadata::new(&store)
            .set_origin(&layer.diff_id, Compression::Gzip, &pulled)
            .unwrap();
        let kept = Some((pulled.clone(), Compression::Gzip));
        assert_eq!(known_compressed_layer(&store, &layer, zstd).unwrap(), kept);
        let estargz = LayerCompression::from(Compression::Estargz);
        assert_eq!(
            known_compressed_layer(&store, &layer, estargz).unwrap(),
            kept
        );
        let uncompressed = LayerCompression::from(Compression::Uncompressed);
        assert_eq!(
            known_compressed_layer(&store, &layer, uncompressed).unwrap(),
            kept
        );
        // Its own kind is never compressed again for a level, forced or not.
        let gzip_9_forced = LayerCompression {
            kind: Compression::Gzip,
            level: Some(9),
            force: true,
        };
        assert_eq!(
            known_compressed_layer(&store, &layer, gzip_9_forced).unwrap(),
            kept
        );
        let forced = LayerCompression {
            force: true,
            ..zstd
        };
        assert_eq!(
            known_compressed_layer(&store, &layer, forced).unwrap(),
            None
        );
        assert_eq!(
            known_compressed_layer(
                &store,
                &layer,
                LayerCompression {
                    force: true,
                    ..uncompressed
                }
            )
            .unwrap(),
            Some((layer.diff_id.clone(), Compression::Uncompressed))
        );
    }
}
