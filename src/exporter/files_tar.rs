//! The tarball of a result's files (`-o type=tar`), every header written as BuildKit's tar
//! exporter writes it (fsutil's `WriteTar` on Go's `archive/tar`), so that bud's tarball is
//! buildx's byte for byte. The `tar` crate cannot write them: it drops a directory's
//! trailing `/` from its name, and it writes GNU headers.
//!
//! Go's rules, as `archive/tar` applies them to a header whose format is left to it:
//! - a USTAR header (magic `ustar\0`, version `00`) when every field fits one: an ASCII name
//!   of up to 100 bytes, or of up to 256 split at a `/` into prefix and name; an ASCII link
//!   target of up to 100 bytes; uid, gid, size and mtime in octal (so no time before 1970);
//! - otherwise PAX: first an extended header named `DIR/PaxHeaders.0/NAME` holding, sorted
//!   by key, a record for each field that did not fit (`path`, `linkpath`, `uid`, `gid`,
//!   `size`, `mtime`) and any other record of the entry (`SCHILY.xattr.…`); then the header
//!   with what fits: a number that does not is 0, a name is cut to its ASCII 100 bytes.
//!
//! The mode holds the permission bits only; no owner is named, only numbered; a directory's
//! name ends in `/`. The archive ends with two zero blocks and no padding beyond them.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

const BLOCK: usize = 512;
/// The widths of USTAR's name, link name and prefix fields.
const NAME: usize = 100;
const PREFIX: usize = 155;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (also a socket, whose type fsutil clears, with no content).
    File,
    /// A directory.
    Dir,
    /// A symbolic link to `link`.
    Symlink,
    /// A hard link to `link`, an earlier entry of the archive.
    HardLink,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A named pipe.
    Fifo,
}

impl Kind {
    fn type_flag(self) -> u8 {
        match self {
            Kind::File => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::Char => b'3',
            Kind::Block => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        }
    }
}

/// One entry's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its path in the archive, `/`-separated, relative; a directory's gets a trailing `/`
    /// where it has none.
    pub name: Vec<u8>,
    /// What it is.
    pub kind: Kind,
    /// Permission bits, with setuid, setgid and sticky (`0o7777` at most).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// A regular file's size, the bytes that follow the header; 0 for any other entry.
    pub size: u64,
    /// Seconds since 1970-01-01 UTC, negative before it.
    pub mtime: i64,
    /// A link's target; empty for other entries.
    pub link: Vec<u8>,
    /// A device's major and minor numbers.
    pub device: (u64, u64),
    /// PAX records beyond those the fields need (the `SCHILY.xattr.` ones).
    pub records: BTreeMap<String, Vec<u8>>,
}

impl Entry {
    /// An entry of `kind` named `name`, its other fields 0 or empty.
    pub fn new(name: impl Into<Vec<u8>>, kind: Kind) -> Self {
        Entry {
            name: name.into(),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            link: Vec::new(),
            device: (0, 0),
            records: BTreeMap::new(),
        }
    }
}

