//! EC2 instance metadata, version 2 only (EC2 user guide, "Use IMDSv2"): PUT
//! `/latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`, then, with the token in
//! `X-aws-ec2-metadata-token`, GET `/latest/meta-data/iam/security-credentials/` for the role
//! name and GET `.../{role}` for `{"Code": "Success", "AccessKeyId", "SecretAccessKey",
//! "Token", "Expiration"}`. `AWS_EC2_METADATA_SERVICE_ENDPOINT` moves it,
//! `AWS_EC2_METADATA_DISABLED=true` turns it off.

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;

use super::error::{CredentialsError, Kind, IMDS};
use super::{fetch, Env, Expiring};

const DEFAULT: &str = "http://169.254.169.254";
const DEFAULT_V6: &str = "http://[fd00:ec2::254]";
/// Six hours, the SDKs' choice; s4 asks for a fresh token at every refresh anyway.
const TOKEN_TTL: &str = "21600";

#[derive(Debug, Clone)]
pub struct Imds {
    pub endpoint: String,
    /// Connect and read timeout of each of the three requests.
    pub timeout: Duration,
    /// Set when IMDS is the chain's last resort: where else s4 looked, said when it is not there
    /// either (on a laptop "no credentials found" is the useful message, not "connection refused").
    pub looked_elsewhere: Option<String>,
}

impl Imds {
    /// `None` when `AWS_EC2_METADATA_DISABLED` is `true`.
    pub fn from_env(env: Env, timeout: Duration) -> Option<Imds> {
        if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return None;
        }
        let endpoint = match env("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
            Some(e) => e.trim_end_matches('/').to_string(),
            None if env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE").is_some_and(|m| m.eq_ignore_ascii_case("ipv6")) => {
                DEFAULT_V6.into()
            }
            None => DEFAULT.into(),
        };
        Some(Imds { endpoint, timeout, looked_elsewhere: None })
    }

    pub async fn fetch(&self) -> Result<Expiring, CredentialsError> {
        let client = fetch::client(self.timeout);
        let base = format!("{}/latest", self.endpoint);
        let token_url = format!("{base}/api/token");
        let step = format!("token PUT {token_url}");
        let reply = fetch::send(
            &client,
            Method::PUT,
            &token_url,
            &[("x-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL)],
            Bytes::new(),
            self.timeout,
        )
        .await
        .map_err(|kind| self.not_there(step.clone(), kind))?;
        if reply.status != 200 {
            return Err(CredentialsError::new(IMDS, step, fetch::json_error(reply.status, &reply.body)));
        }
        let token = String::from_utf8_lossy(&reply.body).trim().to_string();
        let auth = [("x-aws-ec2-metadata-token", token.as_str())];

        let roles_url = format!("{base}/meta-data/iam/security-credentials/");
        let role = self.get(&client, &roles_url, &auth).await?;
        let role = String::from_utf8_lossy(&role).lines().next().unwrap_or("").trim().to_string();
        if role.is_empty() {
            let kind = Kind::Status { status: 404, code: String::new(), message: "no role listed".into() };
            return Err(CredentialsError::new(IMDS, format!("GET {roles_url}"), kind));
        }
        let creds_url = format!("{roles_url}{role}");
        let body = self.get(&client, &creds_url, &auth).await?;
        let fail = |kind| CredentialsError::new(IMDS, format!("GET {creds_url}"), kind);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if let Some(code) = v.get("Code").and_then(|c| c.as_str()).filter(|c| *c != "Success") {
            let message = v.get("Message").and_then(|m| m.as_str()).unwrap_or_default().to_string();
            return Err(fail(Kind::Status { status: 200, code: code.into(), message }));
        }
        fetch::json_credentials(&body, "Token").map_err(fail)
    }

    async fn get(
        &self,
        client: &crate::s3::http::HttpClient,
        url: &str,
        auth: &[(&str, &str)],
    ) -> Result<Bytes, CredentialsError> {
        let fail = |kind| CredentialsError::new(IMDS, format!("GET {url}"), kind);
        let reply = fetch::send(client, Method::GET, url, auth, Bytes::new(), self.timeout).await.map_err(fail)?;
        if reply.status != 200 {
            return Err(fail(fetch::json_error(reply.status, &reply.body)));
        }
        Ok(reply.body)
    }

    /// The token PUT failed. No connection at all and nothing else configured: s4 is not on
    /// EC2, and the user needs to hear where it looked. A timeout after connecting is kept as is:
    /// that is the container hop-limit symptom, and its hint says so.
    fn not_there(&self, step: String, kind: Kind) -> CredentialsError {
        match (&self.looked_elsewhere, &kind) {
            (Some(elsewhere), Kind::Transport(why)) => CredentialsError::new(
                IMDS,
                step,
                Kind::NotFound(format!(
                    "no AWS credentials found: {elsewhere}, and no EC2 instance metadata service answered at {} \
                     ({why}); {}",
                    self.endpoint,
                    super::error::ADVICE
                )),
            ),
            _ => CredentialsError::new(IMDS, step, kind),
        }
    }

    pub fn describe(&self) -> String {
        format!("instance metadata (IMDSv2 at {})", self.endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::credentials::env_of;

    #[test]
    fn settings() {
        let t = Duration::from_secs(1);
        assert_eq!(Imds::from_env(&env_of(&[]), t).unwrap().endpoint, DEFAULT);
        assert!(Imds::from_env(&env_of(&[("AWS_EC2_METADATA_DISABLED", "TRUE")]), t).is_none());
        let env = env_of(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/")]);
        assert_eq!(Imds::from_env(&env, t).unwrap().endpoint, "http://127.0.0.1:9");
        let env = env_of(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6")]);
        assert_eq!(Imds::from_env(&env, t).unwrap().endpoint, DEFAULT_V6);
    }
}
