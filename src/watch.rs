//! The daemon's eye on the local folder: inotify on every directory, including directories
//! created (or moved in) later, which S4 never watched. It tells *which* keys may have changed,
//! so a round costs what changed, not the tree (issue 13); where an event leaves that unknown
//! (the kernel's queue overflowed, a folder moved away, the root itself went), it says so, and
//! the daemon syncs everything. A key reported needlessly costs a stat and a HEAD; a key
//! missed would wait for the next full sync: when in doubt, the watcher says "everything".

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

/// What the watcher tells the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Relative keys of files that may have changed: written, created, deleted, moved in or out.
    Keys(Vec<String>),
    /// Changes no list of keys describes (why): only a full sync finds them.
    Everything(String),
    /// A directory could not be watched: its changes show up only in full syncs.
    Unwatched,
}

fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::CLOSE_WRITE
        | WatchMask::MODIFY
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

/// What one event means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Meaning {
    Nothing,
    Key(String),
    /// A directory appeared at this key (created or moved in): watch it, report its files.
    NewDir(String),
    /// A directory left this key (moved away or renamed): its files' keys are unknown here.
    DirGone(String),
    Everything(String),
}

/// The key of `name` in the directory whose key is `dir` ("" for the root).
pub(crate) fn key_of(dir: &str, name: &str) -> String {
    match dir {
        "" => name.to_string(),
        d => format!("{d}/{name}"),
    }
}

/// Our own bookkeeping (the root's `.index`, `.s4lock`, lease files; temp files anywhere)
/// changes on every sync; it is not news. A temp file renamed onto a key is reported by
/// that rename, as the key.
fn is_ours(key: &str, name: &str) -> bool {
    crate::ignore::is_reserved(key) || name.starts_with(crate::fsutil::TMP_PREFIX)
}

/// What an event of the watch on directory `dir` (`None`: a watch already dropped) means.
pub(crate) fn classify(dir: Option<&str>, name: Option<&OsStr>, mask: EventMask) -> Meaning {
    if mask.contains(EventMask::Q_OVERFLOW) {
        return Meaning::Everything("the kernel's event queue overflowed".into());
    }
    if mask.contains(EventMask::UNMOUNT) {
        return Meaning::Everything("a file system in the folder was unmounted".into());
    }
    let Some(dir) = dir else { return Meaning::Nothing };
    if dir.is_empty() && mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED) {
        return Meaning::Everything("the folder itself was moved or deleted".into());
    }
    // A name that is not UTF-8 cannot be an S3 key: the full sync's scan skips it with a notice.
    let Some(name) = name.and_then(OsStr::to_str).filter(|n| !n.is_empty()) else { return Meaning::Nothing };
    let key = key_of(dir, name);
    if is_ours(&key, name) {
        return Meaning::Nothing;
    }
    if mask.contains(EventMask::ISDIR) {
        return if mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
            Meaning::NewDir(key)
        } else if mask.contains(EventMask::MOVED_FROM) {
            Meaning::DirGone(key)
        } else {
            // A directory deleted was empty: its files' deletions came one by one.
            Meaning::Nothing
        };
    }
    let file_events = EventMask::CREATE
        | EventMask::DELETE
        | EventMask::CLOSE_WRITE
        | EventMask::MODIFY
        | EventMask::MOVED_FROM
        | EventMask::MOVED_TO
        | EventMask::ATTRIB;
    match mask.intersects(file_events) {
        true => Meaning::Key(key),
        false => Meaning::Nothing,
    }
}

struct Watcher {
    inotify: Inotify,
    root: PathBuf,
    /// Each watch's directory, as a key ("" for the root).
    dirs: HashMap<WatchDescriptor, String>,
    tx: Sender<Change>,
    warned: bool,
}

