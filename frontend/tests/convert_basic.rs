//! Conversion of Dockerfiles step by step: ops, image config and history, variables, and
//! the Dockerfile lines each op comes from.

mod common;

use common::*;
use serde_json::json;

#[test]
fn from_pins_the_digest_and_names_steps() {
    let c = build("FROM busybox\nRUN echo hi\n");
    let src = sources(&c);
    assert_eq!(
        src[0]["identifier"],
        format!("docker-image://docker.io/library/busybox:latest@{DIGEST}")
    );
    assert_eq!(
        names(&c),
        [
            format!("[1/2] FROM docker.io/library/busybox:latest@{DIGEST}"),
            "[2/2] RUN echo hi".to_owned()
        ]
    );
    let exec = &execs(&c)[0];
    assert_eq!(exec["meta"]["args"], json!(["/bin/sh", "-c", "echo hi"]));
    assert_eq!(exec["meta"]["cwd"], "/");
    assert_eq!(
        exec["meta"]["env"],
        json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    );
    let history = c.image["history"].as_array().unwrap();
    assert_eq!(
        history.last().unwrap()["created_by"],
        "RUN /bin/sh -c echo hi # buildkit"
    );
    assert_eq!(c.image["config"]["Cmd"], json!(["sh"]));
}

#[test]
fn run_is_not_expanded_but_its_name_is() {
    let c = build("FROM busybox\nENV A=1\nRUN echo $A \"$B\"\n");
    assert_eq!(execs(&c)[0]["meta"]["args"][2], "echo $A \"$B\"");
    assert!(names(&c).contains(&"[2/2] RUN echo 1 \"$B\"".to_owned()));
}

#[test]
fn env_arg_and_build_args() {
    let mut o = opts();
    o.build_args.insert("V".into(), "given".into());
    o.build_args.insert("UNUSED".into(), "x".into());
    o.build_args
        .insert("http_proxy".into(), "http://proxy".into());
    let c = build_with(
        "ARG BASE=busybox\nFROM $BASE\nARG V=default\nARG W=w-$V\nENV E=$W\nRUN env\n",
        &o,
    );
    let exec = &execs(&c)[0];
    assert_eq!(
        exec["meta"]["env"],
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "V=given",
            "W=w-given",
            "E=w-given"
        ])
    );
    assert_eq!(exec["meta"]["proxy_env"]["http_proxy"], "http://proxy");
    assert_eq!(c.unused_build_args, ["UNUSED"]);
    let env = c.image["config"]["Env"].as_array().unwrap();
    assert!(env.contains(&json!("E=w-given")));
    assert!(!env.iter().any(|e| e.as_str().unwrap().starts_with("V=")));
    let history = c.image["history"].as_array().unwrap();
    assert_eq!(
        history.last().unwrap()["created_by"],
        "RUN |2 V=given W=w-given /bin/sh -c env # buildkit"
    );
}

#[test]
fn global_args_need_redeclaration() {
    let c = build("ARG G=global\nFROM busybox\nRUN echo\nARG G\nRUN echo\n");
    let e = execs(&c);
    assert!(
        !e[0]["meta"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "G=global")
    );
    assert!(
        e[1]["meta"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "G=global")
    );
}

#[test]
fn platform_args() {
    let mut o = opts();
    o.target_platform = Some(bud_frontend::convert::Platform::new("linux", "arm64", ""));
    let c = build_with(
        "FROM busybox\nARG TARGETPLATFORM\nARG BUILDARCH\nRUN true\n",
        &o,
    );
    let env = execs(&c)[0]["meta"]["env"].clone();
    assert!(
        env.as_array()
            .unwrap()
            .contains(&json!("TARGETPLATFORM=linux/arm64"))
    );
    assert!(env.as_array().unwrap().contains(&json!("BUILDARCH=amd64")));
    assert_eq!(c.image["architecture"], "arm64");
    // The base's `v8` is not the normalised target's: BuildKit writes the target's.
    assert_eq!(c.image.get("variant"), None);

    o.target_platform = Some(bud_frontend::convert::Platform::parse("linux/armhf").unwrap());
    let c = build_with("FROM busybox\nRUN true\n", &o);
    assert_eq!(c.image["architecture"], "arm");
    assert_eq!(c.image["variant"], "v7");
}

