//! Both indexes kept in memory between a daemon's rounds (issue 13: a round for one changed
//! key read and parsed both whole indexes, ~110 MB of JSON at a million files, before its
//! upload could start). A round starts from what the last one committed, but only as far as
//! each file is provably still that version:
//!
//! - the remote index by its ETag: one conditional GET (`If-None-Match`), 304 with no body when
//!   no machine wrote it since our own last write or read, else its new body is read as usual;
//! - the local index by the file itself (device, inode, size, mtime and ctime): every writer
//!   replaces it by a rename, so another process's write (an `s4 sync` run by hand between
//!   two rounds, S4) shows up as another file, which is then read again.
//!
//! What is kept is taken out for the round and put back only when the round ended with both
//! indexes committed (or unchanged) and known: a failed, cut off or killed round leaves
//! nothing kept, and the next one reads both files.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::table::Table;

/// A daemon's hold on one target's indexes between rounds (cloned into each round).
#[derive(Clone, Default)]
pub struct Keeper(Arc<Mutex<Option<Kept>>>);

impl Keeper {
    /// What the last round left, taken out: a round that does not end well puts nothing back.
    pub(super) fn take(&self) -> Option<Kept> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub(super) fn put(&self, kept: Option<Kept>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = kept;
    }

    /// Forget what is kept (the next round reads both indexes).
    pub fn clear(&self) {
        self.put(None);
    }

    /// Is anything kept? (For tests and the daemon's log.)
    pub fn holds(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

#[cfg(test)]
impl Keeper {
    /// Does what is kept say what the files say, where they are still the versions kept? The
    /// simulation asks after every round: a kept table that drifted from its file would steer
    /// every later round (review of issue 13). `remote`: the store's index now, and its ETag.
    pub(crate) fn agrees(&self, local: &Path, remote: Option<(&str, &[u8])>) -> Result<(), String> {
        use super::index::{decode, Index};
        use super::table::Side;
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(k) = held.as_ref() else { return Ok(()) };
        let kept = |s| decode(&k.table.write(s, Vec::new()).expect("in-memory write"));
        if FileId::at(local).map_err(|e| e.to_string())? == k.local_file {
            let file = match std::fs::read(local) {
                Ok(b) => decode(&b)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index::default(),
                Err(e) => return Err(e.to_string()),
            };
            if kept(Side::Local)? != file {
                return Err(format!("the kept local index is not what {} holds", local.display()));
            }
        }
        let same = |etag: &str| etag.trim_matches('"') == k.remote_etag.trim_matches('"');
        if let Some((_, body)) = remote.filter(|(etag, _)| same(etag)) {
            if kept(Side::Remote)? != decode(body)? {
                return Err(format!("the kept remote index is not what the store holds as {}", k.remote_etag));
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keeper({})", if self.holds() { "kept" } else { "empty" })
    }
}

/// Both indexes as the last round committed them.
pub(super) struct Kept {
    pub table: Table,
    /// The remote index's version the table's remote side is.
    pub remote_etag: String,
    /// The local index file the table's local side is (`None`: there was none).
    pub local_file: Option<FileId>,
}

/// Which file is at a path, as far as a stat tells: a rename puts another inode there, and
/// a write in place moves the times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    pub fn of(m: &std::fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// The file at `path` now (`Ok(None)`: none).
    pub fn at(path: &Path) -> std::io::Result<Option<FileId>> {
        match std::fs::metadata(path) {
            Ok(m) => Ok(Some(FileId::of(&m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
