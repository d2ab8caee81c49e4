//! Moves and renames (issue 13) with the built binary against a real store: a moved folder is
//! copied where its bytes already are (on S3 a server-side copy, on the other machine a rename
//! of the old file), its old paths' deletions trip no guard, and a moved file that also
//! changed is sent.

mod support;

use support::env::{read, write, write_bytes, Env, Run};

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

    let inodes: Vec<u64> = files.iter().map(|(name, _)| inode(&b.join("photos").join(name))).collect();
    let down = e.sync("b", &[]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_eq!((down.count("moved"), down.count("deleted_local")), (n, n), "{}", down.stderr);
    for (name, body) in &files {
        assert!(std::fs::read(b.join("archive/photos").join(name)).unwrap() == *body, "{name}");
    }
    // The other machine renamed its files, as rclone does: the same inodes, no bytes written.
    let renamed =
        files.iter().zip(&inodes).filter(|((name, _), ino)| inode(&b.join("archive/photos").join(name)) == **ino);
    assert_eq!(renamed.count(), files.len(), "{}", down.stderr);
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

fn inode(path: &std::path::Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
}

/// The other machine renames a moved file only as the deletion of its old path, after the
/// guards: where they stop the deletions, the new path gets a copy and the old file stays.
#[test]
fn a_move_beside_too_many_deletions_is_copied_and_the_old_file_kept() {
    let e = Env::new("move-guarded");
    e.add("a");
    e.add("b");
    let (a, b) = (e.folder("a"), e.folder("b"));
    for n in 0..10 {
        write(&a.join(format!("f{n}.txt")), &format!("file number {n}"), -100);
    }
    assert_eq!(e.sync("a", &[]).code, 0);
    assert_eq!(e.sync("b", &[]).code, 0);
    std::fs::create_dir(a.join("kept")).unwrap();
    std::fs::rename(a.join("f0.txt"), a.join("kept/f0.txt")).unwrap();
    (1..10).for_each(|n| std::fs::remove_file(a.join(format!("f{n}.txt"))).unwrap());
    assert_eq!(e.sync("a", &["--max-delete", "100%"]).code, 0);

    let stopped = e.sync("b", &[]);
    assert_eq!(stopped.code, 2, "{}", stopped.stderr);
    assert_eq!((stopped.count("moved"), stopped.count("deleted_local")), (1, 0), "{}", stopped.stderr);
    assert_eq!(read(&b.join("kept/f0.txt")), "file number 0");
    assert_eq!((0..10).filter(|n| b.join(format!("f{n}.txt")).exists()).count(), 10);

    let r = e.sync("b", &["--max-delete", "100%"]);
    assert_eq!((r.code, r.count("deleted_local")), (0, 10), "{}", r.stderr);
    assert_eq!(read(&b.join("kept/f0.txt")), "file number 0");
    assert!(e.sync("b", &[]).actions().is_empty());
}

/// Two new paths holding one old file's bytes (copied, then moved) and a file that became a
/// folder holding it: one new path takes the old file by a rename, the other a copy made
/// before it; the old path's folder is made where the file was.
#[test]
fn a_copied_and_moved_file_and_a_file_turned_folder_arrive_whole() {
    let e = Env::new("move-twice");
    e.add("a");
    e.add("b");
    let (a, b) = (e.folder("a"), e.folder("b"));
    write(&a.join("x.txt"), "x's bytes", -100);
    write(&a.join("doc"), "a file, then a folder", -100);
    assert_eq!(e.sync("a", &[]).code, 0);
    assert_eq!(e.sync("b", &[]).code, 0);
    std::fs::copy(a.join("x.txt"), a.join("y.txt")).unwrap();
    std::fs::rename(a.join("x.txt"), a.join("z.txt")).unwrap();
    std::fs::rename(a.join("doc"), a.join("doc.tmp")).unwrap();
    std::fs::create_dir(a.join("doc")).unwrap();
    std::fs::rename(a.join("doc.tmp"), a.join("doc/in.txt")).unwrap();
    assert_eq!(e.sync("a", &[]).code, 0);

    let ino = inode(&b.join("doc"));
    let r = e.sync("b", &[]);
    assert_eq!((r.code, r.count("moved"), r.count("deleted_local")), (0, 3, 2), "{}", r.stderr);
    assert_eq!(read(&b.join("y.txt")), "x's bytes");
    assert_eq!(read(&b.join("z.txt")), "x's bytes");
    assert_eq!(read(&b.join("doc/in.txt")), "a file, then a folder");
    assert_eq!(inode(&b.join("doc/in.txt")), ino, "renamed, not copied");
    assert!(!b.join("x.txt").exists());
    assert!(e.sync("b", &[]).actions().is_empty() && e.sync("a", &[]).actions().is_empty());
}

/// Review of the renames: files moved into a folder named as a file that went in the same
/// sync met that file in the way; the old files were deleted before their bytes arrived (by
/// GET, after the deletions), although the guards had counted them as moves. They are now
/// paired again once the file is gone, and renamed.
#[test]
fn files_moved_into_a_folder_that_was_a_file_are_renamed_once_it_is_gone() {
    let e = Env::new("move-into-type-change");
    e.add("a");
    e.add("b");
    let (a, b) = (e.folder("a"), e.folder("b"));
    write(&a.join("lib"), "a file named lib", -100);
    for n in 0..3 {
        write(&a.join(format!("old/f{n}")), &format!("file number {n}"), -100);
    }
    assert_eq!(e.sync("a", &[]).code, 0);
    assert_eq!(e.sync("b", &[]).code, 0);
    std::fs::remove_file(a.join("lib")).unwrap();
    std::fs::rename(a.join("old"), a.join("lib")).unwrap();
    assert_eq!(e.sync("a", &[]).code, 0);

    let inodes: Vec<u64> = (0..3).map(|n| inode(&b.join(format!("old/f{n}")))).collect();
    let r = e.sync("b", &[]);
    assert_eq!(
        (r.code, r.count("moved"), r.count("deleted_local"), r.count("bytes_down")),
        (0, 3, 4, 0),
        "{}",
        r.stderr
    );
    for (n, ino) in inodes.iter().enumerate() {
        assert_eq!(read(&b.join(format!("lib/f{n}"))), format!("file number {n}"));
        assert_eq!(inode(&b.join(format!("lib/f{n}"))), *ino, "lib/f{n} renamed, not copied");
    }
    assert!(!b.join("old").exists());
    assert!(e.sync("b", &[]).actions().is_empty() && e.sync("a", &[]).actions().is_empty());
}

/// The other machine knows what its old files hold from its index (the version synced, at
/// the mtime they still have), as the plan does: it reads none of a moved gigabyte to pair it
/// (issue 13: 77% of its time went to MD5), and reads a file only where no record says.
#[test]
fn the_other_machine_pairs_a_move_by_its_index_without_reading_the_files() {
    let e = Env::new("move-by-index");
    e.add("a");
    e.add("b");
    let (a, b) = (e.folder("a"), e.folder("b"));
    for n in 0..3 {
        write(&a.join(format!("photos/p{n}.jpg")), &format!("photo number {n}"), -100);
    }
    assert_eq!(e.sync("a", &[]).code, 0);
    assert_eq!(e.sync("b", &[]).code, 0);
    std::fs::create_dir(a.join("archive")).unwrap();
    std::fs::rename(a.join("photos"), a.join("archive/photos")).unwrap();
    assert_eq!(e.sync("a", &[]).count("moved"), 3);
    let out = e.s4(&["--no-colors", "--log-level", "DEBUG", "sync", "--json", "b"], "");
    let (r, log) = (Run::from_output(&out), String::from_utf8_lossy(&out.stderr));
    assert_eq!((r.code, r.count("moved"), r.count("bytes_down")), (0, 3, 0), "{}", r.stderr);
    let by_index = log.lines().filter(|l| l.contains("moved from photos/") && l.contains("index records")).count();
    assert_eq!(by_index, 3, "{log}");
    assert_eq!(read(&b.join("archive/photos/p1.jpg")), "photo number 1");
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

/// Review of the moves: where the listing names no ETag (s3s-fs), a new key's version was
/// taken from the remote index although another writer had replaced the object since; the
/// other machine then copied its old file (the indexed bytes) and held them as S3's version.
#[test]
fn a_move_is_not_paired_by_a_stale_index_record() {
    let e = Env::new("move-stale-record");
    e.add("a");
    e.add("b");
    let (a, b) = (e.folder("a"), e.folder("b"));
    write(&a.join("old.txt"), "XXXXXXXX", -100);
    assert_eq!(e.sync("a", &[]).code, 0);
    assert_eq!(e.sync("b", &[]).code, 0);
    std::fs::rename(a.join("old.txt"), a.join("new.txt")).unwrap();
    assert_eq!(e.sync("a", &[]).count("moved"), 1);
    // Another tool's version of new.txt, the same size, in a later second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    e.put_remote("new.txt", "YYYYYYYY");
    let r = e.sync("b", &[]);
    assert_eq!((r.code, r.count("moved")), (0, 0), "{}", r.stderr);
    assert_eq!(read(&b.join("new.txt")), "YYYYYYYY");
    assert!(!b.join("old.txt").exists());
}

/// Review of the moves: old keys were counted as moved when paired, so a move whose new files
/// vanished before their copies ran deleted every old key on S3, past the guard that stops a
/// sync deleting all of a folder.
#[test]
fn the_guard_counts_a_move_whose_copy_never_happened() {
    use std::time::Duration;
    use support::proxy::{Fault, Match, Plan, Proxy, Rule};
    let e = Env::new("move-guard");
    let proxy = Proxy::start(Plan::none(), Duration::from_secs(3));
    e.add_via("a", &proxy.endpoint);
    let a = e.folder("a");
    for n in 0..10 {
        write(&a.join(format!("photos/p{n}.jpg")), &format!("photo number {n}"), -100);
    }
    assert_eq!(e.sync("a", &[]).code, 0);
    std::fs::create_dir_all(a.join("archive")).unwrap();
    std::fs::rename(a.join("photos"), a.join("archive/photos")).unwrap();
    proxy.set_plan(Plan::rules(vec![Rule::always(Match::method("HEAD").path("archive"), Fault::Hold)]));
    let r = std::thread::scope(|s| {
        let h = s.spawn(|| e.sync("a", &[]));
        std::thread::sleep(Duration::from_millis(1500));
        // The new folder goes while its copies wait (a drive unmounted, a script).
        std::fs::remove_dir_all(a.join("archive")).unwrap();
        h.join().unwrap()
    });
    proxy.set_plan(Plan::none());
    let left = e.remote_keys().iter().filter(|k| k.starts_with("photos/")).count();
    assert!(!r.summary()["stopped"].is_null() || left == 10, "{left} old keys left; {}", r.stderr);
}
