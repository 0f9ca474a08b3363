//! The main build context when it is not a directory the client sends: a git repository
//! or a URL, as BuildKit's `dockerui` client turns the `context` option into a source.

use crate::gitref::GitRef;
use crate::llb::{self, Constraints, CopyOptions, FileBuilder, HttpOptions, LlbError, State};

/// The file name an http context is saved under, as in BuildKit.
pub const HTTP_CONTEXT_FILE: &str = "context";

/// Where the main build context comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MainContext {
    /// The local source the client sends (`local://context`).
    #[default]
    Local,
    /// A git repository.
    Git {
        /// The repository, ref and subdirectory the URL names.
        git: GitRef,
        /// The URL as given, for the step's name (`[internal] load git source …`).
        source: String,
        /// `BUILDKIT_CONTEXT_KEEP_GIT_DIR`: the checkout keeps its `.git` directory.
        keep_git_dir: bool,
        /// The solver cannot check out a subdirectory (no `source.git.subdir`, as in
        /// Docker 20.10): the repository is checked out whole and the subdirectory copied
        /// out of it, as BuildKit's frontend scopes a context to a subdirectory.
        copy_subdir: bool,
    },
    /// A URL serving a tar archive (plain or compressed): its contents are the context.
    HttpArchive(String),
    /// A URL serving the Dockerfile itself: the context holds that one file.
    HttpFile(String),
}

impl MainContext {
    /// The context's state, or `None` for a local one (its source depends on the paths
    /// the build reads).
    pub fn state(&self) -> Result<Option<State>, LlbError> {
        Ok(Some(match self {
            MainContext::Local => return Ok(None),
            MainContext::Git {
                git,
                source,
                keep_git_dir,
                copy_subdir,
            } => {
                let name = format!("[internal] load git source {source}");
                match git.subdir.as_deref().filter(|_| *copy_subdir) {
                    None => git.state(*keep_git_dir, &name),
                    Some(subdir) => {
                        let whole = GitRef {
                            subdir: None,
                            ..git.clone()
                        };
                        let contents = CopyOptions {
                            copy_dir_contents_only: true,
                            ..Default::default()
                        };
                        llb::file(FileBuilder::new(State::scratch()).copy(
                            &whole.state(*keep_git_dir, &name),
                            format!("/{}", subdir.trim_matches('/')),
                            "/",
                            contents,
                        ))?
                    }
                }
            }
            MainContext::HttpFile(url) => http_download(url),
            MainContext::HttpArchive(url) => {
                let unpack = CopyOptions {
                    attempt_unpack: true,
                    ..Default::default()
                };
                llb::file(FileBuilder::new(State::scratch()).copy(
                    &http_download(url),
                    format!("/{HTTP_CONTEXT_FILE}"),
                    "/",
                    unpack,
                ))?
            }
        }))
    }
}

/// The download of an http context, before BuildKit's frontend knows what it holds.
pub fn http_download(url: &str) -> State {
    llb::http(
        url,
        HttpOptions {
            filename: Some(HTTP_CONTEXT_FILE.to_owned()),
            constraints: Constraints::default()
                .with_custom_name("[internal] load remote build context"),
            ..Default::default()
        },
    )
}
