//! One small HTTP exchange with a credentials endpoint (STS, the container endpoint, IMDS):
//! bounded in time and size, errors as [`Kind`]s. Never logs a header or a body: both carry
//! tokens and secrets.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;

use super::error::Kind;
use crate::s3::client::error_chain;
use crate::s3::http::{self, HttpClient};

pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

/// Credentials answers are a few KiB; anything past this is not one.
const LIMIT: usize = 1 << 20;

/// A client whose connect attempt gives up after `connect` (IMDS and the container endpoint
/// are on the local link: a second is plenty, and a machine without them must not wait).
pub fn client(connect: Duration) -> HttpClient {
    http::build_client(connect)
}

/// Send one request; `timeout` bounds the wait for the answer's head and for each body chunk.
pub async fn send(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    timeout: Duration,
) -> Result<Reply, Kind> {
    let mut builder = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    if !body.is_empty() {
        builder = builder.header("content-length", body.len().to_string());
    }
    let request = builder
        .body(Full::new(body).map_err(|e| match e {}).boxed())
        .map_err(|e| Kind::Config(format!("cannot build a request to \"{url}\": {e}")))?;
    let response = match tokio::time::timeout(timeout, client.request(request)).await {
        Err(_) => return Err(Kind::Timeout),
        Ok(Err(e)) => return Err(Kind::Transport(error_chain(&e))),
        Ok(Ok(r)) => r,
    };
    let status = response.status().as_u16();
    let mut body = response.into_body();
    match http::read_all(&mut body, timeout, LIMIT).await {
        Ok(Some(body)) => Ok(Reply { status, body }),
        Ok(None) => Err(Kind::Malformed(format!("the answer is larger than {} KiB", LIMIT >> 10))),
        Err(None) => Err(Kind::Timeout),
        Err(Some(e)) => Err(Kind::Transport(error_chain(&e))),
    }
}

/// The host of an `http(s)://host[:port]/...` URL, without brackets around IPv6 addresses.
pub fn host_of(url: &str) -> Option<String> {
    let uri: hyper::Uri = url.parse().ok()?;
    let host = uri.host()?;
    Some(host.trim_start_matches('[').trim_end_matches(']').to_string())
}

/// An `{"code": ..., "message": ...}` error answer, as the container endpoint and IMDS may send;
/// field names in any case. Empty strings when the body says nothing readable.
pub fn json_error(status: u16, body: &[u8]) -> Kind {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field =
        |names: &[&str]| names.iter().find_map(|n| v.get(*n).and_then(|x| x.as_str())).unwrap_or_default().to_string();
    let mut message = field(&["message", "Message"]);
    if message.is_empty() && v.is_null() {
        // A plain-text answer; kept short, as it is shown to the user.
        message = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string();
    }
    Kind::Status { status, code: field(&["code", "Code"]), message }
}

/// The credentials of a JSON answer (IMDS, the container endpoint, `credential_process`):
/// `AccessKeyId`, `SecretAccessKey`, the token under `token_field`, `Expiration` (ISO 8601).
pub fn json_credentials(body: &[u8], token_field: &str) -> Result<super::Expiring, Kind> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| Kind::Malformed(format!("not JSON ({e})")))?;
    let text = |name: &str| v.get(name).and_then(|x| x.as_str()).filter(|s| !s.is_empty()).map(str::to_string);
    let need = |name: &str| text(name).ok_or_else(|| Kind::Malformed(format!("no \"{name}\" in the JSON answer")));
    let expires = match text("Expiration") {
        None => None,
        Some(t) => Some(
            crate::s3::xml::parse_iso8601(&t)
                .ok_or_else(|| Kind::Malformed(format!("\"Expiration\" is not an ISO 8601 time: {t:?}")))?,
        ),
    };
    Ok(super::Expiring {
        creds: super::Credentials {
            access_key_id: need("AccessKeyId")?,
            secret_access_key: need("SecretAccessKey")?,
            session_token: text(token_field),
        },
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_answers() {
        let ok = br#"{"AccessKeyId":"A","SecretAccessKey":"S","Token":"T","Expiration":"2030-01-01T00:00:00Z"}"#;
        let e = json_credentials(ok, "Token").unwrap();
        assert_eq!((e.creds.session_token.as_deref(), e.expires), (Some("T"), Some(1_893_456_000)));
        assert!(
            matches!(json_credentials(b"{\"AccessKeyId\":\"A\"}", "Token"), Err(Kind::Malformed(m)) if m.contains("SecretAccessKey"))
        );
        assert!(matches!(json_credentials(b"{nope", "Token"), Err(Kind::Malformed(_))));
        let bad_time = br#"{"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"soon"}"#;
        assert!(matches!(json_credentials(bad_time, "Token"), Err(Kind::Malformed(m)) if m.contains("ISO 8601")));
        assert_eq!(
            json_error(403, br#"{"code":"AccessDenied","message":"no"}"#),
            Kind::Status { status: 403, code: "AccessDenied".into(), message: "no".into() }
        );
        assert_eq!(host_of("http://[fd00:ec2::23]:80/x").as_deref(), Some("fd00:ec2::23"));
        assert_eq!(host_of("http://127.0.0.1:9/x").as_deref(), Some("127.0.0.1"));
    }
}
