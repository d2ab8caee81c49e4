//! A sync of a few named keys (the daemon's steady state, issue 13): each key is seen as the
//! full sync's scan and listing would see it, from a local `lstat` and a HEAD, so the plan,
//! the conflicts and every safety re-check are the same; only the two whole-tree passes are
//! left out. What a key set cannot judge (deletions only the guards' totals may allow, a
//! followed symlink, a changed `.syncignore`) is left to a full sync: [`super::Report::needs_full`].

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::task::JoinSet;

use super::exec::Ctx;
use super::merge::Observation;
use super::remote::{Meta, Remote};
use super::scan::{mtime_of, LocalFile};
use super::state::Indexes;
use super::{Names, Options, Report};
use crate::ignore::IgnoreRules;

/// Sync only `keys` (relative, as the daemon's watch reports them): each from a local stat and
/// a HEAD, under the same lock, lease, rules, guards and index commit as [`super::run_on`],
/// without the scan of the folder or the listing of the prefix. When the report says
/// [`Report::needs_full`], a full sync must follow. `keeper`: as in [`super::run_kept`].
pub async fn run_keys(
    remote: Arc<dyn Remote>,
    prefix: &str,
    root: &Path,
    names: &Names,
    opts: &Options,
    keys: Vec<String>,
    keeper: Option<&super::Keeper>,
) -> Result<Report, String> {
    // --force waives the guards on a full sync's totals, which a key set does not know.
    let opts = Options { force: false, ..opts.clone() };
    super::run_scoped(remote, prefix, root, names, &opts, Some(normalize(keys)), keeper).await
}

/// The keys `--exclude` (less `--include`) leaves alone this run.
pub(super) fn leave_alone(opts: &Options) -> Option<IgnoreRules> {
    (!opts.exclude.is_empty()).then(|| {
        let negated = opts.include.iter().map(|p| format!("!{p}"));
        IgnoreRules::parse(&opts.exclude.iter().cloned().chain(negated).collect::<Vec<_>>().join("\n"))
    })
}

/// Keys HEADed together before they are planned.
const BATCH: usize = 256;

/// The observations of a key set, in key order, a batch of HEADs at a time.
pub(super) struct Observer {
    remote: Arc<dyn Remote>,
    prefix: String,
    root: PathBuf,
    rules: Arc<IgnoreRules>,
    jobs: usize,
    follow_symlinks: bool,
    keys: std::vec::IntoIter<String>,
    ready: VecDeque<Observation>,
}

/// Observe the `keys` the merge would plan (see [`admitted`]).
pub(super) fn observe(ctx: &Ctx, opts: &Options, keys: &[String], rules: Arc<IgnoreRules>, idx: &Indexes) -> Observer {
    let alone = leave_alone(opts);
    let keys: Vec<String> = keys.iter().filter(|k| admitted(k, &rules, alone.as_ref(), idx)).cloned().collect();
    Observer {
        remote: ctx.remote.clone(),
        prefix: ctx.prefix.clone(),
        root: ctx.root.clone(),
        rules,
        jobs: opts.jobs,
        follow_symlinks: opts.follow_symlinks,
        keys: keys.into_iter(),
        ready: VecDeque::new(),
    }
}

impl Observer {
    /// The next key to plan; what cannot be observed is skipped as the scan skips it, and
    /// counted in `report`.
    pub(super) async fn next(&mut self, report: &mut Report) -> Result<Option<Observation>, String> {
        while self.ready.is_empty() {
            let batch: Vec<String> = self.keys.by_ref().take(BATCH).collect();
            if batch.is_empty() || super::interrupted() {
                return Ok(None);
            }
            let refs: Vec<&String> = batch.iter().collect();
            let heads = head_all(&self.remote, &self.prefix, &refs, self.jobs).await?;
            for (key, head) in batch.into_iter().zip(heads) {
                let remote = match head {
                    Ok(ro) => ro,
                    Err(e) => {
                        crate::warn!("{e}");
                        report.errors += 1;
                        continue;
                    }
                };
                let local = match local_view(&self.root, &key, self.rules.is_ignored(&key, false)) {
                    Seen::File(f) => Some(f),
                    Seen::Absent => None,
                    Seen::Unknown { reason, error, link } => {
                        crate::warn!("{reason}");
                        report.errors += u64::from(error);
                        report.needs_full |= link && self.follow_symlinks;
                        continue;
                    }
                };
                self.ready.push_back(Observation { key, local, remote });
            }
        }
        Ok(self.ready.pop_front())
    }
}

