//! Protobuf types wire-compatible with BuildKit.
