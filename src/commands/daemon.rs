//! `s4 daemon`: keep syncing, on local changes (inotify on every folder, new ones included; a
//! cheap rescan every --read-delay ms where inotify is unavailable) and every --poll seconds for
//! S3's changes, which S4 never looked for.
//!
//! The steady state costs what changed, not the tree (issue 13): the watch names the keys that
//! changed, and a round syncs just those (a stat and a HEAD each); a poll of S3 is one
//! conditional GET of the remote index; a full sync (scan and listing) runs when in doubt and
//! every --full-every minutes (see `rounds.rs` for when and why).
//!
//! It logs only what changed: a round with nothing to do is a DEBUG heartbeat (with what it
//! cost in requests), a failure is logged when it starts and when it ends (not at every poll of
//! an outage). Timestamps are on. SIGINT/SIGTERM end it after the sync in progress, with sync's
//! exit codes for the last round of each target: 0 all in sync, 1 conflicts skipped, files
//! failed or a sync cut off, 2 a target that could not run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::index_etag::Tracked;
use super::rounds::{self, Step};
use super::syncing::{code_of, options, summary_line, Flags};
use super::{client_for, conflict_mode, hints, lookup, pick, runtime, Fatal, FAILED, OK};
use crate::cli::DaemonCmd;
use crate::config::Config;
use crate::events;
use crate::log::Level;
use crate::s3::Client;
use crate::sync::remote::{Fresh, Remote, S3};
use crate::sync::{self, Names, Report};
use crate::watch::Change;

enum Eye {
    Inotify(std::sync::mpsc::Receiver<Change>),
    /// Fallback: the folder's fingerprint at the last sync.
    Rescan(Option<(u64, u64, u64)>),
}

/// A target's store, kept between rounds: pooled connections, and requests counted per round.
struct Store {
    client: Client,
    remote: Arc<Tracked>,
    prefix: String,
    names: Names,
}

/// One watched target.
struct Watched {
    folder: PathBuf,
    eye: Eye,
    news: rounds::Local,
    past: rounds::Past,
    /// The remote index's ETag as the last trusted round left it (what the poll asks about).
    known: Option<String>,
    /// Both indexes as the last round left them: a round reads a file again only if it changed.
    kept: sync::Keeper,
    store: Option<Store>,
    /// The last round's exit code, and its error (to log an outage once, not every poll).
    code: i32,
    failing: Option<String>,
}

pub fn daemon(config: &Config, cmd: DaemonCmd) -> Result<i32, Fatal> {
    crate::log::set_timestamps(true);
    let mut opts = sync::fitted(&options(Flags {
        conflicts: conflict_mode(Some(&cmd.conflicts))?,
        dry_run: false,
        json: cmd.json,
        jobs: cmd.jobs,
        max_delete: &cmd.max_delete,
        bwlimit: cmd.bwlimit.as_deref(),
        exclude: &[],
        include: &[],
    })?);
    // A log, not a display: a bar flashed at every poll, and took the lines that say which
    // files changed (they go to DEBUG while a bar is on screen).
    opts.progress = false;
    let timing = rounds::Timing {
        poll: Duration::from_secs(cmd.poll),
        full_every: Duration::from_secs(cmd.full_every.saturating_mul(60)),
    };
    let names = pick(config, &cmd.targets)?;
    let rt = runtime()?;
    let mut watched = HashMap::new();
    for name in &names {
        let folder = PathBuf::from(lookup(config, name)?.local_folder);
        let _ = std::fs::create_dir_all(&folder);
        crate::info!("Watching {} for '{name}'", folder.display());
        let eye = match crate::watch::watch(&folder) {
            Ok(rx) => Eye::Inotify(rx),
            Err(e) => {
                crate::warn!("{e}; checking {} for changes every {} ms instead", folder.display(), cmd.read_delay);
                Eye::Rescan(None)
            }
        };
        let past = rounds::Past { watch_complete: true, ..Default::default() };
        let w = Watched {
            folder,
            eye,
            news: Default::default(),
            past,
            known: None,
            kept: Default::default(),
            store: None,
            code: OK,
            failing: None,
        };
        watched.insert(name.clone(), w);
    }
    while !sync::interrupted() {
        for name in &names {
            let Some(w) = watched.get_mut(name) else { continue };
            look(w, cmd.read_delay);
            let now = Instant::now();
            let mut step = rounds::decide(now, timing, &w.past, &w.news, None);
            if step == Step::Ask {
                let changed = rt.block_on(index_changed(config, name, &opts, w));
                w.past.last_check = Some(now);
                step = rounds::decide(now, timing, &w.past, &w.news, Some(changed));
            }
            match step {
                Step::Idle | Step::Ask => continue,
                Step::Keys(keys) => {
                    w.news = Default::default();
                    if round(&rt, config, name, &opts, w, Some(keys)).is_some_and(|r| r.needs_full) {
                        crate::debug!("'{name}': a full sync settles what the changed keys could not");
                        round(&rt, config, name, &opts, w, None);
                    }
                }
                Step::Full(why) => {
                    crate::debug!("'{name}': full sync: {why}");
                    w.news = Default::default();
                    round(&rt, config, name, &opts, w, None);
                }
            }
            // After the sync, so our own downloads do not count as news. (Events during it
            // are gathered by the next look: the keys of our own downloads make a quick no-op.)
            if let Eye::Rescan(fp) = &mut w.eye {
                *fp = Some(fingerprint(&w.folder));
            }
        }
        std::thread::sleep(Duration::from_millis(cmd.read_delay.max(100)));
    }
    let code = watched.values().map(|w| w.code).max().unwrap_or(OK);
    crate::info!("Stopped (exit code {code})");
    Ok(code)
}

