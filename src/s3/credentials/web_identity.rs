//! Web identity (EKS IRSA and other OIDC set-ups): `AWS_WEB_IDENTITY_TOKEN_FILE` +
//! `AWS_ROLE_ARN` [+ `AWS_ROLE_SESSION_NAME`] → STS `AssumeRoleWithWebIdentity`. The token
//! file is read at every refresh: the platform rotates it (EKS does about hourly).

use std::path::PathBuf;

use super::error::{CredentialsError, Kind, WEB_IDENTITY};
use super::sts::{Role, Sts};
use super::{Env, Expiring};

#[derive(Debug, Clone)]
pub struct WebIdentity {
    pub token_file: PathBuf,
    pub role: Role,
    pub sts: Sts,
}

impl WebIdentity {
    /// `Ok(None)` when neither variable is set; one without the other is an error.
    pub fn from_env(env: Env, sts: impl FnOnce() -> Sts) -> Result<Option<WebIdentity>, CredentialsError> {
        match (env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN")) {
            (Some(file), Some(arn)) => Ok(Some(WebIdentity {
                token_file: PathBuf::from(file),
                role: Role::new(arn, env("AWS_ROLE_SESSION_NAME")),
                sts: sts(),
            })),
            (None, None) => Ok(None),
            (file, _) => {
                let (set, unset) = if file.is_some() {
                    ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")
                } else {
                    ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
                };
                Err(CredentialsError::new(
                    WEB_IDENTITY,
                    "reading the settings",
                    Kind::Config(format!("{set} is set but {unset} is not: web identity needs both")),
                ))
            }
        }
    }

    pub async fn fetch(&self) -> Result<Expiring, CredentialsError> {
        let token = read_token(&self.token_file, "AWS_WEB_IDENTITY_TOKEN_FILE", WEB_IDENTITY).await?;
        self.sts.assume_role_with_web_identity(&self.role, &token).await
    }

    pub fn describe(&self) -> String {
        format!("web identity (role {}, token file {})", self.role.arn, self.token_file.display())
    }
}

/// A token file's contents, trimmed; an empty or unreadable file is an error naming the variable.
pub async fn read_token(path: &std::path::Path, var: &str, source: &'static str) -> Result<String, CredentialsError> {
    let step = format!("reading {var}={}", path.display());
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| CredentialsError::new(source, step.clone(), Kind::Io(e.to_string())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CredentialsError::new(source, step, Kind::Io("the file is empty".into())));
    }
    Ok(token.to_string())
}
