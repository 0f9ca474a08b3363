//! The credentials and endpoints of a daemon's cache backends that buildx 0.29 fills in from
//! the client's environment (`build.CreateCaches` in `build/opt.go`), filled in the same way
//! for the `--cache-to`/`--cache-from` entries bud sends a daemon with `--addr`. An attribute
//! the user gave always wins; the environment only fills in what is missing.
//!
//! - `type=gha`: `token` from `ACTIONS_RUNTIME_TOKEN`; `url` from `ACTIONS_CACHE_URL`, else
//!   `ACTIONS_RESULTS_URL`; `url_v2` from `ACTIONS_RESULTS_URL` when the cache service is
//!   version 2 (`version=2`, or `ACTIONS_CACHE_SERVICE_V2` a true boolean). An entry left
//!   without a token or a URL is dropped, as buildx drops it (the daemon would refuse it);
//!   bud says so in a warning. `ghtoken` is never filled in (buildx reads no `GITHUB_TOKEN`).
//! - `type=s3`: `access_key_id`, `secret_access_key` and `session_token` from the AWS SDK's
//!   default credential chain, unless the user gave both keys: the environment
//!   (`AWS_ACCESS_KEY_ID` or `AWS_ACCESS_KEY`, `AWS_SECRET_ACCESS_KEY` or `AWS_SECRET_KEY`,
//!   `AWS_SESSION_TOKEN`), else the static keys of the profile in the shared files
//!   (`aws_profile`). Left out, with a warning when they are what the chain would use: web
//!   identity, roles, SSO, `credential_process`, ECS and EC2 instance credentials, which take
//!   network calls to STS or metadata services (no warning for EC2's, which bud cannot tell
//!   are there without asking); the daemon's own chain still applies.
//! - `type=azblob`: nothing, as in buildx (BuildKit's azblob reads its own environment).
//!
//! The values filled in are secrets: [`is_secret`] names the attributes no log or message
//! may show (buildx's own list of sensitive keys).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::aws_profile::{self, ProfileCredentials};

/// How a variable is looked up: its value if set.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// What a process's environment holds, read through this so tests can give their own.
pub struct Environment<'a> {
    var: Lookup<'a>,
    home: Option<PathBuf>,
}

impl Environment<'static> {
    /// This process's own variables and home directory.
    pub fn of_process() -> Self {
        Environment {
            var: Box::new(|name| std::env::var(name).ok()),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }
}

impl<'a> Environment<'a> {
    /// An environment of `var` and `home`.
    pub fn new(var: impl Fn(&str) -> Option<String> + 'a, home: Option<PathBuf>) -> Self {
        Environment {
            var: Box::new(var),
            home,
        }
    }

    /// A variable, set (even empty) or not, as Go's `os.LookupEnv`.
    fn lookup(&self, name: &str) -> Option<String> {
        (self.var)(name)
    }

    /// The first of `names` set to a non-empty value, as the AWS SDK reads its variables.
    fn first_non_empty(&self, names: &[&str]) -> Option<String> {
        names
            .iter()
            .find_map(|name| self.lookup(name).filter(|v| !v.is_empty()))
    }
}

/// The attributes whose values are secrets: never printed, in any log or message.
pub fn is_secret(attribute: &str) -> bool {
    matches!(
        attribute,
        "token" | "ghtoken" | "access_key_id" | "secret_access_key" | "session_token"
    )
}

/// What became of one entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Filled {
    /// Sent to the daemon, with what the environment added; `note` says what bud could not
    /// read where buildx would have.
    Kept {
        /// Something left out that buildx would have read, for a warning.
        note: Option<String>,
    },
    /// Left out, as buildx leaves it out: the reason, for a warning.
    Dropped(String),
}

/// Fills in the attributes of a `kind` cache entry that buildx fills in from `env`.
pub fn fill_in(kind: &str, attrs: &mut BTreeMap<String, String>, env: &Environment) -> Filled {
    match kind {
        "gha" => fill_in_gha(attrs, env),
        "s3" => Filled::Kept {
            note: fill_in_s3(attrs, env),
        },
        _ => Filled::Kept { note: None },
    }
}

