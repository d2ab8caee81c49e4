//! `s4 sync` and `s4 status`: targets one after another, each ending with a summary line
//! (what was done, or what failed, or in a dry run what would be done), and `--json` events.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{client_for, conflict_mode, hints, lookup, pick, runtime, validate, Fatal, FAILED, OK, PARTIAL};
use crate::cli::{StatusCmd, SyncCmd};
use crate::config::Config;
use crate::events;
use crate::log::Level;
use crate::progress::{count, human};
use crate::s3::Transfer;
use crate::sync::conflict::Mode;
use crate::sync::guard::MaxDelete;
use crate::sync::{self, Names, Options, Report};

/// The flags `sync`, `daemon` and `status` share, checked before anything runs.
pub(super) struct Flags<'a> {
    pub conflicts: Mode,
    pub dry_run: bool,
    pub json: bool,
    pub jobs: usize,
    pub max_delete: &'a str,
    pub bwlimit: Option<&'a str>,
    pub exclude: &'a [String],
    pub include: &'a [String],
}

pub(super) fn options(f: Flags<'_>) -> Result<Options, Fatal> {
    let bwlimit = f.bwlimit.map(validate::bwlimit).transpose()?;
    for p in f.exclude.iter().chain(f.include) {
        validate::pattern(p)?;
    }
    Ok(Options {
        conflicts: f.conflicts,
        dry_run: f.dry_run,
        json: f.json,
        progress: !f.json && !f.dry_run,
        jobs: f.jobs.max(1),
        follow_symlinks: false,
        transfer: Transfer::default(),
        max_delete: MaxDelete::parse(f.max_delete)?,
        force: false,
        inline: false,
        // 0 means no limit (validate::bwlimit).
        bwlimit: bwlimit.filter(|&r| r > 0),
        exclude: f.exclude.to_vec(),
        include: f.include.to_vec(),
    })
}

/// Sync one target; an error that stops it comes back explained (endpoint, what to check, the
/// target's own name in hints).
pub(super) async fn sync_target(config: &Config, name: &str, opts: &Options) -> Result<Report, String> {
    let target = lookup(config, name)?;
    let explain = |e: String| hints::explain(&e, name, target.endpoint_url.as_deref());
    let (client, prefix) = client_for(&target).map_err(explain)?;
    let names = Names { name: name.to_string(), local_uri: target.local_uri(), remote_uri: target.remote_uri() };
    sync::run(&client, &prefix, &PathBuf::from(&target.local_folder), &names, opts).await.map_err(explain)
}

