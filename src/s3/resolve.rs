//! A target's settings → a client: endpoint, region, addressing style, credentials (the AWS
//! chain of [`credentials`]), read timeout, CA bundle. The one place this is decided, so
//! `s4 sync` and `s4 doctor` agree on it.

use std::fmt;
use std::time::Duration;

use super::client::{Client, Config};
use super::credentials::{self, CredentialsError, Env, Options};
use super::error::Error;

/// What a target says (sync.conf); `None` fields fall back to the environment.
#[derive(Clone, Default)]
pub struct Settings {
    pub bucket: String,
    pub prefix: String,
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id.as_deref().map(credentials::mask))
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The decisions, and where each came from (`s4 doctor` shows them).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub config: Config,
    pub bucket: String,
    pub prefix: String,
    /// "target", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL" or "AWS".
    pub endpoint_from: &'static str,
    /// `AWS_CA_BUNDLE`, when set: the store's own CA, trusted besides the built-in roots.
    pub ca_bundle: Option<String>,
}

#[derive(Debug)]
pub enum ResolveError {
    /// No keys, or a credentials source configured wrongly.
    Credentials(CredentialsError),
    /// A setting s4 cannot use: its name, its value and what to give instead.
    Setting { name: &'static str, value: String, problem: String },
    /// The client refused the configuration (an endpoint without http://, an empty bucket).
    Client(Error),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Credentials(e) => e.fmt(f),
            ResolveError::Setting { name, value, problem } => write!(f, "{name}={value}: {problem}"),
            ResolveError::Client(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ResolveError {}

impl From<CredentialsError> for ResolveError {
    fn from(e: CredentialsError) -> Self {
        ResolveError::Credentials(e)
    }
}

pub fn resolve(s: &Settings, env: Env) -> Result<Resolved, ResolveError> {
    let (endpoint, endpoint_from) = match (&s.endpoint_url, env("AWS_ENDPOINT_URL_S3"), env("AWS_ENDPOINT_URL")) {
        (Some(e), _, _) => (Some(e.clone()), "target"),
        (None, Some(e), _) => (Some(e), "AWS_ENDPOINT_URL_S3"),
        (None, None, Some(e)) => (Some(e), "AWS_ENDPOINT_URL"),
        (None, None, None) => (None, "AWS"),
    };
    let region = credentials::resolve_region(s.region.as_deref(), env);
    let explicit = match (&s.access_key_id, &s.secret_access_key) {
        (Some(id), Some(secret)) => Some((id.as_str(), secret.as_str())),
        _ => None,
    };
    let provider = credentials::provider(explicit, env, &Options::from_env(env))?;
    let mut config = Config::new(endpoint, region, provider);
    config.path_style = match env("S4_ADDRESSING_STYLE").as_deref() {
        None => None,
        Some("virtual") => Some(false),
        Some("path") => Some(true),
        Some(other) => {
            return Err(ResolveError::Setting {
                name: "S4_ADDRESSING_STYLE",
                value: other.into(),
                problem: "choose path or virtual".into(),
            })
        }
    };
    // Tests of stalled stores wait seconds, not the default minute; a slow link may want more.
    if let Some(v) = env("S4_READ_TIMEOUT_SECS") {
        let secs: u64 = v.trim().parse().map_err(|_| ResolveError::Setting {
            name: "S4_READ_TIMEOUT_SECS",
            value: v.clone(),
            problem: "give a whole number of seconds".into(),
        })?;
        config.read_timeout = Duration::from_secs(secs.max(1));
    }
    Ok(Resolved {
        config,
        bucket: s.bucket.clone(),
        prefix: s.prefix.clone(),
        endpoint_from,
        ca_bundle: env("AWS_CA_BUNDLE"),
    })
}

/// The client for a target's bucket, and the key prefix.
pub fn client(s: &Settings, env: Env) -> Result<(Client, String), ResolveError> {
    let r = resolve(s, env)?;
    let client = Client::new(r.config, &r.bucket).map_err(ResolveError::Client)?;
    Ok((client, r.prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::credentials::env_of;

    #[test]
    fn endpoint_region_style_keys() {
        let s = Settings {
            bucket: "b".into(),
            access_key_id: Some("AKIDTARGET".into()),
            secret_access_key: Some("sec".into()),
            ..Settings::default()
        };
        let env = env_of(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_REGION", "eu-west-3"),
            ("S4_ADDRESSING_STYLE", "virtual"),
        ]);
        let r = resolve(&s, &env).unwrap();
        assert_eq!((r.config.endpoint.as_deref(), r.endpoint_from), (Some("http://127.0.0.1:9"), "AWS_ENDPOINT_URL"));
        assert_eq!((r.config.region.as_str(), r.config.path_style), ("eu-west-3", Some(false)));
        assert_eq!(r.config.credentials.kind(), "target");
        let shown = format!("{s:?} {r:?}");
        assert!(!shown.contains("sec\"") && !shown.contains("AKIDTARGET"), "{shown}");
        let env = env_of(&[("S4_ADDRESSING_STYLE", "diagonal")]);
        assert!(resolve(&s, &env)
            .unwrap_err()
            .to_string()
            .contains("S4_ADDRESSING_STYLE=diagonal: choose path or virtual"));
        let env = env_of(&[("AWS_EC2_METADATA_DISABLED", "true")]);
        let nokeys = Settings { bucket: "b".into(), ..Settings::default() };
        assert!(matches!(resolve(&nokeys, &env), Err(ResolveError::Credentials(_))));
    }
}
