use thiserror::Error;

use crate::instructions::InstructionError;
use crate::llb::LlbError;
use crate::parser::ParseError;

/// Why a Dockerfile cannot be converted.
#[derive(Debug, Error)]
pub enum ConvertError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Instruction(#[from] InstructionError),
    #[error("dockerfile contains no stages to build")]
    NoStages,
    #[error("target stage {0:?} could not be found")]
    TargetNotFound(String),
    #[error("the build context's source")]
    MainContext(#[source] LlbError),
    #[error("invalid SOURCE_DATE_EPOCH: {0}")]
    SourceDateEpoch(String),
    /// `# syntax=` or `BUILDKIT_SYNTAX` names a frontend image only BuildKit can run.
    #[error("{0}")]
    ForeignFrontend(crate::syntax::ForeignFrontend),
    /// A problem with the instruction on a line.
    #[error(transparent)]
    At(LineError),
}

/// A problem with the instruction on `line`: `line N: ` before the kind's own message.
#[derive(Debug)]
pub struct LineError {
    /// The instruction's first line, 1-based.
    pub line: usize,
    /// What is wrong with it.
    pub kind: ConvertErrorKind,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)
    }
}

/// The kind's message is part of this one, so the chain goes on with the kind's cause.
impl std::error::Error for LineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.kind.source()
    }
}

/// What is wrong with an instruction.
#[derive(Debug, Error)]
pub enum ConvertErrorKind {
    #[error("{0}")]
    Expansion(String),
    #[error("base name ({0}) should not be blank")]
    BlankBaseName(String),
    #[error("failed to parse platform {text}: {reason}")]
    Platform { text: String, reason: String },
    /// The resolver found no image for a base or named context.
    #[error("{reference}")]
    ResolveImage {
        /// The image as the Dockerfile or `--build-context` names it.
        reference: String,
        /// The resolver's error.
        #[source]
        source: super::ResolveError,
    },
    #[error("failed to parse stage name {0:?}: invalid reference format")]
    InvalidReference(String),
    #[error("invalid stage index {0}")]
    StageIndex(i64),
    #[error("circular dependency detected on stage: {0}")]
    CircularDependency(String),
    #[error(
        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
    )]
    VariableInFrom,
    #[error(
        "cannot copy from stage {from:?}, it needs to be defined before current stage {stage:?}"
    )]
    CopyFromLaterStage { from: String, stage: String },
    #[error(
        "cannot mount from stage {from:?} to {target:?}, stage needs to be defined before current command"
    )]
    MountFromLaterStage { from: String, target: String },
    #[error("{0}")]
    Mount(String),
    #[error("invalid mount target {0:?}")]
    MountTarget(String),
    #[error("invalid chmod parameter: '{0}'. it should be octal string and between 0 and 07777")]
    Chmod(String),
    #[error("{0}")]
    Copy(&'static str),
    #[error("invalid checksum digest format {0:?}")]
    Checksum(String),
    #[error("invalid port: {0:?}")]
    Port(String),
    #[error("invalid signal: {0}")]
    Signal(String),
    #[error("onbuild trigger: {0}")]
    Onbuild(String),
    #[error(transparent)]
    Llb(#[from] LlbError),
    #[error(
        "unknown flag: --{0} (a flag of BuildKit's labs Dockerfile frontend: add \
         `# syntax=docker/dockerfile:1-labs` at the top)"
    )]
    LabsFlag(&'static str),
    #[error(
        "device feature is only supported in Dockerfile frontend 1.14.0-labs or later \
         (add `# syntax=docker/dockerfile:1-labs` at the top)"
    )]
    DeviceNeedsLabs,
}

impl ConvertErrorKind {
    pub(crate) fn at(self, line: usize) -> ConvertError {
        ConvertError::At(LineError { line, kind: self })
    }
}