fn fill_in_gha(attrs: &mut BTreeMap<String, String>, env: &Environment) -> Filled {
    // https://github.com/actions/toolkit/blob/main/packages/cache/src/internal/config.ts
    let version_2 = match attrs.get("version") {
        Some(version) => version == "2",
        None => env
            .lookup("ACTIONS_CACHE_SERVICE_V2")
            .is_some_and(|v| bud_frontend::gobool::parse_go_bool(&v) == Some(true)),
    };
    if !attrs.contains_key("token")
        && let Some(token) = env.lookup("ACTIONS_RUNTIME_TOKEN")
    {
        attrs.insert("token".into(), token);
    }
    if version_2
        && !attrs.contains_key("url_v2")
        && let Some(url) = env.lookup("ACTIONS_RESULTS_URL")
    {
        attrs.insert("url_v2".into(), url);
    }
    if !attrs.contains_key("url")
        && let Some(url) = env
            .lookup("ACTIONS_CACHE_URL")
            .or_else(|| env.lookup("ACTIONS_RESULTS_URL"))
    {
        attrs.insert("url".into(), url);
    }
    let present = |name: &str| attrs.get(name).is_some_and(|v| !v.is_empty());
    if !present("token") {
        return Filled::Dropped(
            "no token (token= or ACTIONS_RUNTIME_TOKEN), so left out as buildx leaves it out"
                .into(),
        );
    }
    if !present("url") && !present("url_v2") {
        return Filled::Dropped(
            "no cache service URL (url=, url_v2=, ACTIONS_CACHE_URL or ACTIONS_RESULTS_URL), \
             so left out as buildx leaves it out"
                .into(),
        );
    }
    Filled::Kept { note: None }
}

/// Fills in the s3 keys; returns a note when the chain would go where bud does not follow.
fn fill_in_s3(attrs: &mut BTreeMap<String, String>, env: &Environment) -> Option<String> {
    let has_key = attrs.contains_key("access_key_id");
    let has_secret = attrs.contains_key("secret_access_key");
    // Both keys given: buildx leaves the session token alone too.
    if has_key && has_secret {
        return None;
    }
    let credentials = match aws_credentials(env) {
        Ok(credentials) => credentials,
        Err(note) => return note,
    };
    let mut fill = |name: &str, value: String| {
        if !attrs.contains_key(name) && !value.is_empty() {
            attrs.insert(name.to_owned(), value);
        }
    };
    fill("access_key_id", credentials.access_key_id);
    fill("secret_access_key", credentials.secret_access_key);
    fill(
        "session_token",
        credentials.session_token.unwrap_or_default(),
    );
    None
}

