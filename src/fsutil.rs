//! Local file primitives the sync relies on for "never lose a file": atomic replace
//! (temp file in the same directory, fsync, rename), the safety check on relative keys, and
//! the way down to a key's place under the root that never passes through a symlink.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of our temp files; the scanner and ignore rules always skip them.
pub const TMP_PREFIX: &str = ".s4tmp-";

/// A fresh temp path beside `dest` (same directory, so the rename is atomic).
pub fn temp_path(dest: &Path) -> PathBuf {
    numbered(dest, "")
}

/// How an aside's name ends (see [`aside_path`]).
const ASIDE: &str = "-aside";

/// A fresh temp path beside `dest` for a user's file moved aside (a deletion's check, a
/// rename's): named so that no later run removes it as an abandoned download. A run cut off
/// while it held one leaves the user's bytes there; the scan keeps them under a plain name
/// (see [`recover_aside`]).
pub fn aside_path(dest: &Path) -> PathBuf {
    numbered(dest, ASIDE)
}

fn numbered(dest: &Path, tail: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = first_temp() + N.fetch_add(1, Ordering::Relaxed);
    let name = format!("{TMP_PREFIX}{}-{n}-{}{tail}", std::process::id(), pid_space());
    dest.parent().unwrap_or(Path::new(".")).join(name)
}

/// This process's temp files count from the wall clock's nanoseconds at its first one, not
/// from 0: a container's s4 is PID 1 in every run, and a run killed mid-download left
/// `.s4tmp-1-N` that the next run's own Nth temp file met ("File exists": the same download,
/// or the local index, failed on every run). Numbers below this one are an earlier
/// process's (making a temp file takes far more than a nanosecond), so they can be cleaned.
fn first_temp() -> u64 {
    static FIRST: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *FIRST.get_or_init(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        // A clock before 1970: a number of this run's own, not one every such run shares.
        let n = now.map_or_else(|_| random_u64(), |d| d.as_nanos() as u64);
        // Room above for the count, which must never wrap.
        n % (1 << 62)
    })
}

/// 64 bits std draws from the OS for its hash maps' keys.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

/// A temp file beside `dest`, made by us and removed when this is dropped: also when the run
/// that holds it is cut off mid-way (a killed task drops its future).
pub struct TempFile(PathBuf);

impl TempFile {
    /// A new one, open for writing. A name already taken (a file left by an earlier process
    /// with our PID: s4 as PID 1 in a container) is skipped, never reused or removed.
    pub fn create(dest: &Path) -> io::Result<(TempFile, File)> {
        Self::create_mode(dest, 0o600)
    }

