//! The local side as a sorted stream: a depth-first walk that sorts each directory so
//! keys come out in the byte order of the full '/'-joined path (the order S3 lists in).
//! Memory holds one directory listing per level, never the tree.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use crate::ignore::IgnoreRules;

#[derive(Debug, Clone, PartialEq)]
pub struct LocalFile {
    pub key: String,
    pub size: u64,
    /// Float seconds, as S4 records it.
    pub mtime: f64,
}

/// What the walk yields, in key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    File(LocalFile),
    /// Something at `key` (a file, or a directory and all below it) that the walk could not
    /// see: an unreadable directory, a symlink not followed, a failed stat. The sync must treat
    /// it as unknown, never as deleted, or it would delete it everywhere else.
    Skipped {
        key: String,
        reason: String,
        error: bool,
    },
    /// A notice that concerns no key (a name that is not UTF-8 cannot be an S3 key).
    Notice(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    /// A socket, FIFO or device, named.
    Special(&'static str),
}

fn special_kind(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

struct Dir {
    /// Key prefix of this directory ("" at the root, else "a/b/").
    prefix: String,
    entries: std::vec::IntoIter<(String, Kind)>,
}

pub struct Scanner {
    root: PathBuf,
    rules: Arc<IgnoreRules>,
    follow_symlinks: bool,
    clean_temp: bool,
    stack: Vec<Dir>,
    canonical_root: Option<PathBuf>,
    /// Items waiting to be handed out, last first.
    pending: Vec<Item>,
    /// The root is opened on the first `next_item`, after the options are set.
    started: bool,
}

pub fn mtime_of(meta: &fs::Metadata) -> f64 {
    match meta.modified().map(|t| t.duration_since(UNIX_EPOCH)) {
        Ok(Ok(d)) => d.as_secs_f64(),
        Ok(Err(e)) => -e.duration().as_secs_f64(),
        Err(_) => 0.0,
    }
}

impl Scanner {
    /// A missing root scans as empty (S4 behaves so); a root that exists but cannot be read
    /// is an error: scanning it as empty would delete everything remotely.
    pub fn new(root: &Path, rules: Arc<IgnoreRules>) -> Result<Scanner, String> {
        let mut s = Scanner {
            root: root.to_path_buf(),
            rules,
            follow_symlinks: false,
            clean_temp: false,
            stack: Vec::new(),
            canonical_root: fs::canonicalize(root).ok(),
            pending: Vec::new(),
            started: false,
        };
        match fs::read_dir(root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => s.started = true,
            Err(e) => return Err(format!("cannot read the local folder {}: {e}", root.display())),
            Ok(_) => {}
        }
        Ok(s)
    }

    /// Follow symlinks that lead inside the root (never outside, never into a cycle).
    pub fn follow_symlinks(mut self, yes: bool) -> Self {
        self.follow_symlinks = yes;
        self
    }

    /// Remove our own leftover temp files (`.s4tmp-*`) from interrupted runs; only while the
    /// folder's lock is held.
    pub fn clean_temp(mut self, yes: bool) -> Self {
        self.clean_temp = yes;
        self
    }

    fn open(&self, prefix: &str, out: &mut Vec<Item>) -> Option<Dir> {
        let path = self.root.join(prefix);
        let rd = match fs::read_dir(&path) {
            Ok(rd) => rd,
            Err(e) => {
                let key = prefix.trim_end_matches('/').to_string();
                out.push(Item::Skipped { key, reason: format!("cannot read {}: {e}", path.display()), error: true });
                return None;
            }
        };
        let mut entries = Vec::new();
        for entry in rd {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    // We no longer know what this directory holds: leave all of it alone.
                    let key = prefix.trim_end_matches('/').to_string();
                    out.push(Item::Skipped { key, reason: format!("reading {}: {e}", path.display()), error: true });
                    return None;
                }
            };
            let name = match entry.file_name().into_string() {
                Ok(n) => n,
                Err(raw) => {
                    out.push(Item::Notice(format!(
                        "skipping {}: the name is not UTF-8, so it cannot be an S3 key",
                        path.join(raw).display()
                    )));
                    continue;
                }
            };
            if name.starts_with(crate::fsutil::TMP_PREFIX) {
                let temp = path.join(&name);
                if !self.clean_temp {
                    continue;
                }
                // An aside may hold a user's only copy: kept under a plain name, never removed.
                if let Some(kept) = crate::fsutil::recover_aside(&temp) {
                    let done = match kept == temp {
                        true => {
                            "could not give it a plain name in its folder (full disk?): move it out yourself".into()
                        }
                        false => format!("kept it as {}: delete it if you do not need it", kept.display()),
                    };
                    out.push(Item::Notice(format!(
                        "found {}, a file an earlier s4 run moved aside and was cut off before it put back or deleted; {done}",
                        temp.display()
                    )));
                } else if crate::fsutil::is_abandoned_temp(&name, crate::fsutil::untouched_for(&temp)) {
                    let _ = fs::remove_file(&temp);
                }
                continue;
            }
            let kind = match entry.file_type() {
                Ok(ft) if ft.is_symlink() => match self.symlink_target(&path.join(&name)) {
                    Some(true) => Kind::Dir,
                    Some(false) => Kind::File,
                    None => Kind::Symlink,
                },
                Ok(ft) if ft.is_dir() => Kind::Dir,
                Ok(ft) if ft.is_file() => Kind::File,
                // Sockets, FIFOs, devices: not content; said in key order, like a link.
                Ok(ft) => Kind::Special(special_kind(&ft)),
                Err(_) => Kind::Symlink, // unknown type: leave it alone like a link
            };
            entries.push((name, kind));
        }
        // Sort by the name as it appears in full keys: a directory "a" sorts as "a/", so
        // "a.txt" ('.' < '/') comes before everything under "a/".
        entries.sort_by(|(a, ak), (b, bk)| {
            let slash = |k: &Kind| if *k == Kind::Dir { &b"/"[..] } else { &b""[..] };
            a.as_bytes().iter().chain(slash(ak)).cmp(b.as_bytes().iter().chain(slash(bk)))
        });
        Some(Dir { prefix: prefix.to_string(), entries: entries.into_iter() })
    }

    /// `Some(is_dir)` if a symlink may be followed: only with --follow-symlinks, only to a
    /// target inside the root, and never to a directory that contains the link (a cycle).
    fn symlink_target(&self, link: &Path) -> Option<bool> {
        if !self.follow_symlinks {
            return None;
        }
        let target = fs::canonicalize(link).ok()?;
        let root = self.canonical_root.as_ref()?;
        if !target.starts_with(root) {
            return None;
        }
        let meta = fs::metadata(&target).ok()?;
        if meta.is_dir() && link.parent().and_then(|p| fs::canonicalize(p).ok()).is_some_and(|p| p.starts_with(&target))
        {
            return None;
        }
        Some(meta.is_dir())
    }

    /// The next item in key order.
    pub fn next_item(&mut self) -> Option<Item> {
        if !self.started {
            self.started = true;
            let mut out = Vec::new();
            if let Some(d) = self.open("", &mut out) {
                self.stack.push(d);
            }
            out.reverse();
            self.pending = out;
        }
        loop {
            if let Some(n) = self.pending.pop() {
                return Some(n);
            }
            let dir = self.stack.last_mut()?;
            let Some((name, kind)) = dir.entries.next() else {
                self.stack.pop();
                continue;
            };
            let key = format!("{}{name}", dir.prefix);
            if self.rules.is_ignored(&key, kind == Kind::Dir) {
                continue;
            }
            match kind {
                Kind::Dir => {
                    let mut out = Vec::new();
                    if let Some(d) = self.open(&format!("{key}/"), &mut out) {
                        self.stack.push(d);
                    }
                    out.reverse();
                    self.pending = out;
                }
                Kind::Symlink => {
                    let reason = if self.follow_symlinks {
                        format!(
                            "skipping symlink {key}: it leads outside the folder, into a loop, or nowhere; \
                             it is left alone on S3"
                        )
                    } else {
                        format!(
                            "skipping symlink {key} (use --follow-symlinks to follow links inside the folder); \
                             it is left alone on S3"
                        )
                    };
                    return Some(Item::Skipped { key, reason, error: false });
                }
                Kind::Special(what) => {
                    let reason = format!("skipping {key}: a {what} is not a regular file; it is left alone on S3");
                    return Some(Item::Skipped { key, reason, error: false });
                }
                Kind::File => {
                    return Some(match fs::metadata(self.root.join(&key)) {
                        Ok(m) => Item::File(LocalFile { key, size: m.len(), mtime: mtime_of(&m) }),
                        Err(e) => Item::Skipped { reason: format!("skipping {key}: {e}"), key, error: true },
                    })
                }
            }
        }
    }
}

