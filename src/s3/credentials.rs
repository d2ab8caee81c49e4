//! Where keys and region come from: explicit (a target's config), then the environment,
//! then `~/.aws/credentials` / `~/.aws/config` under `AWS_PROFILE` (default `default`).
//! The environment is passed in as a lookup function so resolution is testable.

use std::fmt;
use std::path::{Path, PathBuf};

/// Access keys. `Debug` never shows the secret or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, with empty values treated as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn home(env: Env) -> Option<PathBuf> {
    env("HOME").map(PathBuf::from)
}

fn profile(env: Env) -> String {
    env("AWS_PROFILE").unwrap_or_else(|| "default".into())
}

fn credentials_file(env: Env) -> Option<PathBuf> {
    env("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from).or_else(|| home(env).map(|h| h.join(".aws/credentials")))
}

fn config_file(env: Env) -> Option<PathBuf> {
    env("AWS_CONFIG_FILE").map(PathBuf::from).or_else(|| home(env).map(|h| h.join(".aws/config")))
}

/// The key/value pairs of one `[section]` of an INI file as the AWS tools write them.
pub fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    out
}

fn lookup(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn from_pairs(pairs: &[(String, String)]) -> Option<Credentials> {
    Some(Credentials {
        access_key_id: lookup(pairs, "aws_access_key_id")?,
        secret_access_key: lookup(pairs, "aws_secret_access_key")?,
        session_token: lookup(pairs, "aws_session_token"),
    })
}

/// The section name of a profile in `~/.aws/config`.
fn config_section(profile: &str) -> String {
    if profile == "default" {
        "default".into()
    } else {
        format!("profile {profile}")
    }
}

/// Resolve credentials: explicit pair, environment, shared credentials file, shared config file.
/// `Err` says where we looked, so the user knows what to set.
pub fn resolve(explicit: Option<(&str, &str)>, env: Env) -> Result<Credentials, String> {
    if let Some((id, secret)) = explicit {
        return Ok(Credentials { access_key_id: id.into(), secret_access_key: secret.into(), session_token: None });
    }
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: env("AWS_SESSION_TOKEN"),
        });
    }
    let profile = profile(env);
    if let Some(text) = credentials_file(env).as_deref().and_then(read) {
        if let Some(c) = from_pairs(&ini_section(&text, &profile)) {
            return Ok(c);
        }
    }
    if let Some(text) = config_file(env).as_deref().and_then(read) {
        if let Some(c) = from_pairs(&ini_section(&text, &config_section(&profile))) {
            return Ok(c);
        }
    }
    Err(format!(
        "no AWS credentials found: the target has none, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are \
         unset, and profile \"{profile}\" has no keys in ~/.aws/credentials or ~/.aws/config; \
         set them with `s4 edit TARGET` or in the environment"
    ))
}

/// Region: explicit, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else us-east-1.
pub fn resolve_region(explicit: Option<&str>, env: Env) -> String {
    if let Some(r) = explicit.filter(|r| !r.is_empty()) {
        return r.into();
    }
    if let Some(r) = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")) {
        return r;
    }
    let section = config_section(&profile(env));
    config_file(env)
        .as_deref()
        .and_then(read)
        .and_then(|text| lookup(&ini_section(&text, &section), "region"))
        .unwrap_or_else(|| "us-east-1".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "supersecret".into(),
            session_token: Some("tok".into()),
        };
        let s = format!("{c:?}");
        assert!(s.contains("AKID") && !s.contains("supersecret") && !s.contains("tok\""));
    }

    #[test]
    fn explicit_beats_environment() {
        let env = env_of(&[("AWS_ACCESS_KEY_ID", "E"), ("AWS_SECRET_ACCESS_KEY", "ES")]);
        assert_eq!(resolve(Some(("X", "XS")), &env).unwrap().access_key_id, "X");
        let c = resolve(None, &env).unwrap();
        assert_eq!((c.access_key_id.as_str(), c.session_token), ("E", None));
    }

    #[test]
    fn shared_files_and_profiles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".aws")).unwrap();
        std::fs::write(
            dir.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n\n[work]\naws_access_key_id=W\naws_secret_access_key=WS\naws_session_token=WT\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".aws/config"),
            "[default]\nregion = eu-west-1\n[profile work]\nregion=ap-south-1\n[profile cfgonly]\naws_access_key_id=C\naws_secret_access_key=CS\n",
        )
        .unwrap();
        let home = dir.path().to_str().unwrap();
        let env = env_of(&[("HOME", home)]);
        assert_eq!(resolve(None, &env).unwrap().access_key_id, "D");
        assert_eq!(resolve_region(None, &env), "eu-west-1");
        let env = env_of(&[("HOME", home), ("AWS_PROFILE", "work")]);
        let c = resolve(None, &env).unwrap();
        assert_eq!(c.session_token.as_deref(), Some("WT"));
        assert_eq!(resolve_region(None, &env), "ap-south-1");
        assert_eq!(resolve_region(Some("us-west-2"), &env), "us-west-2");
        let env = env_of(&[("HOME", home), ("AWS_PROFILE", "cfgonly")]);
        assert_eq!(resolve(None, &env).unwrap().access_key_id, "C");
        let env = env_of(&[("HOME", home), ("AWS_PROFILE", "missing")]);
        let err = resolve(None, &env).unwrap_err();
        assert!(err.contains("\"missing\""), "{err}");
        assert_eq!(resolve_region(None, &env_of(&[])), "us-east-1");
    }
}