#[test]
fn workdir_user_copy() {
    let c = build(
        "FROM busybox\nUSER app\nWORKDIR /srv/$NOPE/x\nCOPY --chown=app:1000 --chmod=640 a b* ./\n",
    );
    let f = files(&c);
    let mkdir = &f[0]["Op"]["Op"]["file"]["actions"][0]["Action"]["mkdir"];
    assert_eq!(mkdir["path"], "/srv/x");
    assert_eq!(mkdir["makeParents"], true);
    assert_eq!(mkdir["owner"]["user"]["ByName"]["name"], "app");
    let copy = &f[1]["Op"]["Op"]["file"]["actions"][0]["Action"]["copy"];
    assert_eq!(copy["src"], "/a");
    assert_eq!(copy["dest"], "/srv/x/");
    assert_eq!(copy["mode"], 0o640);
    assert_eq!(copy["owner"]["group"]["ByID"], 1000);
    assert_eq!(copy["allowWildcard"], true);
    assert_eq!(copy["followSymlink"], true);
    assert_eq!(copy["dirCopyContents"], true);
    let ctx = sources(&c)
        .into_iter()
        .find(|s| s["identifier"] == "local://context")
        .unwrap();
    assert_eq!(ctx["attrs"]["local.followpaths"], "[\"a\",\"b*\"]");
    assert_eq!(ctx["attrs"]["local.sharedkeyhint"], "context");
    // The config keeps an absolute WORKDIR as written (expanded), as BuildKit does.
    assert_eq!(c.image["config"]["WorkingDir"], "/srv//x");
    assert_eq!(c.image["config"]["User"], "app");
}

#[test]
fn metadata_instructions() {
    let c = build(concat!(
        "FROM busybox\nLABEL a=b \"c d\"=e\nEXPOSE 80 8000-8001/udp\nVOLUME /data\n",
        "STOPSIGNAL SIGKILL\nHEALTHCHECK --interval=30s --retries=3 CMD curl -f x\n",
        "SHELL [\"/bin/bash\", \"-c\"]\nENTRYPOINT echo\nMAINTAINER me\nONBUILD RUN hi\n"
    ));
    let cfg = &c.image["config"];
    assert_eq!(cfg["Labels"], json!({"a": "b", "c d": "e"}));
    assert_eq!(
        cfg["ExposedPorts"],
        json!({"80/tcp": {}, "8000/udp": {}, "8001/udp": {}})
    );
    assert_eq!(cfg["Volumes"], json!({"/data": {}}));
    assert_eq!(cfg["StopSignal"], "SIGKILL");
    assert_eq!(
        cfg["Healthcheck"],
        json!({"Test": ["CMD-SHELL", "curl -f x"], "Interval": 30_000_000_000u64, "Retries": 3})
    );
    assert_eq!(cfg["Entrypoint"], json!(["/bin/bash", "-c", "echo"]));
    assert!(
        cfg.get("Cmd").is_none(),
        "ENTRYPOINT resets the inherited CMD"
    );
    assert_eq!(cfg["OnBuild"], json!(["RUN hi"]));
    assert_eq!(c.image["author"], "me");
    let created: Vec<&str> = c.image["history"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|h| h["created_by"].as_str().unwrap())
        .collect();
    assert_eq!(
        created,
        [
            "LABEL a=b c d=e",
            "EXPOSE [80/tcp 8000/udp 8001/udp]",
            "VOLUME [/data]",
            "STOPSIGNAL SIGKILL",
            r#"HEALTHCHECK &{["CMD-SHELL" "curl -f x"] "30s" "0s" "0s" "0s" '\x03'}"#,
            "SHELL [/bin/bash -c]",
            "ENTRYPOINT [\"/bin/bash\" \"-c\" \"echo\"]",
            "MAINTAINER me",
        ]
    );
    assert!(
        c.image["history"]
            .as_array()
            .unwrap()
            .iter()
            .skip(1)
            .all(|h| h["empty_layer"] == true)
    );
}