impl Watcher {
    /// Watch the directory at key `dir` and every directory below it (not following
    /// symlinks); with `files`, the keys of everything else found there too (a directory
    /// that appeared may already hold files, written before its watch was in place).
    /// Watching a directory again (after a rename) updates its key.
    fn add_tree(&mut self, dir: &str, mut files: Option<&mut Vec<String>>) {
        let mut stack = vec![dir.to_string()];
        while let Some(d) = stack.pop() {
            let path = if d.is_empty() { self.root.clone() } else { self.root.join(&d) };
            match self.inotify.watches().add(&path, mask() | WatchMask::DONT_FOLLOW) {
                Ok(wd) => {
                    self.dirs.insert(wd, d.clone());
                }
                Err(e) => {
                    if !self.warned {
                        self.warned = true;
                        crate::warn!(
                            "cannot watch {} ({e}; see fs.inotify.max_user_watches): changes there wait for a full sync",
                            path.display()
                        );
                    }
                    let _ = self.tx.send(Change::Unwatched);
                }
            }
            let Ok(rd) = std::fs::read_dir(&path) else { continue };
            for e in rd.flatten() {
                let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
                let key = key_of(&d, &name);
                match e.file_type() {
                    Ok(t) if t.is_dir() => stack.push(key),
                    _ => {
                        if let Some(f) = files.as_deref_mut().filter(|_| !is_ours(&key, &name)) {
                            f.push(key);
                        }
                    }
                }
            }
        }
    }

    /// Stop watching a directory that left (and all below it): events from where it went
    /// are not this folder's.
    fn drop_tree(&mut self, dir: &str) {
        let below = format!("{dir}/");
        let gone: Vec<WatchDescriptor> =
            self.dirs.iter().filter(|(_, d)| *d == dir || d.starts_with(&below)).map(|(wd, _)| wd.clone()).collect();
        for wd in gone {
            self.dirs.remove(&wd);
            let _ = self.inotify.watches().remove(wd);
        }
    }

    /// Read events until the daemon goes away or inotify fails.
    fn run(mut self) {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let mut keys = Vec::new();
            let mut everything = None;
            let mut new_dirs = Vec::new();
            {
                let Ok(events) = self.inotify.read_events_blocking(&mut buf) else { return };
                for ev in events {
                    let dir = self.dirs.get(&ev.wd).map(String::as_str);
                    match classify(dir, ev.name, ev.mask) {
                        Meaning::Nothing => {}
                        Meaning::Key(k) => keys.push(k),
                        Meaning::NewDir(d) => new_dirs.push((d, None)),
                        Meaning::DirGone(d) => {
                            everything.get_or_insert_with(|| format!("the folder {d} was moved or renamed"));
                            new_dirs.push((d, Some(())));
                        }
                        Meaning::Everything(why) => {
                            everything.get_or_insert(why);
                        }
                    }
                    if ev.mask.contains(EventMask::IGNORED) {
                        self.dirs.remove(&ev.wd);
                    }
                }
            }
            // In event order: a folder renamed away and back is watched under its last name.
            for (d, gone) in new_dirs {
                match gone {
                    Some(()) => self.drop_tree(&d),
                    None => self.add_tree(&d, Some(&mut keys)),
                }
            }
            let change = match everything {
                Some(why) => Change::Everything(why),
                None if keys.is_empty() => continue,
                None => Change::Keys(keys),
            };
            if self.tx.send(change).is_err() {
                return;
            }
        }
    }
}