/// Gather what changed in the folder since the last look, waiting for it to be quiet for
/// --read-delay first.
fn look(w: &mut Watched, read_delay: u64) {
    let mut dead = false;
    match &w.eye {
        Eye::Inotify(rx) => {
            let mut any = false;
            let take = |c: Change, w_news: &mut rounds::Local, past: &mut rounds::Past| {
                if c == Change::Unwatched {
                    past.watch_complete = false;
                }
                w_news.add(c);
            };
            loop {
                match rx.try_recv() {
                    Ok(c) => {
                        any = true;
                        take(c, &mut w.news, &mut w.past);
                    }
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    // The watcher thread died (inotify lost): the folder must not go
                    // unwatched. Rescanning from here on.
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        crate::warn!(
                            "Stopped watching {}; checking it every {read_delay} ms instead",
                            w.folder.display()
                        );
                        dead = true;
                        break;
                    }
                }
            }
            // Wait until the folder is quiet for --read-delay: a file still being copied is
            // not uploaded half-written. (At most 100 rounds: a file written to without pause
            // still gets synced.)
            let quiet = Duration::from_millis(read_delay.max(100));
            for _ in 0..100 {
                if !any {
                    break;
                }
                match rx.recv_timeout(quiet) {
                    Ok(c) => take(c, &mut w.news, &mut w.past),
                    Err(_) => break,
                }
            }
        }
        Eye::Rescan(fp) => {
            if fp.as_ref() != Some(&fingerprint(&w.folder)) {
                w.news.everything.get_or_insert_with(|| "the folder changed (no inotify)".into());
            }
        }
    }
    if dead {
        w.eye = Eye::Rescan(None); // no fingerprint yet: the next round syncs and takes one
        w.news.everything.get_or_insert_with(|| "the watch stopped".into());
    }
}

/// The target's store, made once (a failure is the round's error, tried again next time).
fn store<'a>(config: &Config, name: &str, opts: &sync::Options, w: &'a mut Watched) -> Result<&'a Store, String> {
    if w.store.is_none() {
        let target = lookup(config, name)?;
        let (client, prefix) =
            client_for(&target).map_err(|e| hints::explain(&e, name, target.endpoint_url.as_deref()))?;
        // One token bucket a direction for the daemon's life: --bwlimit holds across rounds.
        let limits = crate::s3::Limits::per_direction(opts.bwlimit);
        let s3: Arc<dyn Remote> = Arc::new(S3 { client: client.clone(), transfer: opts.transfer, limits });
        let names = Names { name: name.to_string(), local_uri: target.local_uri(), remote_uri: target.remote_uri() };
        w.store = Some(Store { client, remote: Arc::new(Tracked::new(s3, &prefix)), prefix, names });
    }
    Ok(w.store.as_ref().expect("just made"))
}

/// The idle poll: has the remote index changed since the last round? One conditional GET;
/// a failure counts as a change (the full sync that follows reports it).
async fn index_changed(config: &Config, name: &str, opts: &sync::Options, w: &mut Watched) -> bool {
    let Some(known) = w.known.clone() else { return true };
    let Ok(s) = store(config, name, opts, w) else { return true };
    let sent = s.client.requests_sent();
    let answer = s.remote.get_if_changed(s.remote.index_key(), &known).await;
    s.remote.take(); // a poll is no round's reading
    let requests = s.client.requests_sent() - sent;
    // A store that ignores If-None-Match answers 200 with the same ETag: nothing new either.
    let changed = match &answer {
        Ok(Fresh::Unchanged) => false,
        Ok(Fresh::Changed(_, m)) => m.etag.as_deref() != Some(known.trim_matches('"')),
        _ => true,
    };
    let what = if changed { "changed" } else { "unchanged" };
    crate::debug!("'{name}': poll: the remote index is {what} ({requests} request)");
    changed
}

