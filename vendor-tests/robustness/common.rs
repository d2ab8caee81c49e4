//! What the robustness tests share: trees of files (local and on the store) compared byte for
//! byte, deterministic test content, and runs of `s4 sync` with extra environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::env::{block_on, Env, Run};

/// Relative path → content of every regular file under `root`, our own bookkeeping files
/// (`.index`, `.s4lock`) left out. Symlinks are not followed.
pub fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut |rel, path, meta| {
        if meta.is_file() && rel != ".index" && rel != ".s4lock" {
            out.insert(rel.to_string(), std::fs::read(path).unwrap());
        }
    });
    out
}

/// Every file and link under `root` as (kind, hash of the content or link target, mtime):
/// any change to one shows. (Directories are left out: a failed download may leave an empty one.)
pub fn snapshot(root: &Path) -> BTreeMap<String, (&'static str, u64, i64)> {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let hash = |b: &[u8]| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        b.hash(&mut h);
        h.finish()
    };
    let mut out = BTreeMap::new();
    walk(root, root, &mut |rel, path, meta| {
        let entry = if meta.is_file() {
            ("file", hash(&std::fs::read(path).unwrap_or_default()))
        } else if meta.file_type().is_symlink() {
            ("link", hash(std::fs::read_link(path).unwrap().as_os_str().as_encoded_bytes()))
        } else if meta.is_dir() {
            return;
        } else {
            ("other", 0)
        };
        out.insert(rel.to_string(), (entry.0, entry.1, meta.mtime()));
    });
    out
}

/// [`snapshot`] without the `.index`, which may record what did sync: the user's files only.
pub fn user_files(root: &Path) -> BTreeMap<String, (&'static str, u64, i64)> {
    let mut s = snapshot(root);
    s.remove(".index");
    s
}

fn walk(root: &Path, dir: &Path, f: &mut dyn FnMut(&str, &Path, &std::fs::Metadata)) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        f(&rel, &path, &meta);
        if meta.is_dir() {
            walk(root, &path, f);
        }
    }
}

/// s4's temp files left anywhere under `root`.
pub fn temps(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, root, &mut |rel, _, _| {
        if rel.rsplit('/').next().is_some_and(|n| n.starts_with(".s4tmp-")) {
            out.push(rel.to_string());
        }
    });
    out
}

/// The objects under the env's prefix, read back with our own client (index and lease left out).
pub fn store_tree(e: &Env) -> BTreeMap<String, Vec<u8>> {
    let c = e.client();
    block_on(async {
        let mut l = c.list(&e.prefix, None, None);
        let mut out = BTreeMap::new();
        while let Some(o) = l.next_object().await.unwrap() {
            let rel = o.key[e.prefix.len()..].to_string();
            if rel == ".index" || rel.starts_with(".s4lease") {
                continue;
            }
            let (body, _) = c.get_bytes(&o.key).await.unwrap().expect("listed object");
            out.insert(rel, body.to_vec());
        }
        out
    })
}

/// Bytes of `want` that `got` lacks or holds differently (0 when `got` has it all).
pub fn bytes_lost(want: &BTreeMap<String, Vec<u8>>, got: &BTreeMap<String, Vec<u8>>) -> u64 {
    want.iter().filter(|(k, v)| got.get(*k) != Some(v)).map(|(_, v)| v.len().max(1) as u64).sum()
}

/// Assert two trees hold the same files with the same bytes; names the first differences.
pub fn assert_same(want: &BTreeMap<String, Vec<u8>>, got: &BTreeMap<String, Vec<u8>>, what: &str) {
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).take(5).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).take(5).collect();
    let differ: Vec<&String> =
        want.iter().filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v)).map(|(k, _)| k).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "{what}: {} vs {} files; missing {missing:?}, extra {extra:?}, different {differ:?}; {} bytes lost",
        want.len(),
        got.len(),
        bytes_lost(want, got)
    );
}

/// Deterministic bytes for test file `n` (xorshift from a seed), `len` long.
pub fn content(seed: u64, n: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n.wrapping_add(1).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `count` small files (0.5–4 KiB) spread over 16 directories, named `{stem}/dNN/fNNNN.bin`,
/// with mtimes in the past (a whole second apart from now, as S4 compares).
pub fn small_files(root: &Path, stem: &str, count: u64, seed: u64) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            let p = root.join(format!("{stem}/d{:02}/f{i:04}.bin", i % 16));
            let len = 512 + (crate::support::proxy::draw(seed, i) % 3584) as usize;
            crate::support::env::write_bytes(&p, &content(seed, i, len), -1000);
            p
        })
        .collect()
}

/// A file big enough to go multipart both ways (s4 cuts at 16 MiB, in 8 MiB parts).
pub const BIG: usize = 17 << 20;

/// `s4 sync --json NAME EXTRA` with extra environment (e.g. a short read timeout).
pub fn sync_with(e: &Env, name: &str, extra: &[&str], envs: &[(&str, &str)]) -> Run {
    let args = e.sync_args(name, extra);
    let mut cmd = e.command(&args.iter().map(String::as_str).collect::<Vec<_>>());
    cmd.stdin(std::process::Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Run::from_output(&cmd.output().unwrap())
}

/// Sync until a run exits 0 (a fault that is not retried inside a run, such as a cut-off
/// download, leaves work for the next one); at most `tries` runs. Returns every run.
pub fn sync_until_clean(e: &Env, name: &str, envs: &[(&str, &str)], tries: usize) -> Vec<Run> {
    let mut runs = Vec::new();
    for _ in 0..tries {
        let r = sync_with(e, name, &[], envs);
        let done = r.code == 0;
        runs.push(r);
        if done {
            return runs;
        }
    }
    let last = runs.last().unwrap();
    panic!("{name}: no clean run in {tries} tries; last exit {}:\n{}", last.code, last.stderr);
}

/// A number from the environment, for stress runs.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Is this process able to read a file whatever its mode (root)?
pub fn permissions_do_not_stop_us(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(".perm-probe");
    std::fs::write(&p, "x").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    let readable = std::fs::read(&p).is_ok();
    std::fs::remove_file(&p).unwrap();
    readable
}
