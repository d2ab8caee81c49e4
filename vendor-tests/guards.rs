//! The guards of issue #4, through the built binary: mass deletions and emptied sides stop
//! before anything is deleted; a file that keeps changing is never uploaded torn; a store's
//! verdict on conditional writes is learnt once.

mod support;

use support::env::{block_on, write, Env};
use support::store;

/// `n` synced files in folder "a"; returns the env.
fn synced(test: &str, n: usize) -> Env {
    let e = Env::new(test);
    e.add("a");
    for i in 0..n {
        write(&e.folder("a").join(format!("f{i:02}.txt")), &format!("file {i}"), -100);
    }
    let r = e.sync("a", &[]);
    assert_eq!((r.code, r.count("uploaded")), (0, n as u64), "{}", r.stderr);
    e
}

fn remote_files(e: &Env) -> usize {
    e.remote_keys().iter().filter(|k| k.starts_with('f')).count()
}

#[test]
fn mass_deletion_stops_before_deleting_anything() {
    let e = synced("mass-delete", 20);
    for i in 0..12 {
        std::fs::remove_file(e.folder("a").join(format!("f{i:02}.txt"))).unwrap();
    }
    write(&e.folder("a").join("new.txt"), "new", -50);
    let r = e.sync("a", &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("would delete 12 of the 20 files") && r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(remote_files(&e), 20, "nothing deleted on S3");
    // The rest of the run went ahead: the new file is up.
    assert_eq!(r.count("uploaded"), 1, "{}", r.stderr);
    // A dry run tells the same; a count that allows 12 lets it through.
    assert_eq!(e.sync("a", &["--dry-run"]).code, 2);
    let r = e.sync("a", &["--max-delete", "12"]);
    assert_eq!((r.code, r.count("deleted_remote")), (0, 12), "{}", r.stderr);
    assert_eq!(remote_files(&e), 8);
}

#[test]
fn emptied_folder_is_not_taken_for_deletions() {
    let e = synced("emptied-folder", 8);
    // Everything but the index gone (a wiped or unmounted folder with the index left behind).
    for i in 0..8 {
        std::fs::remove_file(e.folder("a").join(format!("f{i:02}.txt"))).unwrap();
    }
    let r = e.sync("a", &["--max-delete", "100%"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("is empty, but the index says 8 file(s) were synced from it"), "{}", r.stderr);
    assert_eq!(remote_files(&e), 8);
    let r = e.sync("a", &["--force"]);
    assert_eq!((r.code, r.count("deleted_remote")), (0, 8), "{}", r.stderr);
    assert_eq!(remote_files(&e), 0);
}

#[test]
fn emptied_prefix_is_not_taken_for_deletions() {
    let e = synced("emptied-prefix", 8);
    // Every object gone from S3 but the index (a lifecycle rule or a mistaken `aws s3 rm`).
    let keys: Vec<String> = e.remote_keys().into_iter().filter(|k| k.starts_with('f')).collect();
    let c = e.client();
    let full: Vec<String> = keys.iter().map(|k| format!("{}{k}", e.prefix)).collect();
    block_on(c.delete_objects(&full)).unwrap();
    let r = e.sync("a", &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("is empty, but the index says 8 file(s) were synced to it"), "{}", r.stderr);
    for i in 0..8 {
        assert!(e.folder("a").join(format!("f{i:02}.txt")).exists(), "f{i:02}.txt deleted locally");
    }
}

#[test]
fn a_few_deletions_always_go() {
    let e = synced("few-deletes", 3);
    for i in 0..3 {
        std::fs::remove_file(e.folder("a").join(format!("f{i:02}.txt"))).unwrap();
    }
    let r = e.sync("a", &[]);
    assert_eq!((r.code, r.count("deleted_remote")), (0, 3), "{}", r.stderr);
}

/// A big file written to throughout its sync is tried again, then left for the next run:
/// nothing recorded, no object on S3. Once quiet, the next sync uploads it.
#[test]
fn a_file_that_keeps_changing_is_left_for_the_next_run() {
    let e = Env::new("keeps-changing");
    e.add("a");
    let path = e.folder("a").join("growing.bin");
    std::fs::write(&path, vec![7u8; 17 << 20]).unwrap(); // over the multipart threshold
    let toucher = support::Toucher::start(&path);
    let r = e.sync("a", &[]);
    drop(toucher);
    assert_eq!((r.code, r.count("errors")), (1, 1), "{}", r.stderr);
    assert!(r.stderr.contains("kept changing while being uploaded; left for the next run"), "{}", r.stderr);
    assert!(!e.remote_keys().contains(&"growing.bin".to_string()), "a torn object reached S3");
    let r = e.sync("a", &[]);
    assert_eq!((r.code, r.count("uploaded")), (0, 1), "{}", r.stderr);
    assert!(e.sync("a", &[]).actions().is_empty());
}

/// On a store that ignores conditional writes, the warning comes once, not with every sync.
#[test]
fn conditional_write_verdict_is_learnt_once() {
    let e = Env::new("verdict");
    e.add("a");
    let mut warned = 0;
    for i in 0..3 {
        write(&e.folder("a").join(format!("f{i}.txt")), "x", -100 + i);
        let r = e.sync("a", &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        warned += r.stderr.matches("ignores conditional").count();
    }
    // Stores that honour conditional writes and deletes need no lease and say nothing; the
    // others (Garage, rclone, Ceph RGW, s3s-fs: no conditional DELETE) say so once.
    let want = if ["moto", "aws", "minio"].contains(&store().name.as_str()) { 0 } else { 1 };
    assert_eq!(warned, want, "store {}", store().name);
    assert!(e.dir.path().join(".cache/s4/stores.json").exists());
}