/// Writes entries into a tarball as Go's `archive/tar` writes them.
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    /// A tarball written into `out`.
    pub fn new(out: W) -> Self {
        Writer { out }
    }

    /// Appends `entry`, with `entry.size` bytes of `data` for a regular file (fewer is an
    /// error; what is beyond them is not read).
    pub fn append(&mut self, entry: &Entry, data: &mut dyn Read) -> io::Result<()> {
        let mut name = entry.name.clone();
        if entry.kind == Kind::Dir && !name.ends_with(b"/") {
            name.push(b'/');
        }
        let size = if entry.kind == Kind::File {
            entry.size
        } else {
            0
        };
        if entry.mode > 0o7777 || !fits_octal(8, entry.device.0) || !fits_octal(8, entry.device.1) {
            // Go would write a GNU header; no file a build makes has these.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: a mode or device number a tar header cannot hold",
                    String::from_utf8_lossy(&name)
                ),
            ));
        }
        let mut records = entry.records.clone();
        let mut ustar = records.is_empty();
        let split = split_ustar_path(&name);
        if !is_ascii(&name) || name.len() > NAME {
            ustar &= split.is_some();
            records.insert("path".into(), name.clone());
        }
        if !is_ascii(&entry.link) || entry.link.len() > NAME {
            ustar = false;
            records.insert("linkpath".into(), entry.link.clone());
        }
        for (key, value, width) in [
            ("uid", entry.uid, 8),
            ("gid", entry.gid, 8),
            ("size", size, 12),
        ] {
            if !fits_octal(width, value) {
                ustar = false;
                records.insert(key.into(), value.to_string().into_bytes());
            }
        }
        let mtime = u64::try_from(entry.mtime)
            .ok()
            .filter(|m| fits_octal(12, *m));
        if mtime.is_none() {
            ustar = false;
            records.insert("mtime".into(), entry.mtime.to_string().into_bytes());
        }

        let mut header = [0u8; BLOCK];
        if ustar {
            match split.filter(|_| name.len() > NAME) {
                Some((prefix, rest)) => {
                    put_str(&mut header[..NAME], rest);
                    put_str(&mut header[345..345 + PREFIX], prefix);
                }
                None => put_str(&mut header[..NAME], &name),
            }
            put_str(&mut header[157..157 + NAME], &entry.link);
        } else {
            self.write_extended_header(&name, &records)?;
            put_cut(&mut header[..NAME], &to_ascii(&name));
            put_cut(&mut header[157..157 + NAME], &to_ascii(&entry.link));
        }
        put_octal(&mut header[100..108], u64::from(entry.mode));
        put_octal(&mut header[108..116], entry.uid);
        put_octal(&mut header[116..124], entry.gid);
        put_octal(&mut header[124..136], size);
        put_octal(&mut header[136..148], mtime.unwrap_or(0));
        header[156] = entry.kind.type_flag();
        put_octal(&mut header[329..337], entry.device.0);
        put_octal(&mut header[337..345], entry.device.1);
        self.write_header(header)?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: {copied} bytes where the header says {size}",
                    String::from_utf8_lossy(&name)
                ),
            ));
        }
        self.pad(size)
    }

    /// Ends the archive with its two zero blocks.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// The PAX extended header of the entry `name`, as Go names and writes it.
    fn write_extended_header(
        &mut self,
        name: &[u8],
        records: &BTreeMap<String, Vec<u8>>,
    ) -> io::Result<()> {
        let mut data = Vec::new();
        for (key, value) in records {
            data.extend(pax_record(key, value));
        }
        let mut header = [0u8; BLOCK];
        let mut path = to_ascii(&pax_header_name(name));
        path.truncate(NAME);
        while path.last() == Some(&b'/') {
            path.pop();
        }
        put_str(&mut header[..NAME], &path);
        for field in [100..108, 108..116, 116..124, 136..148] {
            put_octal(&mut header[field], 0);
        }
        put_octal(&mut header[124..136], data.len() as u64);
        header[156] = b'x';
        self.write_header(header)?;
        self.out.write_all(&data)?;
        self.pad(data.len() as u64)
    }

    /// Writes `header` with the USTAR magic and version and its checksum.
    fn write_header(&mut self, mut header: [u8; BLOCK]) -> io::Result<()> {
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.out.write_all(&header)
    }

    /// Zeros up to the end of the block `written` bytes of data ended in.
    fn pad(&mut self, written: u64) -> io::Result<()> {
        let rest = (BLOCK - (written % BLOCK as u64) as usize) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..rest])
    }
}

/// Whether `value` fits a numeric field of `width` bytes: octal digits and a NUL.
fn fits_octal(width: usize, value: u64) -> bool {
    value < 1 << ((width - 1) * 3)
}

/// `value` as Go's `formatOctal` writes it: zero-padded octal digits, then a NUL.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = format!("{value:0width$o}", width = field.len() - 1);
    put_str(field, digits.as_bytes());
}

