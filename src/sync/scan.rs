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

/// Something the walk skipped and the user should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice(pub String);

struct Dir {
    /// Key prefix of this directory ("" at the root, else "a/b/").
    prefix: String,
    entries: std::vec::IntoIter<(String, bool)>,
}

pub struct Scanner {
    root: PathBuf,
    rules: Arc<IgnoreRules>,
    follow_symlinks: bool,
    stack: Vec<Dir>,
    canonical_root: Option<PathBuf>,
    /// Notices waiting to be handed out, in the order they arose.
    pending: Vec<Notice>,
}

pub fn mtime_of(meta: &fs::Metadata) -> f64 {
    match meta.modified().map(|t| t.duration_since(UNIX_EPOCH)) {
        Ok(Ok(d)) => d.as_secs_f64(),
        Ok(Err(e)) => -e.duration().as_secs_f64(),
        Err(_) => 0.0,
    }
}

impl Scanner {
    /// A missing root scans as empty (S4 behaves so); the caller decides if that is an error.
    pub fn new(root: &Path, rules: Arc<IgnoreRules>, follow_symlinks: bool) -> Scanner {
        let mut s = Scanner {
            root: root.to_path_buf(),
            rules,
            follow_symlinks,
            stack: Vec::new(),
            canonical_root: fs::canonicalize(root).ok(),
            pending: Vec::new(),
        };
        let mut notices = Vec::new();
        if let Some(d) = s.open("", &mut notices) {
            s.stack.push(d);
        }
        notices.reverse();
        s.pending = notices;
        s
    }

    fn open(&self, prefix: &str, notices: &mut Vec<Notice>) -> Option<Dir> {
        let path = self.root.join(prefix);
        let rd = match fs::read_dir(&path) {
            Ok(rd) => rd,
            Err(e) => {
                if !prefix.is_empty() {
                    notices.push(Notice(format!("skipping {}: {e}", path.display())));
                }
                return None;
            }
        };
        let mut entries = Vec::new();
        for entry in rd.flatten() {
            let name = match entry.file_name().into_string() {
                Ok(n) => n,
                Err(raw) => {
                    notices.push(Notice(format!(
                        "skipping {}: the name is not UTF-8, so it cannot be an S3 key",
                        path.join(raw).display()
                    )));
                    continue;
                }
            };
            let Ok(ft) = entry.file_type() else { continue };
            let is_dir = if ft.is_symlink() {
                match self.symlink_target(&path.join(&name)) {
                    Some(is_dir) => is_dir,
                    None => {
                        notices.push(Notice(format!(
                            "skipping symlink {}{name} (use --follow-symlinks to follow links inside the folder)",
                            prefix
                        )));
                        continue;
                    }
                }
            } else if ft.is_dir() {
                true
            } else if ft.is_file() {
                false
            } else {
                continue; // sockets, fifos, devices: not content
            };
            entries.push((name, is_dir));
        }
        // Sort by the name as it appears in full keys: a directory "a" sorts as "a/", so
        // "a.txt" ('.' < '/') comes before everything under "a/".
        entries.sort_by(|(a, ad), (b, bd)| {
            let ka = a.as_bytes().iter().chain(if *ad { &b"/"[..] } else { &b""[..] });
            let kb = b.as_bytes().iter().chain(if *bd { &b"/"[..] } else { &b""[..] });
            ka.cmp(kb)
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

    /// The next file in key order, or a notice about something skipped.
    pub fn next_item(&mut self) -> Option<Result<LocalFile, Notice>> {
        loop {
            if let Some(n) = self.pending.pop() {
                return Some(Err(n));
            }
            let dir = self.stack.last_mut()?;
            let Some((name, is_dir)) = dir.entries.next() else {
                self.stack.pop();
                continue;
            };
            let key = format!("{}{name}", dir.prefix);
            if self.rules.is_ignored(&key, is_dir) {
                continue;
            }
            if is_dir {
                let mut notices = Vec::new();
                if let Some(d) = self.open(&format!("{key}/"), &mut notices) {
                    self.stack.push(d);
                }
                notices.reverse();
                self.pending = notices;
                continue;
            }
            return Some(match fs::metadata(self.root.join(&key)) {
                Ok(m) => Ok(LocalFile { key, size: m.len(), mtime: mtime_of(&m) }),
                Err(e) => Err(Notice(format!("skipping {key}: {e}"))),
            });
        }
    }
}

impl Iterator for Scanner {
    type Item = Result<LocalFile, Notice>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_item()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(root: &Path, rules: &str) -> Vec<String> {
        Scanner::new(root, Arc::new(IgnoreRules::parse(rules)), false).filter_map(Result::ok).map(|f| f.key).collect()
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
        let items: Vec<_> = Scanner::new(d.path(), Arc::default(), false).collect();
        assert_eq!(items.iter().filter(|i| i.is_ok()).count(), 1);
        assert_eq!(items.iter().filter(|i| i.is_err()).count(), 3);
        let followed: Vec<String> =
            Scanner::new(d.path(), Arc::default(), true).filter_map(Result::ok).map(|f| f.key).collect();
        assert_eq!(followed, vec!["link", "real"]);
    }
}
