//! The daemon's eye on the local folder: inotify on every directory, including directories
//! created (or moved in) later, which S4 never watched. Events arrive on a channel; the daemon
//! only needs to know *that* something changed, not what.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};

use inotify::{Inotify, WatchDescriptor, WatchMask};

fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::CLOSE_WRITE
        | WatchMask::MODIFY
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
}

/// Our own bookkeeping files change on every sync; they are not news.
fn is_ours(name: &str) -> bool {
    name == ".index" || name == ".s4lock" || name.starts_with(crate::fsutil::TMP_PREFIX)
}

struct Watcher {
    inotify: Inotify,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    warned: bool,
}

impl Watcher {
    /// Watch `dir` and every directory below it (not following symlinks).
    fn add_tree(&mut self, dir: &Path) {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            match self.inotify.watches().add(&d, mask()) {
                Ok(wd) => {
                    self.dirs.insert(wd, d.clone());
                }
                Err(e) if !self.warned => {
                    self.warned = true;
                    crate::warn!(
                        "cannot watch {} ({e}; see fs.inotify.max_user_watches): changes there wait for --poll",
                        d.display()
                    );
                }
                Err(_) => {}
            }
            if let Ok(rd) = std::fs::read_dir(&d) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(e.path());
                    }
                }
            }
        }
    }
}

/// Start watching `root`; the receiver gets `()` for each batch of relevant changes.
/// `Err` when inotify is not available (then the daemon falls back to polling).
pub fn watch(root: &Path) -> Result<Receiver<()>, String> {
    let inotify = Inotify::init().map_err(|e| format!("inotify: {e}"))?;
    let mut w = Watcher { inotify, dirs: HashMap::new(), warned: false };
    w.add_tree(root);
    let (tx, rx) = channel();
    std::thread::Builder::new()
        .name("s4-watch".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let Ok(events) = w.inotify.read_events_blocking(&mut buf) else { return };
                let mut relevant = false;
                let mut new_dirs = Vec::new();
                for ev in events {
                    let name = ev.name.and_then(|n| n.to_str()).unwrap_or("");
                    if ev.mask.contains(inotify::EventMask::ISDIR)
                        && ev.mask.intersects(inotify::EventMask::CREATE | inotify::EventMask::MOVED_TO)
                    {
                        if let Some(parent) = w.dirs.get(&ev.wd) {
                            new_dirs.push(parent.join(name));
                        }
                    }
                    if !is_ours(name) {
                        relevant = true;
                    }
                }
                for d in new_dirs {
                    w.add_tree(&d);
                }
                if relevant && tx.send(()).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| format!("starting the watcher: {e}"))?;
    Ok(rx)
}