/// Start watching `root`; the receiver gets a [`Change`] for each batch of relevant events.
/// `Err` when inotify is not available (then the daemon falls back to polling).
pub fn watch(root: &Path) -> Result<Receiver<Change>, String> {
    let inotify = Inotify::init().map_err(|e| format!("inotify: {e}"))?;
    let (tx, rx) = channel();
    let mut w = Watcher { inotify, root: root.to_path_buf(), dirs: HashMap::new(), tx, warned: false };
    w.add_tree("", None);
    std::thread::Builder::new()
        .name("s4-watch".into())
        .spawn(move || w.run())
        .map_err(|e| format!("starting the watcher: {e}"))?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(dir: Option<&str>, name: &str, mask: EventMask) -> Meaning {
        classify(dir, Some(OsStr::new(name)), mask)
    }

    #[test]
    fn events_map_to_keys_relative_to_the_root() {
        assert_eq!(c(Some(""), "a.txt", EventMask::CLOSE_WRITE), Meaning::Key("a.txt".into()));
        assert_eq!(c(Some("d/e"), "f g+h.txt", EventMask::MODIFY), Meaning::Key("d/e/f g+h.txt".into()));
        assert_eq!(c(Some("d"), "x", EventMask::DELETE), Meaning::Key("d/x".into()));
        assert_eq!(c(Some("d"), "x", EventMask::MOVED_FROM), Meaning::Key("d/x".into()), "moved away: gone here");
        assert_eq!(c(Some("d"), "x", EventMask::MOVED_TO), Meaning::Key("d/x".into()));
        assert_eq!(c(Some(""), "é", EventMask::CREATE), Meaning::Key("é".into()));
    }

    #[test]
    fn directories_that_arrive_are_walked_and_ones_that_leave_call_for_a_full_sync() {
        let dir = EventMask::ISDIR;
        assert_eq!(c(Some(""), "new", EventMask::CREATE | dir), Meaning::NewDir("new".into()));
        assert_eq!(c(Some("a"), "in", EventMask::MOVED_TO | dir), Meaning::NewDir("a/in".into()));
        assert_eq!(c(Some("a"), "out", EventMask::MOVED_FROM | dir), Meaning::DirGone("a/out".into()));
        assert_eq!(c(Some("a"), "empty", EventMask::DELETE | dir), Meaning::Nothing);
    }

    #[test]
    fn our_own_files_are_not_news_but_a_users_are() {
        for (dir, name) in [("", ".index"), ("", ".s4lock"), ("", ".s4lease.probe-1"), ("d", ".s4tmp-12-3")] {
            assert_eq!(c(Some(dir), name, EventMask::CLOSE_WRITE), Meaning::Nothing, "{dir}/{name}");
        }
        // Only the root's index is ours; a .index further down is the user's file.
        assert_eq!(c(Some("sub"), ".index", EventMask::CLOSE_WRITE), Meaning::Key("sub/.index".into()));
        assert_eq!(c(Some(""), ".syncignore", EventMask::CLOSE_WRITE), Meaning::Key(".syncignore".into()));
    }

    #[test]
    fn what_no_key_describes_is_everything() {
        assert!(matches!(classify(None, None, EventMask::Q_OVERFLOW), Meaning::Everything(_)));
        assert!(matches!(classify(Some(""), None, EventMask::DELETE_SELF), Meaning::Everything(_)));
        assert!(matches!(classify(Some(""), None, EventMask::MOVE_SELF), Meaning::Everything(_)));
        assert!(matches!(classify(Some("d"), None, EventMask::UNMOUNT), Meaning::Everything(_)));
        // A subfolder's own end is told by its parent (as a file or folder event there).
        assert_eq!(classify(Some("d"), None, EventMask::DELETE_SELF), Meaning::Nothing);
        // A watch already dropped (its folder moved away): a full sync is on its way.
        assert_eq!(c(None, "x", EventMask::MODIFY), Meaning::Nothing);
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(classify(Some(""), Some(OsStr::from_bytes(b"\xff")), EventMask::CREATE), Meaning::Nothing);
    }

    /// The real thing: a file edited, a folder moved in with files, a folder renamed.
    #[test]
    fn the_watcher_reports_keys_then_everything() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(d.path().join("outside/deep")).unwrap();
        std::fs::write(d.path().join("outside/deep/f"), "f").unwrap();
        let rx = watch(&root).unwrap();
        let wait = || rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        std::fs::write(root.join("sub/a.txt"), "a").unwrap();
        let mut keys = Vec::new();
        while keys.is_empty() || !keys.contains(&"sub/a.txt".to_string()) {
            match wait() {
                Change::Keys(k) => keys.extend(k),
                other => panic!("{other:?}"),
            }
        }
        std::fs::rename(d.path().join("outside"), root.join("sub/in")).unwrap();
        // The edit's later events (its write and close after the create) may still come
        // first, alone or with the move's: on a loaded machine they did.
        let moved_in = loop {
            match wait() {
                Change::Keys(k) => {
                    let k: Vec<String> = k.into_iter().filter(|k| k != "sub/a.txt").collect();
                    if !k.is_empty() {
                        break k;
                    }
                }
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(moved_in, vec!["sub/in/deep/f".to_string()]);
        std::fs::rename(root.join("sub/in"), root.join("moved")).unwrap();
        assert!(matches!(wait(), Change::Everything(why) if why.contains("sub/in")));
        // Watched under its new name.
        std::fs::write(root.join("moved/deep/g"), "g").unwrap();
        loop {
            match wait() {
                Change::Keys(k) if k.contains(&"moved/deep/g".to_string()) => break,
                Change::Keys(_) => {}
                other => panic!("{other:?}"),
            }
        }
    }
}
