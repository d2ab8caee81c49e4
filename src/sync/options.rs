//! What a sync is asked to do (the CLI's flags, the daemon's and the simulation's settings),
//! and how its target is named in messages.

use super::conflict::Mode;
use super::guard;
use crate::s3::Transfer;

#[derive(Debug, Clone)]
pub struct Options {
    pub conflicts: Mode,
    pub dry_run: bool,
    pub json: bool,
    /// Draw the progress display (only ever on a terminal, and not with `-q`). Off for a dry
    /// run, whose "Would …" lines are its output (a bar sends them to DEBUG), for `--json`, and
    /// for the daemon, whose output is a log of what changed.
    pub progress: bool,
    /// Transfers in flight at once.
    pub jobs: usize,
    pub follow_symlinks: bool,
    pub transfer: Transfer,
    /// Deletions beyond this stop the run before anything is deleted (unless `force`).
    pub max_delete: guard::MaxDelete,
    pub force: bool,
    /// Run blocking work (the local scan, hashing) inline: the simulation's scheduler must see
    /// a machine's every step in one thread and in order. Never set by the CLI.
    pub inline: bool,
    /// `--bwlimit`: bytes per second for each direction (`None` or 0: no limit), one token
    /// bucket per direction shared by all the run's transfers and their parts.
    pub bwlimit: Option<u64>,
    /// `--exclude` / `--include` patterns (.syncignore syntax): keys to leave alone this run.
    pub exclude: Vec<String>,
    pub include: Vec<String>,
}

/// How a sync of one target is named in messages.
pub struct Names {
    pub name: String,
    pub local_uri: String,
    pub remote_uri: String,
}

/// `opts` with no more transfers in flight than the open-file limit allows.
pub fn fitted(opts: &Options) -> Options {
    let mut opts = opts.clone();
    // Each transfer in flight may hold a file and a socket per part: stay inside the process's
    // open-file limit (issue 10: 64 × 8 of each could meet a 1024 limit), with room to spare.
    if let Some(limit) = crate::fsutil::open_files_limit() {
        let per_job = 2 * opts.transfer.concurrency.max(1) as u64;
        let fit = (limit.saturating_sub(128) / per_job).max(1) as usize;
        if opts.jobs > fit {
            crate::debug!("{} transfers in flight at most (open-file limit {limit})", fit);
            opts.jobs = fit;
        }
    }
    opts
}