    /// [`TempFile::create`] with `mode` (less the umask).
    pub fn create_mode(dest: &Path, mode: u32) -> io::Result<(TempFile, File)> {
        let mut tries = 0;
        loop {
            let path = temp_path(dest);
            match OpenOptions::new().write(true).create_new(true).mode(mode).open(&path) {
                Ok(f) => return Ok((TempFile(path), f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 100 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The path, no longer removed on drop (the file is about to be renamed into place).
    pub fn into_path(mut self) -> PathBuf {
        std::mem::take(&mut self.0)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// A writer that also takes the MD5 of what passes through (a body's Content-MD5 as it is
/// written, not from a second read).
pub struct Md5Writer<W> {
    inner: W,
    md5: md5::Md5,
}

impl<W: io::Write> Md5Writer<W> {
    pub fn new(inner: W) -> Self {
        Md5Writer { inner, md5: md5::Digest::new() }
    }
    /// The digest of everything written.
    pub fn digest(self) -> [u8; 16] {
        md5::Digest::finalize(self.md5).into()
    }
}

impl<W: io::Write> io::Write for Md5Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        md5::Digest::update(&mut self.md5, &buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where this process's PID means something, as 8 hex digits: this kernel's boot and PID
/// namespace ("0": unknown). A temp file's name carries it, so a PID is only looked up where
/// it names a process: a live s4 in another container sharing the folder (a `restore` in one
/// and a sync in the other, both perhaps PID 1) would look dead here, and its file abandoned.
///
/// Also "0" where `/proc` cannot be trusted to show every process of the namespace (review):
/// mounted for another PID namespace (`/proc/self` is not our PID), or hiding other users'
/// processes (`hidepid`: PID 1 is not visible), where a live PID would look gone.
pub fn pid_space() -> &'static str {
    static SPACE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SPACE.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id");
        let ns = std::fs::read_link("/proc/self/ns/pid");
        let ours =
            std::fs::read_link("/proc/self").is_ok_and(|p| p.as_os_str() == std::process::id().to_string().as_str());
        match (boot, ns) {
            (Ok(boot), Ok(ns)) if ours && Path::new("/proc/1").exists() => {
                let digest: [u8; 16] =
                    <md5::Md5 as md5::Digest>::digest(format!("{} {}", boot.trim(), ns.display())).into();
                hex::encode(&digest[..4])
            }
            _ => "0".into(),
        }
    })
}

/// How long a temp file of another PID space (or of an s4 before these names) must have been
/// left untouched before a sync removes it: its PID cannot be looked up from here. Every
/// write renews a file's ctime (and Linux's rename does too, for a moved-aside file), so a
/// live download is never this old.
pub const TEMP_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Time since the last change of any kind to the file at `path` (its ctime); zero if unknown.
pub fn untouched_for(path: &Path) -> std::time::Duration {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(path) else { return std::time::Duration::ZERO };
    let ctime = std::time::Duration::new(m.ctime().max(0) as u64, m.ctime_nsec().clamp(0, 999_999_999) as u32);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.saturating_sub(ctime)
}

/// Is `name` a temp file of an s4 process that is gone (a download cut off by a crash)?
/// Never an aside's (see [`recover_aside`]): the cleaning cannot remove a user's bytes.
/// Another live s4's (a `restore`, a sync of an overlapping folder) is left alone, and so
/// is anything merely named like one. `untouched`: since the file's last change (ctime).
pub fn is_abandoned_temp(name: &str, untouched: std::time::Duration) -> bool {
    let Some(rest) = name.strip_prefix(TMP_PREFIX) else { return false };
    let mut parts = rest.split('-');
    let (Some(pid), Some(n), space, None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), Ok(n)) = (pid.parse::<u32>(), n.parse::<u64>()) else { return false };
    // A space is what `pid_space` writes: 8 hex digits or "0" (a name like ours is not ours).
    let space_like = |s: &str| s == "0" || (s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()));
    match space {
        Some(s) if s == pid_space() && s != "0" => {}
        Some(s) if !space_like(s) => return false,
        _ => return untouched >= TEMP_GRACE,
    }
    match pid == std::process::id() {
        // Our PID, numbered before we began: an earlier process's (first_temp).
        true => n < first_temp(),
        // Gone only if the lookup says so; any other answer keeps the file.
        false => std::fs::symlink_metadata(format!("/proc/{pid}")).is_err_and(|e| e.kind() == io::ErrorKind::NotFound),
    }
}

/// Write `dest` through a temp file: `fill` writes the content, then fsync, then rename.
pub fn write_atomic(dest: &Path, mode: u32, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    // A name already taken (an earlier process's leftover) is skipped, not failed on.
    let (made, mut f) = TempFile::create_mode(dest, mode)?;
    let tmp = made.into_path();
    let result = (|| {
        fill(&mut f)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)?;
        sync_parent(dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A new file holding `body` (never through a file or link already there).
pub fn write_new(path: &Path, body: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    io::Write::write_all(&mut f, body)
}

/// fsync the folder holding `path`: a rename is durable only once its directory entry is
/// (after a power loss the file could otherwise be back under its temp name, or gone).
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })?.sync_all(),
        None => Ok(()),
    }
}

/// The soft limit on open files (`/proc/self/limits`; `None` where there is none to read).
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
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

/// SHA-256 of `len` bytes of the file at `offset` (a signed payload hash, when asked for).
pub fn sha256_range(path: &Path, offset: u64, len: u64) -> io::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Seek};
    let mut f = File::open(path)?;
    f.seek(io::SeekFrom::Start(offset))?;
    let mut h = Sha256::new();
    if io::copy(&mut f.take(len), &mut h)? != len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
    }
    Ok(h.finalize().into())
}

/// Finish a downloaded temp file: give it `mtime` and flush it to disk, so the rename that
/// follows never exposes a file whose bytes are not there yet.
pub fn seal(tmp: &Path, mtime: std::time::SystemTime) -> io::Result<()> {
    // Read-only: setting explicit times asks for ownership, not write access (POSIX
    // futimens), and a moved file's local copy carries the old file's mode (0444 in a git
    // object store; review of the renames).
    let file = File::open(tmp)?;
    file.set_modified(mtime)?;
    file.sync_all()
}

