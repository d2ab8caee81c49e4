//! What a store honours, asked with a throw-away object: conditional PUT (`If-None-Match: *`,
//! `If-Match`) and conditional DELETE (`If-Match` on DeleteObject). Each probe removes its
//! object. A store that answers 400/501 to a header does not honour it either.

use hyper::Method;

use super::client::{Client, Request};
use super::error::Result;
use super::{Payload, PutOptions};

/// A refusal where the condition failed: the store honours the header.
fn refused<T>(r: &Result<T>) -> Result<bool> {
    match r {
        Err(e) if e.is_precondition_failed() => Ok(true),
        Ok(_) => Ok(false),
        Err(e) if matches!(e.status(), Some(400) | Some(501)) => Ok(false),
        Err(e) => Err(e.clone()),
    }
}

const NO_SUCH_ETAG: &str = "00000000000000000000000000000000";

/// Does the store refuse a PUT with `If-None-Match: *` over an existing object and one with
/// a stale `If-Match`? (s4's index writes rely on both.)
pub async fn conditional_put(client: &Client, key: &str) -> Result<bool> {
    let create = PutOptions { if_none_match: true, ..Default::default() };
    let stale = PutOptions { if_match: Some(NO_SUCH_ETAG.into()), ..Default::default() };
    let body = || Payload::Bytes("s4 probe".into());
    let outcome = async {
        client.put(key, body(), &create).await?;
        let second = client.put(key, body(), &create).await;
        let third = client.put(key, body(), &stale).await;
        Ok(refused(&second)? && refused(&third)?)
    }
    .await;
    let _ = client.delete(key).await;
    outcome
}

/// Does the store refuse a DeleteObject whose `If-Match` names another ETag (and carry out
/// one that names the object's)?
pub async fn conditional_delete(client: &Client, key: &str) -> Result<bool> {
    let delete_if = |etag: String| {
        let req = Request::new("DeleteObject", Method::DELETE, Some(key)).header("if-match", format!("\"{etag}\""));
        async move { client.send_full(&req).await.map(|_| ()) }
    };
    let outcome = async {
        let etag = client.put(key, Payload::Bytes("s4 probe".into()), &PutOptions::default()).await?;
        let stale = delete_if(NO_SUCH_ETAG.into()).await;
        if !refused(&stale)? {
            return Ok(false);
        }
        match etag {
            // The matching one must go through, or the store refuses If-Match on DELETE outright.
            Some(etag) => Ok(delete_if(etag).await.is_ok() && client.head(key).await?.is_none()),
            None => Ok(true),
        }
    }
    .await;
    let _ = client.delete(key).await;
    outcome
}