/// One sync of one target (of `keys` only, when given), logged only if it did something or
/// something is wrong.
fn round(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    name: &str,
    opts: &sync::Options,
    w: &mut Watched,
    keys: Option<Vec<String>>,
) -> Option<Report> {
    events::set_target(Some(name));
    let t0 = Instant::now();
    let full = keys.is_none();
    let what = keys.as_ref().map_or("full sync".to_string(), |k| format!("{} changed key(s)", k.len()));
    crate::log::hold();
    let (folder, kept) = (w.folder.clone(), w.kept.clone());
    // A full sync reads both indexes afresh: were the kept ones ever to drift from the files,
    // the periodic full sync puts that right, as it does for other tools' writes (review).
    if full {
        kept.clear();
    }
    let (result, requests, trail) = match store(config, name, opts, w) {
        Err(e) => (Err(e), 0, Default::default()),
        Ok(s) => {
            let sent = s.client.requests_sent();
            let remote: Arc<dyn Remote> = s.remote.clone();
            let result = rt.block_on(async {
                match keys {
                    None => sync::run_kept(remote, &s.prefix, &folder, &s.names, opts, &kept).await,
                    Some(keys) => sync::run_keys(remote, &s.prefix, &folder, &s.names, opts, keys, Some(&kept)).await,
                }
            });
            (result, s.client.requests_sent() - sent, s.remote.take())
        }
    };
    let news = result.as_ref().map(Report::news).unwrap_or(true);
    crate::log::release(if news { Level::Info } else { Level::Debug });
    let took = t0.elapsed();
    crate::debug!("'{name}': round ({what}): {requests} requests in {:.3} s", took.as_secs_f64());
    let now = Instant::now();
    if full {
        w.past.last_full = Some(now);
        w.past.last_check = Some(now);
    }
    let known = result.as_ref().ok().and_then(|_| trail.settled(w.known.as_deref(), full));
    if known.is_none() && !full && result.is_ok() {
        w.past.last_check = None; // the index moved on meanwhile: look at S3 now, not at the next poll
    }
    w.known = known;
    w.past.index_known = w.known.is_some();
    w.past.retry = result.as_ref().map_or(true, |r| r.errors > 0);
    let report = match result {
        Ok(r) => {
            if let Some(why) = &r.stopped {
                crate::error!("There was an error syncing '{name}':\n{why}");
            }
            if w.failing.take().is_some() {
                crate::info!("'{name}' syncs again");
            }
            w.code = code_of(&r);
            if news {
                let (level, line) = summary_line(name, &r, took, false);
                crate::log::emit(level, None, &line);
                if opts.json {
                    events::emit("summary", events::summary_fields(&r, w.code, took.as_secs_f64(), false));
                }
            } else {
                crate::debug!("'{name}' is in sync");
            }
            Some(r)
        }
        Err(e) => {
            // An outage logs once when it starts (and when its error changes), then at DEBUG.
            if w.failing.as_deref() == Some(e.as_str()) {
                crate::debug!("still failing to sync '{name}': {e}");
            } else {
                crate::error!("There was an error syncing '{name}' (retrying every poll):\n{e}");
                if opts.json {
                    events::error(name, &e);
                }
            }
            w.failing = Some(e);
            w.code = FAILED;
            None
        }
    };
    events::set_target(None);
    report
}

/// Count, total size and newest mtime of the folder's files (a change to any file, a new
/// directory or a move changes one of them).
fn fingerprint(root: &Path) -> (u64, u64, u64) {
    let rules = std::sync::Arc::new(crate::ignore::IgnoreRules::default());
    let mut fp = (0u64, 0u64, 0u64);
    let Ok(scanner) = sync::scan::Scanner::new(root, rules) else { return fp };
    for item in scanner {
        let sync::scan::Item::File(f) = item else { continue };
        fp.0 += 1;
        fp.1 = fp.1.wrapping_add(f.size);
        fp.2 = fp.2.wrapping_add((f.mtime * 1000.0) as u64);
    }
    fp
}