/// Put a file moved aside (`tmp`, an [`aside_path`]) back at `path`, or, where something took
/// that path (or its folder) meanwhile, beside the temp file as `<name> (kept by s4)`. Where
/// it went: still `tmp` only if no name could be made there (a full disk), which no run
/// cleans and a later scan names again (see [`recover_aside`]).
pub fn put_back(tmp: &Path, path: &Path) -> PathBuf {
    if path.parent().is_some_and(|dir| std::fs::create_dir_all(dir).is_ok()) && place_new(tmp, path).is_ok() {
        return path.to_path_buf();
    }
    let name = path.file_name().map_or("file".into(), |n| n.to_string_lossy().into_owned());
    keep_beside(tmp, &name)
}

/// `tmp` under a plain name in its own folder, `<name> (kept by s4)` or the first free
/// `<name> (kept by s4 N)`; `tmp` itself if none could be made.
fn keep_beside(tmp: &Path, name: &str) -> PathBuf {
    let dir = tmp.parent().unwrap_or(Path::new("."));
    for n in 1..1000 {
        let kept = dir.join(match n {
            1 => format!("{name} (kept by s4)"),
            n => format!("{name} (kept by s4 {n})"),
        });
        if place_new(tmp, &kept).is_ok() {
            return kept;
        }
    }
    tmp.to_path_buf()
}

/// An aside left by a run that was cut off before it put the file back or let it go (a
/// kill, a power cut, a full disk): its bytes may be a user's only copy (an edit made
/// during the sync), so they are kept as `recovered (kept by s4)` in the same folder, which
/// the sync then treats as any new file. A live run holds an aside for microseconds (no
/// wait between the rename and what follows), so one untouched for [`TEMP_GRACE`] is left
/// over whatever its PID says (a PID taken again since; a daemon whose put_back failed).
/// `Some(where)` for a leftover: `temp` itself if no plain name could be made (a full disk).
pub fn recover_aside(temp: &Path) -> Option<PathBuf> {
    let name = temp.file_name()?.to_str()?.strip_suffix(ASIDE)?;
    left_over_aside(name, untouched_for(temp)).then(|| keep_beside(temp, "recovered"))
}

/// `name`: an aside's without its [`ASIDE`] ending, so named as the temp files it outlives.
fn left_over_aside(name: &str, untouched: std::time::Duration) -> bool {
    untouched >= TEMP_GRACE || is_abandoned_temp(name, untouched)
}

/// Rename `tmp` over `dest`. A replaced file's permissions carry over (a private file stays
/// private).
pub fn replace(tmp: &Path, dest: &Path) -> io::Result<()> {
    if let Ok(m) = std::fs::metadata(dest) {
        let _ = std::fs::set_permissions(tmp, m.permissions());
    }
    std::fs::rename(tmp, dest)?;
    sync_parent(dest)
}

/// Move `tmp` to `dest` only if nothing is there: a file that appears meanwhile is kept
/// (`AlreadyExists`). A hard link is the atomic no-replace move; where the filesystem has
/// none, a check just before the rename.
pub fn place_new(tmp: &Path, dest: &Path) -> io::Result<()> {
    match std::fs::hard_link(tmp, dest) {
        // Placed: a temp name left as a second link is harmless (cleaned as abandoned later;
        // an aside kept as a duplicate), and an error here would have the caller put back a
        // file that is already placed.
        Ok(()) => {
            let _ = std::fs::remove_file(tmp);
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
        Err(_) if std::fs::symlink_metadata(dest).is_ok() => return Err(io::ErrorKind::AlreadyExists.into()),
        Err(_) => std::fs::rename(tmp, dest)?,
    }
    sync_parent(dest)
}

/// Is `key` a relative path we may create under the sync root? Rejects absolute paths,
/// `.`/`..`/empty components, NUL, folder markers ending in '/', and our own temp names
/// (SPEC-S4 §2: unsafe remote keys are never written).
pub fn is_safe_key(key: &str) -> bool {
    !key.is_empty()
        && !key.contains('\0')
        && key.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.starts_with(TMP_PREFIX))
}

