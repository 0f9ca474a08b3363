//! LLB capability IDs.
//!
//! A definition declares the capabilities each op relies on in
//! `OpMetadata.caps`; the daemon checks them against its own list (the LLB caps
//! the gateway's Ping reports) and refuses a definition that needs one it lacks,
//! with a message naming it, instead of misreading the op. The strings are
//! BuildKit's, including its misspelt `soruce.http.uidgid`.
//!
//! Capabilities newer than BuildKit v0.8 (dockerd 20.10) include `mergeop`,
//! `diffop`, `exec.mount.tmpfs.size`, `exec.secretenv` and
//! `file.copy.includeexcludepatterns`.

// Sources
pub const SOURCE_IMAGE: &str = "source.image";
pub const SOURCE_IMAGE_RESOLVE_MODE: &str = "source.image.resolvemode";
pub const SOURCE_IMAGE_LAYER_LIMIT: &str = "source.image.layerlimit";
pub const SOURCE_IMAGE_CHECKSUM: &str = "source.image.checksum";
pub const SOURCE_IMAGE_BLOB: &str = "source.imageblob";
pub const SOURCE_OCI_LAYOUT: &str = "source.ocilayout";

pub const SOURCE_LOCAL: &str = "source.local";
pub const SOURCE_LOCAL_UNIQUE: &str = "source.local.unique";
pub const SOURCE_LOCAL_SESSION_ID: &str = "source.local.sessionid";
pub const SOURCE_LOCAL_INCLUDE_PATTERNS: &str = "source.local.includepatterns";
pub const SOURCE_LOCAL_EXCLUDE_PATTERNS: &str = "source.local.excludepatterns";
pub const SOURCE_LOCAL_FOLLOW_PATHS: &str = "source.local.followpaths";
pub const SOURCE_LOCAL_SHARED_KEY_HINT: &str = "source.local.sharedkeyhint";
pub const SOURCE_LOCAL_DIFFER: &str = "source.local.differ";
pub const SOURCE_LOCAL_METADATA_TRANSFER: &str = "source.local.metadatatransfer";

pub const SOURCE_GIT: &str = "source.git";
pub const SOURCE_GIT_KEEP_DIR: &str = "source.git.keepgitdir";
pub const SOURCE_GIT_FULL_URL: &str = "source.git.fullurl";
pub const SOURCE_GIT_HTTP_AUTH: &str = "source.git.httpauth";
pub const SOURCE_GIT_KNOWN_SSH_HOSTS: &str = "source.git.knownsshhosts";
pub const SOURCE_GIT_MOUNT_SSH_SOCK: &str = "source.git.mountsshsock";
pub const SOURCE_GIT_SUBDIR: &str = "source.git.subdir";
pub const SOURCE_GIT_CHECKSUM: &str = "source.git.checksum";
pub const SOURCE_GIT_SKIP_SUBMODULES: &str = "source.git.skipsubmodules";
pub const SOURCE_GIT_SIGNATURE_VERIFY: &str = "source.git.signatureverify";
pub const SOURCE_GIT_MTIME: &str = "source.git.mtime";
pub const SOURCE_GIT_FETCH_BY_COMMIT: &str = "source.git.fetchbycommit";
pub const SOURCE_GIT_BUNDLE: &str = "source.git.bundle";
pub const SOURCE_GIT_CHECKOUT_BUNDLE: &str = "source.git.checkoutbundle";

pub const SOURCE_HTTP: &str = "source.http";
pub const SOURCE_HTTP_AUTH: &str = "source.http.auth";
pub const SOURCE_HTTP_CHECKSUM: &str = "source.http.checksum";
pub const SOURCE_HTTP_PERM: &str = "source.http.perm";
/// Misspelt upstream; the daemon only knows this spelling.
pub const SOURCE_HTTP_UID_GID: &str = "soruce.http.uidgid";
pub const SOURCE_HTTP_HEADER: &str = "source.http.header";
pub const SOURCE_HTTP_SIGNATURE_VERIFY: &str = "source.http.signatureverify";

pub const BUILD_OP_LLB_FILE_NAME: &str = "source.buildop.llbfilename";

