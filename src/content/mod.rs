//! Blobs addressed by digest, on disk.
//!
//! Layout under the store's root, as containerd's content store and an OCI layout use it:
//! `blobs/sha256/<hex>` holds committed blobs, `ingest/` holds blobs being written. A blob
//! appears under `blobs/` only once fully written and verified, by an atomic rename, so a
//! reader never sees a partial blob and concurrent writers of the same blob need no lock.
//!
//! Next to them, `leases/` and `gc.lock` record which blobs running processes use (the
//! `lease` module), so that garbage collection removes only blobs nobody holds.

mod digest;
mod lease;
mod store;

pub use digest::{Digest, DigestError, DigestWriter};
pub use store::{BlobInfo, BlobWriter, Collector, ContentError, ContentStore};
