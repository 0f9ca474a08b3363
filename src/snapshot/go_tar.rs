//! Tar headers byte for byte as Go's `archive/tar` writes them: for Docker's layer differs (so
//! that the same tree gives bud the diff ID it gives Docker) and for BuildKit's tar exporter
//! (`exporter::files_tar`).
//!
//! moby's `pkg/archive` (Docker's own layer store) and containerd's `archive` (BuildKit's
//! differ) both hand Go's `archive/tar` a header with the PAX format allowed and the mtime
//! truncated to the second, without access or change times. Go then writes a plain USTAR
//! header whenever every field fits one (a long ASCII name split into prefix and name),
//! and otherwise a PAX extended header first: its records sorted by key, itself named
//! `DIR/PaxHeaders.0/FILE`, and the entry's own header with what fits (names stripped to
//! ASCII and cut, numbers that overflow written as 0). Numbers are zero-padded octal ended
//! by a NUL, the device numbers included; the checksum is six digits, a NUL and a space.

/// One entry's header fields, as moby and containerd fill Go's `tar.Header`.
pub(crate) struct GoHeader<'a> {
    /// The path in the archive, a directory's ending in `/`.
    pub name: &'a [u8],
    /// The type flag (`b'0'`, `b'5'`…).
    pub kind: u8,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Bytes of data that follow (regular files only).
    pub size: u64,
    /// Whole seconds since the epoch.
    pub mtime: i64,
    /// A symlink's target or a hard link's first name; empty otherwise.
    pub link: &'a [u8],
    /// Major and minor numbers of a device; zeros otherwise.
    pub device: (u64, u64),
    /// Further PAX records (`SCHILY.xattr.NAME`), which only PAX holds.
    pub records: &'a [(String, Vec<u8>)],
}

pub(crate) const BLOCK: usize = 512;
const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;

// Field offsets and lengths of a USTAR header.
const NAME: (usize, usize) = (0, 100);
const MODE: (usize, usize) = (100, 8);
const UID: (usize, usize) = (108, 8);
const GID: (usize, usize) = (116, 8);
const SIZE: (usize, usize) = (124, 12);
const MTIME: (usize, usize) = (136, 12);
const CHECKSUM: (usize, usize) = (148, 8);
const TYPE: usize = 156;
const LINK: (usize, usize) = (157, 100);
const MAGIC: (usize, usize) = (257, 8);
const DEV_MAJOR: (usize, usize) = (329, 8);
const DEV_MINOR: (usize, usize) = (337, 8);
const PREFIX: (usize, usize) = (345, 155);

/// The blocks that precede `header`'s data: a PAX extended header and its records where
/// USTAR cannot hold the entry, then the entry's own header.
pub(crate) fn header_blocks(header: &GoHeader<'_>) -> Vec<u8> {
    let mut records: Vec<(&str, Vec<u8>)> = header
        .records
        .iter()
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect();
    let mut ustar = records.is_empty();
    let name = header.name;
    let mut split = None;
    if !is_ascii(name) || name.len() > NAME.1 {
        split = split_ustar_path(name);
        ustar &= split.is_some();
        records.push(("path", name.to_vec()));
    }
    if !is_ascii(header.link) || header.link.len() > LINK.1 {
        ustar = false;
        records.push(("linkpath", header.link.to_vec()));
    }
    for (key, value, field) in [
        ("uid", header.uid, UID),
        ("gid", header.gid, GID),
        ("size", header.size, SIZE),
    ] {
        if !fits_octal(field.1, i128::from(value)) {
            ustar = false;
            records.push((key, value.to_string().into_bytes()));
        }
    }
    if !fits_octal(MTIME.1, i128::from(header.mtime)) {
        ustar = false;
        records.push(("mtime", header.mtime.to_string().into_bytes()));
    }

    if ustar {
        let mut block = template(header, format_string);
        if let Some((prefix, suffix)) = split {
            // Go splits before it writes: the name field holds the suffix alone.
            field_mut(&mut block, NAME).fill(0);
            format_string(field_mut(&mut block, NAME), suffix);
            format_string(field_mut(&mut block, PREFIX), prefix);
        }
        finish(&mut block);
        return block.to_vec();
    }

    records.sort_by(|a, b| a.0.cmp(b.0));
    let data: Vec<u8> = records
        .iter()
        .flat_map(|(key, value)| pax_record(key, value))
        .collect();
    let mut out = Vec::with_capacity(3 * BLOCK + data.len());
    let mut pax = [0u8; BLOCK];
    let mut pax_name = ascii_only(&pax_header_name(header.name));
    pax_name.truncate(NAME.1);
    while pax_name.last() == Some(&b'/') {
        pax_name.pop();
    }
    format_string(field_mut(&mut pax, NAME), &pax_name);
    for field in [MODE, UID, GID, MTIME] {
        format_octal(field_mut(&mut pax, field), 0);
    }
    format_octal(field_mut(&mut pax, SIZE), data.len() as i128);
    pax[TYPE] = b'x';
    finish(&mut pax);
    out.extend_from_slice(&pax);
    out.extend_from_slice(&data);
    out.resize(out.len().next_multiple_of(BLOCK), 0);
    let mut block = template(header, |field, s| format_string(field, &ascii_only(s)));
    finish(&mut block);
    out.extend_from_slice(&block);
    out
}

