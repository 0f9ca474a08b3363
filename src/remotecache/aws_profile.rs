//! One profile of the AWS shared files, as the AWS SDK for Go v2 (buildx's) reads it: the
//! credentials file's `[NAME]` section over the config file's `[profile NAME]` (`[default]`
//! for the default profile), `key = value` lines, `#` and `;` comments, keys case-insensitive.
//! Only static keys are taken; a profile whose credentials come another way is named by the
//! setting that says so, for the caller to report.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the shared files are (either may be absent).
pub(super) struct Files {
    /// `AWS_SHARED_CREDENTIALS_FILE`, or `~/.aws/credentials`.
    pub(super) credentials: Option<PathBuf>,
    /// `AWS_CONFIG_FILE`, or `~/.aws/config`.
    pub(super) config: Option<PathBuf>,
}

/// Static keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProfileCredentials {
    /// `aws_access_key_id`.
    pub(super) access_key_id: String,
    /// `aws_secret_access_key`.
    pub(super) secret_access_key: String,
    /// `aws_session_token`.
    pub(super) session_token: Option<String>,
}

/// What the profile holds.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// Static keys.
    Static(ProfileCredentials),
    /// Credentials got another way (a role, SSO, a process…), named by its setting.
    Unsupported(&'static str),
    /// Neither file has the profile.
    NoProfile,
    /// The profile has no credentials of its own.
    NoKeys,
}

/// The settings by which a profile gets credentials other than static keys, in the order
/// the SDK considers them (`resolveCredsFromProfile`); a role is assumed even with keys.
const OTHER_WAYS: &[&str] = &[
    "credential_source",
    "web_identity_token_file",
    "sso_session",
    "sso_start_url",
    "credential_process",
];

/// Reads `profile` from `files`.
pub(super) fn read(files: &Files, profile: &str) -> Found {
    let config_section = if profile == "default" {
        "default".to_owned()
    } else {
        format!("profile {profile}")
    };
    let mut settings = None;
    if let Some(config) = files
        .config
        .as_ref()
        .and_then(|p| section(p, &config_section))
    {
        settings = Some(config);
    }
    if let Some(credentials) = files.credentials.as_ref().and_then(|p| section(p, profile)) {
        settings
            .get_or_insert_with(BTreeMap::new)
            .extend(credentials);
    }
    let Some(settings) = settings else {
        return Found::NoProfile;
    };
    let non_empty = |key: &str| settings.get(key).filter(|v| !v.is_empty()).cloned();
    if non_empty("role_arn").is_some() {
        return Found::Unsupported("role_arn");
    }
    if let (Some(access_key_id), Some(secret_access_key)) = (
        non_empty("aws_access_key_id"),
        non_empty("aws_secret_access_key"),
    ) {
        return Found::Static(ProfileCredentials {
            access_key_id,
            secret_access_key,
            session_token: non_empty("aws_session_token"),
        });
    }
    match OTHER_WAYS.iter().find(|key| non_empty(key).is_some()) {
        Some(way) => Found::Unsupported(way),
        None => Found::NoKeys,
    }
}

/// The settings of `[name]` in the file at `path`; `None` if the file cannot be read or has
/// no such section. A repeated section adds to the first, as the SDK's parser merges them.
fn section(path: &PathBuf, name: &str) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut found = None;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = header.split(']').next().unwrap_or_default();
            inside = header.split_whitespace().collect::<Vec<_>>().join(" ") == name;
            if inside {
                found.get_or_insert_with(BTreeMap::new);
            }
            continue;
        }
        if !inside {
            continue;
        }
        if let (Some((key, value)), Some(settings)) = (line.split_once('='), found.as_mut()) {
            settings.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(credentials: &str, config: &str) -> (tempfile::TempDir, Files) {
        let dir = tempfile::tempdir().unwrap();
        let (c, f) = (dir.path().join("credentials"), dir.path().join("config"));
        std::fs::write(&c, credentials).unwrap();
        std::fs::write(&f, config).unwrap();
        (
            dir,
            Files {
                credentials: Some(c),
                config: Some(f),
            },
        )
    }

    #[test]
    fn the_credentials_file_wins_over_the_config_file() {
        let (_dir, f) = files(
            "# comment\n[ ci ]\nAWS_Access_Key_Id = fromcreds\n",
            "[profile ci]\naws_access_key_id = fromconfig\naws_secret_access_key = s\n\
             [default]\naws_access_key_id = d\naws_secret_access_key = ds\n",
        );
        assert_eq!(
            read(&f, "ci"),
            Found::Static(ProfileCredentials {
                access_key_id: "fromcreds".into(),
                secret_access_key: "s".into(),
                session_token: None,
            })
        );
        assert!(matches!(read(&f, "default"), Found::Static(c) if c.access_key_id == "d"));
        assert_eq!(read(&f, "absent"), Found::NoProfile);
    }

    #[test]
    fn other_ways_are_named() {
        let (_dir, f) = files(
            "[keys-and-role]\naws_access_key_id = a\naws_secret_access_key = s\n",
            "[profile keys-and-role]\nrole_arn = r\n[profile sso]\nsso_session = x\n\
             [profile empty]\nregion = eu-west-1\n",
        );
        assert_eq!(read(&f, "keys-and-role"), Found::Unsupported("role_arn"));
        assert_eq!(read(&f, "sso"), Found::Unsupported("sso_session"));
        assert_eq!(read(&f, "empty"), Found::NoKeys);
        let none = Files {
            credentials: None,
            config: None,
        };
        assert_eq!(read(&none, "default"), Found::NoProfile);
    }
}
