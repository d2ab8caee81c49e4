//! What each command does. Exit codes (SPEC-S4 §3): 0 all in sync, 1 conflicts skipped or
//! per-file errors, 2 could not run.

mod bench;
mod doctor;
mod ls;
mod manage;
mod versions;

use std::path::PathBuf;

use crate::cli::{Command, DaemonCmd, SyncCmd};
use crate::config::{parse_s3_uri, Config, Target};
use crate::s3::credentials::process_env;
use crate::s3::resolve;
use crate::s3::{Client, Transfer};
use crate::sync::conflict::Mode;
use crate::sync::guard::MaxDelete;
use crate::sync::plan::Keep;
use crate::sync::{self, Names, Options, Report};

pub const OK: i32 = 0;
pub const PARTIAL: i32 = 1;
pub const FAILED: i32 = 2;

/// A failure that stops the command: printed, then exit 2.
pub type Fatal = String;

pub fn run(cmd: Command, config_path: PathBuf) -> Result<i32, Fatal> {
    // `bench` needs no config unless it names a target: a broken sync.conf must not stop it.
    let cmd = match cmd {
        Command::Bench(b) => return bench::run(b, &config_path),
        cmd => cmd,
    };
    let mut config = Config::load(&config_path)?;
    match cmd {
        Command::Version(_) => {
            println!("{}", crate::VERSION);
            Ok(OK)
        }
        Command::Targets(_) => {
            for name in config.names() {
                let t = config.get(&name).unwrap_or_default();
                println!("{name}: [{} <=> {}]", t.local_folder, t.s3_uri);
            }
            Ok(OK)
        }
        Command::Add(a) => manage::add(&mut config, a),
        Command::Edit(e) => manage::edit(&mut config, e),
        Command::Rm(r) => manage::rm(&mut config, &r.target),
        Command::Ls(l) => ls::run(&config, l),
        Command::Versions(v) => versions::list(&config, v),
        Command::Restore(r) => versions::restore(&config, r),
        Command::Bench(_) => unreachable!("handled above"),
        Command::Doctor(d) => doctor::run(&config, d),
        Command::Sync(s) => sync_cmd(&config, s),
        Command::Daemon(d) => daemon(&config, d),
    }
}

/// `"X" is an unknown target. Choices are: [...]` as S4 says it.
pub fn unknown_target(config: &Config, name: &str) -> Fatal {
    let names: Vec<String> = config.names().iter().map(|n| format!("'{n}'")).collect();
    format!("\"{name}\" is an unknown target. Choices are: [{}]", names.join(", "))
}

pub fn lookup(config: &Config, name: &str) -> Result<Target, Fatal> {
    config.get(name).ok_or_else(|| unknown_target(config, name))
}

/// What a target says about reaching its bucket, for [`crate::s3::resolve`].
pub fn settings_for(target: &Target) -> Result<resolve::Settings, Fatal> {
    let (bucket, prefix) = parse_s3_uri(&target.s3_uri)?;
    Ok(resolve::Settings {
        bucket,
        prefix,
        endpoint_url: target.endpoint_url.clone(),
        region: target.region_name.clone(),
        access_key_id: target.aws_access_key_id.clone(),
        secret_access_key: target.aws_secret_access_key.clone(),
    })
}

/// The S3 client and key prefix for a target; credentials from the target or the AWS chain.
pub fn client_for(target: &Target) -> Result<(Client, String), Fatal> {
    resolve::client(&settings_for(target)?, &process_env).map_err(|e| e.to_string())
}

fn conflict_mode(value: Option<&str>) -> Result<Mode, Fatal> {
    match value {
        None => Ok(Mode::Prompt),
        Some("1") => Ok(Mode::Keep(Keep::Local)),
        Some("2") => Ok(Mode::Keep(Keep::Remote)),
        Some("ignore") => Ok(Mode::Ignore),
        Some(other) => Err(format!("--conflicts {other}: choose 1 (keep local), 2 (keep S3) or ignore")),
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Fatal> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    rt.spawn(watch_signals());
    Ok(rt)
}

/// First SIGINT/SIGTERM: stop planning, finish what is in flight, save the indexes (the next
/// run resumes). A second one: stop at once.
async fn watch_signals() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    sync::interrupt();
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    std::process::exit(130);
}

/// Targets named, or all; an unknown name is an error before anything runs.
fn pick(config: &Config, named: &[String]) -> Result<Vec<String>, Fatal> {
    let mut names = if named.is_empty() { config.names() } else { named.to_vec() };
    names.sort();
    names.dedup();
    for n in &names {
        lookup(config, n)?;
    }
    if names.is_empty() {
        return Err("No targets available. Use the \"add\" command first".into());
    }
    Ok(names)
}

async fn sync_target(config: &Config, name: &str, opts: &Options) -> Result<Report, String> {
    let target = lookup(config, name)?;
    let (client, prefix) = client_for(&target)?;
    let names = Names { name: name.to_string(), local_uri: target.local_uri(), remote_uri: target.remote_uri() };
    sync::run(&client, &prefix, &PathBuf::from(&target.local_folder), &names, opts).await
}

