//! `ADD https://…`: a URL downloaded into a directory it is given, as one file.
//!
//! As in BuildKit, the file is named by `http.filename`, else the response's
//! `Content-Disposition`, else the URL's last path segment; its mode is `http.perm`
//! (0600 by default), its owner `http.uid`/`http.gid`, its mtime the `Last-Modified` date
//! (or the epoch). The keys given to the solver name what the file holds (content digest,
//! name, mode, owner, mtime), not the URL; the solver keeps each URL's last ETag and
//! Last-Modified and hands them back so that a rebuild revalidates instead of downloading:
//! on `304 Not Modified` the earlier snapshot is reused. A pinned `http.checksum` gives a key
//! before any request is made. This module fetches only: the solver owns the snapshots
//! (`solver::remote_source`).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bud_proto::pb::attr;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::cache::http_cache::HttpValidators;
use crate::timeouts::Timeouts;

/// Why an HTTP(S) source could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A source op attribute bud cannot read (`http.checksum` that is not sha256,
    /// `http.perm`, `http.uid` or `http.gid` that is not a number).
    #[error("invalid {name} {value:?} for {url}: {reason}")]
    InvalidAttr {
        /// The URL of the source.
        url: String,
        /// The attribute's key.
        name: &'static str,
        /// Its value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request failed before or while the body came (refused, timed out, TLS, cut
    /// off).
    #[error("failed to download {url}: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// reqwest's causes joined: its own message only repeats the URL.
        reason: String,
    },
    /// The server answered neither 2xx nor a 304 to a conditional request, as BuildKit
    /// refuses it.
    #[error("failed to download {url}: invalid response status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status it answered.
        status: StatusCode,
    },
    /// A 304 that names another ETag than the one sent: the earlier download cannot be
    /// trusted to be what the server means.
    #[error("failed to download {url}: 304 Not Modified for a different ETag {etag:?}")]
    NotModifiedMismatch {
        /// The URL.
        url: String,
        /// The ETag the 304 carried.
        etag: String,
    },
    /// The downloaded content does not have the `ADD --checksum` digest.
    #[error("digest mismatch for {url}: {got} (expected: {expected})")]
    DigestMismatch {
        /// The URL.
        url: String,
        /// The content's digest, `sha256:…`.
        got: String,
        /// The digest the source pins.
        expected: String,
    },
    /// The file could not be written into the directory given, or its mode, owner or
    /// times not set.
    #[error("saving {url} to {path}")]
    Write {
        /// The URL.
        url: String,
        /// The file being written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built (no TLS roots, a bad setting).
    #[error("making the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// An HTTP(S) source op, as its identifier and attributes describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSource {
    /// What to download.
    url: String,
    /// `sha256:…` the content must have (lower-case).
    checksum: Option<String>,
    /// The file name asked for, if any.
    filename: Option<String>,
    /// The file's mode bits (`http.perm`, 0600 when absent or 0).
    perm: u32,
    /// The file's owner (`http.uid`), 0 by default.
    uid: u32,
    /// The file's group (`http.gid`), 0 by default.
    gid: u32,
}

/// What a request for a source returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The server confirmed the earlier download is current.
    NotModified,
    /// The content was written; these are its validators.
    Downloaded(HttpValidators),
}

const DEFAULT_PERM: u32 = 0o600;
const DEFAULT_NAME: &str = "download";

