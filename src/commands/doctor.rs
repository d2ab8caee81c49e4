//! `s4 doctor [TARGET] [--json]`: how s4 reaches each target (which source gave the keys,
//! never the secret; endpoint, region, addressing style) and what the store supports, found
//! with the probes s4 itself relies on, so a user sees why s4 behaves as it does.

use serde_json::{json, Value};

use super::{lookup, runtime, settings_for, Fatal, FAILED, OK};
use crate::cli::DoctorCmd;
use crate::config::Config;
use crate::s3::credentials::{mask, process_env};
use crate::s3::{resolve, Client, Versioning};

pub fn run(config: &Config, cmd: DoctorCmd) -> Result<i32, Fatal> {
    let names = match &cmd.target {
        Some(n) => {
            lookup(config, n)?;
            vec![n.clone()]
        }
        None => config.names(),
    };
    if names.is_empty() {
        return Err("No targets available. Use the \"add\" command first".into());
    }
    let rt = runtime()?;
    let mut code = OK;
    for name in &names {
        let report = rt.block_on(check(config, name));
        if report.get("ok") != Some(&Value::Bool(true)) {
            code = FAILED;
        }
        if cmd.json {
            crate::out!("{report}");
        } else {
            crate::out!(raw "{}", table(name, &report));
        }
    }
    Ok(code)
}

/// Everything about one target, as JSON (the table is drawn from it).
async fn check(config: &Config, name: &str) -> Value {
    let mut r = json!({"target": name, "ok": false});
    let target = match lookup(config, name) {
        Ok(t) => t,
        Err(e) => return with(r, "error", e),
    };
    r["s3_uri"] = json!(target.s3_uri);
    let settings = match settings_for(&target) {
        Ok(s) => s,
        Err(e) => return with(r, "error", e),
    };
    let resolved = match resolve::resolve(&settings, &process_env) {
        Ok(x) => x,
        Err(e) => return with(r, "error", e.to_string()),
    };
    r["endpoint_from"] = json!(resolved.endpoint_from);
    r["ca_bundle"] = json!(resolved.ca_bundle);
    let client = match Client::new(resolved.config, &resolved.bucket) {
        Ok(c) => c,
        Err(e) => return with(r, "error", e.to_string()),
    };
    r["endpoint"] = json!(client.endpoint());
    r["region"] = json!(client.region());
    r["addressing"] = json!(if client.path_style_in_use() { "path" } else { "virtual" });
    let provider = client.credentials_provider().clone();
    r["credentials"] = json!({"source": provider.kind(), "from": provider.describe()});
    match provider.credentials().await {
        Ok(c) => {
            r["credentials"]["access_key_id"] = json!(mask(&c.access_key_id));
            r["credentials"]["session_token"] = json!(c.session_token.is_some());
            r["credentials"]["expires"] = json!(provider.expires().map(crate::log::format_utc));
        }
        Err(e) => return with(r, "error", e.to_string()),
    }
    // One listing proves the keys and the bucket, and shows ETags and the encoding.
    let prefix = resolved.prefix;
    let token = format!("doctor-{}-{}", std::process::id(), crate::log::now_secs());
    let key = format!("{prefix}{}probe-{token}", crate::sync::lease::LEASE_PREFIX);
    let listed = async {
        client.put(&key, crate::s3::Payload::Bytes("s4 doctor".into()), &Default::default()).await?;
        let page = client.list_page(&key, None, None, None, Some(1)).await;
        let _ = client.delete(&key).await;
        page
    };
    let mut store = json!({});
    match listed.await {
        Ok(page) => {
            store["etags_in_listings"] = json!(page.objects.first().map(|o| o.etag.is_some()));
            store["url_encoded_listings"] = json!(client.url_encoding().unwrap_or(false));
        }
        Err(e) => return with(r, "error", e.to_string()),
    }
    store["versioning"] = match client.versioning().await {
        Ok(Versioning::Enabled) => json!("enabled"),
        Ok(Versioning::Suspended) => json!("suspended"),
        Ok(Versioning::Off) => json!("off"),
        Err(e) if e.is_not_implemented() => json!("not available"),
        Err(e) => json!(format!("unknown: {e}")),
    };
    // The very probe a sync relies on (sync::stores), so doctor says why s4 behaves as it does.
    let remote =
        crate::sync::remote::S3 { client: client.clone(), transfer: Default::default(), limits: Default::default() };
    match crate::sync::stores::probe(&remote, &prefix, &token).await {
        Ok(caps) => {
            store["conditional_put"] = json!(caps.conditional_put);
            store["conditional_delete"] = json!(caps.conditional_delete);
        }
        Err(e) => {
            store["conditional_put"] = json!(format!("unknown: {e}"));
            store["conditional_delete"] = json!(format!("unknown: {e}"));
        }
    }
    r["store"] = store;
    r["ok"] = json!(true);
    r
}

fn with(mut r: Value, field: &str, value: impl Into<String>) -> Value {
    r[field] = json!(value.into());
    r
}

fn table(name: &str, r: &Value) -> String {
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let mut out = format!("{name}: {}\n", s(&r["s3_uri"]));
    let mut row = |k: &str, v: String| out.push_str(&format!("  {k:<22} {v}\n"));
    let c = &r["credentials"];
    if !c.is_null() {
        row("credentials", s(&c["from"]));
        if !c["access_key_id"].is_null() {
            let temp = if c["session_token"] == json!(true) { ", with a session token" } else { "" };
            row("access key id", format!("{}{temp}", s(&c["access_key_id"])));
        }
        if !c["expires"].is_null() {
            row("keys expire", format!("{} UTC", s(&c["expires"])));
        }
    }
    if !r["endpoint"].is_null() {
        row("endpoint", format!("{} ({})", s(&r["endpoint"]), s(&r["endpoint_from"])));
        row("region", s(&r["region"]));
        row("addressing", format!("{} style", s(&r["addressing"])));
        if !r["ca_bundle"].is_null() {
            row("CA bundle", s(&r["ca_bundle"]));
        }
    }
    let st = &r["store"];
    if !st.is_null() {
        row("versioning", s(&st["versioning"]));
        row("ETags in listings", s(&st["etags_in_listings"]));
        row("URL-encoded listings", s(&st["url_encoded_listings"]));
        row("conditional PUT", s(&st["conditional_put"]));
        row("conditional DELETE", s(&st["conditional_delete"]));
    }
    if let Some(e) = r.get("error") {
        row("error", s(e));
    }
    out
}
