//! Test data: deterministic pseudo-random files (incompressible, so no store or transport
//! can cheat), hard-linked copies of a tree, and byte-for-byte comparisons.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// xorshift64*: fast, seeded, good enough to defeat compression.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let x = self.next().to_le_bytes();
            c.copy_from_slice(&x[..c.len()]);
        }
    }
}

/// `mib` MiB of random bytes at `path`.
pub fn big_file(path: &Path, mib: u64, seed: u64) -> std::io::Result<()> {
    let mut rng = Rng::new(seed);
    let mut f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(path)?);
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        rng.fill(&mut buf);
        f.write_all(&buf)?;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// `count` files of `size` bytes (default: 1–8 KiB) in directories of 100
/// (`d000/f000000.bin`); returns total bytes.
pub fn small_tree(root: &Path, count: usize, seed: u64, size: Option<usize>) -> std::io::Result<u64> {
    let mut rng = Rng::new(seed);
    let mut total = 0;
    let mut buf = vec![0u8; 8192];
    for i in 0..count {
        let dir = root.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            fs::create_dir_all(&dir)?;
        }
        let len = size.map_or_else(|| 1024 + (rng.next() % (8192 - 1024 + 1)) as usize, |s| s.min(buf.len()));
        rng.fill(&mut buf[..len]);
        fs::write(dir.join(format!("f{i:06}.bin")), &buf[..len])?;
        total += len as u64;
    }
    Ok(total)
}

/// Rewrite `k` of the `count` files of a `small_tree` (spread evenly, shifted by `round` so
/// each round edits files not edited before) with new bytes of the same size; their mtime
/// becomes now.
pub fn edit_spread(root: &Path, count: usize, k: usize, round: usize) -> std::io::Result<()> {
    let mut rng = Rng::new(0xed17 + round as u64);
    let step = (count / k.max(1)).max(1);
    for i in (0..k.min(count)).map(|j| (j * step + round) % count) {
        let path = root.join(format!("d{:03}", i / 100)).join(format!("f{i:06}.bin"));
        let mut buf = vec![0u8; fs::metadata(&path)?.len() as usize];
        rng.fill(&mut buf);
        fs::write(&path, &buf)?;
    }
    Ok(())
}

/// A copy of `src` at `dst` made of hard links (same inodes, same mtimes): instant, and
/// what the tool under test writes beside the files (s4's `.index`) stays in `dst`.
pub fn link_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dst)?;
    for e in fs::read_dir(src)? {
        let e = e?;
        let to = dst.join(e.file_name());
        if e.file_type()?.is_dir() {
            link_tree(&e.path(), &to)?;
        } else {
            fs::hard_link(e.path(), to)?;
        }
    }
    Ok(())
}

/// Relative paths of the regular files under `root`, skipping dot-files (tools' state).
pub fn files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel))? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let r = rel.join(e.file_name());
            if e.file_type()?.is_dir() {
                stack.push(r);
            } else {
                out.push(r);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `Err` naming the first difference between the two trees (dot-files ignored).
pub fn same_tree(a: &Path, b: &Path) -> Result<(), String> {
    let fa = files(a).map_err(|e| format!("{}: {e}", a.display()))?;
    let fb = files(b).map_err(|e| format!("{}: {e}", b.display()))?;
    if fa != fb {
        let missing = fa.iter().find(|p| !fb.contains(p));
        let extra = fb.iter().find(|p| !fa.contains(p));
        return Err(format!("{} files vs {} (first missing: {missing:?}, first extra: {extra:?})", fa.len(), fb.len()));
    }
    for p in &fa {
        same_file(&a.join(p), &b.join(p))?;
    }
    Ok(())
}

pub fn same_file(a: &Path, b: &Path) -> Result<(), String> {
    let open = |p: &Path| fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()));
    let (mut x, mut y) = (open(a)?, open(b)?);
    let (la, lb) = (x.metadata().map(|m| m.len()).unwrap_or(0), y.metadata().map(|m| m.len()).unwrap_or(1));
    if la != lb {
        return Err(format!("{} is {la} bytes, {} is {lb}", a.display(), b.display()));
    }
    let (mut bx, mut by) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut at = 0u64;
    loop {
        let n = x.read(&mut bx).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        y.read_exact(&mut by[..n]).map_err(|e| e.to_string())?;
        if bx[..n] != by[..n] {
            let i = bx[..n].iter().zip(&by[..n]).position(|(p, q)| p != q).unwrap_or(0);
            return Err(format!("{} and {} differ at byte {}", a.display(), b.display(), at + i as u64));
        }
        at += n as u64;
    }
}