/// Keys to look at, in key order, once each; s4's own files and names no local file can
/// have dropped (`.syncignore` is settled before any rule is read, as in a full sync).
pub fn normalize(keys: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut keys: Vec<String> = keys
        .into_iter()
        .filter(|k| crate::fsutil::is_safe_key(k) && !crate::ignore::is_reserved(k) && k != ".syncignore")
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Is `key` planned, as the merge would plan it? Not when left alone this run (--exclude), nor
/// when `.syncignore` ignores it and this machine never synced it; an ignored key it synced is
/// planned (as gone locally), so its copy on S3 is deleted as in a full sync.
pub(super) fn admitted(key: &str, rules: &IgnoreRules, leave_alone: Option<&IgnoreRules>, idx: &Indexes) -> bool {
    if leave_alone.is_some_and(|r| r.is_ignored(key, false)) {
        return false;
    }
    !(rules.is_ignored(key, false) && idx.local().get(key).is_none_or(|e| e.is_tombstone()))
}

/// What the local scan would yield at a key.
#[derive(Debug, PartialEq)]
pub(super) enum Seen {
    File(LocalFile),
    /// No file there: nothing, a directory, or below a file (the walk would not list it).
    Absent,
    /// Something the walk would skip as unknown (a symlink, a FIFO, a failed stat): never
    /// planned, as a deletion least of all. `link`: a symlink, which --follow-symlinks would
    /// follow; only a full sync knows where to.
    Unknown {
        reason: String,
        error: bool,
        link: bool,
    },
}

/// `key` under `root` as the scan sees it: `lstat` of each directory on the way (a symlinked
/// directory is not descended into), then of the key. `ignored` keys are not seen at all.
pub(super) fn local_view(root: &Path, key: &str, ignored: bool) -> Seen {
    if ignored {
        return Seen::Absent;
    }
    let mut path = root.to_path_buf();
    let parts: Vec<&str> = key.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let last = i + 1 == parts.len();
        let sub = parts[..=i].join("/");
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                return Seen::Absent
            }
            Err(e) => return Seen::Unknown { reason: format!("skipping {sub}: {e}"), error: true, link: false },
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            let reason = format!("skipping symlink {sub}; it is left alone on S3");
            return Seen::Unknown { reason, error: false, link: true };
        }
        match (last, ft.is_dir(), ft.is_file()) {
            (false, true, _) => continue,
            (false, false, _) => return Seen::Absent, // a file where a directory would be
            (true, true, _) => return Seen::Absent,
            (true, false, true) => {
                return Seen::File(LocalFile { key: key.to_string(), size: meta.len(), mtime: mtime_of(&meta) })
            }
            (true, false, false) => {
                let reason = format!("skipping {sub}: not a regular file; it is left alone on S3");
                return Seen::Unknown { reason, error: false, link: false };
            }
        }
    }
    Seen::Absent
}

/// HEAD of each key (`prefix` + key), `jobs` at a time, answers in the keys' order: a few
/// round trips in all rather than one per key. A failed HEAD fails only its key.
pub(super) async fn head_all(
    remote: &Arc<dyn Remote>,
    prefix: &str,
    keys: &[&String],
    jobs: usize,
) -> Result<Vec<Result<Option<Meta>, String>>, String> {
    let mut out: Vec<Result<Option<Meta>, String>> = (0..keys.len()).map(|_| Ok(None)).collect();
    let mut set = JoinSet::new();
    let mut next = 0;
    while next < keys.len() || !set.is_empty() {
        while next < keys.len() && set.len() < jobs.max(1) {
            let (remote, full, i) = (remote.clone(), format!("{prefix}{}", keys[next]), next);
            set.spawn(async move { (i, remote.head(&full).await.map_err(|e| e.to_string())) });
            next += 1;
        }
        if let Some(done) = set.join_next().await {
            let (i, r) = done.map_err(|e| format!("a HEAD task died: {e}"))?;
            out[i] = r;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_sorts_dedups_and_drops_our_own_files() {
        let got = normalize(
            ["b", "a/x", "b", ".index", ".s4lock", ".syncignore", "d/.s4tmp-1-2", "../up", "sub/.index", ""]
                .map(String::from),
        );
        assert_eq!(got, vec!["a/x", "b", "sub/.index"]);
    }

    #[test]
    fn local_view_sees_what_the_scan_sees() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("dir/sub")).unwrap();
        std::fs::write(r.join("dir/f"), "12345").unwrap();
        std::fs::write(r.join("file"), "x").unwrap();
        std::os::unix::fs::symlink(r.join("dir"), r.join("link")).unwrap();
        match local_view(r, "dir/f", false) {
            Seen::File(f) => assert_eq!((f.key.as_str(), f.size), ("dir/f", 5)),
            other => panic!("{other:?}"),
        }
        assert_eq!(local_view(r, "dir/f", true), Seen::Absent, "ignored: the scan never lists it");
        assert_eq!(local_view(r, "dir/sub", false), Seen::Absent, "a directory is not a file");
        assert_eq!(local_view(r, "missing/f", false), Seen::Absent);
        assert_eq!(local_view(r, "file/below", false), Seen::Absent, "below a file");
        for key in ["link", "link/f"] {
            assert!(
                matches!(local_view(r, key, false), Seen::Unknown { link: true, error: false, .. }),
                "{key}: the walk skips links as unknown, never as deleted"
            );
        }
        let _sock = std::os::unix::net::UnixListener::bind(r.join("sock")).unwrap();
        assert!(matches!(local_view(r, "sock", false), Seen::Unknown { link: false, .. }));
    }
}
