//! Where keys come from, in the order the AWS SDKs look: the target's keys, the environment,
//! web identity (STS AssumeRoleWithWebIdentity), the shared profile files (static keys,
//! `role_arn` through STS AssumeRole, `credential_process`), the container endpoint (ECS, EKS
//! Pod Identity), then EC2's instance metadata (IMDSv2).
//!
//! [`chain::provider`] picks the source from an [`Env`] lookup (tests pass their own and never
//! touch the process environment); the [`Provider`] it returns hands the client the current
//! keys at every request and refreshes temporary ones before they expire.
//!
//! Imports go one way, down this list: `chain` → `refresh` → `source` → one file per source
//! (`env`, `profile`, `process`, `web_identity`, `sts`, `container`, `imds`) → `fetch`,
//! `error` and the types of this file.

mod chain;
mod container;
mod env;
mod error;
mod fetch;
mod imds;
mod process;
pub mod profile;
mod refresh;
mod source;
mod sts;
mod web_identity;

use std::fmt;

pub use chain::{provider, Options};
pub use error::{CredentialsError, Kind};
pub use profile::{ini_section, resolve_region};
pub use refresh::{Provider, Tuning};

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

impl Credentials {
    /// The access key id as `s4 doctor` shows it: all but the last 4 characters masked.
    pub fn masked_key_id(&self) -> String {
        mask(&self.access_key_id)
    }
}

/// `AKIAIOSFODNN7EXAMPLE` → `****************MPLE`; keys of 4 characters or fewer are masked whole.
pub fn mask(id: &str) -> String {
    let n = id.chars().count();
    if n <= 4 {
        return "*".repeat(n);
    }
    let tail: String = id.chars().skip(n - 4).collect();
    format!("{}{tail}", "*".repeat(n - 4))
}

/// Keys a temporary source handed out, and when they expire (unix seconds; `None`: never).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiring {
    pub creds: Credentials,
    pub expires: Option<i64>,
}

pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, with empty values treated as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub(crate) fn now_secs() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k: &str| map.get(k).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let c = Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "supersecret".into(),
            session_token: Some("tok".into()),
        };
        let s = format!("{c:?}");
        assert!(s.contains("AKID") && !s.contains("supersecret") && !s.contains("tok\""));
        let e = Expiring { creds: c, expires: Some(5) };
        assert!(!format!("{e:?}").contains("supersecret"));
    }

    #[test]
    fn masks_all_but_the_last_four() {
        assert_eq!(mask("AKIAIOSFODNN7EXAMPLE"), "****************MPLE");
        assert_eq!(mask("ABCD"), "****");
        assert_eq!(mask(""), "");
    }
}
