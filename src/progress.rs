//! The progress display on stderr, drawn by indicatif, only on a terminal (and not with `-q`
//! or `--json`): files and bytes done of the total planned, rate and ETA.
//!
//! The engine's calls, and how bytes are counted once:
//! - `plan(files, bytes)` as each action is planned: the totals grow while the plan streams.
//! - `bytes(n)` as a transfer moves `n` more bytes (a part, a chunk): large files move smoothly.
//! - `add(files, bytes)` when files finish; `bytes` are the ones not already given to
//!   `bytes(n)` (a transfer reported chunk by chunk finishes with `add(1, 0)`; one reported only
//!   at its end with `add(1, size)`).
//!
//! The engine counts each file through a [`FileBytes`]: the S3 layer's meter feeds it as bytes
//! move, and at the end `add(1, size - counted)` adds what the meter did not hear (a store
//! behind the seam that reports nothing, parts an earlier run already stored).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// The bar on screen now, if any: log lines are printed above it rather than through it.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

#[derive(Default)]
struct Counters {
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    files_total: AtomicU64,
    bytes_total: AtomicU64,
}

impl Counters {
    fn get(&self) -> (u64, u64, u64, u64) {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (l(&self.files_done), l(&self.bytes_done), l(&self.files_total), l(&self.bytes_total))
    }
}

pub struct Progress {
    counters: Arc<Counters>,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Drawn only when `enabled` (not writing JSON), not quiet, and stderr is a terminal.
    pub fn new(enabled: bool) -> Progress {
        let counters = Arc::new(Counters::default());
        let shown = enabled && !crate::log::quiet() && std::io::stderr().is_terminal();
        let bar = shown.then(|| {
            // Ten redraws a second at most: a 10,000-file sync costs no more to show than a small one.
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(10));
            bar.set_style(style(&counters, false));
            bar.enable_steady_tick(Duration::from_millis(200));
            *BAR.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar.clone());
            bar
        });
        Progress { counters, started: Instant::now(), bar }
    }

    /// More work planned: the totals the display counts towards.
    pub fn plan(&self, files: u64, bytes: u64) {
        let first = self.counters.files_total.fetch_add(files, Ordering::Relaxed) == 0;
        self.counters.bytes_total.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            if first {
                bar.set_style(style(&self.counters, true));
            }
            bar.inc_length(files + bytes);
        }
    }

    /// `n` more bytes moved by a transfer still in flight.
    pub fn bytes(&self, n: u64) {
        moved(&self.counters, self.bar.as_ref(), n);
    }

    /// A counter for one file's transfer (see [`FileBytes`]).
    pub fn file(&self) -> Arc<FileBytes> {
        Arc::new(FileBytes {
            counters: self.counters.clone(),
            bar: self.bar.clone(),
            counted: AtomicU64::new(0),
            this_try: AtomicU64::new(0),
        })
    }

    /// Files finished, with the bytes not already counted by [`Progress::bytes`].
    pub fn add(&self, files: u64, bytes: u64) {
        self.counters.files_done.fetch_add(files, Ordering::Relaxed);
        self.counters.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(files + bytes);
        }
    }

    /// (files, bytes) done so far.
    pub fn done(&self) -> (u64, u64) {
        let (f, b, _, _) = self.counters.get();
        (f, b)
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Take the bar off the screen (the run's summary line follows it).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            // One run (one bar) at a time in a process: targets sync one after another.
            *BAR.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn moved(counters: &Counters, bar: Option<&ProgressBar>, n: u64) {
    counters.bytes_done.fetch_add(n, Ordering::Relaxed);
    if let Some(bar) = bar {
        bar.inc(n);
    }
}

/// One file's bytes toward the display, counted once however often they are sent: an upload
/// tried again (its file changed under it) starts counting from zero, and only what goes
/// beyond the furthest try is passed on. (Within one try the S3 layer already counts a
/// retried request once.)
pub struct FileBytes {
    counters: Arc<Counters>,
    bar: Option<ProgressBar>,
    counted: AtomicU64,
    this_try: AtomicU64,
}

impl FileBytes {
    /// What the transfer calls as its bytes move.
    pub fn meter(self: &Arc<Self>) -> crate::s3::Meter {
        let me = self.clone();
        Arc::new(move |n| me.heard(n))
    }

    fn heard(&self, n: u64) {
        let now = self.this_try.fetch_add(n, Ordering::Relaxed) + n;
        let before = self.counted.fetch_max(now, Ordering::Relaxed);
        if now > before {
            moved(&self.counters, self.bar.as_ref(), now - before);
        }
    }

    /// Another try of the same transfer begins.
    pub fn again(&self) {
        self.this_try.store(0, Ordering::Relaxed);
    }

    /// Bytes passed on so far: the file's [`Progress::add`] gives the rest of its size.
    pub fn counted(&self) -> u64 {
        self.counted.load(Ordering::Relaxed)
    }
}

/// With totals: `⠋ [=====>     ] 1,234/10,000 files · 45.0 MiB/300.0 MiB · 62.2 MiB/s · ETA 4s`.
/// Before anything is planned, counts and rate only.
fn style(counters: &Arc<Counters>, with_totals: bool) -> ProgressStyle {
    let template = if with_totals {
        "{spinner:.green} [{bar:24.cyan/blue}] {counts} · {rate} · ETA {eta}"
    } else {
        "{spinner:.green} {counts} · {rate}"
    };
    let (c1, c2) = (counters.clone(), counters.clone());
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("=> ")
        .with_key("counts", move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
            let (files, bytes, files_total, bytes_total) = c1.get();
            let _ = if files_total > 0 {
                write!(w, "{}/{} files · {}/{}", count(files), count(files_total), human(bytes), human(bytes_total))
            } else {
                write!(w, "{} files · {}", count(files), human(bytes))
            };
        })
        .with_key("rate", move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let secs = s.elapsed().as_secs_f64().max(0.001);
            let _ = write!(w, "{}/s", human((c2.get().1 as f64 / secs) as u64));
        })
}