#[test]
fn labels_option_and_scratch() {
    let mut o = opts();
    o.labels.insert("x".into(), "y".into());
    let c = build_with("FROM scratch\nCOPY a /\n", &o);
    assert_eq!(c.image["config"]["Labels"], json!({"x": "y"}));
    assert_eq!(
        names(&c),
        ["[internal] load build context", "[1/1] COPY a /"]
    );
}

#[test]
fn expansions_nested_too_deep_are_an_error_naming_the_line() {
    let deep = format!("{}x{}", "${a:-".repeat(3000), "}".repeat(3000));
    for (dockerfile, line) in [
        (format!("ARG R=\"{deep}\"\nFROM busybox\n"), 1),
        (format!("FROM busybox\nARG R=\"{deep}\"\n"), 2),
        (format!("FROM busybox\nRUN true\nENV A={deep}\n"), 3),
        (format!("FROM busybox\nLABEL {deep}=1\n"), 2),
        (format!("FROM busybox\nCOPY {deep} /\n"), 2),
        (format!("FROM busybox\nWORKDIR /{deep}\n"), 2),
    ] {
        let message = fail(&dockerfile).to_string();
        assert!(
            message.starts_with(&format!("line {line}: failed to process ")),
            "{message:.200}"
        );
        assert!(
            message.ends_with("expansions nested more than 100 levels deep"),
            "{message:.200}"
        );
    }
}

#[test]
fn reassigned_variables_keep_their_place_in_the_image_and_move_last_in_a_step() {
    let c = build("FROM busybox\nENV A=1 B=2\nENV C=3\nENV A=4\nRUN env\n");
    assert_eq!(
        c.image["config"]["Env"],
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "A=4",
            "B=2",
            "C=3"
        ])
    );
    assert_eq!(
        execs(&c)[0]["meta"]["env"],
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "B=2",
            "C=3",
            "A=4"
        ])
    );
}

/// Each ENV instruction costs the same however many came before: 20,000 of them convert in
/// well under a second (when each one copied the environment, this took minutes).
#[test]
fn twenty_thousand_env_instructions_convert() {
    const N: usize = 20_000;
    let mut dockerfile = String::from("FROM busybox\n");
    for i in 0..N {
        // Each one reads the one before, so lookups are measured too.
        dockerfile.push_str(&format!("ENV V{i}=${{V{}+{i}}}\n", i.saturating_sub(1)));
    }
    dockerfile.push_str("ENV V0=again\nRUN env\n");
    let c = build(&dockerfile);
    let image_env = c.image["config"]["Env"].as_array().unwrap();
    assert_eq!(image_env.len(), N + 1);
    assert_eq!(image_env[1], "V0=again");
    assert_eq!(image_env[2], "V1=1");
    assert_eq!(image_env[N], format!("V{}={}", N - 1, N - 1));
    let step_env = execs(&c)[0]["meta"]["env"].as_array().unwrap().clone();
    assert_eq!(step_env.len(), N + 1);
    assert_eq!(step_env[N], "V0=again");
    let history = c.image["history"].as_array().unwrap();
    let added = history
        .iter()
        .filter(|h| h["comment"] == "buildkit.dockerfile.v0")
        .count();
    assert_eq!(added, N + 2);
}

/// The lines each op comes from, by step name, from the Definition's source map.
fn located(c: &bud_frontend::convert::Converted) -> Vec<(String, Vec<(i32, i32)>)> {
    use bud_frontend::dump::decode;
    let source = c.definition.source.as_ref().expect("a source map");
    decode(&c.definition)
        .unwrap()
        .into_iter()
        .filter_map(|d| {
            let name = d.metadata?.description.get("llb.customname")?.clone();
            let lines = bud_frontend::llb::locations_of(source, &d.digest)
                .flat_map(|(_, ranges)| ranges.iter())
                .map(|r| (r.start.unwrap().line, r.end.unwrap().line))
                .collect();
            Some((name, lines))
        })
        .collect()
}

