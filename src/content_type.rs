//! Content-Type for uploads (SPEC-S4 §4). A well-known extension decides first: it is exact
//! for web types (libmagic calls CSS and JS "text/plain") and free, where libmagic was 46% of
//! s4's CPU in a small-file upload (benches/). libmagic sniffs everything else, and
//! `application/octet-stream` is the last resort.

use std::cell::RefCell;
use std::io::Read;
use std::path::Path;

thread_local! {
    // A libmagic cookie is neither Send nor Sync, and loading its database costs
    // milliseconds: one per thread, loaded on first use.
    static COOKIE: RefCell<Option<Option<magic::Cookie<magic::cookie::Load>>>> = const { RefCell::new(None) };
}

fn sniff(head: &[u8]) -> Option<String> {
    COOKIE.with(|c| {
        let mut c = c.borrow_mut();
        let cookie = c.get_or_insert_with(|| {
            let open = magic::Cookie::open(magic::cookie::Flags::MIME_TYPE).ok()?;
            load(open)
        });
        cookie.as_ref()?.buffer(head).ok()
    })
}

/// The system's database, where the system's libmagic looks for it.
#[cfg(not(target_env = "musl"))]
fn load(open: magic::Cookie<magic::cookie::Open>) -> Option<magic::Cookie<magic::cookie::Load>> {
    open.load(&magic::cookie::DatabasePaths::default()).ok()
}

/// The static binary runs where there may be no database on disk (an empty container): it
/// carries the one compiled with its libmagic (build.rs).
#[cfg(target_env = "musl")]
fn load(open: magic::Cookie<magic::cookie::Open>) -> Option<magic::Cookie<magic::cookie::Load>> {
    open.load_buffers(&[embedded::database()?]).ok()
}

#[cfg(target_env = "musl")]
mod embedded {
    use std::io::Read;
    use std::sync::OnceLock;

    /// gzip -9 takes the 8 MB database to 0.4 MB of binary.
    static GZ: &[u8] = include_bytes!(env!("S4_MAGIC_DB_GZ"));
    static DB: OnceLock<Option<Box<[u8]>>> = OnceLock::new();

    /// The database, inflated on first use (most syncs never sniff: extensions decide) and
    /// shared by every thread's cookie. `'static` because libmagic keeps pointers into the
    /// buffer instead of copying it, for as long as the cookie lives.
    pub fn database() -> Option<&'static [u8]> {
        DB.get_or_init(|| {
            let mut db = Vec::new();
            flate2::read::GzDecoder::new(GZ).read_to_end(&mut db).ok()?;
            // libmagic reads the buffer as an array of its structs (8-byte fields). malloc,
            // which Rust's allocator uses here, aligns to 16; refuse rather than trust it blindly.
            let db = db.into_boxed_slice();
            db.as_ptr().cast::<u64>().is_aligned().then_some(db)
        })
        .as_deref()
    }
}

pub fn by_extension(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "txt" | "text" | "log" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/vnd.microsoft.icon",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "wasm" => "application/wasm",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        // mime.types' name for opaque bytes: sniffing them only ever says the same.
        "bin" => "application/octet-stream",
        _ => return None,
    })
}

/// The Content-Type to send for the file at `path` (named `key`).
pub fn detect(path: &Path, key: &str) -> String {
    if let Some(known) = by_extension(key) {
        return known.to_string();
    }
    let mut head = [0u8; 4096];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    let sniffed = if n > 0 { sniff(&head[..n]) } else { None };
    match sniffed {
        None => "application/octet-stream".into(),
        Some(s) if s == "application/x-empty" => "application/octet-stream".into(),
        Some(s) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_then_extension() {
        let d = tempfile::tempdir().unwrap();
        let png = d.path().join("pic.dat");
        std::fs::write(&png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde").unwrap();
        assert_eq!(detect(&png, "pic.dat"), "image/png");
        let css = d.path().join("a.css");
        std::fs::write(&css, b"body { color: red }\n").unwrap();
        assert_eq!(detect(&css, "a.css"), "text/css");
        let empty = d.path().join("e");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(detect(&empty, "e"), "application/octet-stream");
        let bin = d.path().join("b.bin");
        std::fs::write(&bin, [0u8, 1, 2, 3, 255, 254]).unwrap();
        assert_eq!(detect(&bin, "b.bin"), "application/octet-stream");
    }
}
