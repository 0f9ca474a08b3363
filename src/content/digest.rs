//! `sha256:<hex>` content digests.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A sha256 content digest, written `sha256:<64 lowercase hex digits>`.
///
/// Only sha256 is supported: it is what Docker, BuildKit and registries use for every
/// image blob, and accepting other algorithms would only move the failure elsewhere.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    hex: String,
}

/// Why a text is not a digest bud can use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// Not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid digest {0:?}: expected \"sha256:\" and 64 lowercase hex digits")]
    Invalid(String),
    /// Another algorithm than sha256 (`sha512:…`): the store names and verifies blobs by
    /// sha256 only.
    #[error("unsupported digest algorithm in {0:?}: only sha256 is supported")]
    UnsupportedAlgorithm(String),
}

impl Digest {
    /// Parses `sha256:<hex>`.
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        let Some((algorithm, hex)) = text.split_once(':') else {
            return Err(DigestError::Invalid(text.to_owned()));
        };
        if algorithm != "sha256" {
            return Err(DigestError::UnsupportedAlgorithm(text.to_owned()));
        }
        Digest::from_hex(hex).map_err(|_| DigestError::Invalid(text.to_owned()))
    }

    /// Builds a digest from its 64 hex digits, without the algorithm prefix.
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        let valid = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(DigestError::Invalid(hex.to_owned()));
        }
        Ok(Digest {
            hex: hex.to_owned(),
        })
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    pub(crate) fn from_hasher(hasher: Sha256) -> Digest {
        Digest {
            hex: hex::encode(hasher.finalize()),
        }
    }

    /// The hex digits alone, as used in file names.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The algorithm, always `sha256`.
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest(sha256:{})", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A writer that passes bytes through while computing their digest and size.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Wraps `inner`, nothing hashed yet.
    pub fn new(inner: W) -> Self {
        DigestWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The digest of everything written, the byte count and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (Digest::from_hasher(self.hasher), self.written, self.inner)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_empty_input() {
        assert_eq!(Digest::of(b"").to_string(), EMPTY);
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(b"").unwrap();
        assert_eq!(w.finish().0.to_string(), EMPTY);
    }

    #[test]
    fn parse_round_trips_and_validates() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.hex().len(), 64);
        for bad in [
            "",
            "sha256:",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:../../../../etc/passwd",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            Digest::parse("sha512:abcd"),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn writer_hashes_what_it_passes_through() {
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        assert_eq!(w.written(), 11);
        let (digest, size, inner) = w.finish();
        assert_eq!(digest, Digest::of(b"hello world"));
        assert_eq!(size, 11);
        assert_eq!(inner, b"hello world");
    }
}
