//! RPM packages from rpm's SQLite database (rpm ≥ 4.16, the default of Fedora ≥ 33, RHEL 9,
//! openSUSE): its `Packages` table holds one header blob per installed package. The older
//! BerkeleyDB (`Packages`) and NDB (`Packages.db`) formats are reported, not read.
//!
//! The header blob, as rpm's `lib/header.c` (`hdrblobInit`, `hdrblobVerifyInfo`) reads it
//! and rpm's `docs/manual/format.md` ("Header format") describes it, all integers big-endian:
//! `il` (u32, index entries), `dl` (u32, data bytes), `il` entries of 16 bytes (tag i32,
//! type u32, offset i32 into the data, count u32), then the `dl` bytes of data. A blob from
//! the database has no magic or lead; its size is exactly `8 + 16·il + dl`.

use std::io::{self, Write};

use rusqlite::{Connection, OpenFlags};

use super::osrelease::Distro;
use super::rootfs::{RootFs, RootFsError};
use super::{Ecosystem, Inventory, MAX_PACKAGES, Package, Skipped, Supplier, purl};

/// The directories rpm keeps its database in (`%_dbpath`): the traditional one and the one
/// Fedora and openSUSE moved it to (usually with the first a symlink to it).
const DB_DIRS: [&str; 2] = ["/var/lib/rpm", "/usr/lib/sysimage/rpm"];
/// Far beyond a whole distribution's database; the database is copied to be read.
const SQLITE_LIMIT: u64 = 1 << 30;
/// rpm's own bounds (`HEADER_TAGS_MAX`, `HEADER_DATA_MAX`).
const MAX_INDEX_ENTRIES: u32 = 0xffff;
/// See [`MAX_INDEX_ENTRIES`].
const MAX_DATA: u32 = 0x0fff_ffff;

/// The header tags read (rpm's `rpmtag.h`): name, version, release, epoch, vendor,
/// license, architecture and source package, those syft reads.
const TAG_NAME: i32 = 1000;
const TAG_VERSION: i32 = 1001;
const TAG_RELEASE: i32 = 1002;
const TAG_EPOCH: i32 = 1003;
const TAG_VENDOR: i32 = 1011;
const TAG_LICENSE: i32 = 1014;
const TAG_ARCH: i32 = 1022;
const TAG_SOURCERPM: i32 = 1044;

/// The entry types those tags come in (`rpmTagType`): an epoch is an INT32, the rest
/// strings, of any of the three string types (of an array, the first is read).
const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// Why a header blob is not read, as rpm's own checks (`hdrblobVerifyInfo`) would refuse it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum HeaderError {
    /// Not even the index and data sizes.
    #[error("shorter than its 8-byte preamble")]
    Truncated,
    /// No entries, or more entries or data than rpm allows.
    #[error("{il} index entries and {dl} data bytes are beyond rpm's limits")]
    TooLarge { il: u32, dl: u32 },
    /// The blob is not exactly the size its preamble gives.
    #[error("{actual} bytes where its preamble says {expected}")]
    SizeMismatch { expected: u64, actual: usize },
    /// An entry of a tag read whose type, offset or value is wrong.
    #[error("tag {tag}: {reason}")]
    BadEntry { tag: i32, reason: &'static str },
    /// A tag every package has (name, version, release) is not there.
    #[error("no {0} tag")]
    Missing(&'static str),
}

/// Why one package of the database is left out of the inventory.
#[derive(Debug, thiserror::Error)]
pub(super) enum PackageError {
    /// Its header blob is malformed.
    #[error("package {hnum} skipped")]
    Header {
        /// The row's `hnum`, rpm's number for the installed package.
        hnum: i64,
        #[source]
        source: HeaderError,
    },
    /// Its header blob is larger than rpm allows, so it was not loaded.
    #[error("package {hnum} skipped: a header of {len} bytes")]
    HeaderTooLarge { hnum: i64, len: i64 },
    /// Its fields make no package URL.
    #[error("{name} skipped")]
    Purl {
        name: String,
        #[source]
        source: packageurl::Error,
    },
}

/// The tags of one package's header that the inventory uses; the optional ones are `None`
/// where the header lacks them (`gpg-pubkey` pseudo-packages have no architecture).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Header {
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<i32>,
    pub arch: Option<String>,
    pub license: Option<String>,
    pub vendor: Option<String>,
    /// The source package's file name, `name-version-release.src.rpm`.
    pub source_rpm: Option<String>,
}

