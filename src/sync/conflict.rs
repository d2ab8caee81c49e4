//! Conflicts: first the fix for S4's false conflicts (identical content on both sides is
//! recorded as synced), then `--conflicts 1|2|ignore`, or S4's prompt on a terminal.

use std::io::{BufRead, IsTerminal, Write};
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
    /// Keep both (issue 12; the daemon's default): where both sides hold a version, the local
    /// one moves aside to `name.conflict-HOST-YYYYMMDD-HHMMSS.ext` (synced like any file on the
    /// next run) and S3's takes the name; where one side deleted, the surviving version is kept.
    KeepBoth,
    Ignore,
}

/// Settle one real conflict without a person: `--conflicts 1|2|keep-both`, else skip. `None`:
/// skipped. With keep-both, the local copy is moved aside here (under `root`) first.
pub fn settle_by_flag(job: &Job, mode: Mode, root: &std::path::Path, now: i64) -> Option<Job> {
    let keep = match mode {
        Mode::Keep(k) => k,
        Mode::KeepBoth if job.local_mtime.is_none() => Keep::Remote,
        Mode::KeepBoth if job.remote_lm.is_none() => Keep::Local,
        Mode::KeepBoth => {
            let from = root.join(&job.key);
            let host = host_name();
            // The first free name: a conflict copy in conflict again within the same second
            // would be named after itself, and another machine's copy (or this one's from the
            // last run) may hold the name already. place_new never replaces a file, so the
            // check and the move are one step.
            let mut n = 1;
            let aside = loop {
                let aside = root.join(conflict_copy_name(&job.key, &host, now, n));
                match crate::fsutil::place_new(&from, &aside) {
                    Ok(()) => break aside,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                    Err(e) => {
                        crate::error!(
                            "Conflict for \"{}\": could not keep the local copy as {}: {e}",
                            job.key,
                            aside.display()
                        );
                        return None;
                    }
                }
            };
            crate::warn!(
                "Conflict for \"{}\": the local version is kept as {}; S3's takes the name",
                job.key,
                aside.display()
            );
            // The file is gone from its place now: the download must expect nothing there.
            let decision = plan::resolve(Keep::Remote, job.local, job.remote);
            return Some(Job { decision, local_mtime: None, ..job.clone() });
        }
        Mode::Ignore | Mode::Prompt => return None,
    };
    match plan::resolve(keep, job.local, job.remote) {
        Decision::Nothing => None,
        decision => {
            // The version not kept goes for good: say so, as keep-both does (issue 10: an edit
            // is never lost silently; a settled conflict used to read like a plain transfer).
            crate::warn!(
                "Conflict for \"{}\" ({} locally, {} on S3): {}",
                job.key,
                job.local.state.name(),
                job.remote.state.name(),
                settled(decision)
            );
            Some(Job { decision, ..job.clone() })
        }
    }
}

/// What a `--conflicts 1|2` settlement does, in words.
fn settled(decision: Decision) -> &'static str {
    match decision {
        Decision::Upload { .. } => "the local version replaces S3's",
        Decision::Download { .. } => "S3's version replaces the local one",
        Decision::DeleteRemote { .. } => "the local deletion removes S3's version",
        Decision::DeleteLocal { .. } => "S3's deletion removes the local file",
        Decision::Nothing | Decision::Conflict => "nothing to do",
    }
}

/// `dir/name.conflict-HOST-YYYYMMDD-HHMMSS.ext`, the `n`th choice numbered `…-HHMMSS-N.ext`. A
/// conflict copy in a conflict again gets a new stamp, never a second suffix: never a conflict of
/// a conflict copy.
pub fn conflict_copy_name(key: &str, host: &str, now: i64, n: u32) -> String {
    let (dir, name) = key.rsplit_once('/').map_or(("", key), |(d, n)| (d, n));
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let stem = stem.split(".conflict-").next().unwrap_or(stem);
    let when: String = crate::log::format_utc(now).chars().filter(|c| c.is_ascii_digit() || *c == ' ').collect();
    let when = when.replace(' ', "-");
    let host: String = host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let when = if n > 1 { format!("{when}-{n}") } else { when };
    let file = format!("{stem}.conflict-{host}-{when}{ext}");
    if dir.is_empty() {
        file
    } else {
        format!("{dir}/{file}")
    }
}

fn host_name() -> String {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    match h.trim() {
        "" => "host".into(),
        h => h.to_string(),
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
        if let Some((mtime, etag)) = ctx.identical(&job).await {
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
    use crate::sync::plan::{Side, State};

    /// Found by the scenario-3 test on s3s-fs (two machines on one host, issue 10): a conflict
    /// copy in conflict again within the second it was named in got its own name as the new
    /// one, so keep-both could not move it aside and skipped the conflict ("File exists").
    #[test]
    fn a_conflict_copy_in_conflict_within_its_own_second_is_moved_aside_not_skipped() {
        let t = 1_700_000_000;
        let root = tempfile::tempdir().unwrap();
        let key = conflict_copy_name("f.txt", &host_name(), t, 1);
        std::fs::write(root.path().join(&key), "mine").unwrap();
        let side = |state| Side { state, real: Some(t - 10), stamp: Some(t - 100), tombstone: false, version: None };
        let job = Job {
            key: key.clone(),
            decision: Decision::Conflict,
            local_mtime: Some((t - 10) as f64),
            remote_size: 6,
            remote_lm: Some(t - 5),
            li: None,
            ri: None,
            local: side(State::Created),
            remote: side(State::Created),
            local_size: Some(4),
            etag: None,
            after_deletes: false,
            moved_from: None,
        };
        let next = settle_by_flag(&job, Mode::KeepBoth, root.path(), t).expect("settled, not skipped");
        assert!(matches!(next.decision, Decision::Download { .. }), "{:?}", next.decision);
        let aside = root.path().join(conflict_copy_name("f.txt", &host_name(), t, 2));
        assert_eq!(std::fs::read_to_string(aside).unwrap(), "mine");
        assert!(!root.path().join(&key).exists(), "the name is free for S3's version");
    }

    #[test]
    fn conflict_copies_are_named_once() {
        let t = 1_700_000_000; // 2023-11-14 22:13:20 UTC
        assert_eq!(
            conflict_copy_name("notes/todo.txt", "lap top", t, 1),
            "notes/todo.conflict-lap_top-20231114-221320.txt"
        );
        assert_eq!(conflict_copy_name("Makefile", "h", t, 1), "Makefile.conflict-h-20231114-221320");
        assert_eq!(conflict_copy_name(".bashrc", "h", t, 1), ".bashrc.conflict-h-20231114-221320");
        // Never a conflict of a conflict copy: the old suffix is replaced, not nested.
        let again = conflict_copy_name("notes/todo.conflict-h-20231114-221320.txt", "h", t + 60, 1);
        assert_eq!(again, "notes/todo.conflict-h-20231114-221420.txt");
        assert_eq!(conflict_copy_name("a/b.txt", "h", t, 2), "a/b.conflict-h-20231114-221320-2.txt");
        let numbered = conflict_copy_name("a/b.conflict-h-20231114-221320-2.txt", "h", t + 60, 1);
        assert_eq!(numbered, "a/b.conflict-h-20231114-221420.txt");
    }
}