impl Iterator for Scanner {
    type Item = Item;
    fn next(&mut self) -> Option<Item> {
        self.next_item()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(root: &Path, rules: &str) -> Vec<String> {
        files(Scanner::new(root, Arc::new(IgnoreRules::parse(rules))).unwrap())
    }

    fn notices(s: Scanner) -> Vec<String> {
        s.filter_map(|i| match i {
            Item::Notice(n) => Some(n),
            _ => None,
        })
        .collect()
    }

    fn files(s: Scanner) -> Vec<String> {
        s.filter_map(|i| match i {
            Item::File(f) => Some(f.key),
            _ => None,
        })
        .collect()
    }

    #[test]
    fn walk_is_in_byte_order_of_full_keys_and_applies_rules() {
        let d = tempfile::tempdir().unwrap();
        for f in ["a.txt", "a/b", "a/c/d", "a b", "a+b", "B", "é", "build/x", "z/build.log", ".index", "sub/.index"] {
            let p = d.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, f).unwrap();
        }
        fs::create_dir_all(d.path().join("empty")).unwrap();
        let got = keys(d.path(), "build/\n*.log\n");
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, sorted);
        assert_eq!(got, vec!["B", "a b", "a+b", "a.txt", "a/b", "a/c/d", "sub/.index", "é"]);
    }

    #[test]
    fn symlinks_skipped_unless_followed_inside_root() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("real"), "x").unwrap();
        std::os::unix::fs::symlink(d.path().join("real"), d.path().join("link")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(d.path(), d.path().join("loop")).unwrap();
        let items: Vec<_> = Scanner::new(d.path(), Arc::default()).unwrap().collect();
        let skipped: Vec<&str> = items
            .iter()
            .filter_map(|i| match i {
                Item::Skipped { key, error: false, .. } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(skipped, vec!["link", "loop", "outside"], "in key order, as unknowns");
        let followed = files(Scanner::new(d.path(), Arc::default()).unwrap().follow_symlinks(true));
        assert_eq!(followed, vec!["link", "real"]);
    }

    #[test]
    fn sockets_and_fifos_are_named_in_key_order_not_dropped() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a.txt"), "x").unwrap();
        fs::write(d.path().join("z.txt"), "x").unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(d.path().join("sock")).unwrap();
        let made = std::process::Command::new("mkfifo").arg(d.path().join("fifo")).status();
        let fifo = made.is_ok_and(|s| s.success());
        let got: Vec<(String, bool)> = Scanner::new(d.path(), Arc::default())
            .unwrap()
            .map(|i| match i {
                Item::File(f) => (f.key, false),
                Item::Skipped { key, reason, .. } => {
                    assert!(reason.contains("is not a regular file"), "{reason}");
                    (key, true)
                }
                Item::Notice(n) => panic!("{n}"),
            })
            .collect();
        let mut want = vec![("a.txt".to_string(), false), ("sock".into(), true), ("z.txt".into(), false)];
        if fifo {
            want.insert(1, ("fifo".into(), true));
        }
        assert_eq!(got, want);
    }

    #[test]
    fn unreadable_directories_are_unknown_not_empty_and_temp_files_are_cleaned() {
        let d = tempfile::tempdir().unwrap();
        let dead = format!(".s4tmp-4000000000-2-{}", crate::fsutil::pid_space());
        fs::write(d.path().join(&dead), "left over by a dead process").unwrap();
        let live = crate::fsutil::temp_path(&d.path().join("f")).file_name().unwrap().to_owned();
        fs::write(d.path().join(&live), "this live process's").unwrap();
        // Our PID, but numbered before this process began: an earlier run's (s4 as PID 1 in a
        // container, killed mid-download).
        let earlier = format!(".s4tmp-{}-7-{}", std::process::id(), crate::fsutil::pid_space());
        fs::write(d.path().join(&earlier), "left over by an earlier process with our PID").unwrap();
        fs::create_dir_all(d.path().join("a")).unwrap();
        fs::write(d.path().join("a/f"), "x").unwrap();
        // A file where a directory listing is expected stands in for an unreadable directory
        // (tests run as root, which permission bits do not stop).
        let s = Scanner::new(d.path(), Arc::default()).unwrap();
        let mut out = Vec::new();
        assert!(s.open("a/f/", &mut out).is_none());
        assert!(matches!(&out[..], [Item::Skipped { key, error: true, .. }] if key == "a/f"));
        let all: Vec<Item> = Scanner::new(d.path(), Arc::default()).unwrap().clean_temp(true).collect();
        assert_eq!(all.len(), 1);
        assert!(!d.path().join(&dead).exists());
        assert!(d.path().join(&live).exists(), "a live s4's temp file stays");
        assert!(!d.path().join(&earlier).exists(), "an earlier s4's with our PID goes");
        let err = Scanner::new(&d.path().join("a/f"), Arc::default()).err().unwrap();
        assert!(err.contains("cannot read the local folder"), "{err}");
        assert!(Scanner::new(&d.path().join("missing"), Arc::default()).unwrap().next().is_none());
    }

    /// A user's file moved aside (a deletion's check, a rename) by a run that was then cut off
    /// was named like a download's temp file, and the next run removed it: an edit made during
    /// that sync, its only copy, was lost. It is kept under a plain name instead, and said.
    #[test]
    fn a_cut_off_runs_file_moved_aside_is_kept_not_cleaned_as_a_download() {
        let d = tempfile::tempdir().unwrap();
        let dead = format!(".s4tmp-4000000000-2-{}-aside", crate::fsutil::pid_space());
        fs::write(d.path().join(&dead), "an edit, its only copy").unwrap();
        let live = crate::fsutil::aside_path(&d.path().join("f")).file_name().unwrap().to_owned();
        fs::write(d.path().join(&live), "being checked by this live process").unwrap();
        let all: Vec<Item> = Scanner::new(d.path(), Arc::default()).unwrap().clean_temp(true).collect();
        assert!(matches!(&all[..], [Item::Notice(n)] if n.contains("recovered (kept by s4)")), "{:?}", all.len());
        assert_eq!(fs::read_to_string(d.path().join("recovered (kept by s4)")).unwrap(), "an edit, its only copy");
        assert!(!d.path().join(&dead).exists());
        assert!(d.path().join(&live).exists(), "a live s4's aside stays");
        // The next scan sees it as a new file.
        assert_eq!(keys(d.path(), ""), ["recovered (kept by s4)"]);
    }

    /// Review: where no plain name could be made (a full disk: no link, no rename, but unlink
    /// works), the aside fell through to the cleaning of abandoned downloads and was removed.
    #[test]
    fn an_aside_that_cannot_be_given_a_plain_name_stays_where_it_is() {
        let d = tempfile::tempdir().unwrap();
        let dead = format!(".s4tmp-4000000000-2-{}-aside", crate::fsutil::pid_space());
        fs::write(d.path().join(&dead), "an edit, its only copy").unwrap();
        // Every plain name taken stands in for a disk too full to make one.
        for n in 1..1000 {
            let name =
                if n == 1 { "recovered (kept by s4)".to_string() } else { format!("recovered (kept by s4 {n})") };
            fs::write(d.path().join(name), "").unwrap();
        }
        let notices = notices(Scanner::new(d.path(), Arc::default()).unwrap().clean_temp(true));
        assert!(matches!(&notices[..], [n] if n.contains("move it out yourself")), "{notices:?}");
        assert_eq!(fs::read_to_string(d.path().join(&dead)).unwrap(), "an edit, its only copy");
    }

    /// Review of the temp names: a live s4 in another PID namespace sharing the folder (two
    /// containers on one volume, a `restore` in one) has a PID this process cannot see, and its
    /// temp file looked abandoned: a sync in the other container removed it mid-write. A temp
    /// file named from another PID space (or from an older s4) goes only once an hour old.
    #[test]
    fn a_fresh_temp_file_of_a_pid_we_cannot_see_is_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let names = [".s4tmp-4000000000-2-0badf00d".to_string(), ".s4tmp-4000000000-3".to_string()];
        for name in &names {
            fs::write(d.path().join(name), "being written by an s4 in another container").unwrap();
        }
        let all: Vec<Item> = Scanner::new(d.path(), Arc::default()).unwrap().clean_temp(true).collect();
        assert!(all.is_empty());
        for name in &names {
            assert!(d.path().join(name).exists(), "{name} was removed");
            assert!(crate::fsutil::is_abandoned_temp(name, crate::fsutil::TEMP_GRACE), "{name}, an hour on");
        }
    }
}