/// The fields every header holds, strings written by `text`, numbers in octal (0 where
/// they overflow: their PAX record holds them then).
fn template(header: &GoHeader<'_>, text: impl Fn(&mut [u8], &[u8])) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    block[TYPE] = header.kind;
    text(field_mut(&mut block, NAME), header.name);
    text(field_mut(&mut block, LINK), header.link);
    format_octal(field_mut(&mut block, MODE), i128::from(header.mode));
    format_octal(field_mut(&mut block, UID), i128::from(header.uid));
    format_octal(field_mut(&mut block, GID), i128::from(header.gid));
    format_octal(field_mut(&mut block, SIZE), i128::from(header.size));
    format_octal(field_mut(&mut block, MTIME), i128::from(header.mtime));
    format_octal(
        field_mut(&mut block, DEV_MAJOR),
        i128::from(header.device.0),
    );
    format_octal(
        field_mut(&mut block, DEV_MINOR),
        i128::from(header.device.1),
    );
    block
}

/// The USTAR magic and version, then the checksum over the whole block.
fn finish(block: &mut [u8; BLOCK]) {
    field_mut(block, MAGIC).copy_from_slice(b"ustar\x0000");
    field_mut(block, CHECKSUM).fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    let field = field_mut(block, CHECKSUM);
    format_octal(&mut field[..7], i128::from(sum));
    field[7] = b' ';
}

fn field_mut(block: &mut [u8; BLOCK], (offset, len): (usize, usize)) -> &mut [u8] {
    &mut block[offset..offset + len]
}

/// Go's `formatString`: as much as fits, NUL-ended when shorter; a name cut just after a
/// slash loses the slashes it ends with, as some readers would take it for a directory.
fn format_string(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
    if s.len() < field.len() {
        field[s.len()] = 0;
    }
    if s.len() > field.len() && field.last() == Some(&b'/') {
        let kept = &s[..field.len() - 1];
        let end = kept.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
        field[end] = 0;
    }
}

/// Go's `formatOctal`: zero-padded octal and a NUL; 0 when the number does not fit.
fn format_octal(field: &mut [u8], value: i128) {
    let value = if fits_octal(field.len(), value) {
        value
    } else {
        0
    };
    let digits = format!("{value:o}");
    let padded = format!("{digits:0>width$}", width = field.len().saturating_sub(1));
    format_string(field, padded.as_bytes());
}

fn fits_octal(len: usize, value: i128) -> bool {
    value >= 0 && (len >= 22 || value < 1i128 << ((len - 1) * 3))
}

fn is_ascii(s: &[u8]) -> bool {
    s.iter().all(|&b| b != 0 && b < 0x80)
}

fn ascii_only(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(|&b| b != 0 && b < 0x80).collect()
}

/// Go's `splitUSTARPath`: an ASCII name longer than the name field, split at the last slash
/// that leaves a prefix of at most 155 bytes and a non-empty name of at most 100.
fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = name.len();
    if length <= NAME_LEN || !is_ascii(name) {
        return None;
    }
    if length > PREFIX_LEN + 1 {
        length = PREFIX_LEN + 1;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].iter().rposition(|&b| b == b'/')?;
    let suffix_len = name.len() - i - 1;
    if i == 0 || suffix_len > NAME_LEN || suffix_len == 0 || i > PREFIX_LEN {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// Go's name for the extended header of `name`: `path.Join(dir, "PaxHeaders.0", file)` of
/// the name split after its last slash.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let cut = name.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1);
    let (dir, file) = name.split_at(cut);
    let dir = &dir[..dir.iter().rposition(|b| *b != b'/').map_or(0, |i| i + 1)];
    let mut joined = Vec::new();
    for part in [dir, b"PaxHeaders.0", file] {
        if part.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.push(b'/');
        }
        joined.extend_from_slice(part);
    }
    joined
}

