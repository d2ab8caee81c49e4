//! `s4 daemon`: keep syncing, on local changes (inotify on every folder, new ones included; a
//! cheap rescan every --read-delay ms where inotify is unavailable) and every --poll seconds for
//! S3's changes, which S4 never looked for.
//!
//! It logs only what changed: a round with nothing to do is a DEBUG heartbeat, a failure is
//! logged when it starts and when it ends (not at every poll of an outage). Timestamps are on.
//! SIGINT/SIGTERM end it after the sync in progress, with sync's exit codes for the last round
//! of each target: 0 all in sync, 1 conflicts skipped, files failed or a sync cut off, 2 a
//! target that could not run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::syncing::{code_of, options, summary_line, sync_target, Flags};
use super::{conflict_mode, lookup, pick, runtime, Fatal, FAILED, OK};
use crate::cli::DaemonCmd;
use crate::config::Config;
use crate::events;
use crate::log::Level;
use crate::sync::{self, Report};

enum Eye {
    Inotify(std::sync::mpsc::Receiver<()>),
    /// Fallback: the folder's fingerprint at the last sync.
    Rescan(Option<(u64, u64, u64)>),
}

/// One watched target.
struct Watched {
    folder: PathBuf,
    eye: Eye,
    last: Option<Instant>,
    /// Sync once more: events came in during the last sync.
    again: bool,
    /// The last round's exit code, and its error (to log an outage once, not every poll).
    code: i32,
    failing: Option<String>,
}

pub fn daemon(config: &Config, cmd: DaemonCmd) -> Result<i32, Fatal> {
    crate::log::set_timestamps(true);
    let mut opts = options(Flags {
        conflicts: conflict_mode(Some(&cmd.conflicts))?,
        dry_run: false,
        json: cmd.json,
        jobs: cmd.jobs,
        max_delete: &cmd.max_delete,
        bwlimit: cmd.bwlimit.as_deref(),
        exclude: &[],
        include: &[],
    })?;
    // A log, not a display: a bar flashed at every poll, and took the lines that say which
    // files changed (they go to DEBUG while a bar is on screen).
    opts.progress = false;
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
        watched.insert(name.clone(), Watched { folder, eye, last: None, again: false, code: OK, failing: None });
    }
    while !sync::interrupted() {
        for name in &names {
            let Some(w) = watched.get_mut(name) else { continue };
            let changed = look(w, cmd.read_delay);
            let due = w.again || w.last.is_none_or(|t| t.elapsed().as_secs() >= cmd.poll);
            if !(changed || due) {
                continue;
            }
            round(&rt, config, name, &opts, w);
            // After the sync, so our own downloads do not count as news. Events that came
            // during it may also be the user's: one more sync then settles them (a quick
            // no-op when they were only ours).
            match &mut w.eye {
                Eye::Rescan(fp) => *fp = Some(fingerprint(&w.folder)),
                Eye::Inotify(rx) => {
                    let mut during = false;
                    while rx.try_recv().is_ok() {
                        during = true;
                    }
                    w.again = during && !w.again;
                }
            }
            w.last = Some(Instant::now());
        }
        std::thread::sleep(std::time::Duration::from_millis(cmd.read_delay.max(100)));
    }
    let code = watched.values().map(|w| w.code).max().unwrap_or(OK);
    crate::info!("Stopped (exit code {code})");
    Ok(code)
}

/// Did the folder change since the last look? Waits for it to be quiet for --read-delay first.
fn look(w: &mut Watched, read_delay: u64) -> bool {
    let mut dead = false;
    let changed = match &w.eye {
        Eye::Inotify(rx) => {
            let mut any = false;
            loop {
                match rx.try_recv() {
                    Ok(()) => any = true,
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
            let quiet = std::time::Duration::from_millis(read_delay.max(100));
            for _ in 0..100 {
                if !any || rx.recv_timeout(quiet).is_err() {
                    break;
                }
            }
            any
        }
        Eye::Rescan(fp) => fp.as_ref() != Some(&fingerprint(&w.folder)),
    };
    if dead {
        w.eye = Eye::Rescan(None); // no fingerprint yet: the next round syncs and takes one
    }
    changed
}

/// One sync of one target, logged only if it did something or something is wrong.
fn round(rt: &tokio::runtime::Runtime, config: &Config, name: &str, opts: &sync::Options, w: &mut Watched) {
    events::set_target(Some(name));
    let t0 = Instant::now();
    crate::log::hold();
    let result = rt.block_on(sync_target(config, name, opts));
    let news = result.as_ref().map(Report::news).unwrap_or(true);
    crate::log::release(if news { Level::Info } else { Level::Debug });
    match result {
        Ok(r) => {
            if let Some(why) = &r.stopped {
                crate::error!("There was an error syncing '{name}':\n{why}");
            }
            if w.failing.take().is_some() {
                crate::info!("'{name}' syncs again");
            }
            w.code = code_of(&r);
            if news {
                let (level, line) = summary_line(name, &r, t0.elapsed(), false);
                crate::log::emit(level, None, &line);
                if opts.json {
                    events::emit("summary", events::summary_fields(&r, w.code, t0.elapsed().as_secs_f64(), false));
                }
            } else {
                crate::debug!("'{name}' is in sync");
            }
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
        }
    }
    events::set_target(None);
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
