//! What s4 remembers about a store between runs, outside S4's files: whether it honours
//! conditional writes. The probe costs four requests and its warning would otherwise come
//! with every run (and every daemon round) on stores like Garage; a verdict is re-checked
//! after a week, in case the store was upgraded.

use std::path::PathBuf;

use serde_json::{json, Map, Value};

const FRESH_SECS: i64 = 7 * 24 * 3600;

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

/// The remembered verdict for `store`, if checked within the week.
pub fn conditional_writes(store: &str, now: i64) -> Option<bool> {
    let entry = load().remove(store)?;
    let checked = entry.get("checked")?.as_i64()?;
    (now - checked < FRESH_SECS).then(|| entry.get("conditional_writes")?.as_bool()).flatten()
}

/// Remember a verdict (best effort: a cache that cannot be written only costs a probe).
pub fn remember_conditional_writes(store: &str, honoured: bool, now: i64) {
    let Some(p) = path() else { return };
    let mut all = load();
    all.insert(store.to_string(), json!({"conditional_writes": honoured, "checked": now}));
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let body = serde_json::to_vec_pretty(&Value::Object(all)).unwrap_or_default();
    let _ = crate::fsutil::write_atomic(&p, 0o644, |f| std::io::Write::write_all(f, &body));
}