/// `value` at the start of `field`, which is zeros, cut at its width.
fn put_str(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// `value` cut at `field`'s width, as Go's `formatString` cuts it: a cut name that would end
/// in `/` ends before its slashes, so that no reader takes a file for a directory.
fn put_cut(field: &mut [u8], value: &[u8]) {
    put_str(field, value);
    let width = field.len();
    if value.len() > width && field[width - 1] == b'/' {
        let kept = value[..width - 1]
            .iter()
            .rposition(|b| *b != b'/')
            .map_or(0, |i| i + 1);
        field[kept..].fill(0);
    }
}

/// Go's `isASCII`: no byte of a multi-byte character, no NUL.
fn is_ascii(s: &[u8]) -> bool {
    s.iter().all(|b| *b != 0 && b.is_ascii())
}

/// Go's `toASCII`: `s` without the bytes `is_ascii` refuses.
fn to_ascii(s: &[u8]) -> Vec<u8> {
    s.iter()
        .copied()
        .filter(|b| *b != 0 && b.is_ascii())
        .collect()
}

/// Go's `splitUSTARPath`: `name` as a prefix of up to 155 bytes and a name of up to 100,
/// split at a `/`, when it is ASCII, longer than 100 bytes and can be.
fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= NAME || !is_ascii(name) {
        return None;
    }
    let mut length = name.len();
    if length > PREFIX + 1 {
        length = PREFIX + 1;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].iter().rposition(|b| *b == b'/')?;
    let rest = name.len() - i - 1;
    if i == 0 || rest > NAME || rest == 0 || i > PREFIX {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// Go's name for the extended header of `name`: `path.Join(dir, "PaxHeaders.0", file)`.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let cut = name.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1);
    let (dir, file) = name.split_at(cut);
    let mut out = dir.to_vec();
    if !out.is_empty() && !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(b"PaxHeaders.0");
    if !file.is_empty() {
        out.push(b'/');
        out.extend_from_slice(file);
    }
    out
}

/// One PAX record, `LEN KEY=VALUE\n`, its length counting its own digits.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let bare = key.len() + value.len() + 3;
    let mut len = bare + bare.to_string().len();
    if len.to_string().len() != bare.to_string().len() {
        len = bare + len.to_string().len();
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(entries: &[(Entry, &[u8])]) -> Vec<u8> {
        let mut writer = Writer::new(Vec::new());
        for (entry, data) in entries {
            let mut data: &[u8] = data;
            writer.append(entry, &mut data).unwrap();
        }
        writer.finish().unwrap()
    }

    fn field(block: &[u8], range: std::ops::Range<usize>) -> &[u8] {
        &block[range]
    }

    /// A directory and a file as buildx's tar output holds them (bytes taken from one).
    #[test]
    fn a_ustar_header_as_go_writes_it() {
        let mut dir = Entry::new("out", Kind::Dir);
        dir.mode = 0o755;
        dir.mtime = 1000;
        let mut file = Entry::new("out/f", Kind::File);
        file.mode = 0o644;
        file.mtime = 1000;
        file.size = 3;
        let bytes = tarball(&[(dir, b""), (file, b"hi\n")]);
        assert_eq!(bytes.len(), 5 * BLOCK);
        let dir = &bytes[..BLOCK];
        assert_eq!(&dir[..5], b"out/\0");
        assert_eq!(field(dir, 100..108), b"0000755\0");
        assert_eq!(field(dir, 124..148), b"00000000000\x0000000001750\x00");
        assert_eq!(field(dir, 148..156), b"010031\0 ");
        assert_eq!(field(dir, 156..157), b"5");
        assert_eq!(field(dir, 257..265), b"ustar\x0000");
        assert_eq!(field(dir, 329..345), b"0000000\x000000000\x00");
        assert_eq!(&bytes[2 * BLOCK..2 * BLOCK + 4], b"hi\n\0");
    }

    /// A time before 1970 goes into a PAX record, the header's field 0, as buildx writes
    /// `SOURCE_DATE_EPOCH=-100`.
    #[test]
    fn a_time_before_1970_is_a_pax_record() {
        let mut dir = Entry::new("out/", Kind::Dir);
        dir.mode = 0o755;
        dir.mtime = -100;
        let bytes = tarball(&[(dir, b"")]);
        let extended = &bytes[..BLOCK];
        assert_eq!(&extended[..17], b"out/PaxHeaders.0\0");
        assert_eq!(field(extended, 100..108), b"0000000\0");
        assert_eq!(field(extended, 124..136), b"00000000016\0");
        assert_eq!(field(extended, 148..157), b"010750\0 x");
        assert_eq!(field(extended, 329..345), [0u8; 16]);
        assert_eq!(&bytes[BLOCK..BLOCK + 15], b"14 mtime=-100\n\0");
        let header = &bytes[2 * BLOCK..3 * BLOCK];
        assert_eq!(&header[..5], b"out/\0");
        assert_eq!(field(header, 136..157), b"00000000000\x00010014\x00 5");
    }

    #[test]
    fn long_names_split_or_go_to_pax_records() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let mut file = Entry::new(long.clone(), Kind::File);
        file.mode = 0o644;
        let bytes = tarball(&[(file.clone(), b"")]);
        assert_eq!(&bytes[..91], format!("{}\0", "f".repeat(90)).as_bytes());
        assert_eq!(
            &bytes[345..466],
            format!("{}\0", "d".repeat(120)).as_bytes()
        );

        file.name = format!("{}/{}", "d".repeat(160), "f".repeat(90)).into_bytes();
        let bytes = tarball(&[(file.clone(), b"")]);
        assert_eq!(bytes[156], b'x');
        let record = pax_record("path", &file.name);
        assert_eq!(&bytes[BLOCK..BLOCK + record.len()], &record[..]);
        assert!(record.starts_with(b"261 path="), "{record:?}");
        assert_eq!(&bytes[2 * BLOCK..2 * BLOCK + NAME], &file.name[..NAME]);
        assert_eq!(&bytes[2 * BLOCK + 345..2 * BLOCK + 346], b"\0");
    }

    #[test]
    fn a_record_counts_its_own_length() {
        assert_eq!(pax_record("mtime", b"-100"), b"14 mtime=-100\n");
        // 4 + 91 + 3 = 98, 100 with its two digits, which makes three: 101.
        let value = vec![b'a'; 91];
        let record = pax_record("path", &value);
        assert_eq!(record.len(), 101);
        assert!(record.starts_with(b"101 path="));
    }

    #[test]
    fn a_short_data_is_an_error() {
        let mut file = Entry::new("f", Kind::File);
        file.size = 4;
        let mut writer = Writer::new(Vec::new());
        let err = writer.append(&file, &mut &b"ab"[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
