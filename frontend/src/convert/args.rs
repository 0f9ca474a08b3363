//! Build arguments: the predefined platform ARGs, global (pre-FROM) ARGs and proxies.

use std::collections::{BTreeMap, BTreeSet};

use bud_proto::pb;

use super::ConvertOptions;
use super::env::EnvList;
use super::error::{ConvertError, ConvertErrorKind};
use super::platform::Platform;
use crate::instructions::MetaArg;
use crate::shell::Lexer;

/// The proxy variables: given as build args they reach every RUN without being part
/// of its cache key, and without an ARG.
const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Build and target platforms of a conversion.
#[derive(Debug, Clone)]
pub(super) struct Platforms {
    pub build: Platform,
    pub target: Platform,
}

impl Platforms {
    pub(super) fn new(opts: &ConvertOptions) -> Self {
        Platforms {
            build: opts.build_platform.clone(),
            target: opts
                .target_platform
                .clone()
                .unwrap_or_else(|| opts.build_platform.clone()),
        }
    }
}

/// Build args docker never reports as unused.
pub(super) fn is_builtin(name: &str) -> bool {
    PROXY_ARGS.contains(&name)
        || name.starts_with("BUILDKIT_")
        || name == "SOURCE_DATE_EPOCH"
        || DEFAULT_ARG_NAMES.contains(&name)
}

const DEFAULT_ARG_NAMES: [&str; 11] = [
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDOSVERSION",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETOSVERSION",
    "TARGETARCH",
    "TARGETVARIANT",
    "TARGETSTAGE",
];

/// The predefined ARGs, overridable by build args.
pub(super) fn default_args(
    platforms: &Platforms,
    build_args: &BTreeMap<String, String>,
    target: Option<&str>,
) -> EnvList {
    let (b, t) = (&platforms.build, &platforms.target);
    let values = [
        b.to_string(),
        b.os.clone(),
        String::new(),
        b.architecture.clone(),
        b.variant.clone(),
        t.to_string(),
        t.os.clone(),
        String::new(),
        t.architecture.clone(),
        t.variant.clone(),
        target.unwrap_or("default").to_owned(),
    ];
    let mut env = EnvList::default();
    for (name, value) in DEFAULT_ARG_NAMES.iter().zip(values) {
        let value = build_args.get(*name).cloned().unwrap_or(value);
        env.set(name, &value);
    }
    env
}

/// Global ARGs after evaluation.
pub(super) struct MetaArgs {
    /// Values usable in FROM lines and as defaults of re-declared ARGs.
    pub env: EnvList,
    /// Names the global ARGs declare.
    pub declared: BTreeSet<String>,
}

/// Evaluates the ARGs before the first FROM, in order, each default seeing the ones before.
pub(super) fn meta_args(
    mut env: EnvList,
    lexer: &Lexer,
    args: &[MetaArg],
    build_args: &BTreeMap<String, String>,
) -> Result<MetaArgs, ConvertError> {
    let mut declared = BTreeSet::new();
    for meta in args {
        for arg in &meta.args {
            declared.insert(arg.name.clone());
            let value = match (build_args.get(&arg.name), &arg.default) {
                (Some(given), _) => Some(given.clone()),
                (None, Some(default)) => Some(
                    lexer
                        .process_word(default, &env)
                        .map_err(|e| {
                            ConvertErrorKind::Expansion(e.to_string()).at(meta.location.start_line)
                        })?
                        .result,
                ),
                (None, None) => None,
            };
            if let Some(value) = value {
                env.set(&arg.name, &value);
            }
        }
    }
    Ok(MetaArgs { env, declared })
}

/// The proxy settings among the build args, matched case-insensitively as BuildKit does.
pub(super) fn proxy_env(build_args: &BTreeMap<String, String>) -> Option<pb::ProxyEnv> {
    let mut proxy = pb::ProxyEnv::default();
    let mut any = false;
    // BTreeMap order: upper-case names come first, so lower-case ones win, as in BuildKit.
    for (key, value) in build_args {
        let slot = match key.to_ascii_lowercase().as_str() {
            "http_proxy" => &mut proxy.http_proxy,
            "https_proxy" => &mut proxy.https_proxy,
            "ftp_proxy" => &mut proxy.ftp_proxy,
            "no_proxy" => &mut proxy.no_proxy,
            "all_proxy" => &mut proxy.all_proxy,
            _ => continue,
        };
        *slot = value.clone();
        any = true;
    }
    any.then_some(proxy)
}
