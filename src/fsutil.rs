//! Local file primitives the sync relies on for "never lose a file": atomic replace
//! (temp file in the same directory, fsync, rename) and the safety check on relative keys.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of our temp files; the scanner and ignore rules always skip them.
pub const TMP_PREFIX: &str = ".s4tmp-";

/// A fresh temp path beside `dest` (same directory, so the rename is atomic).
pub fn temp_path(dest: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("{TMP_PREFIX}{}-{n}", std::process::id());
    dest.parent().unwrap_or(Path::new(".")).join(name)
}

/// Write `dest` through a temp file: `fill` writes the content, then fsync, then rename.
pub fn write_atomic(dest: &Path, mode: u32, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let tmp = temp_path(dest);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// MD5 of `len` bytes of the file at `offset` (ETags of plain objects and of parts).
pub fn md5_range(path: &Path, offset: u64, len: u64) -> io::Result<[u8; 16]> {
    use md5::{Digest, Md5};
    use std::io::{Read, Seek};
    let mut f = File::open(path)?;
    f.seek(io::SeekFrom::Start(offset))?;
    let mut h = Md5::new();
    let n = io::copy(&mut f.take(len), &mut h)?;
    if n != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{} is shorter than expected", path.display()),
        ));
    }
    Ok(h.finalize().into())
}

/// Is `key` a relative path we may create under the sync root? Rejects absolute paths,
/// `.`/`..`/empty components, NUL, folder markers ending in '/', and our own temp names
/// (SPEC-S4 §2: unsafe remote keys are never written).
pub fn is_safe_key(key: &str) -> bool {
    !key.is_empty()
        && !key.contains('\0')
        && key.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.starts_with(TMP_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_keys_table() {
        for k in ["a", "a/b", "a b/c+d", "ü/ß", ".hidden", "a/.b", "..a", "a.."] {
            assert!(is_safe_key(k), "{k}");
        }
        for k in ["", "/abs", "a//b", "a/", "./a", "a/./b", "../x", "a/../../x", "..", "a\0b", ".s4tmp-1-2"] {
            assert!(!is_safe_key(k), "{k:?}");
        }
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "old").unwrap();
        write_atomic(&p, 0o644, |f| io::Write::write_all(f, b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        let err = write_atomic(&p, 0o644, |_| Err(io::Error::other("boom")));
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
