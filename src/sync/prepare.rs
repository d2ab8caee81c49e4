//! What a sync sets up before planning: the folder's lock, the `.syncignore` rules, and the
//! cleanup of multipart uploads abandoned long ago.

use std::path::Path;

use super::remote::Remote;
use crate::ignore::IgnoreRules;

/// Multipart uploads under the prefix begun over a day ago are leftovers of killed runs (ours
/// or anyone's): they cost money until aborted. Younger ones may be another machine's, in
/// flight. Best effort: stores without ListMultipartUploads (s3s-fs) are skipped quietly.
pub(super) async fn abort_stale_uploads(client: &dyn Remote, prefix: &str) {
    const DAY: i64 = 24 * 3600;
    if prefix.is_empty() {
        return; // a whole bucket may be shared with other tools: their uploads are not ours to end
    }
    let now = crate::log::now_secs();
    let uploads = match client.uploads(prefix).await {
        Ok(u) => u,
        Err(e) => return crate::debug!("not checking for stale multipart uploads: {e}"),
    };
    for u in uploads.into_iter().filter(|u| u.initiated.is_some_and(|t| now - t > DAY)) {
        match client.abort_upload(&u.key, &u.id).await {
            Ok(()) => crate::info!("Aborted a stale multipart upload of {} (begun over a day ago)", client.uri(&u.key)),
            Err(e) => crate::warn!("{e}"),
        }
    }
}

/// `.s4lock` held for the run (an flock, as S4's `filelock` takes it, so s4 and S4 exclude
/// each other); removed afterwards. The kernel drops the lock of a dead process, so a lock
/// left by `kill -9` is taken over by the next run.
pub(super) struct Lock(std::fs::File, std::path::PathBuf);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.1);
        let _ = self.0.unlock();
    }
}

/// `.s4lock` in the folder, held for the run: two s4 processes never sync one folder at once.
/// It holds the pid and this run's lease token; the token a killed run left there comes back,
/// so its lease intent can be removed at once (no one else can hold this folder's lock).
pub(super) fn lock(root: &Path, token: &str) -> Result<(Lock, Option<String>), String> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::MetadataExt;
    let path = root.join(".s4lock");
    // The lock file is truncated and written: never through a link to some other file.
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(format!("{} is a symlink; remove it (s4 makes its own lock file there)", path.display()));
    }
    loop {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("creating lock {}: {e}", path.display()))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = f.read_to_string(&mut holder);
                let pid = holder.split_whitespace().next().and_then(|p| p.parse::<u32>().ok());
                let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
                return Err(format!(
                    "another s4{pid} is syncing {}: its lock {} is held; wait for it to finish",
                    root.display(),
                    path.display()
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(format!("locking {}: {e}", path.display())),
        }
        // The holder we waited on may have removed the file as it finished: a lock on a
        // file no longer at `path` excludes no one, so take the one that is there now.
        let same = match (f.metadata(), std::fs::metadata(&path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if same {
            let mut before = String::new();
            let _ = f.read_to_string(&mut before);
            let left = before.split_whitespace().nth(1).map(str::to_string);
            let _ = f.set_len(0).and_then(|()| f.rewind()).and_then(|()| write!(f, "{} {token}", std::process::id()));
            return Ok((Lock(f, path), left));
        }
    }
}

/// The folder's `.syncignore`, or the remote copy when there is no local one yet (a new
/// machine must not download what the others ignore).
pub(super) async fn load_rules(client: &dyn Remote, prefix: &str, root: &Path) -> Result<IgnoreRules, String> {
    match std::fs::read(root.join(".syncignore")) {
        Ok(b) => return Ok(IgnoreRules::parse(&String::from_utf8_lossy(&b))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("reading {}: {e}", root.join(".syncignore").display())),
    }
    match client.get_bytes(&format!("{prefix}.syncignore")).await {
        Ok(Some((b, _))) => Ok(IgnoreRules::parse(&String::from_utf8_lossy(&b))),
        Ok(None) => Ok(IgnoreRules::default()),
        Err(e) => Err(e.to_string()),
    }
}
