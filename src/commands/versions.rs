//! `s4 versions` and `s4 restore`: a file's S3 versions, and bringing one back. S4's README
//! promises rollback through bucket versioning; these make it one command.
//!
//! Exit codes: 0 done; 1 `versions` found no version of the file; 2 could not run (unknown
//! target, a path outside the folder, no versioning on the store, a local file in the way).

use std::path::{Component, Path, PathBuf};

use super::ls::tabulate;
use super::{client_for, lookup, runtime, Fatal, OK, PARTIAL};
use crate::cli::{RestoreCmd, VersionsCmd};
use crate::config::Config;
use crate::fsutil;
use crate::log::format_utc;
use crate::s3::{Client, Transfer, Version, Versioning};

pub fn list(config: &Config, cmd: VersionsCmd) -> Result<i32, Fatal> {
    let target = lookup(config, &cmd.target)?;
    let key = key_for(&canonical(&target.local_folder), &cwd()?, &cmd.path)?;
    let (client, prefix) = client_for(&target)?;
    let remote_key = format!("{prefix}{key}");
    let versions = runtime()?.block_on(versions_of(&client, &remote_key))?;
    if versions.is_empty() {
        crate::error!("No versions of {} on S3 (was it ever synced?)", client.uri(&remote_key));
        return Ok(PARTIAL);
    }
    if cmd.json {
        for v in &versions {
            let line = serde_json::json!({
                "key": key, "version_id": v.version_id, "last_modified": v.last_modified,
                "time": v.time(), "size": v.size, "etag": v.etag,
                "deleted": v.delete_marker, "current": v.is_latest,
            });
            crate::out!("{line}");
        }
        return Ok(OK);
    }
    let rows: Vec<[String; 4]> = versions
        .iter()
        .map(|v| {
            let size = if v.delete_marker { "-".to_string() } else { v.size.to_string() };
            let time = v.time().map(format_utc).unwrap_or_else(|| v.last_modified.clone());
            let state = match (v.delete_marker, v.is_latest) {
                (true, true) => "deleted (current)",
                (true, false) => "deleted",
                (false, true) => "current",
                (false, false) => "",
            };
            [v.version_id.clone(), time, size, state.to_string()]
        })
        .collect();
    crate::out!(raw "{}", tabulate(&["version id", "time (UTC)", "size", "state"], &rows));
    Ok(OK)
}

pub fn restore(config: &Config, cmd: RestoreCmd) -> Result<i32, Fatal> {
    let target = lookup(config, &cmd.target)?;
    let root = canonical(&target.local_folder);
    let cwd = cwd()?;
    let key = key_for(&root, &cwd, &cmd.path)?;
    let (client, prefix) = client_for(&target)?;
    let remote_key = format!("{prefix}{key}");
    let uri = client.uri(&remote_key);
    let rt = runtime()?;
    let versions = rt.block_on(versions_of(&client, &remote_key))?;
    let chosen = pick(&versions, cmd.version_id.as_deref()).map_err(|m| format!("{uri}: {m}"))?;
    let dest = match &cmd.to {
        Some(file) => cwd.join(file),
        None if root.is_dir() => fsutil::safe_dest(&root, &key)?,
        None => return Err(format!("the folder of target {} ({}) does not exist", cmd.target, root.display())),
    };
    let in_the_way = || {
        format!(
            "{} exists; not replacing it. Use --to FILE to write the version elsewhere, or --force to replace it",
            dest.display()
        )
    };
    // Checked before the download so nothing is fetched in vain; placing the file checks again.
    match std::fs::symlink_metadata(&dest) {
        Ok(m) if m.is_dir() => return Err(format!("{} is a folder; give --to a file name", dest.display())),
        Ok(_) if !cmd.force => return Err(in_the_way()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", dest.display())),
    }
    let tmp = fsutil::temp_path(&dest);
    let fetched = rt.block_on(fetch(&client, &remote_key, chosen, &tmp)).and_then(|()| {
        let placed = if cmd.force { fsutil::replace(&tmp, &dest) } else { fsutil::place_new(&tmp, &dest) };
        placed.map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => in_the_way(),
            _ => format!("renaming into {}: {e}", dest.display()),
        })
    });
    if fetched.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    fetched?;
    let when = chosen.time().map(format_utc).unwrap_or_else(|| chosen.last_modified.clone());
    let what = format!(
        "Restored {key} from version {} ({when} UTC, {} bytes) to {}",
        chosen.version_id,
        chosen.size,
        dest.display()
    );
    // Only a file in the folder is synced; one written elsewhere with --to stays where it is.
    if key_under(&root, &dest).is_ok() {
        crate::out!("{what}; the next `s4 sync {}` uploads it as the newest version", cmd.target);
    } else {
        crate::out!("{what}");
    }
    Ok(OK)
}