/// The AWS SDK's default chain, as far as bud follows it; `Err` holds the note for what it
/// does not (none when the chain found nothing it could have used).
fn aws_credentials(env: &Environment) -> Result<ProfileCredentials, Option<String>> {
    let access_key_id = env.first_non_empty(&["AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"]);
    let secret_access_key = env.first_non_empty(&["AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"]);
    if let (Some(access_key_id), Some(secret_access_key)) = (access_key_id, secret_access_key) {
        return Ok(ProfileCredentials {
            access_key_id,
            secret_access_key,
            session_token: env.lookup("AWS_SESSION_TOKEN").filter(|v| !v.is_empty()),
        });
    }
    if env
        .first_non_empty(&["AWS_WEB_IDENTITY_TOKEN_FILE"])
        .is_some()
    {
        return Err(Some(
            "AWS_WEB_IDENTITY_TOKEN_FILE: bud does not assume a web identity role; give \
             access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                .into(),
        ));
    }
    let explicit = env.first_non_empty(&["AWS_PROFILE", "AWS_DEFAULT_PROFILE"]);
    let profile = explicit.clone().unwrap_or_else(|| "default".into());
    let files = aws_profile::Files {
        credentials: env
            .first_non_empty(&["AWS_SHARED_CREDENTIALS_FILE"])
            .map(PathBuf::from)
            .or_else(|| env.home.as_ref().map(|h| h.join(".aws/credentials"))),
        config: env
            .first_non_empty(&["AWS_CONFIG_FILE"])
            .map(PathBuf::from)
            .or_else(|| env.home.as_ref().map(|h| h.join(".aws/config"))),
    };
    match aws_profile::read(&files, &profile) {
        aws_profile::Found::Static(credentials) => Ok(credentials),
        aws_profile::Found::Unsupported(setting) => Err(Some(format!(
            "the AWS profile {profile:?} gets its credentials through {setting}, which bud does \
             not follow; give access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY"
        ))),
        // The SDK fails on a profile named but absent, and buildx then fills in nothing.
        aws_profile::Found::NoProfile if explicit.is_some() => Err(Some(format!(
            "the AWS profile {profile:?} is in neither the shared credentials nor the config file"
        ))),
        // Next in the chain: the container credentials endpoint (ECS), then instance
        // metadata, whose presence bud cannot tell without asking it.
        aws_profile::Found::NoProfile | aws_profile::Found::NoKeys => Err(env
            .first_non_empty(&[
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            ])
            .map(|_| {
                "AWS_CONTAINER_CREDENTIALS_*: bud does not ask the container credentials \
                 endpoint; give access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY"
                    .to_owned()
            })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)], home: Option<PathBuf>) -> Environment<'a> {
        Environment::new(
            move |name| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            },
            home,
        )
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// buildx's own case (build/opt_test.go): the runtime token and cache URL fill in a gha
    /// entry, the AWS variables an s3 one, and what the user gave stays.
    #[test]
    fn gha_and_s3_are_filled_in_from_the_environment_and_given_attributes_win() {
        let vars = [
            ("ACTIONS_RUNTIME_TOKEN", "sensitive_token"),
            ("ACTIONS_CACHE_URL", "https://cache.github.com"),
            ("AWS_ACCESS_KEY_ID", "definitely_dont_look_here"),
            ("AWS_SECRET_ACCESS_KEY", "hackers_please_dont_steal"),
            ("AWS_SESSION_TOKEN", "not_a_mitm_attack"),
        ];
        let e = env(&vars, None);
        let mut gha = attrs(&[("scope", "s")]);
        assert_eq!(fill_in("gha", &mut gha, &e), Filled::Kept { note: None });
        assert_eq!(
            gha,
            attrs(&[
                ("scope", "s"),
                ("token", "sensitive_token"),
                ("url", "https://cache.github.com")
            ])
        );
        let mut given = attrs(&[("token", "mine"), ("url", "http://u")]);
        fill_in("gha", &mut given, &e);
        assert_eq!(given, attrs(&[("token", "mine"), ("url", "http://u")]));

        let mut s3 = attrs(&[("bucket", "b")]);
        fill_in("s3", &mut s3, &e);
        assert_eq!(
            s3,
            attrs(&[
                ("bucket", "b"),
                ("access_key_id", "definitely_dont_look_here"),
                ("secret_access_key", "hackers_please_dont_steal"),
                ("session_token", "not_a_mitm_attack"),
            ])
        );
        // Both keys given: not even the session token is added.
        let mut keys = attrs(&[("access_key_id", "a"), ("secret_access_key", "s")]);
        fill_in("s3", &mut keys, &e);
        assert_eq!(
            keys,
            attrs(&[("access_key_id", "a"), ("secret_access_key", "s")])
        );
        // One key given: the other and the session token come from the environment.
        let mut one = attrs(&[("access_key_id", "a")]);
        fill_in("s3", &mut one, &e);
        assert_eq!(one["access_key_id"], "a");
        assert_eq!(one["secret_access_key"], "hackers_please_dont_steal");
        assert_eq!(one["session_token"], "not_a_mitm_attack");

        let mut azure = attrs(&[("account_url", "u")]);
        fill_in("azblob", &mut azure, &e);
        assert_eq!(azure, attrs(&[("account_url", "u")]));
    }

    /// Version 2 of the cache service: url_v2 from ACTIONS_RESULTS_URL, which is also the
    /// url when ACTIONS_CACHE_URL is not set.
    #[test]
    fn the_gha_cache_service_v2_takes_the_results_url() {
        let vars = [
            ("ACTIONS_RUNTIME_TOKEN", "t"),
            ("ACTIONS_RESULTS_URL", "https://results/"),
            ("ACTIONS_CACHE_SERVICE_V2", "True"),
        ];
        let mut a = attrs(&[]);
        fill_in("gha", &mut a, &env(&vars, None));
        assert_eq!(
            a,
            attrs(&[
                ("token", "t"),
                ("url", "https://results/"),
                ("url_v2", "https://results/")
            ])
        );
        // version=1 given: no url_v2, whatever the environment says.
        let mut v1 = attrs(&[("version", "1")]);
        fill_in("gha", &mut v1, &env(&vars, None));
        assert!(!v1.contains_key("url_v2"), "{v1:?}");
        // Not a Go boolean: version 1.
        let vars = [
            ("ACTIONS_RUNTIME_TOKEN", "t"),
            ("ACTIONS_RESULTS_URL", "https://results/"),
            ("ACTIONS_CACHE_SERVICE_V2", "yes"),
        ];
        let mut a = attrs(&[]);
        fill_in("gha", &mut a, &env(&vars, None));
        assert!(!a.contains_key("url_v2"), "{a:?}");
    }

    /// Without a token or a URL a gha entry is dropped, as buildx drops it.
    #[test]
    fn a_gha_entry_without_token_or_url_is_dropped() {
        let mut a = attrs(&[("url", "http://u")]);
        assert!(matches!(
            fill_in("gha", &mut a, &env(&[], None)),
            Filled::Dropped(why) if why.starts_with("no token")
        ));
        let mut a = attrs(&[]);
        assert!(matches!(
            fill_in("gha", &mut a, &env(&[("ACTIONS_RUNTIME_TOKEN", "t")], None)),
            Filled::Dropped(why) if why.starts_with("no cache service URL")
        ));
        // Set but empty counts as missing.
        let mut a = attrs(&[("url", "http://u")]);
        let vars = [("ACTIONS_RUNTIME_TOKEN", "")];
        assert!(matches!(
            fill_in("gha", &mut a, &env(&vars, None)),
            Filled::Dropped(_)
        ));
    }

    /// The shared files under HOME, the profile AWS_PROFILE names; the environment's keys
    /// come first; a role is noted, not followed.
    #[test]
    fn s3_keys_come_from_the_shared_files_profile() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = sd\n\
             [ci]\naws_access_key_id=AKIDCI\naws_secret_access_key=sc\naws_session_token=tc\n",
        )
        .unwrap();
        std::fs::write(
            home.path().join(".aws/config"),
            "[profile assumer]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = ci\n\
             [profile empty]\nregion = eu-west-1\n",
        )
        .unwrap();
        let home = Some(home.path().to_path_buf());
        let filled = |vars: &[(&str, &str)]| {
            let mut a = attrs(&[("bucket", "b")]);
            let filled = fill_in("s3", &mut a, &env(vars, home.clone()));
            (a, filled)
        };
        let (a, _) = filled(&[]);
        assert_eq!(a["access_key_id"], "AKIDDEFAULT");
        assert!(!a.contains_key("session_token"));
        let (a, _) = filled(&[("AWS_PROFILE", "ci")]);
        assert_eq!(
            (a["access_key_id"].as_str(), a["session_token"].as_str()),
            ("AKIDCI", "tc")
        );
        let (a, _) = filled(&[
            ("AWS_PROFILE", "ci"),
            ("AWS_ACCESS_KEY", "AKIDENV"),
            ("AWS_SECRET_KEY", "se"),
        ]);
        assert_eq!(a["access_key_id"], "AKIDENV");
        let (a, note) = filled(&[("AWS_PROFILE", "assumer")]);
        assert!(!a.contains_key("access_key_id"), "{a:?}");
        assert!(
            matches!(&note, Filled::Kept { note: Some(n) } if n.contains("role_arn")),
            "{note:?}"
        );
        let (a, note) = filled(&[
            ("AWS_PROFILE", "empty"),
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/x",
            ),
        ]);
        assert!(!a.contains_key("access_key_id"), "{a:?}");
        assert!(
            matches!(&note, Filled::Kept { note: Some(n) } if n.contains("container credentials")),
            "{note:?}"
        );
        let (a, note) = filled(&[("AWS_PROFILE", "absent")]);
        assert!(!a.contains_key("access_key_id"), "{a:?}");
        assert!(
            matches!(&note, Filled::Kept { note: Some(n) } if n.contains("\"absent\"")),
            "{note:?}"
        );
    }
}
