//! The test environment is real: the reference `docker build` (Docker 20.10's BuildKit)
//! builds a testdata Dockerfile on the locally made busybox base, and the registries answer.

use crate::support;

use support::*;

#[test]
fn reference_docker_build_runs_on_the_busybox_base() {
    if !require_base_image() {
        return;
    }
    let context = testdata("hello");
    let tag = "bud-test/env-hello:latest";
    docker_ok(&[
        "build",
        "-q",
        "--build-arg",
        "GREETING=hi",
        "-t",
        tag,
        context.to_str().expect("utf-8 path"),
    ]);
    let config = docker_ok(&["image", "inspect", "--format", "{{json .Config}}", tag]);
    let config: serde_json::Value = serde_json::from_str(&config).expect("config JSON");
    assert_eq!(config["User"], "user");
    assert_eq!(config["WorkingDir"], "/home/user");
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["cat", "/greeting", "/message.txt"])
    );
    let run = docker_ok(&["run", "--rm", tag]);
    assert_eq!(run, "hi from root\na message from the build context");
    remove_images(&[tag]);
}

#[test]
fn base_image_has_the_three_users() {
    if !require_base_image() {
        return;
    }
    let passwd = docker_ok(&["run", "--rm", BASE_IMAGE, "cat", "/etc/passwd"]);
    let users: Vec<(&str, &str)> = passwd
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0], f[2])
        })
        .collect();
    assert_eq!(
        users,
        [("root", "0"), ("nobody", "65534"), ("user", "1000")]
    );
}

#[test]
fn registries_are_on_loopback_and_the_auth_one_wants_credentials() {
    if !require_docker() {
        return;
    }
    let status = |url: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url])
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let open = format!("http://{OPEN_REGISTRY}/v2/bud-test/busybox/tags/list");
    if !require("the open registry", status(&open) == "200") {
        return;
    }
    assert_eq!(status(&format!("http://{AUTH_REGISTRY}/v2/")), "401");
    let authed = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-u",
            "bud:bud-test-password",
        ])
        .arg(format!("http://{AUTH_REGISTRY}/v2/"))
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&authed.stdout), "200");
}

/// The second reference (Docker 28, buildx on its BuildKit) builds from the base image, runs
/// the Dockerfile's build checks, and offers linux/arm64 through QEMU's binfmt_misc handler.
#[test]
fn second_reference_docker_builds_with_checks_and_offers_arm64() {
    let Some(docker28) = require_docker28() else {
        return;
    };
    let version = docker28.ok(&["version", "--format", "{{.Server.Version}}"]);
    assert!(version.starts_with("28."), "server version {version}");

    let context = tempfile::tempdir().expect("temp dir");
    // `as` in lower case after `FROM`: BuildKit's FromAsCasing check warns about it.
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM bud-test/busybox:latest as base\nRUN echo built > /built\n",
    )
    .expect("write Dockerfile");
    let tag = "bud-test/env-docker28:latest";
    let build = docker28.build(&[
        "--progress",
        "plain",
        "-t",
        tag,
        context.path().to_str().expect("utf-8 path"),
    ]);
    let log = stderr_of(&build);
    assert!(build.status.success(), "build failed: {log}");
    assert!(log.contains("FromAsCasing"), "no check warning in: {log}");
    assert_eq!(docker28.ok(&["run", "--rm", tag, "cat", "/built"]), "built");
    docker28.ok(&["image", "rm", tag]);

    let platforms = |text: &str| -> Vec<String> {
        text.split([',', ' ', '\t', '\n'])
            .map(str::to_string)
            .collect()
    };
    let ls = docker28.ok(&["buildx", "ls"]);
    assert!(platforms(&ls).iter().any(|p| p == "linux/arm64"), "{ls}");
    let inspect = docker28.ok(&["buildx", "inspect"]);
    let listed = inspect
        .lines()
        .find_map(|line| line.trim().strip_prefix("Platforms:"))
        .unwrap_or_else(|| panic!("no Platforms line in: {inspect}"));
    assert!(
        platforms(listed).iter().any(|p| p == "linux/arm64"),
        "{inspect}"
    );
}
