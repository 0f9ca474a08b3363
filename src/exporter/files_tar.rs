//! The tarball of a result's files (`-o type=tar`), written as BuildKit's tar exporter writes
//! it (fsutil's `WriteTar` on Go's `archive/tar`), so that bud's tarball is buildx's byte for
//! byte: each header as `snapshot::go_tar` encodes it (the `tar` crate drops a directory's
//! trailing `/` and writes GNU headers), the mode's permission bits only, owners numbered
//! and not named, and two zero blocks at the end with no padding beyond them.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use crate::snapshot::go_tar::{self, BLOCK, GoHeader};

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
        if entry.mode > 0o7777 || entry.device.0 >= 1 << 21 || entry.device.1 >= 1 << 21 {
            // Go would write a GNU header; no file a build makes has these.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: a mode or device number a tar header cannot hold",
                    String::from_utf8_lossy(&name)
                ),
            ));
        }
        let records: Vec<(String, Vec<u8>)> = entry
            .records
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let header = GoHeader {
            name: &name,
            kind: entry.kind.type_flag(),
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            size,
            mtime: entry.mtime,
            link: &entry.link,
            device: entry.device,
            records: &records,
        };
        self.out.write_all(&go_tar::header_blocks(&header))?;
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
        let padding = size.next_multiple_of(BLOCK as u64) - size;
        self.out.write_all(&[0u8; BLOCK][..padding as usize])
    }

    /// Ends the archive with its two zero blocks.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }
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
        let mut record = b"261 path=".to_vec();
        record.extend_from_slice(&file.name);
        record.push(b'\n');
        assert_eq!(&bytes[BLOCK..BLOCK + record.len()], &record[..]);
        assert_eq!(&bytes[2 * BLOCK..2 * BLOCK + 100], &file.name[..100]);
        assert_eq!(&bytes[2 * BLOCK + 345..2 * BLOCK + 346], b"\0");
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
