//! STS, the two calls s4 needs: `AssumeRole` (signed with our own SigV4, service `sts`) and
//! `AssumeRoleWithWebIdentity` (unsigned: the token is the proof). Both are form POSTs to `/`
//! (STS API reference, "Making Query Requests"); answers are `<{Op}Response>` documents, errors
//! `<ErrorResponse><Error><Code>..</Code><Message>..</Message></Error></ErrorResponse>`.

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;

use super::error::{CredentialsError, Kind};
use super::{fetch, Credentials, Env, Expiring};
use crate::s3::sigv4;
use crate::s3::xml::{self, Xml, XmlError};

/// Where STS is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct Sts {
    /// `https://sts.{region}.amazonaws.com`, or `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    /// The signing region of AssumeRole.
    pub region: String,
    pub timeout: Duration,
}

/// The role to assume. `Debug` is safe: nothing here is secret.
#[derive(Debug, Clone)]
pub struct Role {
    pub arn: String,
    pub session_name: String,
    pub external_id: Option<String>,
    pub duration_secs: Option<u32>,
}

impl Role {
    pub fn new(arn: String, session_name: Option<String>) -> Self {
        // Sessions are named after the tool, as the SDKs do; the time tells sessions apart in
        // CloudTrail.
        let session_name = session_name.unwrap_or_else(|| format!("s4-{}", super::now_secs()));
        Role { arn, session_name, external_id: None, duration_secs: None }
    }
}

impl Sts {
    /// The regional endpoint (the SDKs' default since 2022; the global one is legacy), unless
    /// `AWS_ENDPOINT_URL_STS` or `AWS_ENDPOINT_URL` names another.
    pub fn from_env(env: Env, region: &str, timeout: Duration) -> Sts {
        let region = if region.is_empty() { "us-east-1" } else { region };
        let endpoint = env("AWS_ENDPOINT_URL_STS")
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
        Sts { endpoint, region: region.to_string(), timeout }
    }

    pub async fn assume_role(&self, role: &Role, creds: &Credentials) -> Result<Expiring, CredentialsError> {
        let mut params = vec![("RoleArn", role.arn.clone()), ("RoleSessionName", role.session_name.clone())];
        if let Some(id) = &role.external_id {
            params.push(("ExternalId", id.clone()));
        }
        if let Some(d) = role.duration_secs {
            params.push(("DurationSeconds", d.to_string()));
        }
        self.call(super::error::ASSUME_ROLE, "AssumeRole", &params, Some(creds)).await
    }

    pub async fn assume_role_with_web_identity(&self, role: &Role, token: &str) -> Result<Expiring, CredentialsError> {
        let mut params = vec![
            ("RoleArn", role.arn.clone()),
            ("RoleSessionName", role.session_name.clone()),
            ("WebIdentityToken", token.to_string()),
        ];
        if let Some(d) = role.duration_secs {
            params.push(("DurationSeconds", d.to_string()));
        }
        self.call(super::error::WEB_IDENTITY, "AssumeRoleWithWebIdentity", &params, None).await
    }

    async fn call(
        &self,
        source: &'static str,
        op: &str,
        params: &[(&str, String)],
        signer: Option<&Credentials>,
    ) -> Result<Expiring, CredentialsError> {
        let step = format!("{op} of {} at {}", role_arn(params), self.endpoint);
        let fail = |kind: Kind| CredentialsError::new(source, step.clone(), kind);
        let body = form_body(op, params);
        let url = format!("{}/", self.endpoint);
        let uri: hyper::Uri = url.parse().map_err(|e| fail(Kind::Config(format!("bad STS endpoint: {e}"))))?;
        let host = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
        let path = uri.path().to_string();
        const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
        let mut headers: Vec<(&str, String)> = vec![("content-type", FORM.into())];
        if let Some(creds) = signer {
            let hash = sigv4::sha256_hex(body.as_bytes());
            let signed = sigv4::sign(
                &sigv4::Request {
                    method: "POST",
                    host: &host,
                    path: &path,
                    query: "",
                    headers: &[("content-type", FORM)],
                    payload_hash: &hash,
                },
                &sigv4::Credentials {
                    access_key_id: &creds.access_key_id,
                    secret_access_key: &creds.secret_access_key,
                    session_token: creds.session_token.as_deref(),
                },
                &self.region,
                "sts",
                super::now_secs(),
            );
            headers.extend(signed);
        }
        let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let client = fetch::client(self.timeout.min(Duration::from_secs(5)));
        let reply =
            fetch::send(&client, Method::POST, &url, &refs, Bytes::from(body), self.timeout).await.map_err(&fail)?;
        if !(200..300).contains(&reply.status) {
            return Err(fail(parse_error(reply.status, &reply.body)));
        }
        parse_credentials(op, &reply.body).map_err(|e| fail(Kind::Malformed(e.to_string())))
    }
}

fn role_arn<'a>(params: &'a [(&str, String)]) -> &'a str {
    params.iter().find(|(k, _)| *k == "RoleArn").map(|(_, v)| v.as_str()).unwrap_or("")
}

/// `Action=..&Version=2011-06-15&..`, values percent-encoded as SigV4 encodes them (a valid
/// form encoding: unreserved characters kept, every other byte `%XX`).
fn form_body(op: &str, params: &[(&str, String)]) -> String {
    let mut body = format!("Action={op}&Version=2011-06-15");
    for (k, v) in params {
        body.push('&');
        body.push_str(k);
        body.push('=');
        body.push_str(&sigv4::uri_encode(v, true));
    }
    body
}

