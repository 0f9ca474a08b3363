//! Named contexts (`--build-context NAME=VALUE`): a directory, an image or a URL standing
//! in for a stage, a base image or a `COPY --from` source of the same name.

use super::ConvertOptions;
use super::error::{ConvertError, ConvertErrorKind};
use super::image::ImageConfig;
use super::platform::Platform;
use super::stages::ResolvedBase;
use crate::gitref::GitRef;
use crate::llb::{
    self, Constraints, HttpOptions, ImageOptions, LocalOptions, OciLayoutOptions, State,
};
use crate::reference::Reference;

/// What a named context is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A directory the client sends as the local source `name`.
    Local {
        /// Name of the local source (`local://NAME`).
        name: String,
        /// The directory's own `.dockerignore` patterns.
        excludes: Vec<String>,
    },
    /// `docker-image://REF`: an image in place of the name.
    Image(String),
    /// An `https://` URL: the file it serves, as `/context`.
    Http(String),
    /// A git repository.
    Git {
        /// The repository, ref and subdirectory the value names.
        git: GitRef,
        /// The value as given, for the step's name (`[internal] load git source …`).
        source: String,
    },
    /// An image of an OCI layout directory of the client (`oci-layout://PATH`).
    OciLayout {
        /// The layout directory's absolute path on the client.
        layout: String,
        /// The content store the client serves the layout as (the context's name), which
        /// the `oci-layout` source op names for BuildKit to read through the session.
        store: String,
        /// The manifest or index the context stands for, `sha256:…` (a tag is resolved
        /// in the layout's `index.json` before conversion).
        digest: String,
    },
}

/// The named context a stage, base or `--from` name refers to, looked up as BuildKit does:
/// by the name's short form without `:latest`, so `FROM docker.io/library/alpine` finds
/// `alpine`. `scratch` and `context` are never named contexts.
pub(super) fn lookup<'a>(
    opts: &'a ConvertOptions,
    name: &str,
) -> Option<(&'a str, &'a NamedContext)> {
    if opts.named_contexts.is_empty()
        || name.eq_ignore_ascii_case("scratch")
        || name.eq_ignore_ascii_case("context")
    {
        return None;
    }
    let familiar = Reference::parse(name).ok()?.familiar();
    let key = familiar.strip_suffix(":latest").unwrap_or(&familiar);
    opts.named_contexts
        .get_key_value(key)
        .map(|(k, v)| (k.as_str(), v))
}

/// The state and config of named context `name` for a stage built for `platform`.
pub(super) fn load(
    context: &NamedContext,
    name: &str,
    platform: &Platform,
    opts: &ConvertOptions,
    resolver: &dyn super::ImageResolver,
    line: usize,
) -> Result<ResolvedBase, ConvertError> {
    // Only the image carries the platform; local and HTTP sources are platform-neutral,
    // like the main context.
    let named =
        |what: String| Constraints::default().with_custom_name(format!("[context {name}] {what}"));
    let empty = |state| ResolvedBase {
        state,
        image: ImageConfig::empty(platform),
        platform: platform.clone(),
        from_counted: false,
    };
    match context {
        NamedContext::Local {
            name: local,
            excludes,
        } => Ok(empty(local_state(name, local, excludes, Vec::new(), opts))),
        NamedContext::Http(url) => Ok(empty(llb::http(
            url,
            HttpOptions {
                filename: Some("context".to_owned()),
                constraints: named(url.clone()),
                ..Default::default()
            },
        ))),
        NamedContext::Git { git, source } => Ok(empty(
            git.state(false, &format!("[internal] load git source {source}")),
        )),
        NamedContext::Image(reference) => {
            let normalized = llb::normalize_image_ref(reference)
                .map_err(|_| ConvertErrorKind::InvalidReference(reference.clone()).at(line))?;
            let resolved = resolver.resolve(&normalized, platform).map_err(|source| {
                ConvertErrorKind::ResolveImage {
                    reference: reference.clone(),
                    source,
                }
                .at(line)
            })?;
            let image = ImageConfig::from_json(resolved.config);
            let image_platform = own_platform(&image, platform);
            let state = llb::image(
                &normalized,
                ImageOptions {
                    constraints: named(reference.clone()).with_platform(platform.to_pb()),
                    ..Default::default()
                },
            )
            .map_err(|e| ConvertErrorKind::Llb(e).at(line))?;
            Ok(ResolvedBase {
                state,
                image,
                platform: image_platform,
                from_counted: false,
            })
        }
        NamedContext::OciLayout {
            layout,
            store,
            digest,
        } => {
            let resolved = resolver
                .resolve_oci_layout(layout, digest, platform)
                .map_err(|source| {
                    ConvertErrorKind::ResolveImage {
                        reference: format!("oci-layout://{layout}@{digest}"),
                        source,
                    }
                    .at(line)
                })?;
            let image = ImageConfig::from_json(resolved.config);
            let image_platform = own_platform(&image, platform);
            // Named after the context with the digest asked for, as BuildKit names it; the
            // store is what the daemon reads.
            let state = llb::oci_layout(
                &format!("{name}@{digest}"),
                OciLayoutOptions {
                    session_id: opts.session_id.clone().unwrap_or_default(),
                    store_id: store.clone(),
                    constraints: Constraints::default()
                        .with_custom_name(format!("[context {name}] OCI load from client"))
                        .with_platform(platform.to_pb()),
                },
            )
            .map_err(|e| ConvertErrorKind::Llb(e).at(line))?;
            Ok(ResolvedBase {
                state,
                image,
                platform: image_platform,
                from_counted: false,
            })
        }
    }
}

/// The image's own platform when its config names one, as in BuildKit; else `asked`.
fn own_platform(image: &ImageConfig, asked: &Platform) -> Platform {
    let top = |key: &str| {
        image
            .as_json()
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    match (top("os"), top("architecture")) {
        (os, architecture) if !os.is_empty() && !architecture.is_empty() => Platform {
            os,
            architecture,
            variant: top("variant"),
        },
        _ => asked.clone(),
    }
}

/// The local source of a directory context, reading only `follow_paths` when not empty.
pub(super) fn local_state(
    name: &str,
    local: &str,
    excludes: &[String],
    follow_paths: Vec<String>,
    opts: &ConvertOptions,
) -> State {
    llb::local(
        local,
        LocalOptions {
            session_id: opts.session_id.clone(),
            exclude_patterns: excludes.to_vec(),
            follow_paths,
            shared_key_hint: Some(format!("context:{name}-")),
            constraints: Constraints::default()
                .with_custom_name(format!("[context {name}] load from client")),
            ..Default::default()
        },
    )
}
