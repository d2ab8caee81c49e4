//! Keys in the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.

use super::error::{CredentialsError, Kind, ENVIRONMENT};
use super::{Credentials, Env};

/// `Ok(None)` when neither key is set; half a pair is an error (it is always a mistake, and
/// falling through to another source would use keys the user did not mean).
pub fn credentials(env: Env) -> Result<Option<Credentials>, CredentialsError> {
    match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: env("AWS_SESSION_TOKEN"),
        })),
        (None, None) => Ok(None),
        (id, _) => {
            let (set, unset) = if id.is_some() {
                ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            } else {
                ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
            };
            Err(CredentialsError::new(
                ENVIRONMENT,
                "reading the keys",
                Kind::Config(format!("{set} is set but {unset} is not: set both, or neither")),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::credentials::env_of;

    #[test]
    fn pairs_only() {
        assert_eq!(credentials(&env_of(&[])).unwrap(), None);
        let c = credentials(&env_of(&[
            ("AWS_ACCESS_KEY_ID", "E"),
            ("AWS_SECRET_ACCESS_KEY", "ES"),
            ("AWS_SESSION_TOKEN", "T"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((c.access_key_id.as_str(), c.session_token.as_deref()), ("E", Some("T")));
        let err = credentials(&env_of(&[("AWS_ACCESS_KEY_ID", "E")])).unwrap_err();
        assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY is not"), "{err}");
    }
}
