//! What each command does. Exit codes (SPEC-S4 §3): 0 all in sync, 1 conflicts skipped or
//! per-file errors, 2 could not run.

mod bench;
mod daemon;
mod doctor;
pub mod hints;
mod index_etag;
mod ls;
mod manage;
mod rounds;
mod syncing;
pub mod validate;
mod versions;

use std::path::PathBuf;

use crate::cli::Command;
use crate::config::{parse_s3_uri, Config, Target};
use crate::s3::credentials::process_env;
use crate::s3::resolve;
use crate::s3::Client;
use crate::sync::conflict::Mode;
use crate::sync::plan::Keep;

pub const OK: i32 = 0;
pub const PARTIAL: i32 = 1;
pub const FAILED: i32 = 2;

/// A failure that stops the command: printed, then exit 2.
pub type Fatal = String;

pub fn run(cmd: Command, config_path: PathBuf) -> Result<i32, Fatal> {
    // `bench` needs no config unless it names a target: a broken sync.conf must not stop it.
    let cmd = match cmd {
        Command::Bench(b) => return bench::run(b, &config_path),
        Command::Completions(c) => {
            let script = crate::manual::completions(&c.shell)
                .ok_or_else(|| format!("completions {}: choose bash, zsh or fish", c.shell))?;
            crate::out!(raw "{script}");
            return Ok(OK);
        }
        Command::Man(_) => {
            crate::out!(raw "{}", crate::manual::man_page());
            return Ok(OK);
        }
        cmd => cmd,
    };
    let mut config = Config::load(&config_path)?;
    match cmd {
        Command::Version(_) => {
            crate::out!("{}", crate::VERSION);
            Ok(OK)
        }
        Command::Targets(_) => {
            for name in config.names() {
                let t = config.get(&name).unwrap_or_default();
                crate::out!("{name}: [{} <=> {}]", t.local_folder, t.s3_uri);
            }
            Ok(OK)
        }
        Command::Add(a) => manage::add(&mut config, a),
        Command::Edit(e) => manage::edit(&mut config, e),
        Command::Rm(r) => manage::rm(&mut config, &r.target, r.yes),
        Command::Ls(l) => ls::run(&config, l),
        Command::Versions(v) => versions::list(&config, v),
        Command::Restore(r) => versions::restore(&config, r),
        Command::Bench(_) | Command::Completions(_) | Command::Man(_) => unreachable!("handled above"),
        Command::Doctor(d) => doctor::run(&config, d),
        Command::Sync(s) => syncing::sync_cmd(&config, s),
        Command::Status(s) => syncing::status(&config, s),
        Command::Daemon(d) => daemon::daemon(&config, d),
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

pub(crate) fn conflict_mode(value: Option<&str>) -> Result<Mode, Fatal> {
    match value {
        None => Ok(Mode::Prompt),
        Some("1") => Ok(Mode::Keep(Keep::Local)),
        Some("2") => Ok(Mode::Keep(Keep::Remote)),
        Some("ignore") => Ok(Mode::Ignore),
        Some("keep-both") => Ok(Mode::KeepBoth),
        Some(other) => Err(format!(
            "--conflicts {other}: choose 1 (keep local), 2 (keep S3), keep-both (local copy kept beside) or ignore"
        )),
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
    crate::sync::interrupt();
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    std::process::exit(130);
}

/// Targets named, or all; an unknown name is an error before anything runs.
pub(crate) fn pick(config: &Config, named: &[String]) -> Result<Vec<String>, Fatal> {
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
