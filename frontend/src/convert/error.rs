use thiserror::Error;

use crate::instructions::InstructionError;
use crate::llb::LlbError;
use crate::parser::ParseError;

/// Why a Dockerfile cannot be converted.
#[derive(Debug, Error)]
pub enum ConvertError {
    /// The text is not a Dockerfile (a bad directive, an unterminated heredoc…).
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// An instruction's arguments or flags are malformed; the parser's error says which line.
    #[error(transparent)]
    Instruction(#[from] InstructionError),
    /// No `FROM` at all: BuildKit's message, which names no line.
    #[error("dockerfile contains no stages to build")]
    NoStages,
    /// `--target` names no stage (the name as given).
    #[error("target stage {0:?} could not be found")]
    TargetNotFound(String),
    /// The git or URL main context could not be made into a source op.
    #[error("the build context's source")]
    MainContext(#[source] LlbError),
    /// The `SOURCE_DATE_EPOCH` build arg is not a whole number of seconds (the value given).
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
    /// A word's variable expansion failed (`${VAR:?message}`, bad syntax): the lexer's
    /// message.
    #[error("{0}")]
    Expansion(String),
    /// `FROM $UNSET`: the base name expanded to nothing (the text before expansion).
    #[error("base name ({0}) should not be blank")]
    BlankBaseName(String),
    /// `FROM --platform=` names no platform bud can parse.
    #[error("failed to parse platform {text}: {reason}")]
    Platform {
        /// The flag's value before expansion, as BuildKit's message shows it.
        text: String,
        /// What `Platform::parse` found wrong.
        reason: String,
    },
    /// The resolver found no image for a base or named context.
    #[error("{reference}")]
    ResolveImage {
        /// The image as the Dockerfile or `--build-context` names it.
        reference: String,
        /// The resolver's error.
        #[source]
        source: super::ResolveError,
    },
    /// A base image or named-context image that is neither a stage nor a valid image
    /// reference (the name as written).
    #[error("failed to parse stage name {0:?}: invalid reference format")]
    InvalidReference(String),
    /// `COPY --from=N` with an index outside the Dockerfile's stages.
    #[error("invalid stage index {0}")]
    StageIndex(i64),
    /// A stage depends on itself through bases, `--from` or mounts (the stage's name).
    #[error("circular dependency detected on stage: {0}")]
    CircularDependency(String),
    /// `COPY --from=$VAR`: BuildKit resolves `--from` before any ARG is known.
    #[error(
        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
    )]
    VariableInFrom,
    /// `COPY --from` names a stage defined after the current one.
    #[error(
        "cannot copy from stage {from:?}, it needs to be defined before current stage {stage:?}"
    )]
    CopyFromLaterStage {
        /// The `--from` value.
        from: String,
        /// The stage holding the COPY.
        stage: String,
    },
    /// `RUN --mount=from=` names a stage defined after the current one.
    #[error(
        "cannot mount from stage {from:?} to {target:?}, stage needs to be defined before current command"
    )]
    MountFromLaterStage {
        /// The mount's `from` value.
        from: String,
        /// The mount's target path.
        target: String,
    },
    /// A `RUN --mount` value that expands wrongly or misses what its type needs (a secret
    /// with neither source nor target, an ssh mount with a source): BuildKit's message.
    #[error("{0}")]
    Mount(String),
    /// A `RUN --mount` whose target is the root of the container.
    #[error("invalid mount target {0:?}")]
    MountTarget(String),
    /// `--chmod` that is neither octal up to 07777 nor chmod's symbolic syntax (`u+x,g-w`).
    #[error("invalid chmod parameter: '{0}'. it should be octal string and between 0 and 07777")]
    Chmod(String),
    /// A COPY, ADD or VOLUME that BuildKit refuses with a fixed message (a URL or git
    /// source for COPY, `--checksum` with several sources, an empty VOLUME…).
    #[error("{0}")]
    Copy(&'static str),
    /// `ADD --checksum=` that is not `algorithm:hex`.
    #[error("invalid checksum digest format {0:?}")]
    Checksum(String),
    /// An EXPOSE entry that is not `[ip:][host:]port[-end][/proto]` (the entry as given).
    #[error("invalid port: {0:?}")]
    Port(String),
    /// A STOPSIGNAL that is neither a number nor a signal name (`SIGTERM`, `RTMIN+3`).
    #[error("invalid signal: {0}")]
    Signal(String),
    /// A base image's ONBUILD trigger that does not parse as one instruction (the parser's
    /// message, since the trigger's text is not the Dockerfile's).
    #[error("onbuild trigger: {0}")]
    Onbuild(String),
    /// The LLB builder refused an op the instruction made.
    #[error(transparent)]
    Llb(#[from] LlbError),
    /// A flag only BuildKit's labs frontend has (`RUN --security`, `COPY --parents`) without
    /// a labs `# syntax=`: refused, as BuildKit's stable frontend refuses it.
    #[error(
        "unknown flag: --{0} (a flag of BuildKit's labs Dockerfile frontend: add \
         `# syntax=docker/dockerfile:1-labs` at the top)"
    )]
    LabsFlag(&'static str),
    /// `RUN --device` without a labs `# syntax=`, with BuildKit's own message for it.
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
