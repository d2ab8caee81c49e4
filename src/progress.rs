//! A one-line progress display on stderr (files and bytes), only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ACTIVE: AtomicBool = AtomicBool::new(false);
static SHOWN: AtomicBool = AtomicBool::new(false);

pub struct Progress {
    files: AtomicU64,
    bytes: AtomicU64,
    started: Instant,
    last: Mutex<Instant>,
}

impl Progress {
    /// Enabled only on a terminal and when not writing JSON to stdout.
    pub fn new(enabled: bool) -> Progress {
        ACTIVE.store(enabled && std::io::stderr().is_terminal(), Ordering::Relaxed);
        Progress {
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            started: Instant::now(),
            last: Mutex::new(Instant::now()),
        }
    }

    pub fn add(&self, files: u64, bytes: u64) {
        self.files.fetch_add(files, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if !ACTIVE.load(Ordering::Relaxed) {
            return;
        }
        let mut last = self.last.lock().unwrap();
        if last.elapsed().as_millis() < 200 {
            return;
        }
        *last = Instant::now();
        let bytes = self.bytes.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let line = format!(
            "\r\x1b[2K[{} files, {}, {}/s]",
            self.files.load(Ordering::Relaxed),
            human(bytes),
            human((bytes as f64 / secs) as u64)
        );
        SHOWN.store(true, Ordering::Relaxed);
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    pub fn finish(&self) {
        clear_line();
        ACTIVE.store(false, Ordering::Relaxed);
    }
}

/// Wipe the progress line before a log line is printed.
pub fn clear_line() {
    if SHOWN.swap(false, Ordering::Relaxed) {
        let _ = std::io::stderr().write_all(b"\r\x1b[2K");
    }
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
