//! Dockerfile text to BuildKit LLB (`pb.Definition`) plus the image config.
//!
//! The pipeline mirrors BuildKit's frontend: `parser` (text → node tree) → `instructions`
//! (nodes → typed commands) → `shell` (word expansion) → `convert` (commands → LLB).
//! `dockerignore` stands apart: it is shared with the solver's context walker.

pub mod convert;
pub mod dockerignore;
pub mod dump;
pub mod gitref;
pub mod gobool;
pub mod gopath;
pub mod image;
pub mod instructions;
pub mod lint;
pub mod llb;
pub mod outline;
pub mod parser;
pub mod reference;
pub mod shell;
pub mod syntax;
pub mod targets;
