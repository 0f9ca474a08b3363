use super::*;
use crate::parser;

fn dockerfile(text: &str) -> Result<Dockerfile, InstructionError> {
    parse(&parser::parse(text).expect("parses"))
}

/// The commands of a one-stage Dockerfile `FROM scratch\n{body}`.
fn commands(body: &str) -> Vec<CommandKind> {
    let df = dockerfile(&format!("FROM scratch\n{body}")).unwrap();
    df.stages[0]
        .commands
        .iter()
        .map(|c| c.kind.clone())
        .collect()
}

fn command(body: &str) -> CommandKind {
    let mut c = commands(body);
    assert_eq!(c.len(), 1);
    c.remove(0)
}

fn error(body: &str) -> InstructionErrorKind {
    dockerfile(&format!("FROM scratch\n{body}"))
        .unwrap_err()
        .kind
}

#[test]
fn stages_and_meta_args() {
    let df = dockerfile(
        "ARG BASE=alpine V\nFROM --platform=$BUILDPLATFORM ${BASE} AS Build\nRUN a\nARG X\nFROM build\n",
    )
    .unwrap();
    assert_eq!(df.meta_args.len(), 1);
    assert_eq!(
        df.meta_args[0].args,
        [
            ArgDef {
                name: "BASE".into(),
                default: Some("alpine".into())
            },
            ArgDef {
                name: "V".into(),
                default: None
            }
        ]
    );
    let s = &df.stages[0];
    assert_eq!(s.name.as_deref(), Some("build"));
    assert_eq!(s.base, "${BASE}");
    assert_eq!(s.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(s.commands.len(), 2);
    assert_eq!(s.location.start_line, 2);
    assert_eq!(df.stages[1].base, "build");
    assert_eq!(df.stages[1].name, None);
}

#[test]
fn from_errors() {
    let e = |t: &str| dockerfile(t).unwrap_err().kind;
    assert_eq!(e("FROM a b"), InstructionErrorKind::FromArguments);
    assert_eq!(e("FROM a AS"), InstructionErrorKind::FromArguments);
    assert_eq!(
        e("FROM a AS 1x"),
        InstructionErrorKind::InvalidStageName("1x".into())
    );
    assert_eq!(
        e("FROM --foo=1 a"),
        InstructionErrorKind::UnknownFlag("--foo".into())
    );
    let err = dockerfile("FROM a\n\nFROM --foo=1 a").unwrap_err();
    assert_eq!(err.line, 3);
    assert!(
        err.to_string().contains("line 3: unknown flag: --foo"),
        "{err}"
    );
}

#[test]
fn command_before_from() {
    let err = dockerfile("ARG a\nRUN x\nFROM y").unwrap_err();
    assert_eq!((err.kind, err.line), (InstructionErrorKind::NoStage, 2));
}

#[test]
fn command_keeps_location_and_description() {
    let df = dockerfile("FROM a\nRUN echo \\\n  hi\n").unwrap();
    let c = &df.stages[0].commands[0];
    assert_eq!((c.location.start_line, c.location.end_line), (2, 3));
    assert_eq!(c.description(), "RUN echo   hi");
}

#[test]
fn run_forms() {
    let CommandKind::Run(r) = command("RUN echo $HOME") else {
        panic!()
    };
    assert_eq!(r.cmd, ShellOrExec::Shell("echo $HOME".into()));
    assert_eq!(
        (r.network, r.security),
        (NetworkMode::Default, Security::Sandbox)
    );
    let CommandKind::Run(r) = command(r#"RUN ["echo", "a"]"#) else {
        panic!()
    };
    assert_eq!(r.cmd, ShellOrExec::Exec(vec!["echo".into(), "a".into()]));
}

#[test]
fn run_flags() {
    let CommandKind::Run(r) = command(
        "RUN --mount=type=cache,target=/c --mount=type=secret,id=s --network=none --security=insecure --device=/dev/fuse make",
    ) else {
        panic!()
    };
    assert_eq!(r.mounts.len(), 2);
    assert_eq!(r.mounts[0].mount_type, MountType::Cache);
    assert_eq!(r.mounts[1].id.as_deref(), Some("s"));
    assert_eq!(r.network, NetworkMode::None);
    assert_eq!(r.security, Security::Insecure);
    assert_eq!(
        r.devices,
        [Device {
            name: "/dev/fuse".into(),
            required: false
        }]
    );
    let CommandKind::Run(r) = command("RUN --network=host x") else {
        panic!()
    };
    assert_eq!(r.network, NetworkMode::Host);
    assert_eq!(
        error("RUN --network=bridge x"),
        InstructionErrorKind::InvalidNetwork("bridge".into())
    );
    assert_eq!(
        error("RUN --security=x x"),
        InstructionErrorKind::InvalidSecurity("x".into())
    );
    assert_eq!(
        error("RUN --mount x"),
        InstructionErrorKind::MissingFlagValue("--mount".into())
    );
    assert_eq!(
        error("RUN --network=host --network=none x"),
        InstructionErrorKind::DuplicateFlag("--network".into())
    );
    assert!(matches!(
        error("RUN --mount=type=nfs x"),
        InstructionErrorKind::Mount(_)
    ));
    assert_eq!(
        error("RUN --link x"),
        InstructionErrorKind::UnknownFlag("--link".into())
    );
}

#[test]
fn run_heredocs() {
    let CommandKind::Run(r) = command("RUN cat <<A && python3 <<'B'\na\nA\nb\nB\n") else {
        panic!()
    };
    assert_eq!(r.cmd, ShellOrExec::Shell("cat <<A && python3 <<'B'".into()));
    let names: Vec<_> = r
        .heredocs
        .iter()
        .map(|h| (h.name.as_str(), h.expand))
        .collect();
    assert_eq!(names, [("A", true), ("B", false)]);
}

#[test]
fn cmd_entrypoint_shell() {
    assert_eq!(
        command("CMD a b"),
        CommandKind::Cmd(ShellOrExec::Shell("a b".into()))
    );
    assert_eq!(
        command("CMD []"),
        CommandKind::Cmd(ShellOrExec::Exec(vec![]))
    );
    assert_eq!(
        command(r#"ENTRYPOINT ["/e"]"#),
        CommandKind::Entrypoint(ShellOrExec::Exec(vec!["/e".into()]))
    );
    assert_eq!(
        command(r#"SHELL ["pwsh", "-c"]"#),
        CommandKind::Shell(vec!["pwsh".into(), "-c".into()])
    );
    assert_eq!(error("SHELL pwsh -c"), InstructionErrorKind::ShellNotJson);
    assert_eq!(
        error("SHELL []"),
        InstructionErrorKind::AtLeastOneArgument("SHELL")
    );
    assert_eq!(
        error("CMD --doit a"),
        InstructionErrorKind::UnknownFlag("--doit".into())
    );
}

#[test]
fn env_and_label() {
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: v.into(),
    };
    assert_eq!(command("ENV a b c"), CommandKind::Env(vec![kv("a", "b c")]));
    assert_eq!(
        command("ENV a=1 b=\"x y\""),
        CommandKind::Env(vec![kv("a", "1"), kv("b", "\"x y\"")])
    );
    assert_eq!(command("LABEL a=b"), CommandKind::Label(vec![kv("a", "b")]));
    assert_eq!(
        error("ENV"),
        InstructionErrorKind::AtLeastOneArgument("ENV")
    );
    assert_eq!(error("LABEL =x"), InstructionErrorKind::BlankName("LABEL"));
}

#[test]
fn single_value_instructions() {
    assert_eq!(command("USER app:app"), CommandKind::User("app:app".into()));
    assert_eq!(command("WORKDIR /a b"), CommandKind::Workdir("/a b".into()));
    assert_eq!(
        command("MAINTAINER me"),
        CommandKind::Maintainer("me".into())
    );
    assert_eq!(
        command("STOPSIGNAL SIGINT"),
        CommandKind::StopSignal("SIGINT".into())
    );
    assert_eq!(
        error("USER"),
        InstructionErrorKind::ExactlyOneArgument("USER")
    );
    assert_eq!(
        error("WORKDIR"),
        InstructionErrorKind::ExactlyOneArgument("WORKDIR")
    );
    assert_eq!(
        error("STOPSIGNAL"),
        InstructionErrorKind::ExactlyOneArgument("STOPSIGNAL")
    );
    assert_eq!(
        error("USER --x=1 a"),
        InstructionErrorKind::UnknownFlag("--x".into())
    );
}

#[test]
fn expose_and_volume() {
    assert_eq!(
        command("EXPOSE 8080 443/tcp 80"),
        CommandKind::Expose(vec!["443/tcp".into(), "80".into(), "8080".into()])
    );
    assert_eq!(
        error("EXPOSE"),
        InstructionErrorKind::AtLeastOneArgument("EXPOSE")
    );
    assert_eq!(
        command("VOLUME /a /b"),
        CommandKind::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        command(r#"VOLUME [" /a "]"#),
        CommandKind::Volume(vec!["/a".into()])
    );
    assert_eq!(error(r#"VOLUME [""]"#), InstructionErrorKind::EmptyVolume);
    assert_eq!(
        error("VOLUME"),
        InstructionErrorKind::AtLeastOneArgument("VOLUME")
    );
}

#[test]
fn arg_in_stage() {
    assert_eq!(
        command("ARG a=\"1 2\" b"),
        CommandKind::Arg(vec![
            ArgDef {
                name: "a".into(),
                default: Some("\"1 2\"".into())
            },
            ArgDef {
                name: "b".into(),
                default: None
            }
        ])
    );
    assert_eq!(error("ARG =1"), InstructionErrorKind::BlankName("ARG"));
    assert_eq!(
        error("ARG"),
        InstructionErrorKind::AtLeastOneArgument("ARG")
    );
}

#[test]
fn copy_flags() {
    let CommandKind::Copy(c) = command(
        "COPY --from=build --chown=1:1 --chmod=644 --link --parents --exclude=*.md --exclude=x a b /dst/",
    ) else {
        panic!()
    };
    assert_eq!(c.sources, ["a", "b"]);
    assert_eq!(c.dest, "/dst/");
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.chown.as_deref(), Some("1:1"));
    assert_eq!(c.chmod.as_deref(), Some("644"));
    assert!(c.link && c.parents);
    assert_eq!(c.excludes, ["*.md", "x"]);
    let CommandKind::Copy(c) = command("COPY --link=false a b") else {
        panic!()
    };
    assert!(!c.link && c.from.is_none());
    assert_eq!(error("COPY a"), InstructionErrorKind::NoDestination("COPY"));
    assert_eq!(
        error("COPY --checksum=x a b"),
        InstructionErrorKind::UnknownFlag("--checksum".into())
    );
    assert_eq!(
        error("COPY --parents=maybe a b"),
        InstructionErrorKind::BadBoolFlag {
            flag: "--parents".into(),
            value: "maybe".into()
        }
    );
}

#[test]
fn copy_heredoc_sources() {
    let CommandKind::Copy(c) = command("COPY <<-A b <<\"C\" /dst/\n\tx\n\tA\ny\nC\n") else {
        panic!()
    };
    assert_eq!(c.sources, ["b"]);
    assert_eq!(c.heredocs.len(), 2);
    assert_eq!(
        (c.heredocs[0].name.as_str(), c.heredocs[0].body().as_str()),
        ("A", "x\n")
    );
    assert!(c.heredocs[0].expand);
    assert_eq!(
        (c.heredocs[1].name.as_str(), c.heredocs[1].body().as_str()),
        ("C", "y\n")
    );
    assert!(!c.heredocs[1].expand);
    assert_eq!(
        error("COPY a <<EOF\nx\nEOF\n"),
        InstructionErrorKind::HeredocDestination("COPY")
    );
}

#[test]
fn add_flags() {
    let CommandKind::Add(a) = command(
        "ADD --checksum=sha256:abc --keep-git-dir --unpack=false --chown=a --exclude=y https://x/y.tar /d",
    ) else {
        panic!()
    };
    assert_eq!(a.sources, ["https://x/y.tar"]);
    assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
    assert_eq!(a.keep_git_dir, Some(true));
    assert_eq!(a.unpack, Some(false));
    assert_eq!(a.chown.as_deref(), Some("a"));
    assert_eq!(a.excludes, ["y"]);
    let CommandKind::Add(a) = command("ADD a b") else {
        panic!()
    };
    assert_eq!((a.keep_git_dir, a.unpack), (None, None));
    assert_eq!(
        error("ADD --from=x a b"),
        InstructionErrorKind::UnknownFlag("--from".into())
    );
    assert_eq!(error("ADD a"), InstructionErrorKind::NoDestination("ADD"));
}

#[test]
fn onbuild() {
    assert_eq!(
        command("ONBUILD RUN a b"),
        CommandKind::Onbuild("RUN a b".into())
    );
    assert_eq!(
        command("onbuild  copy <<EOF /x\nhi\nEOF\n"),
        CommandKind::Onbuild("copy <<EOF /x\nhi\nEOF".into())
    );
    assert_eq!(
        error("ONBUILD ONBUILD RUN a"),
        InstructionErrorKind::OnbuildChain
    );
    assert_eq!(
        error("ONBUILD FROM a"),
        InstructionErrorKind::OnbuildTrigger("FROM".into())
    );
    assert_eq!(
        error("ONBUILD MAINTAINER a"),
        InstructionErrorKind::OnbuildTrigger("MAINTAINER".into())
    );
    assert_eq!(
        error("ONBUILD"),
        InstructionErrorKind::AtLeastOneArgument("ONBUILD")
    );
}

#[test]
fn healthcheck() {
    assert_eq!(
        command("HEALTHCHECK NONE"),
        CommandKind::Healthcheck(Healthcheck::Disable)
    );
    let CommandKind::Healthcheck(Healthcheck::Check(h)) = command(
        "HEALTHCHECK --interval=5s --timeout=1m30s --start-period=1.5s --start-interval=2ms --retries=3 CMD curl -f x",
    ) else {
        panic!()
    };
    assert_eq!(h.cmd, ShellOrExec::Shell("curl -f x".into()));
    assert_eq!(h.interval, Duration::from_secs(5));
    assert_eq!(h.timeout, Duration::from_secs(90));
    assert_eq!(h.start_period, Duration::from_millis(1500));
    assert_eq!(h.start_interval, Duration::from_millis(2));
    assert_eq!(h.retries, 3);
    let CommandKind::Healthcheck(Healthcheck::Check(h)) =
        command(r#"HEALTHCHECK --interval=0s CMD ["a", "b"]"#)
    else {
        panic!()
    };
    assert_eq!(h.cmd, ShellOrExec::Exec(vec!["a".into(), "b".into()]));
    assert_eq!((h.interval, h.retries), (Duration::ZERO, 0));
}

#[test]
fn healthcheck_errors() {
    use InstructionErrorKind::*;
    assert_eq!(error("HEALTHCHECK"), AtLeastOneArgument("HEALTHCHECK"));
    assert_eq!(error("HEALTHCHECK NONE x"), HealthcheckNoneArguments);
    assert_eq!(error("HEALTHCHECK CMD"), HealthcheckMissingCommand);
    assert_eq!(error("HEALTHCHECK CMD []"), HealthcheckMissingCommand);
    assert_eq!(
        error("HEALTHCHECK CONNECT TCP 7000"),
        HealthcheckType("CONNECT".into())
    );
    assert_eq!(
        error("HEALTHCHECK --interval=5 CMD a"),
        InvalidDuration("5".into())
    );
    assert_eq!(
        error("HEALTHCHECK --interval=-1s CMD a"),
        IntervalTooSmall("interval")
    );
    assert_eq!(
        error("HEALTHCHECK --timeout=500us CMD a"),
        IntervalTooSmall("timeout")
    );
    assert_eq!(error("HEALTHCHECK --retries=-1 CMD a"), NegativeRetries(-1));
    assert_eq!(
        error("HEALTHCHECK --retries=x CMD a"),
        InvalidRetries("x".into())
    );
    assert_eq!(
        error("HEALTHCHECK --retries=3000000000 CMD a"),
        InvalidRetries("3000000000".into())
    );
    assert_eq!(
        error("HEALTHCHECK --bogus=1 CMD a"),
        UnknownFlag("--bogus".into())
    );
}
