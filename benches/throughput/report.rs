//! Results: one row per measurement, a column per tool; printed as two tables (speed, then
//! cost: requests, client and store CPU, peak memory) and written as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::cost::{median, median_sample, Sample};

pub const TOOLS: [&str; 3] = ["s4", "aws", "rclone"];

pub struct Row {
    pub id: String,
    pub title: String,
    /// Units of work per run (keys, MiB, files), and their name for the rate ("keys/s").
    pub work: f64,
    pub unit: &'static str,
    pub samples: BTreeMap<&'static str, Vec<Sample>>,
    pub notes: Vec<String>,
}

impl Row {
    pub fn new(id: &str, title: String, work: f64, unit: &'static str) -> Row {
        Row { id: id.into(), title, work, unit, samples: BTreeMap::new(), notes: Vec::new() }
    }

    pub fn add(&mut self, tool: &'static str, s: Sample) {
        self.samples.entry(tool).or_default().push(s);
    }

    pub fn secs(&self, tool: &str) -> Option<f64> {
        let v: Vec<f64> = self.samples.get(tool)?.iter().map(|s| s.secs).collect();
        (!v.is_empty()).then(|| median(&v))
    }

    fn cell(&self, tool: &str) -> String {
        match self.secs(tool) {
            None => "-".into(),
            Some(t) if self.unit.is_empty() || self.work <= 0.0 => format!("{t:.3} s"),
            Some(t) => format!("{t:.3} s ({} {})", rate(self.work / t), self.unit),
        }
    }

    fn ratio(&self, tool: &str) -> String {
        match (self.secs(tool), self.secs("s4")) {
            (Some(p), Some(s)) if s > 0.0 => format!("{:.2}x", p / s),
            _ => "-".into(),
        }
    }
}

fn rate(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

pub fn speed_table(rows: &[Row]) -> String {
    let head = ["measurement (median)", "s4", "aws", "aws/s4", "rclone", "rclone/s4"].map(String::from);
    let body: Vec<[String; 6]> = rows
        .iter()
        .map(|r| [r.title.clone(), r.cell("s4"), r.cell("aws"), r.ratio("aws"), r.cell("rclone"), r.ratio("rclone")])
        .collect();
    table(&head, &body)
}

pub fn cost_table(rows: &[Row]) -> String {
    let head = ["measurement", "tool", "runs", "requests (by op)", "client cpu s", "store cpu s", "peak rss"]
        .map(String::from);
    let mut body = Vec::new();
    for r in rows {
        for tool in TOOLS {
            let Some(all) = r.samples.get(tool) else { continue };
            let Some(s) = median_sample(all) else { continue };
            let reqs = match s.total_requests() {
                Some(n) => {
                    let ops: Vec<String> = s.requests.iter().map(|(k, v)| format!("{k} {v}")).collect();
                    format!("{n}: {}", ops.join(", "))
                }
                None => "-".into(),
            };
            body.push([
                r.title.clone(),
                tool.to_string(),
                all.len().to_string(),
                reqs,
                format!("{:.2}", s.client_cpu),
                s.store_cpu.map_or("-".into(), |c| format!("{c:.2}")),
                s.max_rss_kib.map_or("-".into(), |k| format!("{} MiB", k / 1024)),
            ]);
        }
    }
    table(&head, &body)
}

fn table<const N: usize>(head: &[String; N], body: &[[String; N]]) -> String {
    let mut w = [0usize; N];
    for row in std::iter::once(head).chain(body.iter()) {
        for (i, c) in row.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[String; N]| {
        let cells: Vec<String> = row.iter().enumerate().map(|(i, c)| format!("{c:<width$}", width = w[i])).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    };
    line(&mut out, head);
    let _ = writeln!(out, "|{}|", w.iter().map(|n| "-".repeat(n + 2)).collect::<Vec<_>>().join("|"));
    for row in body {
        line(&mut out, row);
    }
    out
}

pub fn json(rows: &[Row], context: serde_json::Value) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut tools = serde_json::Map::new();
            for (tool, all) in &r.samples {
                let secs = r.secs(tool).unwrap_or(f64::NAN);
                let runs: Vec<serde_json::Value> = all
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "secs": s.secs, "requests": s.requests, "client_cpu_secs": s.client_cpu,
                            "store_cpu_secs": s.store_cpu, "max_rss_kib": s.max_rss_kib,
                        })
                    })
                    .collect();
                let rate = (!r.unit.is_empty() && secs > 0.0).then(|| r.work / secs);
                let ratio = r.secs("s4").filter(|s| *s > 0.0 && *tool != "s4").map(|s| secs / s);
                tools.insert(
                    tool.to_string(),
                    serde_json::json!({"median_secs": secs, "rate": rate, "peer_over_s4": ratio, "runs": runs}),
                );
            }
            serde_json::json!({
                "id": r.id, "title": r.title, "work": r.work, "unit": r.unit, "tools": tools, "notes": r.notes,
            })
        })
        .collect();
    serde_json::json!({"context": context, "rows": rows})
}