/// Adds the packages of each rpm SQLite database the image has (read once where the two
/// directories are one), and warns of the databases in the formats bud does not read.
pub(super) fn scan(fs: &RootFs, distro: &Distro, inventory: &mut Inventory) {
    let mut seen = Vec::new();
    for dir in DB_DIRS {
        for (file, format) in [("Packages", "BerkeleyDB"), ("Packages.db", "NDB")] {
            let path = format!("{dir}/{file}");
            if matches!(fs.resolve(&path), Ok(Some(p)) if p.exists()) {
                inventory.warn(
                    path,
                    format_args!(
                        "rpm database skipped: the {format} format is not read, only rpmdb.sqlite"
                    ),
                );
            }
        }
        let path = format!("{dir}/rpmdb.sqlite");
        let host = match fs.resolve(&path) {
            Ok(Some(host)) if host.exists() => host,
            Ok(_) => continue,
            Err(e) => {
                inventory.warn(
                    &path,
                    format_args!(
                        "rpm database skipped: {}",
                        crate::error_chain::error_chain(&e)
                    ),
                );
                continue;
            }
        };
        // One database seen through the symlink between the two directories is read once.
        if seen.contains(&host) {
            continue;
        }
        seen.push(host);
        let headers = match read_sqlite(fs, &path) {
            Ok(headers) => headers,
            Err(e) => {
                inventory.warn(
                    &path,
                    format_args!(
                        "rpm database skipped: {}",
                        crate::error_chain::error_chain(&e)
                    ),
                );
                continue;
            }
        };
        let mut found = Vec::new();
        let mut skipped = Skipped::default();
        for header in headers {
            match header.and_then(|h| package(h, &path, distro)) {
                Ok(p) => found.push(p),
                Err(e) => skipped.note(&path, crate::error_chain::error_chain(&e)),
            }
        }
        skipped.report(inventory);
        inventory.add(&path, found);
    }
}

