//! A local S3 store for trying s4 out: s3s-fs (a real, signature-checking S3 server) on
//! 127.0.0.1, in-process, the same one the tests use. Prints `export` lines for its address
//! and keys, then serves until killed or until `--seconds` (default 3600) have passed.
//!
//!     cargo run --example local_store -- --seconds 600

#[path = "../vendor-tests/support/mod.rs"]
mod support;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = match args.iter().position(|a| a == "--seconds") {
        Some(i) => args.get(i + 1).and_then(|s| s.parse().ok()).expect("--seconds N"),
        None => 3600,
    };
    // Always our own in-process store, whatever the environment says.
    std::env::remove_var("S4_TEST_ENDPOINT");
    let s = support::store();
    println!("export S4_STORE_ENDPOINT={}", s.endpoint);
    println!("export S4_STORE_REGION={}", s.region);
    println!("export S4_STORE_BUCKET={}", s.bucket);
    println!("export S4_STORE_ACCESS_KEY={}", s.access_key);
    println!("export S4_STORE_SECRET_KEY={}", s.secret_key);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::thread::sleep(std::time::Duration::from_secs(seconds));
}
