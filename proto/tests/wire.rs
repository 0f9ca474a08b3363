//! The generated types encode exactly as BuildKit's Go types do: field numbers,
//! field order, map key order and int64 sign handling are checked against bytes
//! written out by hand from the protobuf encoding rules.

use std::collections::BTreeMap;

use bud_proto::pb;
use prost::Message;
use sha2::{Digest, Sha256};

const BUSYBOX: &str = "docker-image://docker.io/library/busybox:latest";

fn source_op(identifier: &str, attrs: BTreeMap<String, String>) -> pb::Op {
    pb::Op {
        op: Some(pb::op::Op::Source(pb::SourceOp {
            identifier: identifier.to_owned(),
            attrs,
        })),
        platform: Some(pb::Platform {
            architecture: "amd64".to_owned(),
            os: "linux".to_owned(),
            ..Default::default()
        }),
        constraints: Some(pb::WorkerConstraints::default()),
        ..Default::default()
    }
}

/// Tag byte of a length-delimited field (wire type 2).
const fn ld(field: u8) -> u8 {
    (field << 3) | 2
}

#[test]
fn image_source_op_matches_hand_encoding() {
    let op = source_op(BUSYBOX, BTreeMap::new());

    // Op, fields in number order as Go's marshaler writes them:
    //   3  source      (oneof op)  -> SourceOp { 1 identifier }
    //   10 platform                -> Platform { 1 Architecture, 2 OS }
    //   11 constraints             -> empty but present: tag and a zero length
    let mut want = Vec::new();
    want.extend([ld(3), 49]); // SourceOp: 2 + 47 bytes
    want.extend([ld(1), 47]); // identifier, 47 bytes
    want.extend(BUSYBOX.as_bytes());
    want.extend([ld(10), 14]); // Platform: 2 + 5 + 2 + 5 bytes
    want.extend([ld(1), 5]);
    want.extend(b"amd64");
    want.extend([ld(2), 5]);
    want.extend(b"linux");
    want.extend([ld(11), 0]);
    assert_eq!(want[..3], [0x1a, 0x31, 0x0a]);
    assert_eq!(want.len(), 69);

    let got = op.encode_to_vec();
    assert_eq!(got, want);

    // sha256 of the 69 bytes above: the op's LLB digest.
    assert_eq!(
        hex::encode(Sha256::digest(&got)),
        "08a03f3ffe5fba421a6403c31e153425ced631d108868f30e04985f99d69326e"
    );

    assert_eq!(pb::Op::decode(got.as_slice()).unwrap(), op);
}

#[test]
fn map_entries_are_written_in_key_order() {
    let pairs = [
        ("local.unique", "u1"),
        ("local.sharedkeyhint", "context"),
        ("local.session", "s1"),
    ];
    let forward: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut backward = BTreeMap::new();
    for (k, v) in pairs.iter().rev() {
        backward.insert(k.to_string(), v.to_string());
    }
    let a = source_op("local://context", forward).encode_to_vec();
    let b = source_op("local://context", backward).encode_to_vec();
    assert_eq!(a, b);

    // The entries of SourceOp.attrs (field 2), each {1 key, 2 value}, sorted by key.
    let entry = |k: &str, v: &str| {
        let mut e = vec![
            ld(2),
            (2 + k.len() + 2 + v.len()) as u8,
            ld(1),
            k.len() as u8,
        ];
        e.extend(k.as_bytes());
        e.extend([ld(2), v.len() as u8]);
        e.extend(v.as_bytes());
        e
    };
    let mut attrs = Vec::new();
    attrs.extend(entry("local.session", "s1"));
    attrs.extend(entry("local.sharedkeyhint", "context"));
    attrs.extend(entry("local.unique", "u1"));
    let source = pb::SourceOp {
        identifier: "local://context".into(),
        attrs: [
            ("local.unique", "u1"),
            ("local.session", "s1"),
            ("local.sharedkeyhint", "context"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    };
    let mut want = vec![ld(1), 15];
    want.extend(b"local://context");
    want.extend(attrs);
    assert_eq!(source.encode_to_vec(), want);
}

#[test]
fn minus_one_is_a_ten_byte_varint() {
    // Go encodes int64 -1 (scratch input, no output) as the two's complement
    // varint: nine 0xff bytes and 0x01. Zero fields are omitted.
    let action = pb::FileAction {
        input: -1,
        secondary_input: -1,
        output: 0,
        action: Some(pb::file_action::Action::Rm(pb::FileActionRm {
            path: "/x".into(),
            allow_not_found: true,
            allow_wildcard: false,
        })),
    };
    let minus_one = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    let mut want = vec![1 << 3];
    want.extend(minus_one);
    want.push(2 << 3);
    want.extend(minus_one);
    // rm = field 7: { 1 path "/x", 2 allowNotFound true }
    want.extend([ld(7), 6, ld(1), 2, b'/', b'x', 2 << 3, 1]);
    assert_eq!(action.encode_to_vec(), want);
}

#[test]
fn definition_and_input_field_numbers() {
    let def = pb::Definition {
        def: vec![vec![0xaa], vec![0xbb, 0xcc]],
        metadata: BTreeMap::from([(
            "sha256:x".to_owned(),
            pb::OpMetadata {
                ignore_cache: true,
                ..Default::default()
            },
        )]),
        source: None,
    };
    // 1 def (repeated bytes, one field per element), 2 metadata entry
    // {1 key, 2 OpMetadata{1 ignore_cache}}.
    let mut want = vec![ld(1), 1, 0xaa, ld(1), 2, 0xbb, 0xcc];
    want.extend([ld(2), 14, ld(1), 8]);
    want.extend(b"sha256:x");
    want.extend([ld(2), 2, 1 << 3, 1]);
    assert_eq!(def.encode_to_vec(), want);

    let terminal = pb::Op {
        inputs: vec![pb::Input {
            digest: "sha256:ab".into(),
            index: 2,
        }],
        ..Default::default()
    };
    let mut want = vec![ld(1), 13, ld(1), 9];
    want.extend(b"sha256:ab");
    want.extend([2 << 3, 2]);
    assert_eq!(terminal.encode_to_vec(), want);
}

#[test]
fn session_packet_field_numbers() {
    let packet = bud_proto::fsutil::Packet {
        r#type: bud_proto::fsutil::packet::PacketType::PacketData as i32,
        stat: None,
        id: 3,
        data: vec![7],
    };
    assert_eq!(packet.encode_to_vec(), [1 << 3, 2, 3 << 3, 3, ld(4), 1, 7]);
}
