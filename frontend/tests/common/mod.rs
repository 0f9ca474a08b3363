//! A fake registry for conversion tests.
#![allow(dead_code)]
#![allow(
    unreachable_pub,
    reason = "a test binary exports nothing: `pub` is how its modules share"
)]

use bud_frontend::convert::{
    ConvertError, ConvertOptions, Converted, ImageResolver, Platform, ResolvedImage, convert,
};
use bud_frontend::dump;
use bud_proto::pb;
use serde_json::{Value, json};

pub struct FakeRegistry;

pub const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

impl ImageResolver for FakeRegistry {
    fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<ResolvedImage, bud_frontend::convert::ResolveError> {
        let mut config = match reference {
            "docker.io/library/busybox:latest" | "docker.io/library/alpine:3.19" => json!({
                "architecture": platform.architecture, "os": platform.os,
                "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]},
                "history": [{"created_by": "base"}]
            }),
            "docker.io/library/onbuild:latest" => json!({
                "architecture": platform.architecture, "os": platform.os,
                "config": {"Env": ["HOME=/root"], "WorkingDir": "/app", "User": "app", "OnBuild": ["RUN echo triggered"]},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:bb"]}
            }),
            other => return Err(format!("{other}: not found").into()),
        };
        // Real arm64 images name the variant their index entry names.
        if platform.architecture == "arm64" {
            config["variant"] = json!("v8");
        }
        Ok(ResolvedImage {
            digest: DIGEST.to_owned(),
            config,
        })
    }
}

pub fn opts() -> ConvertOptions {
    ConvertOptions {
        build_platform: Platform::new("linux", "amd64", ""),
        ..Default::default()
    }
}

pub fn build(dockerfile: &str) -> Converted {
    build_with(dockerfile, &opts())
}

pub fn build_with(dockerfile: &str, o: &ConvertOptions) -> Converted {
    match convert(dockerfile, o, &FakeRegistry) {
        Ok(c) => c,
        Err(e) => panic!("conversion failed: {e}"),
    }
}

pub fn fail(dockerfile: &str) -> ConvertError {
    match convert(dockerfile, &opts(), &FakeRegistry) {
        Ok(_) => panic!("conversion should fail"),
        Err(e) => e,
    }
}

/// The ops as dump-llb JSON values.
pub fn ops(c: &Converted) -> Vec<Value> {
    dump::to_json_lines(&c.definition)
        .expect("definition decodes")
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid json"))
        .collect()
}

pub fn execs(c: &Converted) -> Vec<Value> {
    ops(c)
        .into_iter()
        .filter(|o| o["Op"]["Op"]["exec"].is_object())
        .map(|o| o["Op"]["Op"]["exec"].clone())
        .collect()
}

pub fn files(c: &Converted) -> Vec<Value> {
    ops(c)
        .into_iter()
        .filter(|o| o["Op"]["Op"]["file"].is_object())
        .collect()
}

pub fn sources(c: &Converted) -> Vec<Value> {
    ops(c)
        .into_iter()
        .filter(|o| o["Op"]["Op"]["source"].is_object())
        .map(|o| o["Op"]["Op"]["source"].clone())
        .collect()
}

pub fn names(c: &Converted) -> Vec<String> {
    ops(c)
        .iter()
        .filter_map(|o| {
            o["OpMetadata"]["description"]["llb.customname"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

pub fn definition(c: &Converted) -> &pb::Definition {
    &c.definition
}
