//! What each command does. Exit codes (SPEC-S4 §3): 0 all in sync, 1 conflicts skipped or
//! per-file errors, 2 could not run.

mod bench;
mod daemon;
pub mod hints;
mod ls;
mod manage;
mod syncing;
pub mod validate;
mod versions;

use std::path::PathBuf;

use crate::cli::Command;
use crate::config::{parse_s3_uri, Config, Target};
use crate::s3::credentials::{self, process_env};
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
            print!("{script}");
            return Ok(OK);
        }
        Command::Man(_) => {
            print!("{}", crate::manual::man_page());
            return Ok(OK);
        }
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
        Command::Rm(r) => manage::rm(&mut config, &r.target, r.yes),
        Command::Ls(l) => ls::run(&config, l),
        Command::Versions(v) => versions::list(&config, v),
        Command::Restore(r) => versions::restore(&config, r),
        Command::Bench(_) | Command::Completions(_) | Command::Man(_) => unreachable!("handled above"),
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

/// The S3 client and key prefix for a target; credentials from the target or the AWS chain.
pub fn client_for(target: &Target) -> Result<(Client, String), Fatal> {
    let (bucket, prefix) = parse_s3_uri(&target.s3_uri)?;
    let env = &process_env;
    let endpoint =
        target.endpoint_url.clone().or_else(|| env("AWS_ENDPOINT_URL_S3")).or_else(|| env("AWS_ENDPOINT_URL"));
    let region = credentials::resolve_region(target.region_name.as_deref(), env);
    let explicit = match (&target.aws_access_key_id, &target.aws_secret_access_key) {
        (Some(id), Some(secret)) => Some((id.as_str(), secret.as_str())),
        _ => None,
    };
    let creds = credentials::resolve(explicit, env)?;
    let mut cfg = crate::s3::Config::new(endpoint, region, creds);
    cfg.path_style = match env("S4_ADDRESSING_STYLE").as_deref() {
        Some("virtual") => Some(false),
        Some("path") => Some(true),
        _ => None,
    };
    // Tests of stalled stores wait seconds, not the default minute; a slow link may want more.
    if let Some(v) = env("S4_READ_TIMEOUT_SECS") {
        let secs: u64 =
            v.trim().parse().map_err(|_| format!("S4_READ_TIMEOUT_SECS={v}: give a whole number of seconds"))?;
        cfg.read_timeout = std::time::Duration::from_secs(secs.max(1));
    }
    Ok((Client::new(cfg, &bucket).map_err(|e| e.to_string())?, prefix))
}

pub(crate) fn conflict_mode(value: Option<&str>) -> Result<Mode, Fatal> {
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