/// `<{op}Response><{op}Result><Credentials>AccessKeyId, SecretAccessKey, SessionToken,
/// Expiration</Credentials>..` → the keys and when they expire.
pub fn parse_credentials(op: &str, body: &[u8]) -> Result<Expiring, XmlError> {
    let mut x = Xml::new(body);
    x.expect_root(&format!("{op}Response"))?;
    let result_name = format!("{op}Result");
    let mut found = None;
    x.children(|x, name| {
        if name != result_name {
            return x.skip();
        }
        x.children(|x, name| {
            if name != "Credentials" {
                return x.skip();
            }
            let [id, secret, token, expiration] =
                x.fields(["AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"])?;
            found = Some((id, secret, token, expiration));
            Ok(())
        })
    })?;
    let (id, secret, token, expiration) =
        found.ok_or_else(|| XmlError(format!("missing <Credentials> in <{result_name}>")))?;
    let expiration = xml::required(expiration, "Expiration", "Credentials")?;
    let expires = xml::parse_iso8601(&expiration)
        .ok_or_else(|| XmlError(format!("<Expiration> is not an ISO 8601 time: {expiration:?}")))?;
    Ok(Expiring {
        creds: Credentials {
            access_key_id: xml::required(id.and_then(xml::non_empty), "AccessKeyId", "Credentials")?,
            secret_access_key: xml::required(secret.and_then(xml::non_empty), "SecretAccessKey", "Credentials")?,
            session_token: Some(xml::required(token.and_then(xml::non_empty), "SessionToken", "Credentials")?),
        },
        expires: Some(expires),
    })
}

/// An error answer: `<ErrorResponse>` with its code and message, else the status alone.
pub fn parse_error(status: u16, body: &[u8]) -> Kind {
    let mut x = Xml::new(body);
    let mut code = String::new();
    let mut message = String::new();
    if x.expect_root("ErrorResponse").is_ok() {
        let _ = x.children(|x, name| {
            if name != "Error" {
                return x.skip();
            }
            let [c, m] = x.fields(["Code", "Message"])?;
            code = c.unwrap_or_default();
            message = m.unwrap_or_default();
            Ok(())
        });
    }
    Kind::Status { status, code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape of the STS API reference's AssumeRole example.
    const ASSUME_ROLE: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>Alice</SourceIdentity>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/demo/TestAR</Arn>
      <AssumedRoleId>ARO123EXAMPLE123:TestAR</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <SessionToken>AQoDYXdzEPT//////////wEXAMPLEtc764</SessionToken>
      <Expiration>2019-11-09T13:34:41Z</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#;

    #[test]
    fn parses_assume_role() {
        let e = parse_credentials("AssumeRole", ASSUME_ROLE.as_bytes()).unwrap();
        assert_eq!(e.creds.access_key_id, "ASIAIOSFODNN7EXAMPLE");
        assert_eq!(e.creds.session_token.as_deref(), Some("AQoDYXdzEPT//////////wEXAMPLEtc764"));
        assert_eq!(e.expires, Some(1_573_306_481));
        let web = ASSUME_ROLE
            .replace("AssumeRoleResponse", "AssumeRoleWithWebIdentityResponse")
            .replace("AssumeRoleResult", "AssumeRoleWithWebIdentityResult");
        assert!(parse_credentials("AssumeRoleWithWebIdentity", web.as_bytes()).is_ok());
        // The wrong document, a cut-off one, one without keys.
        assert!(parse_credentials("AssumeRoleWithWebIdentity", ASSUME_ROLE.as_bytes()).is_err());
        assert!(parse_credentials("AssumeRole", &ASSUME_ROLE.as_bytes()[..300]).is_err());
        let nokey = ASSUME_ROLE.replace("<AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>", "");
        let err = parse_credentials("AssumeRole", nokey.as_bytes()).unwrap_err();
        assert!(err.0.contains("AccessKeyId"), "{err}");
    }

    #[test]
    fn parses_error_response() {
        let body = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRole</Message></Error>
  <RequestId>4f3c7a0e</RequestId></ErrorResponse>"#;
        assert_eq!(
            parse_error(403, body.as_bytes()),
            Kind::Status {
                status: 403,
                code: "AccessDenied".into(),
                message: "Not authorized to perform sts:AssumeRole".into()
            }
        );
        assert_eq!(
            parse_error(500, b"oops"),
            Kind::Status { status: 500, code: String::new(), message: String::new() }
        );
    }

    #[test]
    fn endpoints_and_form() {
        let env = super::super::env_of(&[]);
        assert_eq!(
            Sts::from_env(&env, "eu-west-1", Duration::from_secs(1)).endpoint,
            "https://sts.eu-west-1.amazonaws.com"
        );
        let env = super::super::env_of(&[("AWS_ENDPOINT_URL", "http://a:1/"), ("AWS_ENDPOINT_URL_STS", "http://b:2")]);
        assert_eq!(Sts::from_env(&env, "", Duration::from_secs(1)).endpoint, "http://b:2");
        let env = super::super::env_of(&[("AWS_ENDPOINT_URL", "http://a:1/")]);
        let sts = Sts::from_env(&env, "", Duration::from_secs(1));
        assert_eq!((sts.endpoint.as_str(), sts.region.as_str()), ("http://a:1", "us-east-1"));
        let body = form_body("AssumeRole", &[("RoleArn", "arn:aws:iam::1:role/a b".into())]);
        assert_eq!(body, "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa%20b");
    }
}