impl HttpSource {
    /// The source op `url` with its attributes (`http.checksum`, `http.filename`,
    /// `http.perm`, `http.uid`, `http.gid`), checked; no request is made.
    pub fn parse(url: &str, attrs: &BTreeMap<String, String>) -> Result<Self, HttpError> {
        let invalid = |name: &'static str, value: &str, reason: String| HttpError::InvalidAttr {
            url: url.to_string(),
            name,
            value: value.to_string(),
            reason,
        };
        let number = |name: &'static str| -> Result<Option<u32>, HttpError> {
            let Some(v) = attrs.get(name) else {
                return Ok(None);
            };
            parse_int(v)
                .map(Some)
                .map_err(|reason| invalid(name, v, reason))
        };
        let checksum = match attrs.get(attr::http::CHECKSUM) {
            Some(c) => match c.strip_prefix("sha256:") {
                Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Some(c.to_ascii_lowercase())
                }
                _ => {
                    return Err(invalid(
                        attr::http::CHECKSUM,
                        c,
                        "expected sha256: and 64 hex digits".into(),
                    ));
                }
            },
            None => None,
        };
        Ok(Self {
            url: url.to_string(),
            checksum,
            filename: attrs.get(attr::http::FILENAME).cloned(),
            perm: number(attr::http::PERM)?
                .filter(|p| *p != 0)
                .unwrap_or(DEFAULT_PERM),
            uid: number(attr::http::UID)?.unwrap_or(0),
            gid: number(attr::http::GID)?.unwrap_or(0),
        })
    }

    /// The file name, from the attribute, the response or the URL.
    fn file_name(&self, headers: Option<&HeaderMap>) -> String {
        if let Some(name) = &self.filename {
            return safe_file_name(name);
        }
        if let Some(name) = headers
            .and_then(|h| h.get(header::CONTENT_DISPOSITION))
            .and_then(|v| v.to_str().ok())
            .and_then(disposition_filename)
        {
            return safe_file_name(&name);
        }
        safe_file_name(url_last_segment(&self.url))
    }

    /// Under what the validators of this source's downloads are recorded: the URL and
    /// everything that shapes the file made from it.
    pub fn validators_key(&self) -> String {
        let id = serde_json::json!({
            "url": self.url,
            "filename": self.filename,
            "perm": self.perm,
            "uid": self.uid,
            "gid": self.gid,
        });
        format!(
            "http-url:sha256:{}",
            hex::encode(Sha256::digest(id.to_string()))
        )
    }

    /// The cache key of the snapshot holding `digest` saved as `filename`: the same content
    /// from any URL is the same snapshot.
    fn snapshot_key(&self, digest: &str, filename: &str, last_modified: Option<&str>) -> String {
        let id = serde_json::json!({
            "digest": digest,
            "filename": filename,
            "perm": self.perm,
            "uid": self.uid,
            "gid": self.gid,
            "last_modified": last_modified,
        });
        format!(
            "http:sha256:{}",
            hex::encode(Sha256::digest(id.to_string()))
        )
    }

    /// The key of the snapshot a pinned checksum names, known before any request.
    pub fn pinned_key(&self) -> Option<String> {
        let checksum = self.checksum.as_deref()?;
        Some(self.snapshot_key(checksum, &self.file_name(None), None))
    }

    /// The key of the snapshot made from the download `v` describes. A pinned checksum
    /// keys it without the mtime, so that it is found before any request is made.
    pub fn downloaded_key(&self, v: &HttpValidators) -> String {
        let last_modified = if self.checksum.is_some() {
            None
        } else {
            v.last_modified.as_deref()
        };
        self.snapshot_key(&v.digest, &v.filename, last_modified)
    }

    /// Requests the URL, conditionally on `previous`, and on `200` writes the file into
    /// `dir` and checks its digest. Only a request with `previous` is answered
    /// `NotModified`: a `304` to any other is an invalid status.
    pub async fn fetch(
        &self,
        client: &reqwest::Client,
        previous: Option<&HttpValidators>,
        dir: &Path,
    ) -> Result<Fetched, HttpError> {
        let request_err = |e: reqwest::Error| HttpError::Request {
            url: self.url.clone(),
            reason: describe(&e),
        };
        let mut request = client.get(&self.url);
        if let Some(prev) = previous {
            if let Some(etag) = &prev.etag {
                request = request.header(header::IF_NONE_MATCH, etag);
            } else if let Some(date) = &prev.last_modified {
                request = request.header(header::IF_MODIFIED_SINCE, date);
            }
        }
        let mut response = request.send().await.map_err(request_err)?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED
            && let Some(prev) = previous
        {
            // A 304 without an ETag answers the only one that was sent.
            if let Some(etag) = etag_value(response.headers())
                && prev.etag.as_ref().is_some_and(|sent| *sent != etag)
            {
                return Err(HttpError::NotModifiedMismatch {
                    url: self.url.clone(),
                    etag,
                });
            }
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(HttpError::Status {
                url: self.url.clone(),
                status,
            });
        }
        let filename = self.file_name(Some(response.headers()));
        let etag = etag_value(response.headers());
        let last_modified = response
            .headers()
            .get(header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let path = dir.join(&filename);
        let write_err = |source| HttpError::Write {
            url: self.url.clone(),
            path: path.clone(),
            source,
        };
        let mut file = tokio::fs::File::create_new(&path)
            .await
            .map_err(write_err)?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = response.chunk().await.map_err(request_err)? {
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(write_err)?;
        }
        file.flush().await.map_err(write_err)?;
        let file = file.into_std().await;
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        if let Some(expected) = &self.checksum
            && *expected != digest
        {
            return Err(HttpError::DigestMismatch {
                url: self.url.clone(),
                got: digest,
                expected: expected.clone(),
            });
        }
        file.set_permissions(std::fs::Permissions::from_mode(self.perm))
            .map_err(write_err)?;
        if self.uid != 0 || self.gid != 0 {
            std::os::unix::fs::fchown(&file, Some(self.uid), Some(self.gid)).map_err(write_err)?;
        }
        let mtime = last_modified
            .as_deref()
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        file.set_times(
            std::fs::FileTimes::new()
                .set_accessed(mtime)
                .set_modified(mtime),
        )
        .map_err(write_err)?;
        Ok(Fetched::Downloaded(HttpValidators {
            etag,
            last_modified,
            digest,
            filename,
        }))
    }
}

