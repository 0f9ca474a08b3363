//! Keys of `SourceOp.attrs`, by source scheme, and a few of their values.
//!
//! Pattern and path lists (`local.includepattern`, `local.excludepatterns`,
//! `local.followpaths`) are JSON arrays of strings.

/// `docker-image://` sources.
pub mod image {
    /// `default`, `pull` or `local`.
    pub const RESOLVE_MODE: &str = "image.resolvemode";
    pub const RESOLVE_MODE_DEFAULT: &str = "default";
    pub const RESOLVE_MODE_FORCE_PULL: &str = "pull";
    pub const RESOLVE_MODE_PREFER_LOCAL: &str = "local";
    pub const RECORD_TYPE: &str = "image.recordtype";
    pub const LAYER_LIMIT: &str = "image.layerlimit";
    pub const CHECKSUM: &str = "image.checksum";
}

/// `local://` sources (files sent by the client over the session).
pub mod local {
    pub const SESSION_ID: &str = "local.session";
    /// Keeps two otherwise identical local sources apart in the cache.
    pub const UNIQUE_ID: &str = "local.unique";
    pub const INCLUDE_PATTERNS: &str = "local.includepattern";
    pub const EXCLUDE_PATTERNS: &str = "local.excludepatterns";
    pub const FOLLOW_PATHS: &str = "local.followpaths";
    pub const SHARED_KEY_HINT: &str = "local.sharedkeyhint";
    pub const DIFFER: &str = "local.differ";
    pub const DIFFER_NONE: &str = "none";
    pub const DIFFER_METADATA: &str = "metadata";
    pub const METADATA_TRANSFER: &str = "local.metadatatransfer";
    pub const METADATA_TRANSFER_EXCLUDE: &str = "local.metadatatransferexclude";
}

/// `git://` sources.
pub mod git {
    pub const KEEP_GIT_DIR: &str = "git.keepgitdir";
    pub const FULL_URL: &str = "git.fullurl";
    pub const AUTH_HEADER_SECRET: &str = "git.authheadersecret";
    pub const AUTH_TOKEN_SECRET: &str = "git.authtokensecret";
    pub const KNOWN_SSH_HOSTS: &str = "git.knownsshhosts";
    pub const MOUNT_SSH_SOCK: &str = "git.mountsshsock";
    pub const CHECKSUM: &str = "git.checksum";
    pub const SKIP_SUBMODULES: &str = "git.skipsubmodules";
    pub const MTIME: &str = "git.mtime";
    pub const FETCH_BY_COMMIT: &str = "git.fetchbycommit";
    pub const BUNDLE: &str = "git.bundle";
    pub const CHECKOUT_BUNDLE: &str = "git.checkoutbundle";
    pub const SIG_PUBKEY: &str = "git.sig.pubkey";
    pub const SIG_REJECT_EXPIRED: &str = "git.sig.rejectexpired";
    pub const SIG_REQUIRE_SIGNED_TAG: &str = "git.sig.requiresignedtag";
    pub const SIG_IGNORE_SIGNED_TAG: &str = "git.sig.ignoresignedtag";
}

/// `http://` and `https://` sources.
pub mod http {
    pub const CHECKSUM: &str = "http.checksum";
    pub const FILENAME: &str = "http.filename";
    /// Octal with a leading 0, e.g. `0644`.
    pub const PERM: &str = "http.perm";
    pub const UID: &str = "http.uid";
    pub const GID: &str = "http.gid";
    pub const AUTH_HEADER_SECRET: &str = "http.authheadersecret";
    /// Prefix of one attribute per extra request header.
    pub const HEADER_PREFIX: &str = "http.header.";
    pub const SIG_PUBKEY: &str = "http.sig.pubkey";
    pub const SIGNATURE: &str = "http.sig.signature";
}

/// `oci-layout://` sources.
pub mod oci {
    pub const SESSION_ID: &str = "oci.session";
    pub const STORE_ID: &str = "oci.store";
    pub const LAYER_LIMIT: &str = "oci.layerlimit";
}

/// Nested builds (`BuildOp`).
pub const LLB_DEFINITION_FILENAME: &str = "llbbuild.filename";