/// GET the version into `tmp` and give it mtime "now": newer than anything the indexes hold,
/// so the next sync uploads it as the newest version.
async fn fetch(client: &Client, key: &str, v: &Version, tmp: &Path) -> Result<(), Fatal> {
    client
        .download_version_to_file(key, Some(&v.version_id), tmp, v.size, &Transfer::default())
        .await
        .map_err(|e| format!("restoring version {}: {e}", v.version_id))?;
    fsutil::seal(tmp, std::time::SystemTime::now()).map_err(|e| format!("writing {}: {e}", tmp.display()))
}

/// The versions of `key`, newest first, after checking the store keeps versions at all: a
/// store without versioning would otherwise list only the current object, or fail obscurely.
async fn versions_of(client: &Client, key: &str) -> Result<Vec<Version>, Fatal> {
    let bucket = client.bucket();
    let unavailable = |e: crate::s3::Error| {
        format!(
            "versioning is not available on this store ({e}). `s4 versions` and `s4 restore` need a store \
             with S3 versioning (AWS S3, MinIO, moto, ...)"
        )
    };
    let state = match client.versioning().await {
        Ok(state) => state,
        Err(e) if e.is_not_implemented() => return Err(unavailable(e)),
        Err(e) => return Err(e.to_string()),
    };
    // Listed even when versioning is off: some stores (Garage) answer GetBucketVersioning
    // but implement nothing else of it, and "enable it" would be the wrong advice there.
    let versions = match client.object_versions(key).await {
        Ok(v) => v,
        Err(e) if e.is_not_implemented() => return Err(unavailable(e)),
        Err(e) => return Err(e.to_string()),
    };
    match state {
        Versioning::Enabled => {}
        Versioning::Suspended => crate::warn!(
            "Versioning is suspended on bucket {bucket}: versions from before are kept, newer writes replace each other"
        ),
        Versioning::Off => {
            return Err(format!(
                "versioning is not enabled on bucket {bucket}, so S3 keeps no old versions of {}. Enable it \
                 (e.g. aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled); \
                 versions are kept from then on",
                client.uri(key)
            ))
        }
    }
    Ok(versions)
}

/// The version to restore: the one named, or else the newest that is neither a delete marker
/// nor the current version, so the bare command undoes both a deletion and an overwrite.
/// `versions` is newest first.
pub fn pick<'a>(versions: &'a [Version], id: Option<&str>) -> Result<&'a Version, String> {
    if let Some(id) = id {
        let v = versions
            .iter()
            .find(|v| v.version_id == id)
            .ok_or_else(|| format!("no version {id} (`s4 versions` lists them)"))?;
        if v.delete_marker {
            return Err(format!("version {id} is a delete marker: it has no content to restore"));
        }
        return Ok(v);
    }
    if let Some(v) = versions.iter().find(|v| !v.delete_marker && !v.is_latest) {
        return Ok(v);
    }
    match versions.iter().find(|v| !v.delete_marker) {
        Some(current) => Err(format!(
            "no earlier version to restore; the current one is {} (pass --version-id {} to fetch it)",
            current.version_id, current.version_id
        )),
        None if versions.is_empty() => Err("no versions on S3 (was it ever synced?)".into()),
        None => Err("only delete markers on S3: no content to restore".into()),
    }
}

fn cwd() -> Result<PathBuf, Fatal> {
    std::env::current_dir().map_err(|e| format!("the current folder: {e}"))
}

/// The folder with symlinks resolved when it exists (the current folder is resolved too, so
/// the two compare), else as written.
fn canonical(folder: &str) -> PathBuf {
    std::fs::canonicalize(folder).unwrap_or_else(|_| lexical(Path::new(folder)))
}

