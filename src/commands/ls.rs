//! `ls TARGET`: the table S4 prints from the two indexes (key, local, s3) and the total size.

use std::path::Path;

use super::{client_for, lookup, runtime, Fatal, OK};
use crate::cli::LsCmd;
use crate::config::Config;
use crate::log::format_utc;
use crate::sync::index::{self, Index};

fn cell(ts: Option<f64>) -> String {
    ts.map(|t| format_utc(t as i64)).unwrap_or_default()
}

pub fn run(config: &Config, cmd: LsCmd) -> Result<i32, Fatal> {
    let target = lookup(config, &cmd.target)?;
    let sort = match cmd.sort_by.to_ascii_lowercase().as_str() {
        "key" => 0,
        "local" => 1,
        "s3" => 2,
        other => return Err(format!("--sort-by {other}: choose key, local or s3")),
    };
    let root = Path::new(&target.local_folder);
    let local = match std::fs::read(root.join(".index")) {
        Ok(b) => index::decode(&b).map_err(|e| format!("local index {}: {e}", root.join(".index").display()))?,
        Err(_) => Index::new(),
    };
    let (client, prefix) = client_for(&target)?;
    let rt = runtime()?;
    let remote = match rt.block_on(client.get_bytes(&format!("{prefix}.index"))) {
        Ok(Some((b, _))) => index::decode(&b).map_err(|e| format!("remote index: {e}"))?,
        Ok(None) => Index::new(),
        Err(e) => return Err(e.to_string()),
    };
    let mut keys: Vec<&String> = local.keys().chain(remote.keys()).collect();
    keys.sort();
    keys.dedup();
    // Sort on the raw timestamps, with "<deleted>" as the oldest: S4 crashed comparing
    // a date with that string (`-A -s local`).
    let mut rows: Vec<(String, Option<f64>, Option<f64>)> = Vec::new();
    let mut total: u64 = 0;
    for key in keys {
        let l = local.get(key).and_then(|e| e.local_timestamp);
        let r = remote.get(key).and_then(|e| e.local_timestamp);
        if cmd.all || l.is_some() {
            rows.push((key.clone(), l, r));
            total += std::fs::metadata(root.join(key)).map(|m| m.len()).unwrap_or(0);
        }
    }
    rows.sort_by(|a, b| {
        let o = match sort {
            1 => a.1.partial_cmp(&b.1),
            2 => a.2.partial_cmp(&b.2),
            _ => Some(a.0.cmp(&b.0)),
        };
        o.unwrap_or(std::cmp::Ordering::Equal)
    });
    if cmd.descending {
        rows.reverse();
    }
    let table: Vec<[String; 3]> = rows
        .into_iter()
        .map(|(k, l, r)| [k, l.map_or_else(|| "<deleted>".into(), |t| cell(Some(t))), cell(r)])
        .collect();
    crate::out!(raw "{}", tabulate(&["key", "local", "s3"], &table));
    crate::out!("Total Size: {:.2}Mb", total as f64 / (1024.0 * 1024.0));
    Ok(OK)
}

/// tabulate's "simple" format, as S4 prints it: columns left-aligned, two spaces apart.
pub(super) fn tabulate<const N: usize>(headers: &[&str; N], rows: &[[String; N]]) -> String {
    let w: [usize; N] = std::array::from_fn(|i| {
        rows.iter().map(|r| r[i].chars().count()).chain([headers[i].chars().count()]).max().unwrap_or(0)
    });
    let line = |cells: [&str; N]| {
        let padded: Vec<String> = cells.iter().zip(w).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(*headers);
    let rules = w.map(|w| "-".repeat(w));
    out.push_str(&line(std::array::from_fn(|i| rules[i].as_str())));
    for r in rows {
        out.push_str(&line(std::array::from_fn(|i| r[i].as_str())));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn simple_table() {
        let rows = vec![["a.txt".to_string(), "2013-05-24 00:00:00".to_string(), String::new()]];
        let t = super::tabulate(&["key", "local", "s3"], &rows);
        assert_eq!(t, "key    local                s3\n-----  -------------------  --\na.txt  2013-05-24 00:00:00\n");
    }
}