/// One `LEN KEY=VALUE\n` record, LEN counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + rest.to_string().len();
    if len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> GoHeader<'_> {
        let name = name.as_bytes();
        GoHeader {
            name,
            kind: b'0',
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 3,
            mtime: 1_580_608_922,
            link: b"",
            device: (0, 0),
            records: &[],
        }
    }

    /// What a tar reader makes of `blocks`: (path, link, PAX records) of the one entry.
    fn read_back(blocks: &[u8]) -> (String, String, Vec<(String, Vec<u8>)>) {
        let mut records = Vec::new();
        if blocks[TYPE] == b'x' {
            let size = std::str::from_utf8(&blocks[SIZE.0..SIZE.0 + 11]).expect("octal");
            let size = usize::from_str_radix(size, 8).expect("a size");
            let mut data = &blocks[BLOCK..BLOCK + size];
            while !data.is_empty() {
                let space = data.iter().position(|&b| b == b' ').expect("a length");
                let len: usize = std::str::from_utf8(&data[..space])
                    .expect("digits")
                    .parse()
                    .expect("a length");
                let record = &data[space + 1..len - 1];
                let eq = record.iter().position(|&b| b == b'=').expect("KEY=VALUE");
                let key = String::from_utf8(record[..eq].to_vec()).expect("an ASCII key");
                records.push((key, record[eq + 1..].to_vec()));
                data = &data[len..];
            }
        }
        let mut tar = blocks.to_vec();
        tar.extend_from_slice(b"xyz");
        tar.resize(tar.len().next_multiple_of(BLOCK) + 2 * BLOCK, 0);
        let mut archive = tar::Archive::new(&tar[..]);
        let mut entries = archive.entries().expect("entries");
        let entry = entries.next().expect("an entry").expect("a valid entry");
        let path = entry.path().expect("path").display().to_string();
        let link = entry
            .link_name()
            .expect("link")
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        assert!(entry.header().as_ustar().is_some(), "a USTAR header");
        for block in blocks
            .chunks(BLOCK)
            .filter(|b| b[MAGIC.0..MAGIC.0 + 5] == *b"ustar")
        {
            let field = std::str::from_utf8(&block[CHECKSUM.0..CHECKSUM.0 + 6]).expect("octal");
            assert_eq!(u32::from_str_radix(field, 8).ok(), Some(checksum(block)));
        }
        (path, link, records)
    }

    fn checksum(block: &[u8]) -> u32 {
        block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u32::from(b)
                }
            })
            .sum()
    }

    #[test]
    fn a_short_ascii_name_is_one_ustar_block_with_gos_number_and_checksum_forms() {
        let blocks = header_blocks(&file("dir/f"));
        assert_eq!(blocks.len(), BLOCK);
        assert_eq!(&blocks[DEV_MAJOR.0..DEV_MAJOR.0 + 8], b"0000000\0");
        assert_eq!(&blocks[MTIME.0..MTIME.0 + 12], b"13615426632\0");
        assert_eq!(blocks[CHECKSUM.0 + 6..CHECKSUM.0 + 8], *b"\0 ");
        let (path, _, records) = read_back(&blocks);
        assert_eq!(path, "dir/f");
        assert!(records.is_empty());
    }

    #[test]
    fn a_long_ascii_name_is_split_into_prefix_and_name_at_the_last_slash_that_fits() {
        let long = format!("{}/{}/{}", "a".repeat(60), "b".repeat(60), "file");
        let blocks = header_blocks(&file(&long));
        assert_eq!(blocks.len(), BLOCK, "no PAX header");
        let mut name_field = [0u8; NAME.1];
        name_field[..4].copy_from_slice(b"file");
        assert_eq!(
            blocks[NAME.0..NAME.0 + NAME.1],
            name_field,
            "the suffix alone"
        );
        let (path, _, _) = read_back(&blocks);
        assert_eq!(path, long);
    }

    #[test]
    fn a_name_ustar_cannot_hold_goes_into_a_pax_header_named_as_go_names_it() {
        let unsplittable = format!("tree/{}/{}", "l".repeat(150), "c".repeat(120));
        let accented = "tree/é-file".to_owned();
        for (name, pax_name) in [
            (unsplittable.clone(), format!("tree/{}", "l".repeat(95))),
            (accented.clone(), "tree/PaxHeaders.0/-file".to_owned()),
        ] {
            let blocks = header_blocks(&file(&name));
            let stored = String::from_utf8_lossy(&blocks[..NAME.1]);
            assert_eq!(stored.trim_end_matches('\0'), pax_name);
            assert_eq!(blocks[TYPE], b'x');
            let (path, _, records) = read_back(&blocks);
            assert_eq!(path, name);
            assert_eq!(records, [("path".to_owned(), name.clone().into_bytes())]);
        }
    }

    #[test]
    fn records_are_sorted_and_numbers_too_large_for_octal_become_records() {
        let long_link = vec![b't'; 120];
        let xattrs = [(
            "SCHILY.xattr.security.capability".to_owned(),
            b"\x01\0\0\x02".to_vec(),
        )];
        let header = GoHeader {
            kind: b'2',
            size: 0,
            link: &long_link,
            uid: 3_000_000,
            mtime: -101,
            records: &xattrs,
            ..file("link")
        };
        let blocks = header_blocks(&header);
        let (_, link, records) = read_back(&blocks);
        assert_eq!(link.as_bytes(), long_link);
        let keys: Vec<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "SCHILY.xattr.security.capability",
                "linkpath",
                "mtime",
                "uid"
            ]
        );
        assert_eq!(records[2].1, b"-101");
        let main = &blocks[blocks.len() - BLOCK..];
        assert_eq!(
            &main[UID.0..UID.0 + 8],
            b"0000000\0",
            "overflow written as 0"
        );
    }

    #[test]
    fn a_record_length_counts_its_own_digits() {
        for len in 0..300 {
            let record = pax_record("path", &vec![b'p'; len]);
            let (count, _) = std::str::from_utf8(&record)
                .expect("ASCII")
                .split_once(' ')
                .expect("a length");
            assert_eq!(count.parse::<usize>().ok(), Some(record.len()));
        }
    }
}