/// The client every HTTP(S) source of a build is fetched with, bounded by `timeouts`.
pub fn client(timeouts: Timeouts) -> Result<reqwest::Client, HttpError> {
    reqwest::Client::builder()
        .user_agent(concat!("bud/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeouts.connect)
        // A GET sends no body: the client's read timeout bounds the wait for the answer,
        // then each wait for more of the file.
        .read_timeout(timeouts.idle.max(timeouts.response))
        .build()
        .map_err(HttpError::Client)
}

/// Why a request failed: reqwest's own message only repeats the URL, its causes say what
/// happened (refused, timed out, a certificate problem).
fn describe(e: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        causes.push(cause.to_string());
        next = cause.source();
    }
    if causes.is_empty() {
        e.to_string()
    } else {
        causes.join(": ")
    }
}

/// Octal with a leading 0, hexadecimal with 0x, or decimal, as Go's ParseInt(v, 0, …).
fn parse_int(v: &str) -> Result<u32, String> {
    let (digits, radix) = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(o) = v.strip_prefix("0o").or_else(|| v.strip_prefix("0O")) {
        (o, 8)
    } else if v.len() > 1 && v.starts_with('0') {
        (&v[1..], 8)
    } else {
        (v, 10)
    };
    u32::from_str_radix(digits, radix).map_err(|e| e.to_string())
}

/// Weak validators compare equal to strong ones here, as in BuildKit.
fn etag_value(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::ETAG)?.to_str().ok()?;
    Some(v.strip_prefix("W/").unwrap_or(v).to_string()).filter(|v| !v.is_empty())
}

/// The base name of a path, or `download` when it has none or a suspicious one.
fn safe_file_name(name: &str) -> String {
    let base = name.trim().rsplit('/').next().unwrap_or_default();
    if base.is_empty() || base == "." || base == ".." || base.chars().any(char::is_control) {
        DEFAULT_NAME.to_string()
    } else {
        base.to_string()
    }
}

fn url_last_segment(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    path.rsplit('/').next().unwrap_or_default()
}

/// The `filename` parameter of a `Content-Disposition` header.
fn disposition_filename(value: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (name, v) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("filename") {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        (!v.is_empty() && !v.ends_with('/')).then(|| v.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn attributes_and_defaults() {
        let s = HttpSource::parse("https://example.com/a/b.tgz?x=1", &attrs(&[])).unwrap();
        assert_eq!((s.perm, s.uid, s.gid), (0o600, 0, 0));
        assert_eq!(s.file_name(None), "b.tgz");
        let s = HttpSource::parse(
            "https://example.com/",
            &attrs(&[
                ("http.perm", "0755"),
                ("http.uid", "1000"),
                ("http.gid", "0x10"),
                ("http.filename", "../x/y"),
            ]),
        )
        .unwrap();
        assert_eq!((s.perm, s.uid, s.gid), (0o755, 1000, 16));
        assert_eq!(s.file_name(None), "y");
        let err = HttpSource::parse("http://h/f", &attrs(&[("http.checksum", "md5:00")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("http.checksum") && err.contains("http://h/f"),
            "{err}"
        );
        assert!(HttpSource::parse("http://h/f", &attrs(&[("http.perm", "rw")])).is_err());
    }

    #[test]
    fn write_errors_name_their_own_layer_and_keep_the_cause() {
        let e = HttpError::Write {
            url: "http://h/f".into(),
            path: "/x/f".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        let cause = std::io::Error::from(std::io::ErrorKind::StorageFull).to_string();
        assert_eq!(e.to_string(), "saving http://h/f to /x/f");
        assert_eq!(
            crate::error_chain::error_chain(&e).matches(&cause).count(),
            1
        );
    }

    #[test]
    fn file_names_as_buildkit_chooses_them() {
        let s = HttpSource::parse("https://example.com/", &attrs(&[])).unwrap();
        assert_eq!(s.file_name(None), "download");
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"report.pdf\"".parse().unwrap(),
        );
        assert_eq!(s.file_name(Some(&h)), "report.pdf");
        assert_eq!(disposition_filename("attachment; filename=dir/"), None);
        assert_eq!(safe_file_name(".."), "download");
    }

    #[test]
    fn keys_depend_on_what_shapes_the_file() {
        let a = HttpSource::parse("http://h/f", &attrs(&[])).unwrap();
        let b = HttpSource::parse("http://h/f", &attrs(&[("http.perm", "0644")])).unwrap();
        assert_ne!(a.validators_key(), b.validators_key());
        assert_ne!(
            a.snapshot_key("sha256:1", "f", None),
            b.snapshot_key("sha256:1", "f", None)
        );
        assert_ne!(
            a.snapshot_key("sha256:1", "f", None),
            a.snapshot_key("sha256:1", "f", Some("date"))
        );
        let other_url = HttpSource::parse("http://mirror/f", &attrs(&[])).unwrap();
        assert_eq!(
            a.snapshot_key("sha256:1", "f", None),
            other_url.snapshot_key("sha256:1", "f", None)
        );
    }
}
