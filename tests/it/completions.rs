//! The committed completion scripts are what `bud completion SHELL` prints.

use std::process::Command;

#[test]
fn committed_completions_are_current() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/completions");
    for (shell, file) in [
        ("bash", "bud.bash"),
        ("zsh", "_bud"),
        ("fish", "bud.fish"),
        ("powershell", "_bud.ps1"),
        ("elvish", "bud.elv"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_bud"))
            .args(["completion", shell])
            .output()
            .expect("run bud completion");
        assert!(out.status.success(), "bud completion {shell} failed");
        let committed = std::fs::read(format!("{dir}/{file}")).expect("read committed completion");
        assert!(
            committed == out.stdout,
            "completions/{file} is stale: run scripts/update-completions"
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("build-arg"),
            "{shell} completion lacks the build flags"
        );
    }
}