/// Exit code of one target's run (SPEC-S4 §3).
pub(super) fn code_of(r: &Report) -> i32 {
    if r.stopped.is_some() {
        FAILED
    } else if !r.clean() {
        PARTIAL
    } else {
        OK
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

/// The line that ends every run: `docs: 3 uploaded, 2 downloaded, 1 deleted, 0 conflicts,
/// 0 failed · 1.2 MiB in 0.8 s (1.5 MiB/s)`, then what to do about anything left over; in a
/// dry run the same counts as what would happen. WARNING when something needs a look.
pub fn summary_line(label: &str, r: &Report, took: Duration, dry_run: bool) -> (Level, String) {
    let level = if r.clean() { Level::Info } else { Level::Warning };
    let conflicts = plural(r.conflicts_skipped, "conflict", "conflicts");
    if dry_run {
        let w = &r.would;
        let by_kind = w.upload + w.download + w.delete_local + w.delete_remote;
        let what = if by_kind == 0 && r.planned > 0 {
            format!("would carry out {}", plural(r.planned, "action", "actions"))
        } else {
            format!(
                "would upload {} ({}), download {} ({}), delete {} ({} here, {} on S3)",
                count(w.upload),
                human(w.bytes_up),
                count(w.download),
                human(w.bytes_down),
                count(w.delete_local + w.delete_remote),
                count(w.delete_local),
                count(w.delete_remote)
            )
        };
        return (level, format!("{label} (dry run): {what}; {conflicts}; nothing was changed"));
    }
    let bytes = r.bytes_up + r.bytes_down;
    let rate = human((bytes as f64 / took.as_secs_f64().max(0.001)) as u64);
    let mut line = format!(
        "{label}: {} uploaded, {} downloaded, {} deleted, {conflicts}, {} failed · {} in {} ({rate}/s)",
        count(r.uploaded),
        count(r.downloaded),
        count(r.deleted_local + r.deleted_remote),
        count(r.errors),
        human(bytes),
        secs(took),
    );
    if r.moved > 0 {
        line.push_str(&format!(" · {} moved, not sent", count(r.moved)));
    }
    if r.errors > 0 {
        line.push_str(&format!(
            ". {} did not sync (see the errors above); the next sync tries them again",
            plural(r.errors, "file", "files")
        ));
    }
    if r.conflicts_skipped > 0 {
        line.push_str(
            ". Skipped conflicts wait: settle them on a terminal, or with --conflicts 1 (keep local) or 2 (keep S3)",
        );
    }
    if r.stopped.is_some() {
        line.push_str(". Deletions were stopped by the guards (see above); nothing was deleted");
    }
    if r.interrupted {
        line.push_str(". Interrupted: sync again to resume");
    }
    (level, line)
}

fn say_summary(label: &str, r: &Report, took: Duration, dry_run: bool) {
    let (level, line) = summary_line(label, r, took, dry_run);
    crate::log::emit(level, None, &line);
}

pub fn sync_cmd(config: &Config, cmd: SyncCmd) -> Result<i32, Fatal> {
    let mut opts = options(Flags {
        conflicts: conflict_mode(cmd.conflicts.as_deref())?,
        dry_run: cmd.dry_run,
        json: cmd.json,
        jobs: cmd.jobs,
        max_delete: &cmd.max_delete,
        bwlimit: cmd.bwlimit.as_deref(),
        exclude: &cmd.exclude,
        include: &cmd.include,
    })?;
    opts.follow_symlinks = cmd.follow_symlinks;
    opts.force = cmd.force;
    let names = pick(config, &cmd.targets)?;
    let rt = runtime()?;
    let mut code = OK;
    let mut total = Report::default();
    let started = Instant::now();
    for name in &names {
        if sync::interrupted() {
            code = code.max(PARTIAL);
            break;
        }
        events::set_target(Some(name));
        let t0 = Instant::now();
        match rt.block_on(sync_target(config, name, &opts)) {
            Ok(r) => {
                if let Some(why) = &r.stopped {
                    crate::error!("There was an error syncing '{name}':\n{why}");
                }
                let c = code_of(&r);
                code = code.max(c);
                say_summary(name, &r, t0.elapsed(), opts.dry_run);
                if opts.json {
                    events::emit("summary", events::summary_fields(&r, c, t0.elapsed().as_secs_f64(), opts.dry_run));
                }
                total.absorb(&r);
            }
            Err(e) => {
                crate::error!("There was an error syncing '{name}':\n{e}");
                if opts.json {
                    events::error(name, &e);
                }
                code = FAILED;
            }
        }
    }
    events::set_target(None);
    if names.len() > 1 {
        say_summary(&format!("all {} targets", names.len()), &total, started.elapsed(), opts.dry_run);
    }
    if opts.json {
        let fields = events::summary_fields(&total, code, started.elapsed().as_secs_f64(), opts.dry_run);
        let mut line = events::line("summary", serde_json::Value::Null, fields);
        line["targets"] = serde_json::json!(names);
        events::print(&line);
    }
    Ok(code)
}

/// `s4 status`: a quiet dry run per target, counted: what a sync would move. Warnings still
/// show; the plan's lines do not.
pub fn status(config: &Config, cmd: StatusCmd) -> Result<i32, Fatal> {
    let opts = options(Flags {
        conflicts: Mode::Ignore,
        dry_run: true,
        json: false,
        jobs: 64,
        max_delete: "50%",
        bwlimit: None,
        exclude: &[],
        include: &[],
    })?;
    let names = pick(config, &cmd.targets)?;
    let rt = runtime()?;
    let mut code = OK;
    for name in &names {
        let before = crate::log::set_level(Level::Warning);
        let result = rt.block_on(sync_target(config, name, &opts));
        crate::log::set_level(before);
        match result {
            Ok(r) => {
                let w = &r.would;
                let in_sync = r.planned == 0 && r.conflicts_skipped == 0;
                if cmd.json {
                    events::print(&events::line(
                        "status",
                        serde_json::json!(name),
                        serde_json::json!({
                            "upload": w.upload, "download": w.download,
                            "delete_local": w.delete_local, "delete_remote": w.delete_remote,
                            "bytes_up": w.bytes_up, "bytes_down": w.bytes_down,
                            "conflicts": r.conflicts_skipped, "planned": r.planned, "in_sync": in_sync,
                        }),
                    ));
                } else if in_sync {
                    crate::out!("{name}: in sync");
                } else {
                    let (_, line) = summary_line(name, &r, Duration::ZERO, true);
                    crate::out!("{}", line.replace(" (dry run): would", ":").replace("; nothing was changed", ""));
                }
            }
            Err(e) => {
                crate::error!("Cannot tell the status of '{name}':\n{e}");
                if cmd.json {
                    events::error(name, &e);
                }
                code = FAILED;
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_run_ends_with_a_summary_and_a_failure_is_never_nothing_to_update() {
        let r = Report { uploaded: 3, downloaded: 1, bytes_up: 3 << 20, errors: 1, ..Default::default() };
        let (level, line) = summary_line("docs", &r, Duration::from_secs(2), false);
        assert_eq!(level, Level::Warning);
        assert!(
            line.starts_with(
                "docs: 3 uploaded, 1 downloaded, 0 deleted, 0 conflicts, 1 failed · 3.0 MiB in 2.0 s (1.5 MiB/s)"
            ),
            "{line}"
        );
        assert!(line.contains("1 file did not sync"), "{line}");
        let clean = Report::default();
        assert_eq!(summary_line("docs", &clean, Duration::from_millis(100), false).0, Level::Info);
        let mut dry = Report::default();
        dry.would.upload = 2;
        dry.would.bytes_up = 2048;
        dry.planned = 2;
        let (_, line) = summary_line("docs", &dry, Duration::ZERO, true);
        assert_eq!(line, "docs (dry run): would upload 2 (2.0 KiB), download 0 (0 B), delete 0 (0 here, 0 on S3); 0 conflicts; nothing was changed");
    }

    #[test]
    fn a_dry_run_on_a_terminal_shows_its_would_lines_not_a_progress_bar() {
        // Issue 12 re-checked: with a bar on screen the "Would …" lines went to DEBUG, and a
        // dry run showed a spinner at "0 files · 0 B" and then only its summary.
        let flags = |dry_run, json| Flags {
            conflicts: Mode::Ignore,
            dry_run,
            json,
            jobs: 1,
            max_delete: "50%",
            bwlimit: None,
            exclude: &[],
            include: &[],
        };
        assert!(options(flags(false, false)).unwrap().progress);
        assert!(!options(flags(true, false)).unwrap().progress);
        assert!(!options(flags(false, true)).unwrap().progress);
    }
}
