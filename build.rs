//! Only the static (musl) build has work here: libmagic linked in, and its database embedded
//! (src/content_type.rs), both made by static/libmagic.sh from Debian's source of `file`.
//! Other builds link the system's libmagic through the `magic` crate and read its database
//! from disk, as before.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("musl") {
        return;
    }
    println!("cargo:rerun-if-changed=static/libmagic.sh");
    println!("cargo:rerun-if-env-changed=S4_LIBMAGIC_DIR");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    // Outside OUT_DIR, so debug, release and clippy builds share one libmagic build (and CI
    // caches it with target/); S4_LIBMAGIC_DIR points at a prepared one instead.
    let dir = match std::env::var_os("S4_LIBMAGIC_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| manifest.join("target"), PathBuf::from);
            let target = if target.is_absolute() { target } else { manifest.join(target) };
            target.join("libmagic-musl")
        }
    };
    let out = Command::new("bash")
        .arg(manifest.join("static/libmagic.sh"))
        .arg(&dir)
        .output()
        .expect("could not run bash static/libmagic.sh");
    if !out.status.success() {
        panic!(
            "static/libmagic.sh {} failed ({}):\n{}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let lib = dir.join("lib");
    let db = dir.join("magic.mgc.gz");
    println!("cargo:rerun-if-changed={}", lib.join("libmagic.a").display());
    println!("cargo:rerun-if-changed={}", db.display());
    // The `magic-sys` crate asks for `-lmagic` (it cannot know about this build); a static link
    // finds it here, ahead of the system's glibc libmagic. It asks for it as a dylib, which
    // rustc names after libc: libc once more at the end resolves libmagic's calls into it.
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-arg=-l:libc.a");
    println!("cargo:rustc-env=S4_MAGIC_DB_GZ={}", db.display());
}