#[test]
fn each_op_is_located_at_its_own_instruction_even_when_lines_repeat() {
    let dockerfile = "FROM busybox\nRUN test ! -e /m\nRUN touch /m\nRUN test ! -e /m\nWORKDIR /w\nCOPY a /b\nRUN <<EOF\nécho ü\nEOF\n";
    let c = build(dockerfile);
    assert_eq!(
        located(&c),
        [
            (
                format!("[1/7] FROM docker.io/library/busybox:latest@{DIGEST}"),
                vec![(1, 1)]
            ),
            ("[2/7] RUN test ! -e /m".to_owned(), vec![(2, 2)]),
            ("[3/7] RUN touch /m".to_owned(), vec![(3, 3)]),
            ("[4/7] RUN test ! -e /m".to_owned(), vec![(4, 4)]),
            ("[5/7] WORKDIR /w".to_owned(), vec![(5, 5)]),
            ("[internal] load build context".to_owned(), vec![]),
            ("[6/7] COPY a /b".to_owned(), vec![(6, 6)]),
            ("[7/7] RUN <<EOF (écho ü)".to_owned(), vec![(7, 9)]),
        ]
    );
    let source = c.definition.source.as_ref().unwrap();
    assert_eq!(source.infos.len(), 1, "one Dockerfile, written once");
    let info = &source.infos[0];
    assert_eq!(
        (info.filename.as_str(), info.language.as_str()),
        ("Dockerfile", "Dockerfile")
    );
    assert_eq!(info.data, dockerfile.as_bytes());
    // The Dockerfile is read from the `dockerfile` local source, as BuildKit's frontend says.
    let loaded_from = info.definition.as_ref().expect("the loading definition");
    let ops = bud_frontend::dump::decode(loaded_from).unwrap();
    let Some(bud_proto::pb::op::Op::Source(src)) = &ops[0].op.op else {
        panic!("{ops:?}")
    };
    assert_eq!(src.identifier, "local://dockerfile");
    assert_eq!(src.attrs["local.followpaths"], "[\"Dockerfile\"]");
}

#[test]
fn an_op_two_stages_build_alike_has_both_locations() {
    // Equal ops (same bytes) are written once; BuildKit keeps every location of them.
    let c = build(
        "FROM busybox AS a\nRUN echo same\nFROM busybox AS b\nRUN echo same\n\
         FROM busybox\nCOPY --from=a /x /x\nCOPY --from=b /y /y\n",
    );
    let run = located(&c)
        .into_iter()
        .find(|(name, _)| name.ends_with("RUN echo same"))
        .unwrap();
    assert_eq!(run.1, vec![(2, 2), (4, 4)]);
}

#[test]
fn run_device_asks_for_cdi_devices_with_a_labs_syntax() {
    let c = build(
        "# syntax=docker/dockerfile:1-labs\nFROM busybox\n\
         RUN --device=vendor1.com/device=foo,required --device=name=vendor2.com/gpu=* true\n",
    );
    let op = ops(&c)
        .into_iter()
        .find(|o| o["Op"]["Op"]["exec"].is_object())
        .unwrap();
    assert_eq!(
        op["Op"]["Op"]["exec"]["cdiDevices"],
        json!([
            {"name": "vendor1.com/device=foo"},
            {"name": "vendor2.com/gpu=*", "optional": true}
        ])
    );
    assert_eq!(op["OpMetadata"]["caps"]["exec.meta.cdi"], true);

    let plain = fail("FROM busybox\nRUN --device=vendor1.com/device=foo true\n").to_string();
    assert!(
        plain.contains(
            "line 2: device feature is only supported in Dockerfile frontend 1.14.0-labs"
        ),
        "{plain}"
    );
    let bad = fail(
        "# syntax=docker/dockerfile:1-labs\nFROM busybox\nRUN --device=a.com/b=c,size=1 true\n",
    )
    .to_string();
    assert!(
        bad.contains("line 3") && bad.contains("unexpected key 'size'"),
        "{bad}"
    );
}
