//! What a build serves its steps besides files: `--secret` values and `--ssh` agents.

use std::collections::HashMap;

use anyhow::{Context as _, bail};

use crate::cli::{BuildOptions, SecretSource};

use super::ssh_agent;

/// `--secret` values, read once: from a file, or from an environment variable.
pub(super) fn read_secrets(opts: &BuildOptions) -> anyhow::Result<HashMap<String, Vec<u8>>> {
    let mut secrets = HashMap::new();
    for s in &opts.secrets {
        let data = match &s.source {
            SecretSource::File(path) => std::fs::read(path)
                .with_context(|| format!("--secret id={}: reading {}", s.id, path.display()))?,
            SecretSource::Env(var) => std::env::var_os(var)
                .with_context(|| format!("--secret id={}: ${var} is not set", s.id))?
                .into_encoded_bytes(),
        };
        secrets.insert(s.id.clone(), data);
    }
    Ok(secrets)
}

/// `--ssh` agents by id, and the agents bud serves for key files (kept for the build).
pub(super) struct SshAgents {
    pub(super) sockets: HashMap<String, std::path::PathBuf>,
    _served: Vec<ssh_agent::KeyAgent>,
}

/// `--ssh ID[=SOCKET|KEY[,KEY...]]`: no path means $SSH_AUTH_SOCK, as docker does; one
/// socket is forwarded as it is; key files are served by an agent of bud's own, as buildx does.
/// A git context over ssh implies `--ssh default` when no `--ssh` is given, as in buildx.
pub(super) fn ssh_agents(opts: &BuildOptions) -> anyhow::Result<SshAgents> {
    use std::os::unix::fs::FileTypeExt;
    let mut agents = SshAgents {
        sockets: HashMap::new(),
        _served: Vec::new(),
    };
    // As buildx: a git context reached over ssh gets the `default` agent when none is given.
    let implied;
    let specs = if opts.ssh.is_empty() && bud_frontend::gitref::is_ssh_url(&opts.context) {
        implied = [crate::cli::SshSpec {
            id: "default".to_owned(),
            paths: Vec::new(),
        }];
        &implied[..]
    } else {
        &opts.ssh[..]
    };
    for spec in specs {
        let paths = match spec.paths.as_slice() {
            [] => vec![
                std::env::var_os("SSH_AUTH_SOCK")
                    .map(std::path::PathBuf::from)
                    .with_context(|| format!("--ssh {}: SSH_AUTH_SOCK is not set", spec.id))?,
            ],
            some => some.to_vec(),
        };
        let mut sockets = 0;
        for path in &paths {
            let kind = std::fs::metadata(path)
                .with_context(|| format!("--ssh {}: {}", spec.id, path.display()))?
                .file_type();
            if kind.is_socket() {
                sockets += 1;
            } else if !kind.is_file() {
                bail!(
                    "--ssh {}: {} is neither an agent socket nor a private key file",
                    spec.id,
                    path.display()
                );
            }
        }
        let socket = match (sockets, paths.as_slice()) {
            (0, _) => {
                let agent = ssh_agent::KeyAgent::start(&paths)
                    .with_context(|| format!("--ssh {}", spec.id))?;
                let socket = agent.socket().to_path_buf();
                agents._served.push(agent);
                socket
            }
            (1, [one]) => one.clone(),
            _ => bail!(
                "--ssh {}: give either one agent socket or private key files",
                spec.id
            ),
        };
        agents.sockets.insert(spec.id.clone(), socket);
    }
    Ok(agents)
}
