//! `--json`: one JSON object per line on stdout, for scripts (`sync`, `daemon`, `status`).
//!
//! Every line carries `"schema": 1` (bumped only when a field changes meaning or goes away;
//! new fields may appear at any time), `"event"` (`action`, `summary`, `error`, `status`) and
//! `"target"` (the target's name; `null` only on the final summary of a multi-target run).
//! README § "JSON output" documents every field.

use std::sync::Mutex;

use serde_json::{json, Map, Value};

use crate::sync::Report;

pub const SCHEMA: u64 = 1;

/// The target being synced: the engine's action lines do not carry its name, and one process
/// syncs one target at a time.
static TARGET: Mutex<Option<String>> = Mutex::new(None);

pub fn set_target(name: Option<&str>) {
    *TARGET.lock().unwrap_or_else(|p| p.into_inner()) = name.map(str::to_string);
}

fn current_target() -> Value {
    TARGET.lock().unwrap_or_else(|p| p.into_inner()).clone().map(Value::String).unwrap_or(Value::Null)
}

/// The line for `event`: schema, event and target first, then `fields`.
pub fn line(event: &str, target: Value, fields: Value) -> Value {
    let mut m = Map::new();
    m.insert("schema".into(), json!(SCHEMA));
    m.insert("event".into(), json!(event));
    m.insert("target".into(), target);
    if let Value::Object(rest) = fields {
        for (k, v) in rest {
            m.entry(k).or_insert(v);
        }
    }
    Value::Object(m)
}

/// Print an event about the current target.
pub fn emit(event: &str, fields: Value) {
    print(&line(event, current_target(), fields));
}

/// One line on stdout. A reader that has gone away (`s4 sync --json | head -3`) must not stop a
/// sync half-way: println! panics on a closed pipe, so the error is dropped here and the sync
/// finishes, its exit code saying how it went.
pub fn print(line: &dyn std::fmt::Display) {
    crate::out!("{line}");
}

/// The counts of a run (`summary` event). `seconds`: how long it took.
pub fn summary_fields(r: &Report, code: i32, seconds: f64, dry_run: bool) -> Value {
    let mut s = json!({
        "uploaded": r.uploaded, "downloaded": r.downloaded,
        "deleted_local": r.deleted_local, "deleted_remote": r.deleted_remote,
        "bytes_up": r.bytes_up, "bytes_down": r.bytes_down, "moved": r.moved,
        "conflicts_skipped": r.conflicts_skipped, "errors": r.errors,
        "planned": r.planned, "interrupted": r.interrupted,
        "stopped": r.stopped, "seconds": (seconds * 1000.0).round() / 1000.0,
        "dry_run": dry_run, "exit_code": code,
    });
    if dry_run {
        let w = &r.would;
        s["would"] = json!({
            "upload": w.upload, "download": w.download,
            "delete_local": w.delete_local, "delete_remote": w.delete_remote,
            "bytes_up": w.bytes_up, "bytes_down": w.bytes_down,
        });
    }
    json!({ "summary": s })
}

/// A target that could not run (exit 2): the same message as on stderr.
pub fn error(target: &str, message: &str) {
    print(&line("error", json!(target), json!({"error": message, "exit_code": 2})));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_has_schema_event_and_target_first() {
        let v = line("action", json!("docs"), json!({"key": "a", "schema": 99}));
        let text = v.to_string();
        assert!(text.starts_with(r#"{"schema":1,"event":"action","target":"docs","key":"a""#), "{text}");
        let s = summary_fields(&Report::default(), 0, 1.23456, true);
        assert_eq!(s["summary"]["seconds"], json!(1.235));
        assert_eq!(s["summary"]["would"]["upload"], json!(0));
    }
}