/// The destination for `key` under `root`, its directories created one by one. A component
/// that is a symlink (or a file) stops it before anything is created: a linked directory must
/// not lead a download outside the synced folder. `key` must be safe ([`is_safe_key`]).
pub fn safe_dest(root: &Path, key: &str) -> Result<PathBuf, String> {
    let mut dir = root.to_path_buf();
    let mut parts = key.split('/').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return Ok(dir.join(part));
        }
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!("{} is a symlink; not following it for a download; skipped", dir.display()))
            }
            Ok(_) => return Err(format!("{} is a file, not a folder; skipped", dir.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(&dir) {
                Ok(()) => {}
                // A parallel download made it first: fine if it is a real directory.
                Err(e)
                    if e.kind() == io::ErrorKind::AlreadyExists
                        && std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) => {}
                Err(e) => return Err(format!("creating {}: {e}", dir.display())),
            },
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        }
    }
    Err("empty key".into())
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
    fn safe_dest_creates_folders_and_stops_at_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(safe_dest(root, "a/b/f").unwrap(), root.join("a/b/f"));
        assert!(root.join("a/b").is_dir());
        std::os::unix::fs::symlink("/tmp", root.join("link")).unwrap();
        assert!(safe_dest(root, "link/f").unwrap_err().contains("is a symlink"));
        std::fs::write(root.join("file"), "x").unwrap();
        assert!(safe_dest(root, "file/f").unwrap_err().contains("is a file, not a folder"));
    }

    #[test]
    fn a_file_put_back_where_another_now_is_is_kept_beside_it_not_under_a_temp_name() {
        let dir = tempfile::tempdir().unwrap();
        let (path, tmp) = (dir.path().join("a.txt"), dir.path().join(format!("{TMP_PREFIX}1")));
        std::fs::write(&tmp, "moved aside").unwrap();
        assert_eq!(put_back(&tmp, &path), path);
        std::fs::rename(&path, &tmp).unwrap();
        std::fs::write(&path, "someone's new file").unwrap();
        let kept = put_back(&tmp, &path);
        assert_eq!(kept, dir.path().join("a.txt (kept by s4)"));
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "moved aside");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "someone's new file");
        assert!(!tmp.exists());
    }

    /// Review: an aside whose PID was taken again by a live process (or a daemon's own, after
    /// a put_back that failed) looked live for as long as that process ran, the bytes hidden.
    #[test]
    fn an_aside_untouched_for_an_hour_is_left_over_whatever_its_pid() {
        let d = tempfile::tempdir().unwrap();
        let ours = aside_path(&d.path().join("f"));
        let name = ours.file_name().unwrap().to_str().unwrap().strip_suffix(ASIDE).unwrap();
        assert!(!left_over_aside(name, std::time::Duration::ZERO), "a live run's, just made");
        assert!(left_over_aside(name, TEMP_GRACE));
        let download = temp_path(&d.path().join("f"));
        write_new(&download, b"").unwrap();
        assert!(recover_aside(&download).is_none(), "a download's");
        assert!(!is_abandoned_temp(ours.file_name().unwrap().to_str().unwrap(), TEMP_GRACE), "never cleaned");
    }

    #[test]
    fn place_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, dest) = (dir.path().join("t"), dir.path().join("d"));
        std::fs::write(&tmp, "new").unwrap();
        place_new(&tmp, &dest).unwrap();
        assert!(!tmp.exists());
        std::fs::write(&tmp, "newer").unwrap();
        assert_eq!(place_new(&tmp, &dest).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new");
    }

    /// A container's s4 is PID 1 in every run: a temp file a killed run left must neither meet
    /// the next run's own names ("File exists" on every run) nor stay forever.
    #[test]
    fn temp_files_of_an_earlier_process_with_our_pid_never_collide_and_are_abandoned() {
        let d = tempfile::tempdir().unwrap();
        let pid = std::process::id();
        let space = pid_space();
        for n in 0..64 {
            write_new(&d.path().join(format!("{TMP_PREFIX}{pid}-{n}-{space}")), b"left over").unwrap();
        }
        let (made, _) = TempFile::create(&d.path().join("index")).unwrap();
        let name = made.path().file_name().unwrap().to_string_lossy().into_owned();
        let fresh = std::time::Duration::ZERO;
        assert!(!is_abandoned_temp(&name, fresh), "ours, live: {name}");
        assert!(is_abandoned_temp(&format!("{TMP_PREFIX}{pid}-63-{space}"), fresh), "an earlier process's");
        assert!(!is_abandoned_temp(&format!("{TMP_PREFIX}{pid}-x-{space}"), TEMP_GRACE), "merely named like one");
        drop(made);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 64, "ours removed, theirs untouched by the drop");
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

    #[test]
    fn sha256_of_a_file_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "xxabcyy").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(hex::encode(sha256_range(&p, 2, 3).unwrap()), abc);
        assert!(sha256_range(&p, 5, 3).is_err(), "a range past the end is an error, not a short hash");
    }
}
