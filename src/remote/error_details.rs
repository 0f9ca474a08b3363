//! BuildKit's error details as JSON: since 0.13 BuildKit registers its `errdefs` messages
//! with containerd's typeurl, which marshals them with Go's `encoding/json` (protobuf field
//! names, `bytes` as base64, zero values left out).

use base64::Engine;
use bud_proto::{errdefs, pb};
use serde_json::Value;

/// An `errdefs.Source` detail; `None` when it is not one.
pub(super) fn source_from_json(bytes: &[u8]) -> Option<errdefs::Source> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let info = value.get("info")?;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let data = match info.get("data").and_then(Value::as_str) {
        Some(b64) => base64::engine::general_purpose::STANDARD.decode(b64).ok()?,
        None => Vec::new(),
    };
    let position = |v: Option<&Value>| {
        v.map(|p| pb::Position {
            line: int(p.get("line")),
            character: int(p.get("character")),
        })
    };
    let ranges = value
        .get("ranges")
        .and_then(Value::as_array)
        .map(|ranges| {
            ranges
                .iter()
                .map(|r| pb::Range {
                    start: position(r.get("start")),
                    end: position(r.get("end")),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(errdefs::Source {
        info: Some(pb::SourceInfo {
            filename: text(info, "filename"),
            data,
            // The loading definition is not needed to show the lines.
            definition: None,
            language: text(info, "language"),
        }),
        ranges,
    })
}

/// An `errdefs.Vertex` detail's digest.
pub(super) fn vertex_from_json(bytes: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    value.get("digest")?.as_str().map(str::to_owned)
}

fn int(v: Option<&Value>) -> i32 {
    v.and_then(Value::as_i64)
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_as_buildkit_marshals_it() {
        let json = br#"{"info":{"filename":"Dockerfile","data":"RlJPTSBhClJVTiBiCg==","language":"Dockerfile"},"ranges":[{"start":{"line":2},"end":{"line":2}}]}"#;
        let source = source_from_json(json).unwrap();
        let info = source.info.unwrap();
        assert_eq!(info.filename, "Dockerfile");
        assert_eq!(info.data, b"FROM a\nRUN b\n");
        assert_eq!(source.ranges.len(), 1);
        assert_eq!(source.ranges[0].start.unwrap().line, 2);
        assert_eq!(source.ranges[0].end.unwrap().character, 0);
        assert!(source_from_json(b"{\"digest\":\"x\"}").is_none());
        assert_eq!(
            vertex_from_json(br#"{"digest":"sha256:ab"}"#).as_deref(),
            Some("sha256:ab")
        );
    }
}