/// Print a log line: above the progress bar when one is on screen.
pub fn print_line(line: &str) {
    let bar = BAR.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let write = || {
        let _ = std::io::stderr().write_all(line.as_bytes());
    };
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// Should each action get its own line? With `-v`, or whenever no bar shows the progress (not
/// a terminal: logs piped to a file keep one line per action, as S4 printed them).
pub fn lines_wanted() -> bool {
    crate::log::verbose() || BAR.lock().unwrap_or_else(|p| p.into_inner()).is_none()
}

/// `12,345`
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_sizes_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(10_000), "10,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(human(300 << 20), "300.0 MiB");
    }

    #[test]
    fn bytes_are_counted_once_whichever_way_they_are_reported() {
        let p = Progress::new(false);
        p.plan(2, 300);
        p.bytes(100);
        p.bytes(100);
        p.add(1, 0); // reported chunk by chunk
        p.add(1, 100); // reported at its end
        assert_eq!(p.done(), (2, 300));
        let (_, _, ft, bt) = p.counters.get();
        assert_eq!((ft, bt), (2, 300));
    }

    #[test]
    fn a_file_sent_again_after_it_changed_is_counted_once() {
        let p = Progress::new(false);
        p.plan(1, 1000);
        let f = p.file();
        let meter = f.meter();
        meter(400); // the first try: cut short, the file changed
        f.again();
        meter(300); // the second try catches up: nothing new yet
        assert_eq!(p.done(), (0, 400));
        meter(700);
        assert_eq!(p.done(), (0, 1000));
        p.add(1, 1000 - f.counted());
        assert_eq!(p.done(), (1, 1000));
        // A transfer that reports nothing (the simulation's model bucket) is counted at its end.
        let quiet = p.file();
        p.add(1, 50 - quiet.counted());
        assert_eq!(p.done(), (2, 1050));
    }
}
