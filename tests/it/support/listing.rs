//! What an image's filesystem looks like to a container, reduced to what a build decides:
//! path, type, permission bits, owner, size, content digest and link target. Mtimes are
//! left out because two builds never agree on them.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub digest: String,
    pub link: String,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:04o} {}:{} size={}",
            self.kind, self.mode, self.uid, self.gid, self.size
        )?;
        if !self.digest.is_empty() {
            write!(f, " sha256={}", &self.digest[..12])?;
        }
        if !self.link.is_empty() {
            write!(f, " -> {}", self.link)?;
        }
        Ok(())
    }
}

/// The tree in a `docker export` stream, keyed by absolute path.
pub type Listing = BTreeMap<String, Entry>;

pub fn from_tar(bytes: &[u8]) -> std::io::Result<Listing> {
    let mut listing = Listing::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let header = entry.header().clone();
        let path = normalize(&entry.path()?.to_string_lossy());
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => "file",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Link => "hardlink",
            tar::EntryType::Char => "char",
            tar::EntryType::Block => "block",
            tar::EntryType::Fifo => "fifo",
            _ => "other",
        };
        let link = match entry.link_name()? {
            Some(target) if kind == "hardlink" => normalize(&target.to_string_lossy()),
            Some(target) => target.to_string_lossy().into_owned(),
            None if kind == "char" || kind == "block" => format!(
                "{}:{}",
                header.device_major()?.unwrap_or(0),
                header.device_minor()?.unwrap_or(0)
            ),
            None => String::new(),
        };
        let (size, digest) = if kind == "file" {
            let mut content = Vec::new();
            entry.read_to_end(&mut content)?;
            (content.len() as u64, hex::encode(Sha256::digest(&content)))
        } else {
            (0, String::new())
        };
        listing.insert(
            path,
            Entry {
                kind,
                mode: header.mode()? & 0o7777,
                uid: header.uid()?,
                gid: header.gid()?,
                size,
                digest,
                link,
            },
        );
    }
    Ok(listing)
}

fn normalize(path: &str) -> String {
    let trimmed = path.trim_start_matches("./").trim_matches('/');
    format!("/{trimmed}")
}

/// The paths on which two listings disagree, one line each, at most `limit` of them;
/// `labels` name the builders of `want` and `got`.
pub fn differences(
    want: &Listing,
    got: &Listing,
    labels: (&str, &str),
    limit: usize,
) -> Vec<String> {
    let (want_label, got_label) = labels;
    let width = want_label.len().max(got_label.len()) + 1;
    let mut out = Vec::new();
    for (path, expected) in want {
        match got.get(path) {
            None => out.push(format!("  missing in {got_label}: {path}  ({expected})")),
            Some(found) if found != expected => out.push(format!(
                "  {path}\n    {:<width$} {expected}\n    {:<width$} {found}",
                format!("{want_label}:"),
                format!("{got_label}:"),
            )),
            Some(_) => {}
        }
    }
    for (path, found) in got {
        if !want.contains_key(path) {
            out.push(format!("  only in {got_label}: {path}  ({found})"));
        }
    }
    let total = out.len();
    if total > limit {
        out.truncate(limit);
        out.push(format!("  ... and {} more", total - limit));
    }
    out
}
