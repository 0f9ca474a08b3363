//! `bud debug workers`: what the embedded worker can do here.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::CommandError;
use super::format::{human_size, table};
use crate::config::{Config, GcConfig, StorageLimit};
use crate::executor::{Runtime, RuntimeKind};
use crate::state::StateRoot;

/// Writes what the embedded worker would build with here, one `Name:\tvalue` row each.
pub fn run(state: &StateRoot, out: &mut impl Write) -> Result<(), CommandError> {
    let config = Config::load()?;
    let rows = vec![
        vec![
            "Solver:".to_string(),
            crate::build::worker::describe(&config.builder, &config.worker, state),
        ],
        vec!["Platforms:".to_string(), platforms(state).join(", ")],
        vec!["Runtime:".to_string(), runtime(&config, state)],
        vec!["Snapshotter:".to_string(), snapshotter().to_string()],
        vec!["Root:".to_string(), state.path().display().to_string()],
        vec![
            "GC policy:".to_string(),
            gc_policy(&config.gc, state.path()),
        ],
        vec!["Config:".to_string(), config_source()],
    ];
    out.write_all(table(&rows).as_bytes())?;
    Ok(())
}

/// This machine's platform first, then those whose test program runs through an emulator.
pub fn platforms(state: &StateRoot) -> Vec<String> {
    crate::emulation::runnable(&state.tmp_dir())
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn runtime(config: &Config, state: &StateRoot) -> String {
    let name = config.worker.runtime.as_deref().unwrap_or("runc");
    let binary: Option<PathBuf> = if name.contains('/') {
        Some(PathBuf::from(name))
    } else {
        match name.parse::<RuntimeKind>() {
            Ok(kind) => Runtime::new(kind, state.tmp_dir())
                .ok()
                .map(|r| r.binary().to_owned()),
            Err(e) => return format!("{name}: {e}"),
        }
    };
    let Some(binary) = binary else {
        return format!("{name} (not found)");
    };
    match version(&binary) {
        Some(v) => format!("{} ({v})", binary.display()),
        None => format!("{} (cannot run --version)", binary.display()),
    }
}

fn version(binary: &Path) -> Option<String> {
    let out = std::process::Command::new(binary)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(|l| l.trim().to_string())
}

fn snapshotter() -> &'static str {
    if crate::snapshot::overlay::is_supported() {
        "overlayfs"
    } else {
        "copy (overlayfs is not available)"
    }
}

fn gc_policy(gc: &GcConfig, root: &Path) -> String {
    let limit = match gc.keep_storage {
        Some(StorageLimit::Percent(p)) => format!("{p}% of the filesystem"),
        Some(StorageLimit::Bytes(_)) => "as configured".to_string(),
        None => "min(10% of the filesystem, 20GB)".to_string(),
    };
    let keep = match gc.keep_bytes(root) {
        Ok(b) => format!("keep {} ({limit})", human_size(b)),
        Err(e) => format!("keep {limit}: {}", crate::error_chain::error_chain(&e)),
    };
    let mut text = format!(
        "{}, {keep}",
        if gc.enabled { "enabled" } else { "disabled" }
    );
    if let Some(d) = gc.keep_duration {
        text.push_str(&format!(
            ", keep what was used in the last {}s",
            d.as_secs()
        ));
    }
    text
}

fn config_source() -> String {
    match Config::path() {
        Some(p) if p.exists() => p.display().to_string(),
        Some(p) => format!("{} (absent: defaults)", p.display()),
        None => "none (defaults)".to_string(),
    }
}
