//! Moves and renames (issue 13) with the built binary against a real store: a moved folder is
//! copied where its bytes already are (on S3 a server-side copy, on the other machine a local
//! copy), its old paths' deletions trip no guard, and a moved file that also changed is sent.

mod support;

use support::env::{read, write, write_bytes, Env};

/// 8 × 4 MiB and one 17 MiB (multipart) file of distinct bytes.
fn photos() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = (0..8u32)
        .map(|n| {
            let body = (0..(4u32 << 20))
                .map(|i| (i.wrapping_add(n.wrapping_mul(0x9E37_79B9)).wrapping_mul(2654435761) >> 24) as u8)
                .collect();
            (format!("img-{n}.jpg"), body)
        })
        .collect();
    out.push(("big.mov".into(), (0..(17u32 << 20)).map(|i| (i.wrapping_mul(40503) >> 8) as u8).collect()));
    out
}

/// The report: `mv photos archive/` uploaded all the bytes again, and the deletion
/// guard stopped the sync ("would delete 9 of the 9 files", exit 2).
#[test]
fn moving_a_folder_sends_almost_none_of_its_bytes_and_trips_no_guard() {
    let e = Env::new("move-folder");
    e.add("a");
    e.add("b");
    let (a, b) = (e.folder("a"), e.folder("b"));
    let files = photos();
    let total: u64 = files.iter().map(|(_, body)| body.len() as u64).sum();
    for (name, body) in &files {
        write_bytes(&a.join("photos").join(name), body, -100);
    }
    assert_eq!(e.sync("a", &[]).code, 0);
    assert_eq!(e.sync("b", &[]).code, 0);

    std::fs::create_dir_all(a.join("archive")).unwrap();
    std::fs::rename(a.join("photos"), a.join("archive/photos")).unwrap();
    let up = e.sync("a", &[]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(up.summary()["stopped"].is_null(), "{}", up.stderr);
    let n = files.len() as u64;
    assert_eq!((up.count("moved"), up.count("deleted_remote")), (n, n), "{}", up.stderr);

    let down = e.sync("b", &[]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_eq!((down.count("moved"), down.count("deleted_local")), (n, n), "{}", down.stderr);
    for (name, body) in &files {
        assert!(std::fs::read(b.join("archive/photos").join(name)).unwrap() == *body, "{name}");
    }
    assert!(!b.join("photos").exists());
    let sent = up.count("bytes_up") + down.count("bytes_down");
    assert!(sent * 100 < total, "{sent} of {total} bytes sent");
    assert!(e.sync("a", &[]).actions().is_empty() && e.sync("b", &[]).actions().is_empty());
    println!(
        "moved {n} files ({} MiB): {sent} bytes sent, {:.1} s up, {:.1} s down",
        total >> 20,
        up.summary()["seconds"].as_f64().unwrap_or(0.0),
        down.summary()["seconds"].as_f64().unwrap_or(0.0)
    );
}

/// Content decides, not names: a file moved and changed in one go is sent as it is now, and a
/// file renamed on both machines differently is kept under every name.
#[test]
fn a_moved_file_that_also_changed_is_sent_not_copied() {
    let e = Env::new("move-changed");
    e.add("a");
    e.add("b");
    let (a, b) = (e.folder("a"), e.folder("b"));
    write(&a.join("notes.txt"), "first draft", -100);
    write(&a.join("same.txt"), "same bytes", -100);
    assert_eq!(e.sync("a", &[]).code, 0);
    assert_eq!(e.sync("b", &[]).code, 0);
    std::fs::remove_file(a.join("notes.txt")).unwrap();
    write(&a.join("notes-v2.txt"), "second draft", -10);
    std::fs::rename(a.join("same.txt"), a.join("renamed.txt")).unwrap();
    let r = e.sync("a", &[]);
    assert_eq!((r.code, r.count("moved"), r.count("uploaded")), (0, 1, 2), "{}", r.stderr);
    let r = e.sync("b", &[]);
    assert_eq!((r.code, r.count("moved"), r.count("downloaded")), (0, 1, 2), "{}", r.stderr);
    assert_eq!(read(&b.join("notes-v2.txt")), "second draft");
    assert_eq!(read(&b.join("renamed.txt")), "same bytes");
    assert!(!b.join("notes.txt").exists() && !b.join("same.txt").exists());
}