/// Why a database is not read at all.
#[derive(Debug, thiserror::Error)]
enum SqliteError {
    /// The image's file cannot be read.
    #[error(transparent)]
    Read(#[from] RootFsError),
    /// The copy SQLite reads cannot be made.
    #[error("copying it to read it")]
    Copy(#[source] io::Error),
    /// SQLite refuses the file or the query.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// `Packages` is missing, or a view: a query the image wrote, which could run forever.
    #[error("its Packages is not a table")]
    NoPackagesTable,
}

/// Every row's header, or why it was not read. The database (and its write-ahead log, where
/// rpm left one) is copied first: SQLite may need to write beside a database it reads (its
/// `-shm` index of the log), and the image's files are never written.
fn read_sqlite(fs: &RootFs, path: &str) -> Result<Vec<Result<Header, PackageError>>, SqliteError> {
    let tmp = tempfile::tempdir().map_err(SqliteError::Copy)?;
    let copy = tmp.path().join("rpmdb.sqlite");
    if !copy_file(fs, path, &copy)? {
        return Ok(Vec::new());
    }
    copy_file(
        fs,
        &format!("{path}-wal"),
        &tmp.path().join("rpmdb.sqlite-wal"),
    )?;
    let conn = Connection::open_with_flags(
        &copy,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // A hostile database's schema runs nothing: no triggers, views or functions it defines
    // are trusted, and writes to the schema are refused.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA,
        false,
    )?;
    let kind: Option<String> = conn
        .query_row(
            "SELECT type FROM sqlite_master WHERE name = 'Packages'",
            [],
            |row| row.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    if kind.as_deref() != Some("table") {
        return Err(SqliteError::NoPackagesTable);
    }
    // Blobs beyond rpm's own header limit are not loaded, only reported.
    let max_blob = 8 + 16 * u64::from(MAX_INDEX_ENTRIES) + u64::from(MAX_DATA);
    let mut stmt = conn.prepare(
        "SELECT hnum, length(blob), CASE WHEN length(blob) <= ?1 THEN blob END \
         FROM Packages ORDER BY hnum",
    )?;
    let mut rows = stmt.query([max_blob as i64])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        if out.len() > MAX_PACKAGES {
            // The inventory takes no more: it says so when this is added.
            break;
        }
        let hnum: i64 = row.get(0)?;
        let len: i64 = row.get(1)?;
        let blob: Option<Vec<u8>> = row.get(2)?;
        out.push(match blob {
            Some(blob) => {
                parse_header(&blob).map_err(|source| PackageError::Header { hnum, source })
            }
            None => Err(PackageError::HeaderTooLarge { hnum, len }),
        });
    }
    Ok(out)
}

/// Copies the image's file at `path` to `to`; false if it does not exist.
fn copy_file(fs: &RootFs, path: &str, to: &std::path::Path) -> Result<bool, SqliteError> {
    let Some((file, _)) = fs.open(path, SQLITE_LIMIT)? else {
        return Ok(false);
    };
    let mut out = std::fs::File::create(to).map_err(SqliteError::Copy)?;
    io::copy(&mut io::Read::take(file, SQLITE_LIMIT), &mut out).map_err(SqliteError::Copy)?;
    out.flush().map_err(SqliteError::Copy)?;
    Ok(true)
}

/// The package of header `h`: its version `V-R` (the epoch in front where there is one), its
/// purl in the distribution's namespace with architecture, epoch and source package.
fn package(h: Header, path: &str, distro: &Distro) -> Result<Package, PackageError> {
    let version = format!("{}-{}", h.version, h.release);
    let epoch = h.epoch.map(|e| e.to_string());
    let distro_q = distro.qualifier();
    let purl = purl(
        "rpm",
        distro.id.as_deref(),
        &h.name,
        &version,
        &[
            ("arch", h.arch.as_deref()),
            ("epoch", epoch.as_deref()),
            ("upstream", h.source_rpm.as_deref()),
            ("distro", distro_q.as_deref()),
        ],
    )
    .map_err(|source| PackageError::Purl {
        name: h.name.clone(),
        source,
    })?;
    Ok(Package {
        // As rpm prints `%{EVR}` and syft writes it: the epoch only where there is one.
        version: match &epoch {
            Some(epoch) => format!("{epoch}:{version}"),
            None => version,
        },
        name: h.name,
        ecosystem: Ecosystem::Rpm,
        purl,
        supplier: h.vendor.map(Supplier::Organization),
        licenses: h.license.into_iter().collect(),
        location: path.to_string(),
    })
}

/// The [`Header`] of a blob laid out as the module's documentation says, every size and
/// offset checked before it is used.
pub(super) fn parse_header(blob: &[u8]) -> Result<Header, HeaderError> {
    let be32 = |at: usize| -> u32 {
        u32::from_be_bytes([blob[at], blob[at + 1], blob[at + 2], blob[at + 3]])
    };
    if blob.len() < 8 {
        return Err(HeaderError::Truncated);
    }
    let (il, dl) = (be32(0), be32(4));
    if il == 0 || il > MAX_INDEX_ENTRIES || dl > MAX_DATA {
        return Err(HeaderError::TooLarge { il, dl });
    }
    let expected = 8 + 16 * u64::from(il) + u64::from(dl);
    if expected != blob.len() as u64 {
        return Err(HeaderError::SizeMismatch {
            expected,
            actual: blob.len(),
        });
    }
    let data_start = 8 + 16 * il as usize;
    let data = &blob[data_start..];
    let entries: Vec<Entry> = (0..il as usize)
        .map(|i| {
            let at = 8 + 16 * i;
            Entry {
                tag: be32(at) as i32,
                ty: be32(at + 4),
                offset: be32(at + 8) as i32,
                count: be32(at + 12),
            }
        })
        .collect();
    let find = |tag: i32| entries.iter().find(|e| e.tag == tag);
    let string = |tag: i32| -> Result<Option<String>, HeaderError> {
        let Some(entry) = find(tag) else {
            return Ok(None);
        };
        if !matches!(entry.ty, TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING) {
            return Err(HeaderError::BadEntry {
                tag,
                reason: "not a string",
            });
        }
        let start = entry.data_offset(data.len(), tag)?;
        let rest = &data[start..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(HeaderError::BadEntry {
                tag,
                reason: "a string without its terminating NUL",
            })?;
        Ok(Some(String::from_utf8_lossy(&rest[..end]).into_owned()))
    };
    let required = |tag: i32, name: &'static str| -> Result<String, HeaderError> {
        string(tag)?.ok_or(HeaderError::Missing(name))
    };
    let epoch = match find(TAG_EPOCH) {
        None => None,
        Some(entry) => {
            if entry.ty != TYPE_INT32 || entry.count < 1 {
                return Err(HeaderError::BadEntry {
                    tag: TAG_EPOCH,
                    reason: "not an INT32",
                });
            }
            let start = entry.data_offset(data.len(), TAG_EPOCH)?;
            if start % 4 != 0 || start + 4 > data.len() {
                return Err(HeaderError::BadEntry {
                    tag: TAG_EPOCH,
                    reason: "an INT32 misaligned or past the data",
                });
            }
            Some(be32(data_start + start) as i32)
        }
    };
    Ok(Header {
        name: required(TAG_NAME, "NAME")?,
        version: required(TAG_VERSION, "VERSION")?,
        release: required(TAG_RELEASE, "RELEASE")?,
        epoch,
        arch: string(TAG_ARCH)?,
        license: string(TAG_LICENSE)?,
        vendor: string(TAG_VENDOR)?,
        source_rpm: string(TAG_SOURCERPM)?,
    })
}

/// One index entry: which tag, of which type, where in the data and how many values.
struct Entry {
    tag: i32,
    ty: u32,
    offset: i32,
    count: u32,
}

impl Entry {
    /// Where the entry's value starts in the data, which must hold it.
    fn data_offset(&self, data_len: usize, tag: i32) -> Result<usize, HeaderError> {
        usize::try_from(self.offset)
            .ok()
            .filter(|&o| o < data_len)
            .ok_or(HeaderError::BadEntry {
                tag,
                reason: "an offset outside the data",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header blob of `(tag, type, data)` entries, laid out as rpm lays them out.
    pub(crate) fn blob(entries: &[(i32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data: Vec<u8> = Vec::new();
        for (tag, ty, bytes) in entries {
            if *ty == TYPE_INT32 {
                while data.len() % 4 != 0 {
                    data.push(0);
                }
            }
            index.extend_from_slice(&tag.to_be_bytes());
            index.extend_from_slice(&ty.to_be_bytes());
            index.extend_from_slice(&(data.len() as i32).to_be_bytes());
            index.extend_from_slice(&1u32.to_be_bytes());
            data.extend_from_slice(bytes);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    fn s(text: &str) -> Vec<u8> {
        let mut v = text.as_bytes().to_vec();
        v.push(0);
        v
    }

    #[test]
    fn parses_a_header() {
        let b = blob(&[
            (TAG_NAME, TYPE_STRING, s("bash")),
            (TAG_VERSION, TYPE_STRING, s("5.2.26")),
            (TAG_RELEASE, TYPE_STRING, s("3.fc40")),
            (TAG_EPOCH, TYPE_INT32, 7i32.to_be_bytes().to_vec()),
            (TAG_LICENSE, TYPE_STRING, s("GPL-3.0-or-later")),
        ]);
        let h = parse_header(&b).unwrap();
        assert_eq!(h.name, "bash");
        assert_eq!(h.release, "3.fc40");
        assert_eq!(h.epoch, Some(7));
        assert_eq!(h.arch, None);
        assert_eq!(h.license.as_deref(), Some("GPL-3.0-or-later"));
    }

    #[test]
    fn corrupt_headers_are_errors() {
        let good = blob(&[
            (TAG_NAME, TYPE_STRING, s("a")),
            (TAG_VERSION, TYPE_STRING, s("1")),
            (TAG_RELEASE, TYPE_STRING, s("1")),
        ]);
        assert_eq!(parse_header(&good[..5]), Err(HeaderError::Truncated));
        assert!(matches!(
            parse_header(&good[..good.len() - 1]),
            Err(HeaderError::SizeMismatch { .. })
        ));
        let mut huge = good.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            parse_header(&huge),
            Err(HeaderError::TooLarge { .. })
        ));
        // An offset past the data.
        let mut bad = good.clone();
        bad[16..20].copy_from_slice(&1000i32.to_be_bytes());
        assert!(matches!(
            parse_header(&bad),
            Err(HeaderError::BadEntry { tag: TAG_NAME, .. })
        ));
        // A negative offset.
        bad[16..20].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(parse_header(&bad).is_err());
        // A string without its NUL.
        let unterminated = blob(&[(TAG_NAME, TYPE_STRING, b"abc".to_vec())]);
        assert!(matches!(
            parse_header(&unterminated),
            Err(HeaderError::BadEntry { .. })
        ));
        let no_name = blob(&[(TAG_VERSION, TYPE_STRING, s("1"))]);
        assert_eq!(parse_header(&no_name), Err(HeaderError::Missing("NAME")));
        // An epoch whose INT32 runs past the data.
        let epoch = blob(&[(TAG_EPOCH, TYPE_INT32, vec![0, 0])]);
        assert!(matches!(
            parse_header(&epoch),
            Err(HeaderError::BadEntry { tag: TAG_EPOCH, .. })
        ));
        // Every truncation of a good header is an error, never a panic.
        for cut in 0..good.len() {
            assert!(parse_header(&good[..cut]).is_err());
        }
    }
}
