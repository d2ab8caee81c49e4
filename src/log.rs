//! Logging to stderr as S4 does: `--log-level`, `--no-colors`, `--timestamps`.
//! Also the one place that knows whether stderr is a terminal (for colours and progress).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_uppercase().as_str() {
            "DEBUG" => Some(Level::Debug),
            "INFO" => Some(Level::Info),
            "WARNING" | "WARN" => Some(Level::Warning),
            "ERROR" => Some(Level::Error),
            _ => None,
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static COLORS: AtomicBool = AtomicBool::new(true);
static TIMESTAMPS: AtomicBool = AtomicBool::new(false);
static QUIET: AtomicBool = AtomicBool::new(false);
static VERBOSE: AtomicBool = AtomicBool::new(false);
/// While `Some`, INFO lines without colour are held here instead of printed (see [`hold`]).
static HELD: std::sync::Mutex<Option<Vec<String>>> = std::sync::Mutex::new(None);

pub fn init(level: Level, colors: bool, timestamps: bool) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    COLORS.store(colors && std::io::stderr().is_terminal(), Ordering::Relaxed);
    TIMESTAMPS.store(timestamps, Ordering::Relaxed);
}

/// Nothing at all, errors included (the simulation's thousands of runs).
pub fn silence() {
    LEVEL.store(Level::Error as u8 + 1, Ordering::Relaxed);
}

/// `-q`: no progress, action lines or summaries. `-v`: a line per action even with the progress bar.
pub fn set_verbosity(quiet: bool, verbose: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
    VERBOSE.store(verbose && !quiet, Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// The daemon logs with timestamps by default: its lines are read hours later.
pub fn set_timestamps(on: bool) {
    TIMESTAMPS.store(on, Ordering::Relaxed);
}

/// Hold back plain INFO lines ("Syncing …", "Nothing to update") until [`release`]: the
/// daemon shows a round's lines only when the round changed something. The first action line
/// (coloured), warning or error lets the held lines out and ends the holding, so a round
/// that does work is logged as it happens.
pub fn hold() {
    *HELD.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
}

/// End holding; lines still held are printed at `level` (DEBUG for a round with no news: the
/// daemon's heartbeat) with the timestamp of their release.
pub fn release(level: Level) {
    let held = HELD.lock().unwrap_or_else(|p| p.into_inner()).take();
    for msg in held.unwrap_or_default() {
        emit(level, None, &msg);
    }
}

/// Change the level for a while (`s4 status` runs its dry runs quietly); returns the old one.
pub fn set_level(level: Level) -> Level {
    match LEVEL.swap(level as u8, Ordering::Relaxed) {
        0 => Level::Debug,
        1 => Level::Info,
        2 => Level::Warning,
        _ => Level::Error,
    }
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

#[derive(Debug, Clone, Copy)]
pub enum Color {
    Green,
    Yellow,
    Red,
}

/// `2026-11-24 19:14:25` in UTC, from unix seconds (civil-from-days, Howard Hinnant's algorithm).
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Unix seconds now (0 if the clock is before 1970).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn emit(level: Level, color: Option<Color>, msg: &str) {
    {
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lines) = held.as_mut() {
            if level == Level::Info && color.is_none() {
                lines.push(msg.to_string());
                return;
            }
            if level >= Level::Info {
                let earlier = held.take().unwrap_or_default();
                drop(held);
                for m in earlier {
                    emit(Level::Info, None, &m);
                }
            }
        }
    }
    if !enabled(level) {
        return;
    }
    let mut line = String::new();
    if TIMESTAMPS.load(Ordering::Relaxed) {
        line.push_str(&format_utc(now_secs()));
        line.push_str(": ");
    }
    if level == Level::Debug {
        line.push_str("DEBUG: ");
    }
    match color.filter(|_| COLORS.load(Ordering::Relaxed)) {
        Some(c) => {
            let code = match c {
                Color::Green => "32",
                Color::Yellow => "33",
                Color::Red => "31",
            };
            line.push_str(&format!("\x1b[{code}m{msg}\x1b[0m"));
        }
        None => line.push_str(msg),
    }
    line.push('\n');
    crate::progress::print_line(&line);
}

/// Format only when the level is on: debug lines sit on per-key hot paths.
pub fn log(level: Level, args: std::fmt::Arguments<'_>) {
    if enabled(level) {
        emit(level, None, &args.to_string());
    }
}

#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Info, format_args!($($t)*)) } }
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Warning, format_args!($($t)*)) } }
#[macro_export]
macro_rules! error { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Error, format_args!($($t)*)) } }
/// A line on stdout that a reader gone away (`s4 ls | head`) cannot turn into a panic, as
/// `println!` does: the write error is dropped and the command finishes, its exit code saying
/// how it went. Every command's stdout goes through here (`clippy::print_stdout` is denied).
#[macro_export]
macro_rules! out {
    // `print!`'s twin: text that brings its own line ends.
    (raw $($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($t)*);
    }};
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}
#[macro_export]
macro_rules! debug { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Debug, format_args!($($t)*)) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(1369353600), "2013-05-24 00:00:00");
        assert_eq!(format_utc(951782400 + 3661), "2000-02-29 01:01:01");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59");
    }

    #[test]
    fn held_lines_wait_for_news_and_news_lets_them_out() {
        hold();
        emit(Level::Info, None, "Syncing a");
        assert_eq!(HELD.lock().unwrap().as_ref().map(Vec::len), Some(1));
        emit(Level::Info, Some(Color::Green), "Creating f");
        assert!(HELD.lock().unwrap().is_none(), "an action line ends the holding");
        hold();
        emit(Level::Info, None, "Nothing to update");
        release(Level::Debug);
        assert!(HELD.lock().unwrap().is_none());
    }

    #[test]
    fn levels_parse() {
        assert_eq!(Level::parse("warning"), Some(Level::Warning));
        assert_eq!(Level::parse("nope"), None);
    }
}
