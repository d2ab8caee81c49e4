//! What a store honours, and what s4 remembers about it between runs, outside S4's files:
//! conditional writes (If-None-Match / If-Match on PUT) and conditional deletes (If-Match on
//! DeleteObject). The probes cost a few requests and their warning would otherwise come with
//! every run (and every daemon round) on stores like Garage; a verdict is re-checked after a
//! week, in case the store was upgraded.

use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::lease::LEASE_PREFIX;
use super::remote::Remote;
use crate::s3::PutOptions;

const FRESH_SECS: i64 = 7 * 24 * 3600;

/// What the engine may rely on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    /// If-None-Match: * and If-Match on PUT are refused with 412 when they do not hold.
    pub conditional_put: bool,
    /// If-Match on DeleteObject (and `<ETag>` in DeleteObjects) likewise.
    pub conditional_delete: bool,
    /// If-None-Match: * on CopyObject likewise (issue 13: a move is a server-side copy, and a
    /// copy must not land on another machine's new object any more than an upload may).
    pub conditional_copy: bool,
}

/// The store's capabilities: remembered, or probed with a throw-away object beside the index
/// (and remembered). Asked before the first write of a run, so every write takes the right path.
pub async fn capabilities(remote: &dyn Remote, prefix: &str, token: &str) -> Result<Caps, String> {
    let now = crate::log::now_secs();
    let id = remote.store_id();
    if remote.remembers() {
        if let Some(caps) = remembered(&id, now) {
            return Ok(caps);
        }
    }
    let caps = probe(remote, prefix, token).await.map_err(|e| e.to_string())?;
    if remote.remembers() {
        remember(&id, caps, now);
    }
    if !(caps.conditional_put && caps.conditional_delete) {
        let what = if caps.conditional_put { "deletes (If-Match on DELETE)" } else { "writes (If-None-Match)" };
        crate::warn!(
            "{} ignores conditional {what}: s4 holds a lease on the prefix while it syncs, so syncs from \
             several machines take turns instead of overwriting each other",
            remote.uri(prefix)
        );
    }
    Ok(caps)
}

/// Two conditional PUTs of a tiny probe object beside the index (the second must fail), a
/// PUT with a stale If-Match (must fail) and one with the right one (must pass: Ceph RGW 16.2
/// refuses every If-Match in a versioned bucket), then a DELETE with a stale If-Match (must
/// fail and leave the object) and one with the right one (must pass). Where PUTs are
/// conditional, two copies with If-None-Match: * to a second key (the second must fail).
pub async fn probe(remote: &dyn Remote, prefix: &str, token: &str) -> crate::s3::Result<Caps> {
    let key = format!("{prefix}{LEASE_PREFIX}probe-{token}");
    let copy_key = format!("{key}-copy");
    let create = PutOptions { if_none_match: true, ..Default::default() };
    let stale_tag = "00000000000000000000000000000000";
    let stale = PutOptions { if_match: Some(stale_tag.into()), ..Default::default() };
    let body = || bytes::Bytes::from_static(b"probe");
    let refused = |r: &crate::s3::Result<()>| match r {
        Err(e) if e.is_precondition_failed() => Ok(true),
        Ok(()) => Ok(false),
        // A store that rejects the header outright does not honour it either.
        Err(e) if matches!(e.status(), Some(400) | Some(501)) => Ok(false),
        Err(e) => Err(e.clone()),
    };
    // A request that should pass: a refusal says the store does not honour the header; any
    // other failure (a 503, a lost answer) says nothing, and the probe fails to be asked again.
    // (A fault here once made a machine take a store for one without conditional writes, and
    // write without conditions beside machines that did not take the lease: the simulation.)
    let accepted = |r: crate::s3::Result<()>| match r {
        Ok(()) => Ok(true),
        Err(e) if e.is_precondition_failed() || matches!(e.status(), Some(400) | Some(501)) => Ok(false),
        Err(e) => Err(e),
    };
    let outcome = async {
        // A read first: a missing bucket must fail as one, not be made by the probe's write
        // (s3s-fs creates folders as it writes).
        remote.list(prefix, None, None).await?;
        let etag = remote.put_bytes(&key, body(), &create).await?;
        let second = remote.put_bytes(&key, body(), &create).await.map(|_| ());
        let third = remote.put_bytes(&key, body(), &stale).await.map(|_| ());
        let matching = PutOptions { if_match: etag.clone(), ..Default::default() };
        let fourth = accepted(remote.put_bytes(&key, body(), &matching).await.map(|_| ()))?;
        let conditional_put = refused(&second)? && refused(&third)? && etag.is_some() && fourth;
        let conditional_copy = conditional_put && copy_refused_onto(remote, &key, &copy_key).await?;
        let delete = remote.delete(&key, Some(stale_tag)).await;
        let mut conditional_delete = refused(&delete)? && remote.head(&key).await?.is_some();
        if conditional_delete {
            // DeleteObjects with a stale <ETag> too: it is what a sync sends (review: a store
            // could honour one and ignore the other).
            let batch = [(key.clone(), Some(stale_tag.to_string()))];
            let refused_in_batch = remote.delete_many(&batch).await?.len() == 1;
            let tag = remote.head(&key).await?.and_then(|m| m.etag);
            conditional_delete =
                refused_in_batch && tag.is_some() && accepted(remote.delete(&key, tag.as_deref()).await)?;
        }
        Ok(Caps { conditional_put, conditional_delete, conditional_copy })
    }
    .await;
    let _ = remote.delete(&key, None).await;
    let _ = remote.delete(&copy_key, None).await;
    outcome
}

