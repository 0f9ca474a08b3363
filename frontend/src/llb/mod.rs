//! A small LLB builder, after BuildKit's `client/llb`.
//!
//! Build steps are values: a [`State`] is the filesystem produced by one output
//! of an op (or scratch), and the constructors ([`image`], [`local`], [`http`],
//! [`git`], [`exec`], [`file()`], [`merge`], [`diff`]) return new states that
//! refer to their inputs. [`State::marshal`] then turns the graph into a
//! [`pb::Definition`](bud_proto::pb::Definition) the way BuildKit's marshaler
//! does:
//!
//! - ops appear inputs first; each op's digest is the sha256 of its exact bytes
//!   (prost writes fields in number order and maps in key order, as Go does);
//! - identical ops are written once and their metadata merged;
//! - the last entry is a terminal op holding only the result as its input;
//! - each op declares in its metadata only the capabilities its features need,
//!   so an older daemon refuses a definition it cannot run with a clear message.
//!
//! The builder does no I/O and resolves nothing: image references are
//! normalised textually, paths are taken as given (make them absolute before
//! building), and image configs are the caller's business.

mod constraints;
mod definition;
mod error;
mod exec;
mod file;
mod layer;
mod source;
mod sourcemap;
mod state;

pub use constraints::Constraints;
pub use definition::digest_of;
pub use error::LlbError;
pub use exec::{ExecBuilder, ExecOutputs, Mount, MountKind, exec};
pub use file::{
    Chown, CopyMode, CopyOptions, FileBuilder, MkdirOptions, MkfileOptions, RmOptions,
    SymlinkOptions, UserRef, file,
};
pub use layer::{diff, merge};
pub use source::{
    GitOptions, HttpOptions, ImageOptions, LocalOptions, OciLayoutOptions, ResolveMode, git, http,
    image, local, normalize_image_ref, oci_layout, scratch,
};
pub use sourcemap::{SourceLocation, SourceMap, line_range, locations_of};
pub use state::{Output, State};

#[cfg(test)]
mod tests;
