//! Conflicts: first the fix for S4's false conflicts (identical content on both sides is
//! recorded as synced), then `--conflicts 1|2|ignore`, or S4's prompt on a terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use super::exec::{Ctx, Job};
use super::index::Entry;
use super::plan::{self, Decision, Keep};
use super::state::Indexes;
use super::{Names, Options};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Ask on a terminal; skip without one.
    Prompt,
    Keep(Keep),
    Ignore,
}

/// Settle one real conflict without a person: `--conflicts 1|2`, else skip. `None`: skipped.
pub fn settle_by_flag(job: &Job, mode: Mode) -> Option<Job> {
    match mode {
        Mode::Keep(k) => match plan::resolve(k, job.local, job.remote) {
            Decision::Nothing => None,
            decision => Some(Job { decision, ..job.clone() }),
        },
        Mode::Ignore | Mode::Prompt => None,
    }
}

/// Will conflicts be asked about? Only on a terminal, without `--conflicts`, outside a dry run.
pub fn interactive(opts: &Options) -> bool {
    opts.conflicts == Mode::Prompt && !opts.dry_run && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Ask about each deferred conflict (after the main pass, so prompts do not interleave with
/// transfers); returns the transfers the answers call for, or `None` for a skip.
pub async fn ask_each(ctx: &Arc<Ctx>, idx: &mut Indexes, items: Vec<Job>, names: &Names) -> Vec<Result<Job, Job>> {
    let mut out = Vec::new();
    for job in items {
        if let Some((mtime, etag)) = identical(ctx, &job).await {
            record_synced(idx, &job, mtime, &etag);
            continue;
        }
        let keep = tokio::task::block_in_place(|| prompt(ctx, &job, names));
        match keep.map(|k| plan::resolve(k, job.local, job.remote)) {
            Some(Decision::Nothing) => {}
            Some(decision) => out.push(Ok(Job { decision, ..job })),
            None => out.push(Err(job)),
        }
    }
    out
}

/// `Some((local mtime, ETag))` when both sides hold the same bytes (same size and same MD5 /
/// multipart ETag): S4 called every such key a conflict on a first sync.
pub async fn identical(ctx: &Ctx, item: &Job) -> Option<(f64, String)> {
    let (size, mtime) = (item.local_size?, item.local_mtime?);
    item.remote_lm?;
    if size != item.remote_size {
        return None;
    }
    let etag = match &item.etag {
        Some(e) => e.clone(),
        None => ctx.remote.head(&ctx.remote_key(&item.key)).await.ok()??.etag?,
    };
    let path = ctx.root.join(&item.key);
    let preferred = ctx.transfer.part_size;
    let tag = etag.clone();
    let same = ctx.blocking(move || local_matches_etag(&path, size, &tag, preferred)).await;
    same.then_some((mtime, etag))
}

/// Does the file's content produce this ETag? Plain ETags are the MD5; multipart ones
/// ("md5-of-md5s-N") are checked against the part sizes uploaders commonly use.
pub fn local_matches_etag(path: &Path, size: u64, etag: &str, preferred_part: u64) -> bool {
    use md5::{Digest, Md5};
    let etag = etag.trim_matches('"').to_ascii_lowercase();
    let md5_of = |offset: u64, len: u64| crate::fsutil::md5_range(path, offset, len).ok();
    match etag.split_once('-') {
        None if etag.len() == 32 => md5_of(0, size).is_some_and(|d| hex::encode(d) == etag),
        None => false,
        Some((digest, count)) => {
            let Ok(count) = count.parse::<u64>() else { return false };
            let mib = crate::s3::multipart::MIB;
            let ours = crate::s3::multipart::part_size(size, preferred_part).unwrap_or(0);
            let mut candidates = vec![ours, 8 * mib, 5 * mib, 16 * mib, 64 * mib];
            candidates.dedup();
            candidates.into_iter().filter(|p| *p > 0 && size.div_ceil(*p) == count).any(|p| {
                let mut all = Md5::new();
                for (_, off, len) in crate::s3::multipart::parts(size, p) {
                    match md5_of(off, len) {
                        Some(d) => all.update(d),
                        None => return false,
                    }
                }
                hex::encode(all.finalize()) == digest
            })
        }
    }
}

pub fn record_synced(idx: &mut Indexes, item: &Job, mtime: f64, etag: &str) {
    let live = |e: Option<Entry>| e.filter(|e| !e.is_tombstone()).and_then(|e| e.remote_timestamp);
    // An unchanged S3 side keeps the stamp the other machines already hold. Otherwise S3 holds
    // content they have not seen (an interrupted run's upload, or an edit behind s4's back):
    // a new stamp above the old ones makes them fetch it.
    let stamp = match item.remote.state {
        plan::State::NoChanges => live(item.ri),
        _ => None,
    }
    .unwrap_or_else(|| (mtime as i64).max(plan::above(item.local.stamp)).max(plan::above(item.remote.stamp)) as f64);
    let lm = item.remote_lm.map(|t| t as f64);
    let etag = Some(super::index::Etag::parse(etag));
    idx.set(&item.key, Entry::new(Some(mtime), Some(stamp), etag), Entry::new(lm, Some(stamp), etag));
    idx.mark_adoptable(&item.key);
}

/// S4's prompt, on stderr, with each side told in words. `None`: skip. An answer that is not
/// one of the choices asks again: a typo is never taken for "skip" (S4 skipped silently).
fn prompt(ctx: &Arc<Ctx>, item: &Job, names: &Names) -> Option<Keep> {
    use super::report::side_label;
    let key = &item.key;
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\nConflict for \"{key}\": both sides changed since the last sync. Which version would you like to keep?\n   (1) {}{key}: {}\n   (2) {}{key}: {}\n   (d) View difference (requires the diff command)\n   (X) Skip this file (decide at the next sync)\n\n",
        names.local_uri,
        side_label(&item.local, &item.remote, true),
        names.remote_uri,
        side_label(&item.remote, &item.local, false),
    );
    loop {
        let _ = write!(err, "Choice [1/2/d/X] (default=skip): ");
        let _ = err.flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        match line.trim() {
            "1" => return Some(Keep::Local),
            "2" => return Some(Keep::Remote),
            "d" | "D" => show_diff(ctx, key, names),
            "" | "x" | "X" => return None,
            other => {
                let _ = writeln!(err, "\"{other}\" is not a choice: type 1, 2, d or X (or press Enter to skip)");
            }
        }
    }
}

/// `diff -u` of the two versions through the pager (S4: diff + less).
fn show_diff(ctx: &Arc<Ctx>, key: &str, names: &Names) {
    // A fresh name, created exclusively: another user cannot plant a symlink to redirect it.
    let tmp = crate::fsutil::temp_path(&std::env::temp_dir().join("diff"));
    let remote_key = ctx.remote_key(key);
    let got = match tokio::runtime::Handle::current().block_on(ctx.remote.get_bytes(&remote_key)) {
        Ok(Some((body, _))) => crate::fsutil::write_new(&tmp, &body).map_err(|e| format!("{}: {e}", tmp.display())),
        Ok(None) => Err(format!("{} is gone", ctx.remote.uri(&remote_key))),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = got {
        crate::error!("Cannot show the difference: {e}");
        return;
    }
    let local = ctx.root.join(key);
    let diff = std::process::Command::new("diff")
        .arg("-u")
        .arg("--label")
        .arg(format!("{}{key}", names.local_uri))
        .arg(&local)
        .arg("--label")
        .arg(format!("{}{key}", names.remote_uri))
        .arg(&tmp)
        .output();
    let _ = std::fs::remove_file(&tmp);
    let out = match diff {
        Ok(o) => o.stdout,
        Err(_) => {
            eprintln!("Missing required \"diff\" executable.\nInstall this using your distribution's package manager");
            return;
        }
    };
    let pager = std::env::var("PAGER").unwrap_or_else(|_| "less".into());
    let spawned = std::process::Command::new("sh").arg("-c").arg(&pager).stdin(std::process::Stdio::piped()).spawn();
    match spawned {
        Ok(mut child) => {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(&out);
            }
            let _ = child.wait();
        }
        Err(_) => {
            let _ = std::io::stderr().write_all(&out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_of_local_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        // md5("hello")
        assert!(local_matches_etag(&p, 5, "\"5d41402abc4b2a76b9719d911017c592\"", 8 << 20));
        assert!(!local_matches_etag(&p, 5, "00000000000000000000000000000000", 8 << 20));
        let big = d.path().join("big");
        let data: Vec<u8> = (0..(11u32 << 20)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&big, &data).unwrap();
        // Multipart ETag with 5 MiB parts: md5 of the concatenated part md5s, "-3".
        use md5::{Digest, Md5};
        let mut all = Md5::new();
        for c in data.chunks(5 << 20) {
            all.update(Md5::digest(c));
        }
        let etag = format!("{}-3", hex::encode(all.finalize()));
        assert!(local_matches_etag(&big, data.len() as u64, &etag, 8 << 20));
        assert!(!local_matches_etag(&big, data.len() as u64, "abc-3", 8 << 20));
    }
}