/// A copy with If-None-Match: * onto a new key must pass, and a second one must be refused.
async fn copy_refused_onto(remote: &dyn Remote, key: &str, copy_key: &str) -> crate::s3::Result<bool> {
    let create = PutOptions { if_none_match: true, ..Default::default() };
    let size = b"probe".len() as u64;
    match remote.copy(key, copy_key, size, None, &create).await {
        Ok(_) => {}
        Err(e) if e.is_precondition_failed() || e.is_not_implemented() || e.status() == Some(400) => return Ok(false),
        Err(e) => return Err(e),
    }
    match remote.copy(key, copy_key, size, None, &create).await {
        Ok(_) => Ok(false),
        Err(e) if e.is_precondition_failed() => Ok(true),
        Err(e) if e.is_not_implemented() || matches!(e.status(), Some(400) | Some(403)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `$XDG_CACHE_HOME/s4/stores.json`, else `~/.cache/s4/stores.json`.
fn path() -> Option<PathBuf> {
    let env = crate::s3::credentials::process_env;
    match env("XDG_CACHE_HOME") {
        Some(x) if !x.is_empty() => Some(PathBuf::from(x).join("s4/stores.json")),
        _ => env("HOME").map(|h| PathBuf::from(h).join(".cache/s4/stores.json")),
    }
}

fn load() -> Map<String, Value> {
    let parsed = path().and_then(|p| std::fs::read(p).ok()).and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    match parsed {
        Some(Value::Object(m)) => m,
        _ => Map::new(), // missing or unreadable: only a cache, probe again
    }
}

/// The remembered verdict for `store`, if checked within the week (and by an s4 that knew
/// about conditional deletes and copies: older entries lack them and are probed again).
fn remembered(store: &str, now: i64) -> Option<Caps> {
    let entry = load().remove(store)?;
    let checked = entry.get("checked")?.as_i64()?;
    if now - checked >= FRESH_SECS {
        return None;
    }
    Some(Caps {
        conditional_put: entry.get("conditional_writes")?.as_bool()?,
        conditional_delete: entry.get("conditional_deletes")?.as_bool()?,
        conditional_copy: entry.get("conditional_copies")?.as_bool()?,
    })
}

/// Remember a verdict (best effort: a cache that cannot be written only costs a probe).
fn remember(store: &str, caps: Caps, now: i64) {
    let Some(p) = path() else { return };
    let mut all = load();
    let entry = json!({
        "conditional_writes": caps.conditional_put,
        "conditional_deletes": caps.conditional_delete,
        "conditional_copies": caps.conditional_copy,
        "checked": now,
    });
    all.insert(store.to_string(), entry);
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let body = serde_json::to_vec_pretty(&Value::Object(all)).unwrap_or_default();
    let _ = crate::fsutil::write_atomic(&p, 0o644, |f| std::io::Write::write_all(f, &body));
}