fn sync_cmd(config: &Config, cmd: SyncCmd) -> Result<i32, Fatal> {
    let opts = Options {
        conflicts: conflict_mode(cmd.conflicts.as_deref())?,
        dry_run: cmd.dry_run,
        json: cmd.json,
        jobs: cmd.jobs.max(1),
        follow_symlinks: cmd.follow_symlinks,
        transfer: Transfer::default(),
        max_delete: MaxDelete::parse(&cmd.max_delete)?,
        force: cmd.force,
    };
    let names = pick(config, &cmd.targets)?;
    let rt = runtime()?;
    let mut code = OK;
    let mut total = Report::default();
    for name in &names {
        if sync::interrupted() {
            code = code.max(PARTIAL);
            break;
        }
        match rt.block_on(sync_target(config, name, &opts)) {
            Ok(r) => {
                if let Some(why) = &r.stopped {
                    crate::error!("There was an error syncing '{name}':\n{why}");
                    code = FAILED;
                } else if !r.clean() {
                    code = code.max(PARTIAL);
                }
                total.absorb(&r);
            }
            Err(e) => {
                crate::error!("There was an error syncing '{name}':\n{e}");
                code = FAILED;
            }
        }
    }
    if opts.json {
        let t = &total;
        println!(
            "{}",
            serde_json::json!({"summary": {
                "uploaded": t.uploaded, "downloaded": t.downloaded,
                "deleted_local": t.deleted_local, "deleted_remote": t.deleted_remote,
                "bytes_up": t.bytes_up, "bytes_down": t.bytes_down,
                "conflicts_skipped": t.conflicts_skipped, "errors": t.errors,
                "planned": t.planned, "exit_code": code,
            }})
        );
    }
    Ok(code)
}

/// Keep syncing: on local changes (inotify on every folder, new ones included; a cheap rescan
/// every --read-delay ms where inotify is unavailable) and every --poll seconds for S3's
/// changes, which S4 never looked for. Errors are logged and the loop goes on: a network
/// outage must not end the daemon. SIGINT/SIGTERM end it after the sync in progress.
fn daemon(config: &Config, cmd: DaemonCmd) -> Result<i32, Fatal> {
    let opts = Options {
        conflicts: conflict_mode(Some(&cmd.conflicts))?,
        dry_run: false,
        json: false,
        jobs: cmd.jobs.max(1),
        follow_symlinks: false,
        transfer: Transfer::default(),
        max_delete: MaxDelete::parse(&cmd.max_delete)?,
        force: false,
    };
    let names = pick(config, &cmd.targets)?;
    let rt = runtime()?;
    let mut watched = std::collections::HashMap::new();
    for name in &names {
        let folder = PathBuf::from(lookup(config, name)?.local_folder);
        let _ = std::fs::create_dir_all(&folder);
        crate::info!("Watching {}", folder.display());
        let eye = match crate::watch::watch(&folder) {
            Ok(rx) => Eye::Inotify(rx),
            Err(e) => {
                crate::warn!("{e}; checking {} for changes every {} ms instead", folder.display(), cmd.read_delay);
                Eye::Rescan(None)
            }
        };
        watched.insert(name.clone(), (folder, eye, None::<std::time::Instant>, false));
    }
    while !sync::interrupted() {
        for name in &names {
            let Some((folder, eye, last, again)) = watched.get_mut(name) else { continue };
            let mut dead = false;
            let changed = match eye {
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
                                    "Stopped watching {}; checking it every {} ms instead",
                                    folder.display(),
                                    cmd.read_delay
                                );
                                dead = true;
                                break;
                            }
                        }
                    }
                    // Wait until the folder is quiet for --read-delay: a file still being
                    // copied is not uploaded half-written.
                    // (At most 100 rounds: a file written to without pause still gets synced.)
                    let quiet = std::time::Duration::from_millis(cmd.read_delay.max(100));
                    for _ in 0..100 {
                        if !any || rx.recv_timeout(quiet).is_err() {
                            break;
                        }
                    }
                    any
                }
                Eye::Rescan(fp) => fp.as_ref() != Some(&fingerprint(folder)),
            };
            if dead {
                *eye = Eye::Rescan(None); // no fingerprint yet: the next round syncs and takes one
            }
            let due = *again || last.is_none_or(|t| t.elapsed().as_secs() >= cmd.poll);
            if changed || due {
                match rt.block_on(sync_target(config, name, &opts)) {
                    Err(e) | Ok(Report { stopped: Some(e), .. }) => {
                        crate::error!("There was an error syncing '{name}':\n{e}")
                    }
                    Ok(_) => {}
                }
                // After the sync, so our own downloads do not count as news. Events that came
                // during it may also be the user's: one more sync then settles them (a quick
                // no-op when they were only ours).
                match eye {
                    Eye::Rescan(fp) => *fp = Some(fingerprint(folder)),
                    Eye::Inotify(rx) => {
                        let mut during = false;
                        while rx.try_recv().is_ok() {
                            during = true;
                        }
                        *again = during && !*again;
                    }
                }
                *last = Some(std::time::Instant::now());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(cmd.read_delay.max(100)));
    }
    Ok(OK)
}

enum Eye {
    Inotify(std::sync::mpsc::Receiver<()>),
    /// Fallback: the folder's fingerprint at the last sync.
    Rescan(Option<(u64, u64, u64)>),
}

/// Count, total size and newest mtime of the folder's files (a change to any file, a new
/// directory or a move changes one of them).
fn fingerprint(root: &std::path::Path) -> (u64, u64, u64) {
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
