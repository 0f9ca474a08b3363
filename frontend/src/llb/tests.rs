use std::collections::BTreeSet;

use bud_proto::pb::{self, caps};
use prost::Message;

use super::*;

fn amd64() -> Constraints {
    Constraints::default().with_platform(pb::Platform {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    })
}

fn busybox() -> State {
    image(
        "busybox",
        ImageOptions {
            constraints: amd64(),
            ..Default::default()
        },
    )
    .unwrap()
}

fn context() -> State {
    local(
        "context",
        LocalOptions {
            session_id: Some("s1".into()),
            shared_key_hint: Some("context".into()),
            ..Default::default()
        },
    )
}

fn run(root: State, args: &[&str], mounts: Vec<Mount>) -> ExecOutputs {
    exec(ExecBuilder {
        meta: pb::Meta {
            args: args.iter().map(|a| a.to_string()).collect(),
            cwd: "/".into(),
            ..Default::default()
        },
        root,
        mounts,
        constraints: amd64(),
        ..Default::default()
    })
    .unwrap()
}

fn decode(bytes: &[u8]) -> pb::Op {
    pb::Op::decode(bytes).unwrap()
}

fn op_caps(def: &pb::Definition, op_bytes: &[u8]) -> BTreeSet<String> {
    def.metadata[&digest_of(op_bytes)]
        .caps
        .keys()
        .cloned()
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn image_definition_has_known_digest() {
    let def = busybox().marshal();
    assert_eq!(def.def.len(), 2);

    // Same op, and so same bytes, as bud-proto's hand-encoded golden test.
    let image_digest = "sha256:08a03f3ffe5fba421a6403c31e153425ced631d108868f30e04985f99d69326e";
    assert_eq!(digest_of(&def.def[0]), image_digest);
    match decode(&def.def[0]).op {
        Some(pb::op::Op::Source(s)) => {
            assert_eq!(
                s.identifier,
                "docker-image://docker.io/library/busybox:latest"
            )
        }
        other => panic!("not a source op: {other:?}"),
    }

    // The terminal op: only its input, field 1 {1 digest, index 0 omitted}.
    let mut terminal = vec![0x0a, 73, 0x0a, 71];
    terminal.extend(image_digest.as_bytes());
    assert_eq!(def.def[1], terminal);

    assert_eq!(op_caps(&def, &def.def[0]), set(&[caps::SOURCE_IMAGE]));
    assert_eq!(
        op_caps(&def, &def.def[1]),
        set(&[caps::CONSTRAINTS, caps::PLATFORM])
    );
    assert_eq!(def.metadata.len(), 2);
}

#[test]
fn marshaling_is_deterministic() {
    let build = || {
        let base = busybox();
        let ran = run(base.clone(), &["sh", "-c", "echo hi > /a"], Vec::new());
        file(
            FileBuilder::new(ran.root)
                .mkdir("/app", 0o755, MkdirOptions::default())
                .copy(&context(), "/", "/app", CopyOptions::default())
                .constraints(Constraints::default().with_custom_name("COPY . /app")),
        )
        .unwrap()
        .marshal()
        .encode_to_vec()
    };
    assert_eq!(build(), build());
}

#[test]
fn equal_ops_are_written_once() {
    // Two separately built but equal images, used by two mounts.
    let a = busybox();
    let b = busybox();
    let out = run(
        a,
        &["true"],
        vec![Mount {
            dest: "/other".into(),
            kind: MountKind::Bind {
                source: b,
                selector: String::new(),
                readonly: true,
                discard_output: false,
            },
        }],
    );
    let def = out.root.marshal();
    assert_eq!(def.def.len(), 3, "image, exec, terminal");
    let exec_op = decode(&def.def[1]);
    assert_eq!(exec_op.inputs.len(), 1, "one input for both mounts");
    let Some(pb::op::Op::Exec(e)) = exec_op.op else {
        panic!("not an exec")
    };
    assert_eq!(e.mounts.iter().map(|m| m.input).collect::<Vec<_>>(), [0, 0]);
}

#[test]
fn equal_ops_merge_their_metadata() {
    let named = |name: &str| {
        image(
            "busybox",
            ImageOptions {
                constraints: amd64().with_custom_name(name),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let merged = merge(
        &[named("a"), busybox(), named("b")],
        &Constraints::default(),
    );
    let def = merged.marshal();
    // Descriptions do not change the digest: one image op, then merge, terminal.
    assert_eq!(def.def.len(), 3);
    let md = &def.metadata[&digest_of(&def.def[0])];
    assert_eq!(md.description[Constraints::CUSTOM_NAME], "b");
    let terminal = op_caps(&def, &def.def[2]);
    assert!(terminal.contains(caps::META_DESCRIPTION));
    let merge_op = decode(&def.def[1]);
    assert_eq!(merge_op.inputs.len(), 3, "a merge keeps every layer");
    assert_eq!(op_caps(&def, &def.def[1]), set(&[caps::MERGE_OP]));
}

#[test]
fn ops_come_after_their_inputs() {
    let ran = run(busybox(), &["true"], Vec::new());
    let copied =
        file(FileBuilder::new(ran.root).copy(&context(), "/", "/", CopyOptions::default()))
            .unwrap();
    let def = copied.marshal();
    let mut seen = BTreeSet::new();
    for bytes in &def.def {
        for input in decode(bytes).inputs {
            assert!(
                seen.contains(&input.digest),
                "input {} not yet written",
                input.digest
            );
        }
        seen.insert(digest_of(bytes));
    }
    assert_eq!(def.def.len(), 5);
}

#[test]
fn file_action_inputs_are_numbered_after_op_inputs() {
    let other = image("alpine:3", ImageOptions::default()).unwrap();
    let st = file(
        FileBuilder::new(busybox())
            .copy(&context(), "/src", "/app", CopyOptions::default())
            .mkdir(
                "/app/data",
                0o40755,
                MkdirOptions {
                    owner: Some(Chown {
                        user: Some(UserRef::Name("nobody".into())),
                        group: Some(UserRef::Id(65534)),
                    }),
                    ..Default::default()
                },
            )
            .copy(&other, "/etc/os-release", "/app/", CopyOptions::default())
            .copy(&context(), "/b", "/app/b", CopyOptions::default()),
    )
    .unwrap();
    let def = st.marshal();
    let op = decode(&def.def[def.def.len() - 2]);
    assert!(op.platform.is_none(), "file ops are not platform specific");
    let Some(pb::op::Op::File(f)) = op.op else {
        panic!("not a file op")
    };
    // Op inputs: 0 busybox, 1 context (deduplicated), 2 alpine.
    assert_eq!(op.inputs.len(), 3);
    let numbering: Vec<_> = f
        .actions
        .iter()
        .map(|a| (a.input, a.secondary_input, a.output))
        .collect();
    assert_eq!(numbering, [(0, 1, -1), (3, -1, -1), (4, 2, -1), (5, 1, 0)]);

    let Some(pb::file_action::Action::Mkdir(mkdir)) = &f.actions[1].action else {
        panic!("not mkdir")
    };
    assert_eq!(mkdir.mode, 0o755, "only permission bits");
    assert_eq!(mkdir.timestamp, -1, "unset");
    let owner = mkdir.owner.as_ref().unwrap();
    assert_eq!(
        owner.user.as_ref().unwrap().user,
        Some(pb::user_opt::User::ByName(pb::NamedUserOpt {
            name: "nobody".into(),
            input: 0,
        }))
    );
    let Some(pb::file_action::Action::Copy(copy)) = &f.actions[0].action else {
        panic!("not copy")
    };
    assert_eq!((copy.mode, copy.timestamp), (-1, -1));
}

#[test]
fn file_on_scratch_uses_minus_one() {
    let st = file(
        FileBuilder::new(scratch())
            .mkfile("/hello", 0o644, "hi\n", MkfileOptions::default())
            .symlink("hello", "/link", SymlinkOptions::default()),
    )
    .unwrap();
    let def = st.marshal();
    let op = decode(&def.def[0]);
    assert!(op.inputs.is_empty());
    let Some(pb::op::Op::File(f)) = op.op else {
        panic!("not a file op")
    };
    let numbering: Vec<_> = f
        .actions
        .iter()
        .map(|a| (a.input, a.secondary_input, a.output))
        .collect();
    assert_eq!(numbering, [(-1, -1, -1), (0, -1, 0)]);
    assert_eq!(
        op_caps(&def, &def.def[0]),
        set(&[caps::FILE_BASE, caps::FILE_SYMLINK_CREATE])
    );
}

#[test]
fn exec_mounts_are_sorted_and_numbered() {
    let out = exec(ExecBuilder {
        meta: pb::Meta {
            args: vec!["make".into()],
            cwd: "/src".into(),
            ..Default::default()
        },
        root: busybox(),
        mounts: vec![
            Mount {
                dest: "/run/secrets/token".into(),
                kind: MountKind::Secret(pb::SecretOpt {
                    id: "token".into(),
                    mode: 0o400,
                    ..Default::default()
                }),
            },
            Mount {
                dest: "/src".into(),
                kind: MountKind::Bind {
                    source: context(),
                    selector: String::new(),
                    readonly: false,
                    discard_output: false,
                },
            },
            Mount {
                dest: "/root/.cache".into(),
                kind: MountKind::Cache {
                    id: "go".into(),
                    sharing: pb::CacheSharingOpt::Locked,
                    source: scratch(),
                    selector: String::new(),
                },
            },
            Mount {
                dest: "/etc/ro".into(),
                kind: MountKind::Bind {
                    source: context(),
                    selector: "etc".into(),
                    readonly: true,
                    discard_output: false,
                },
            },
        ],
        network: pb::NetMode::None,
        constraints: amd64(),
        ..Default::default()
    })
    .unwrap();

    let def = out.root.marshal();
    let exec_bytes = &def.def[def.def.len() - 2];
    let op = decode(exec_bytes);
    assert_eq!(op.platform.as_ref().map(|p| p.os.as_str()), Some("linux"));
    let Some(pb::op::Op::Exec(e)) = op.op else {
        panic!("not an exec")
    };
    let mounts: Vec<_> = e
        .mounts
        .iter()
        .map(|m| (m.dest.as_str(), m.input, m.output))
        .collect();
    assert_eq!(
        mounts,
        [
            ("/", 0, 0),
            ("/etc/ro", 1, -1),
            ("/root/.cache", -1, -1),
            ("/src", 1, 1),
            ("/run/secrets/token", -1, -1),
        ]
    );
    assert_eq!(e.network, pb::NetMode::None as i32);

    assert_eq!(
        op_caps(&def, exec_bytes),
        set(&[
            caps::EXEC_META_BASE,
            caps::EXEC_META_NETWORK,
            caps::EXEC_MOUNT_BIND,
            caps::EXEC_MOUNT_CACHE,
            caps::EXEC_MOUNT_CACHE_SHARING,
            caps::EXEC_MOUNT_SECRET,
            caps::EXEC_MOUNT_SELECTOR,
        ])
    );

    let src = out.mount("/src").unwrap().output().unwrap();
    assert_eq!(
        (src.digest(), src.index()),
        (digest_of(exec_bytes).as_str(), 1)
    );
    assert!(out.mount("/root/.cache").is_none());
    let ro = out.mount("/etc/ro").unwrap().output().unwrap();
    assert!(
        ro.same_as(context().output().unwrap()),
        "read-only mounts are unchanged"
    );
}

#[test]
fn exec_rejects_incomplete_or_ambiguous_steps() {
    let base = ExecBuilder {
        meta: pb::Meta {
            args: vec!["true".into()],
            cwd: "/".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut no_args = base.clone();
    no_args.meta.args.clear();
    assert_eq!(exec(no_args).unwrap_err(), LlbError::EmptyArgs);
    let mut no_cwd = base.clone();
    no_cwd.meta.cwd.clear();
    assert_eq!(exec(no_cwd).unwrap_err(), LlbError::EmptyCwd);
    let mut twice = base;
    twice.mounts = vec![
        Mount {
            dest: "/t".into(),
            kind: MountKind::Tmpfs { size: 0 },
        };
        2
    ];
    assert_eq!(
        exec(twice).unwrap_err(),
        LlbError::DuplicateMount("/t".into())
    );
    assert_eq!(
        file(FileBuilder::new(scratch())).unwrap_err(),
        LlbError::NoFileActions
    );
}

#[test]
fn sources_declare_their_caps_and_attrs() {
    let def = local(
        "context",
        LocalOptions {
            session_id: Some("s".into()),
            exclude_patterns: vec!["*.md".into(), "!README.md".into()],
            ..Default::default()
        },
    )
    .marshal();
    let Some(pb::op::Op::Source(s)) = decode(&def.def[0]).op else {
        panic!("not a source")
    };
    assert_eq!(s.identifier, "local://context");
    assert_eq!(s.attrs["local.excludepatterns"], r#"["*.md","!README.md"]"#);
    assert!(decode(&def.def[0]).platform.is_none());
    assert_eq!(
        op_caps(&def, &def.def[0]),
        set(&[
            caps::SOURCE_LOCAL,
            caps::SOURCE_LOCAL_SESSION_ID,
            caps::SOURCE_LOCAL_EXCLUDE_PATTERNS
        ])
    );

    let def = http(
        "https://example.com/a.tgz",
        HttpOptions {
            perm: Some(0o644),
            filename: Some("a.tgz".into()),
            ..Default::default()
        },
    )
    .marshal();
    let Some(pb::op::Op::Source(s)) = decode(&def.def[0]).op else {
        panic!("not a source")
    };
    assert_eq!(s.attrs["http.perm"], "0644");
    assert_eq!(
        op_caps(&def, &def.def[0]),
        set(&[caps::SOURCE_HTTP, caps::SOURCE_HTTP_PERM])
    );

    let mut opts = GitOptions::new("github.com/moby/buildkit.git");
    opts.reference = Some("v0.8.2".into());
    opts.subdir = Some("/frontend/".into());
    opts.keep_git_dir = true;
    let def = git(opts).marshal();
    let Some(pb::op::Op::Source(s)) = decode(&def.def[0]).op else {
        panic!("not a source")
    };
    assert_eq!(
        s.identifier,
        "git://github.com/moby/buildkit.git#v0.8.2:frontend"
    );
    assert_eq!(s.attrs["git.keepgitdir"], "true");
    assert_eq!(
        op_caps(&def, &def.def[0]),
        set(&[
            caps::SOURCE_GIT,
            caps::SOURCE_GIT_KEEP_DIR,
            caps::SOURCE_GIT_SUBDIR
        ])
    );

    // Over ssh, the session's `default` agent authenticates, as `llb.Git` asks for it;
    // another id when one is named; never for https.
    for (url, named, want) in [
        ("git@github.com:moby/buildkit.git", None, Some("default")),
        (
            "ssh://git@127.0.0.1:2222/srv/r.git",
            Some("deploy"),
            Some("deploy"),
        ),
        ("https://github.com/moby/buildkit.git", None, None),
    ] {
        let mut opts = GitOptions::new("github.com/moby/buildkit.git");
        opts.full_url = Some(url.to_owned());
        opts.mount_ssh_sock = named.map(str::to_owned);
        let def = git(opts).marshal();
        let Some(pb::op::Op::Source(s)) = decode(&def.def[0]).op else {
            panic!("not a source")
        };
        assert_eq!(
            s.attrs.get("git.mountsshsock").map(String::as_str),
            want,
            "{url}"
        );
        assert_eq!(
            op_caps(&def, &def.def[0]).contains(caps::SOURCE_GIT_MOUNT_SSH_SOCK),
            want.is_some(),
            "{url}"
        );
    }

    let def = image(
        "busybox",
        ImageOptions {
            resolve_mode: ResolveMode::ForcePull,
            ..Default::default()
        },
    )
    .unwrap()
    .marshal();
    assert_eq!(
        op_caps(&def, &def.def[0]),
        set(&[caps::SOURCE_IMAGE, caps::SOURCE_IMAGE_RESOLVE_MODE])
    );
}

#[test]
fn merge_and_diff_shapes() {
    let empty = Constraints::default();
    assert!(merge(&[scratch(), scratch()], &empty).is_scratch());
    let only = merge(&[scratch(), busybox()], &empty);
    assert!(only.output().unwrap().same_as(busybox().output().unwrap()));

    let upper = run(busybox(), &["true"], Vec::new()).root;
    let def = diff(&busybox(), &upper, &empty).marshal();
    let op = decode(&def.def[def.def.len() - 2]);
    let Some(pb::op::Op::Diff(d)) = op.op else {
        panic!("not a diff")
    };
    assert_eq!((d.lower.unwrap().input, d.upper.unwrap().input), (0, 1));
    let def = diff(&scratch(), &upper, &empty).marshal();
    let Some(pb::op::Op::Diff(d)) = decode(&def.def[def.def.len() - 2]).op else {
        panic!("not a diff")
    };
    assert_eq!((d.lower.unwrap().input, d.upper.unwrap().input), (-1, 0));
}

#[test]
fn scratch_marshals_to_an_empty_definition() {
    assert_eq!(scratch().marshal(), pb::Definition::default());
}

#[test]
fn image_references_are_normalized() {
    for (input, want) in [
        ("busybox", "docker.io/library/busybox:latest"),
        ("library/busybox:1.36", "docker.io/library/busybox:1.36"),
        ("user/app", "docker.io/user/app:latest"),
        ("index.docker.io/user/app", "docker.io/user/app:latest"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("ghcr.io/o/i:1", "ghcr.io/o/i:1"),
        ("alpine@sha256:abcd", "docker.io/library/alpine@sha256:abcd"),
        (
            "alpine:3@sha256:abcd",
            "docker.io/library/alpine:3@sha256:abcd",
        ),
    ] {
        assert_eq!(normalize_image_ref(input).unwrap(), want, "{input}");
    }
    for bad in ["", "Busybox", "a b", "busybox:", "ghcr.io/", "x@"] {
        assert!(normalize_image_ref(bad).is_err(), "{bad:?} accepted");
    }
}