/// `.` and `..` resolved by name: the file may be gone, so the filesystem cannot tell.
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The key of a file given as PATH: relative to the target's folder, or, when it is absolute
/// or starts with `./` or `../`, a path from the current folder that must lead into the
/// target's folder.
pub fn key_for(root: &Path, cwd: &Path, path: &str) -> Result<String, Fatal> {
    let p = Path::new(path);
    let from_cwd = p.is_absolute() || matches!(p.components().next(), Some(Component::CurDir | Component::ParentDir));
    if from_cwd {
        return key_under(root, &cwd.join(p));
    }
    let rel = lexical(p);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(format!("{path} leads outside the target's folder {}", root.display()));
    }
    key_of(&rel, path)
}

/// The key of `file`, which must lie inside `root` (both absolute).
fn key_under(root: &Path, file: &Path) -> Result<String, Fatal> {
    let rel = lexical(file)
        .strip_prefix(root)
        .map(Path::to_path_buf)
        .map_err(|_| format!("{} is outside the target's folder {}", file.display(), root.display()))?;
    key_of(&rel, &file.display().to_string())
}

fn key_of(rel: &Path, shown: &str) -> Result<String, Fatal> {
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    let key = parts.ok_or_else(|| format!("{shown} is not valid UTF-8, so it cannot be an S3 key"))?.join("/");
    if key.is_empty() {
        return Err(format!("{shown} is the target's folder itself; name a file in it"));
    }
    if !fsutil::is_safe_key(&key) || crate::ignore::is_reserved(&key) {
        return Err(format!("{shown} cannot be a synced file's path"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, latest: bool, marker: bool) -> Version {
        Version {
            key: "f".into(),
            version_id: id.into(),
            is_latest: latest,
            last_modified: "2024-05-01T10:00:00Z".into(),
            size: 1,
            etag: None,
            delete_marker: marker,
        }
    }

    #[test]
    fn default_pick_undoes_a_deletion_and_an_overwrite() {
        // Deleted by a sync: the newest content before the delete marker.
        let deleted = [v("dm", true, true), v("v2", false, false), v("v1", false, false)];
        assert_eq!(pick(&deleted, None).unwrap().version_id, "v2");
        // Overwritten by a sync: the version before the current one.
        let overwritten = [v("v2", true, false), v("v1", false, false)];
        assert_eq!(pick(&overwritten, None).unwrap().version_id, "v1");
        // Deleted, recreated, deleted again: markers are skipped wherever they are.
        let twice = [v("dm2", true, true), v("v3", false, false), v("dm1", false, true), v("v1", false, false)];
        assert_eq!(pick(&twice, None).unwrap().version_id, "v3");
    }

    #[test]
    fn explicit_ids_and_nothing_to_pick() {
        let all = [v("dm", true, true), v("v2", false, false), v("v1", false, false)];
        assert_eq!(pick(&all, Some("v1")).unwrap().version_id, "v1");
        assert!(pick(&all, Some("dm")).unwrap_err().contains("is a delete marker"));
        assert!(pick(&all, Some("nope")).unwrap_err().contains("no version nope"));
        let only = [v("v1", true, false)];
        assert!(pick(&only, None).unwrap_err().contains("--version-id v1"));
        assert!(pick(&[], None).unwrap_err().contains("no versions"));
        assert!(pick(&[v("dm", true, true)], None).unwrap_err().contains("only delete markers"));
    }

    #[test]
    fn paths_map_to_keys_inside_the_folder_only() {
        let root = Path::new("/data/photos");
        let cwd = Path::new("/data/photos/2024");
        assert_eq!(key_for(root, cwd, "a/b.jpg").unwrap(), "a/b.jpg");
        assert_eq!(key_for(root, cwd, "a/./c/../b.jpg").unwrap(), "a/b.jpg");
        assert_eq!(key_for(root, cwd, "./x.jpg").unwrap(), "2024/x.jpg");
        assert_eq!(key_for(root, cwd, "../top.txt").unwrap(), "top.txt");
        assert_eq!(key_for(root, cwd, "/data/photos/a/b.jpg").unwrap(), "a/b.jpg");
        assert!(key_for(root, cwd, "/etc/passwd").unwrap_err().contains("outside the target's folder"));
        assert!(key_for(root, cwd, "../../x").unwrap_err().contains("outside the target's folder"));
        assert!(key_for(root, cwd, "a/../../x").unwrap_err().contains("outside the target's folder"));
        assert!(key_for(root, Path::new("/data"), "./photos").unwrap_err().contains("folder itself"));
        assert!(key_for(root, Path::new("/data/photosx"), "./f").unwrap_err().contains("outside"));
    }
}