// Exec
pub const EXEC_META_BASE: &str = "exec.meta.base";
pub const EXEC_META_CGROUP_PARENT: &str = "exec.meta.cgroup.parent";
pub const EXEC_META_NETWORK: &str = "exec.meta.network";
pub const EXEC_META_NETWORK_PROXY: &str = "exec.meta.network.proxy";
pub const EXEC_META_PROXY: &str = "exec.meta.proxyenv";
pub const EXEC_META_SECURITY: &str = "exec.meta.security";
pub const EXEC_META_SECURITY_DEVICE_WHITELIST_V1: &str = "exec.meta.security.devices.v1";
pub const EXEC_META_SETS_DEFAULT_PATH: &str = "exec.meta.setsdefaultpath";
pub const EXEC_META_ULIMIT: &str = "exec.meta.ulimit";
pub const EXEC_META_CDI: &str = "exec.meta.cdi";
pub const EXEC_META_REMOVE_MOUNT_STUBS_RECURSIVE: &str = "exec.meta.removemountstubs.recursive";
pub const EXEC_META_LINUX_RESOURCES: &str = "exec.meta.linux.resources";
pub const EXEC_MOUNT_BIND: &str = "exec.mount.bind";
pub const EXEC_MOUNT_BIND_READ_WRITE_NO_OUTPUT: &str = "exec.mount.bind.readwrite-nooutput";
pub const EXEC_MOUNT_CACHE: &str = "exec.mount.cache";
pub const EXEC_MOUNT_CACHE_SHARING: &str = "exec.mount.cache.sharing";
pub const EXEC_MOUNT_CONTENT_CACHE: &str = "exec.mount.cache.content";
pub const EXEC_MOUNT_SELECTOR: &str = "exec.mount.selector";
pub const EXEC_MOUNT_TMPFS: &str = "exec.mount.tmpfs";
pub const EXEC_MOUNT_TMPFS_SIZE: &str = "exec.mount.tmpfs.size";
pub const EXEC_MOUNT_SECRET: &str = "exec.mount.secret";
pub const EXEC_MOUNT_SSH: &str = "exec.mount.ssh";
pub const EXEC_CGROUPS_MOUNTED: &str = "exec.cgroup";
pub const EXEC_SECRET_ENV: &str = "exec.secretenv";
pub const EXEC_VALID_EXIT_CODE: &str = "exec.validexitcode";

// File
pub const FILE_BASE: &str = "file.base";
pub const FILE_RM_WILDCARD: &str = "file.rm.wildcard";
pub const FILE_RM_NO_FOLLOW_SYMLINK: &str = "file.rm.nofollowsymlink";
pub const FILE_COPY_INCLUDE_EXCLUDE_PATTERNS: &str = "file.copy.includeexcludepatterns";
pub const FILE_COPY_REQUIRED_PATHS: &str = "file.copy.requiredpaths";
pub const FILE_COPY_ALWAYS_REPLACE_EXISTING_DEST_PATHS: &str =
    "file.copy.alwaysreplaceexistingdestpaths";
pub const FILE_COPY_MODE_STRING_FORMAT: &str = "file.copy.modestring";
pub const FILE_SYMLINK_CREATE: &str = "file.symlink.create";

// Other op kinds
pub const MERGE_OP: &str = "mergeop";
pub const DIFF_OP: &str = "diffop";
pub const PASSTHROUGH_OP: &str = "passthroughop";

// Declared on the terminal op of every definition
pub const CONSTRAINTS: &str = "constraints";
pub const PLATFORM: &str = "platform";
pub const META_IGNORE_CACHE: &str = "meta.ignorecache";
pub const META_DESCRIPTION: &str = "meta.description";
pub const META_EXPORT_CACHE: &str = "meta.exportcache";

// Daemon features outside LLB (reported in the same list)
pub const REMOTE_CACHE_GHA: &str = "cache.gha";
pub const REMOTE_CACHE_S3: &str = "cache.s3";
pub const REMOTE_CACHE_AZBLOB: &str = "cache.azblob";
pub const EXPORTER_IMAGE_ANNOTATIONS: &str = "exporter.image.annotations";
pub const EXPORTER_IMAGE_ATTESTATIONS: &str = "exporter.image.attestations";
pub const EXPORTER_SOURCE_DATE_EPOCH: &str = "exporter.sourcedateepoch";
pub const EXPORTER_MULTIPLE: &str = "exporter.multiple";
pub const EXPORTER_SESSION: &str = "exporter.session";
pub const SOURCE_POLICY: &str = "source.policy";
pub const SOURCE_POLICY_SESSION: &str = "source.policy.session";
pub const GC_FREE_SPACE_FILTER: &str = "gc.freespacefilter";
pub const HISTORY_FILTERS: &str = "history.filter";
