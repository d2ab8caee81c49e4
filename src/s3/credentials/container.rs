//! The container credentials endpoint: ECS tasks (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` on
//! http://169.254.170.2) and EKS Pod Identity or any local agent
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, with `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`, re-read
//! at every refresh, or `AWS_CONTAINER_AUTHORIZATION_TOKEN`). A GET answers
//! `{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}` (AWS SDKs and Tools reference,
//! "Container credential provider").

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;

use super::error::{CredentialsError, Kind, CONTAINER};
use super::{fetch, Env, Expiring};

const ECS_HOST: &str = "http://169.254.170.2";

#[derive(Clone)]
pub enum Token {
    File(PathBuf),
    Value(String),
}

/// The token is a secret: `Debug` shows only where it comes from.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::File(p) => write!(f, "File({})", p.display()),
            Token::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Container {
    pub url: String,
    pub token: Option<Token>,
    pub timeout: Duration,
}

impl Container {
    /// `Ok(None)` when neither URI variable is set; a FULL_URI to a host the SDKs would not
    /// trust is an error (it would hand a token to anyone on the network).
    pub fn from_env(env: Env, timeout: Duration) -> Result<Option<Container>, CredentialsError> {
        let url = if let Some(rel) = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            let sep = if rel.starts_with('/') { "" } else { "/" };
            format!("{ECS_HOST}{sep}{rel}")
        } else if let Some(full) = env("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            if !allowed(&full) {
                return Err(CredentialsError::new(
                    CONTAINER,
                    format!("checking AWS_CONTAINER_CREDENTIALS_FULL_URI={full}"),
                    Kind::Config(
                        "s4 sends the authorization token only over https, or over http to a loopback \
                         address, 169.254.170.2, 169.254.170.23 or fd00:ec2::23 (as the AWS SDKs do)"
                            .into(),
                    ),
                ));
            }
            full
        } else {
            return Ok(None);
        };
        let token = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
            .map(|f| Token::File(PathBuf::from(f)))
            .or_else(|| env("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(Token::Value));
        Ok(Some(Container { url, token, timeout }))
    }

    pub async fn fetch(&self) -> Result<Expiring, CredentialsError> {
        let token = match &self.token {
            None => None,
            Some(Token::Value(v)) => Some(v.trim().to_string()),
            Some(Token::File(p)) => {
                Some(super::web_identity::read_token(p, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", CONTAINER).await?)
            }
        };
        let step = format!("GET {}", self.url);
        let fail = |kind: Kind| CredentialsError::new(CONTAINER, step.clone(), kind);
        if token.as_deref().is_some_and(|t| t.contains(['\r', '\n'])) {
            return Err(fail(Kind::Config("the authorization token holds a line break".into())));
        }
        let headers: Vec<(&str, &str)> = token.as_deref().map(|t| ("authorization", t)).into_iter().collect();
        let client = fetch::client(self.timeout);
        let reply =
            fetch::send(&client, Method::GET, &self.url, &headers, Bytes::new(), self.timeout).await.map_err(&fail)?;
        if reply.status != 200 {
            return Err(fail(fetch::json_error(reply.status, &reply.body)));
        }
        fetch::json_credentials(&reply.body, "Token").map_err(fail)
    }

    pub fn describe(&self) -> String {
        let auth = match &self.token {
            None => String::new(),
            Some(Token::File(p)) => format!(", token file {}", p.display()),
            Some(Token::Value(_)) => ", token from AWS_CONTAINER_AUTHORIZATION_TOKEN".into(),
        };
        format!("container endpoint ({}{auth})", self.url)
    }
}

/// The SDKs' rule for FULL_URI: https to anywhere; http only to loopback, the ECS endpoint
/// and EKS Pod Identity's addresses. Host names other than `localhost` are not looked up.
pub fn allowed(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return fetch::host_of(url).is_some();
    }
    if !lower.starts_with("http://") {
        return false;
    }
    let Some(host) = fetch::host_of(url) else { return false };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => {
            ip.is_loopback()
                || ["169.254.170.2", "169.254.170.23", "fd00:ec2::23"].iter().any(|a| a.parse::<IpAddr>() == Ok(ip))
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::credentials::env_of;

    #[test]
    fn hosts_the_sdks_allow() {
        for ok in [
            "https://creds.example.com/x",
            "http://127.0.0.1:8080/c",
            "http://127.1.2.3/c",
            "http://localhost/c",
            "http://[::1]:9/c",
            "http://169.254.170.2/v2/credentials",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
        ] {
            assert!(allowed(ok), "{ok}");
        }
        for bad in
            ["http://10.0.0.1/c", "http://example.com/c", "http://169.254.169.254/", "ftp://127.0.0.1/", "http://"]
        {
            assert!(!allowed(bad), "{bad}");
        }
    }

    #[test]
    fn settings() {
        let t = Duration::from_secs(1);
        assert!(Container::from_env(&env_of(&[]), t).unwrap().is_none());
        let c = Container::from_env(&env_of(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc")]), t)
            .unwrap()
            .unwrap();
        assert_eq!(c.url, "http://169.254.170.2/v2/credentials/abc");
        let env = env_of(&[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.1.1.1/creds"),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "secret-token"),
        ]);
        let err = Container::from_env(&env, t).unwrap_err();
        assert!(err.to_string().contains("only over https"), "{err}");
        let env = env_of(&[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/creds"),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "secret-token"),
        ]);
        let c = Container::from_env(&env, t).unwrap().unwrap();
        assert!(!format!("{c:?}").contains("secret-token") && !c.describe().contains("secret-token"));
    }
}
