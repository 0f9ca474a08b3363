//! The instruction layer's error type.

use thiserror::Error;

/// An instruction that is syntactically a node but not a valid command.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("dockerfile parse error on line {line}: {kind}")]
pub struct InstructionError {
    /// 1-based first line of the instruction.
    pub line: usize,
    /// 1-based last line of the instruction.
    pub end_line: usize,
    /// The instruction's logical line.
    pub text: String,
    /// What is wrong.
    pub kind: InstructionErrorKind,
}

/// The reasons an instruction is rejected, worded as BuildKit words them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InstructionErrorKind {
    /// A flag the instruction does not define.
    #[error("unknown flag: {0}")]
    UnknownFlag(String),
    /// A flag given twice that may be given once.
    #[error("duplicate flag specified: {0}")]
    DuplicateFlag(String),
    /// `--flag` without `=value` where a value is needed, or `--bool=`.
    #[error("missing a value on flag: {0}")]
    MissingFlagValue(String),
    /// A boolean flag with a value other than true or false.
    #[error("expecting boolean value for flag {flag}, not: {value}")]
    BadBoolFlag {
        /// The flag, with its dashes.
        flag: String,
        /// The value given.
        value: String,
    },
    /// A keyword that is not an instruction (or FROM where a command is expected).
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    /// A command before the first FROM.
    #[error("no build stage in current context")]
    NoStage,
    /// An instruction without its mandatory argument.
    #[error("{0} requires at least one argument")]
    AtLeastOneArgument(&'static str),
    /// An instruction that takes one argument got another count.
    #[error("{0} requires exactly one argument")]
    ExactlyOneArgument(&'static str),
    /// COPY/ADD without a destination.
    #[error(
        "{0} requires at least two arguments, but only one was provided. Destination could not be determined"
    )]
    NoDestination(&'static str),
    /// COPY/ADD with a heredoc as destination.
    #[error("{0} cannot accept a heredoc as a destination")]
    HeredocDestination(&'static str),
    /// An empty ENV/LABEL/ARG name.
    #[error("{0} names can not be blank")]
    BlankName(&'static str),
    /// FROM with a wrong argument count.
    #[error("FROM requires either one or three arguments")]
    FromArguments,
    /// FROM … AS with an invalid name.
    #[error(
        "invalid name for build stage: {0:?}, name can't start with a number or contain symbols"
    )]
    InvalidStageName(String),
    /// `ONBUILD ONBUILD`.
    #[error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChain,
    /// `ONBUILD FROM` / `ONBUILD MAINTAINER`.
    #[error("{0} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger(String),
    /// SHELL in shell form.
    #[error("SHELL requires the arguments to be in JSON form")]
    ShellNotJson,
    /// `VOLUME ""`.
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    /// `HEALTHCHECK NONE something`.
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArguments,
    /// `HEALTHCHECK CMD` with nothing after it.
    #[error("Missing command after HEALTHCHECK CMD")]
    HealthcheckMissingCommand,
    /// `HEALTHCHECK FOO`.
    #[error("Unknown type {0:?} in HEALTHCHECK (try CMD)")]
    HealthcheckType(String),
    /// A duration Go's `time.ParseDuration` rejects.
    #[error("time: invalid duration {0:?}")]
    InvalidDuration(String),
    /// A health check interval under one millisecond (and not zero).
    #[error("Interval {0:?} cannot be less than 1ms")]
    IntervalTooSmall(&'static str),
    /// `--retries` that is not a 32-bit integer.
    #[error("strconv.ParseInt: parsing {0:?}: invalid syntax")]
    InvalidRetries(String),
    /// Negative `--retries`.
    #[error("--retries cannot be negative ({0})")]
    NegativeRetries(i64),
    /// `RUN --network` with an unknown mode.
    #[error("invalid network mode {0:?}")]
    InvalidNetwork(String),
    /// `RUN --security` with an unknown mode.
    #[error("security {0:?} is not valid")]
    InvalidSecurity(String),
    /// A `RUN --mount` value that cannot be used.
    #[error("{0}")]
    Mount(String),
    /// A `RUN --device` value that cannot be read.
    #[error("{0}")]
    Device(String),
}
