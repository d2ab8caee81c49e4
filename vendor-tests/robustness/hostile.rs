//! Tables of hostile input: remote keys that are not safe local paths, and local things that
//! are not plain files. Each is skipped with a clear word (folder markers quietly), nothing is
//! written outside the folder, and the rest syncs.

use std::os::unix::ffi::OsStrExt;

use crate::common::*;
use crate::support::env::{read, write, Env};
use crate::support::store;

#[test]
fn hostile_remote_keys_are_skipped_and_nothing_lands_outside_the_folder() {
    let e = Env::new("hostile-keys");
    e.add("a");
    let pid = std::process::id();
    let long = format!("long/{}", "x".repeat(300));
    let escape = format!("../escape-{pid}");
    let up2 = format!("a/../../escape2-{pid}");
    let abs = format!("/abs-escape-{pid}");
    // (key, what s4 must do): "unsafe" warns and skips, "quiet" skips without a word,
    // "file" downloads as an ordinary file, "too long" is skipped with a warning before any byte
    // is fetched.
    let cases: Vec<(&str, &str)> = vec![
        (&escape, "unsafe"),
        (&up2, "unsafe"),
        ("./dot.txt", "unsafe"),
        ("a//b.txt", "unsafe"),
        (&abs, "unsafe"),
        ("a/./b.txt", "unsafe"),
        ("nul\0.txt", "unsafe"),
        (".s4tmp-planted", "unsafe"),
        (&long, "too long"),
        ("dir/", "quiet"),
        ("deep/er/", "quiet"),
        ("sub/.index", "file"),
        ("sub/.s4lock", "file"),
    ];
    let mut tried = Vec::new();
    for (key, want) in &cases {
        let body: &[u8] = if key.ends_with('/') { b"" } else { b"hostile" };
        match e.try_put_remote(key, body) {
            Ok(()) => tried.push((*key, *want)),
            Err(err) => eprintln!("note: {} refuses key {key:?}; case skipped ({err})", store().name),
        }
    }
    // Keep only the keys the store kept as given (s3s-fs normalises `a//b` and `../x` itself).
    let kept = e.remote_keys();
    tried.retain(|(k, _)| {
        let ok = kept.iter().any(|r| r == k);
        if !ok {
            eprintln!("note: {} did not keep key {k:?} verbatim; case skipped", store().name);
        }
        ok
    });
    e.put_remote("good.txt", "good");
    let r = e.sync("a", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let a = e.folder("a");
    assert_eq!(read(&a.join("good.txt")), "good", "the rest syncs");
    for (key, want) in &tried {
        let shown = key.replace('\0', "\\0");
        let named = r.stderr.lines().filter(|l| l.contains(key) || l.contains(&shown)).collect::<Vec<_>>();
        match *want {
            "unsafe" => assert!(
                named.iter().any(|l| l.contains("not a safe relative path")),
                "{shown}: a clear warning: {}",
                r.stderr
            ),
            "quiet" => {
                assert!(named.is_empty(), "{key}: a folder marker is skipped quietly: {named:?}");
                assert!(!a.join(key).exists(), "{key}: no folder is made for a marker");
            }
            "file" => assert_eq!(read(&a.join(key)), "hostile", "{key}: an ordinary file in a subfolder"),
            _ => assert!(
                named.iter().any(|l| l.to_lowercase().contains("name too long")),
                "{key}: the error names the file and why: {}",
                r.stderr
            ),
        }
    }
    // Nothing outside the folder: the test dir holds only the config and the folder, and no
    // absolute path was made.
    let mut top: Vec<String> =
        std::fs::read_dir(e.dir.path()).unwrap().map(|d| d.unwrap().file_name().to_string_lossy().into()).collect();
    top.retain(|n| n != ".cache"); // s4's cache in HOME (what it learnt of the store)
    top.sort();
    assert_eq!(top, vec!["a", "conf"]);
    assert!(!std::path::Path::new(&abs).exists() && !std::env::temp_dir().join(&escape[3..]).exists());
    // What landed: the ordinary files, and keys the store itself normalised into safe ones.
    let hostile = |k: &String| tried.iter().any(|(t, w)| t == k && *w != "file");
    let want: Vec<String> = kept.iter().filter(|k| *k != ".index" && !hostile(k)).cloned().collect();
    let mut got: Vec<String> = tree(&a).into_keys().collect();
    got.retain(|k| k != "good.txt");
    assert_eq!(got, want, "only the ordinary files landed");
    assert!(temps(&a).is_empty(), "temp files left: {:?}", temps(&a));
    eprintln!(
        "summary: hostile remote keys, {} cases tried of {} (others refused or normalised by {}), \
         0 written outside the folder, bytes lost 0",
        tried.len(),
        cases.len(),
        store().name
    );
}

#[test]
fn hostile_local_files_are_skipped_with_a_warning_and_the_rest_uploads() {
    let e = Env::new("hostile-files");
    e.add("a");
    let a = e.folder("a");
    write(&a.join("ok/plain.txt"), "plain", -100);
    write(&e.folder("outside/secret.txt"), "must never be uploaded", -100);
    std::os::unix::fs::symlink(e.folder("outside/secret.txt"), a.join("out-file")).unwrap();
    std::os::unix::fs::symlink(e.folder("outside"), a.join("out-dir")).unwrap();
    std::os::unix::fs::symlink(a.join("loop2"), a.join("loop1")).unwrap();
    std::os::unix::fs::symlink(a.join("loop1"), a.join("loop2")).unwrap();
    std::os::unix::fs::symlink(&a, a.join("ok/self")).unwrap();
    let fifo = std::process::Command::new("mkfifo").arg(a.join("fifo")).status().unwrap();
    assert!(fifo.success());
    let _socket = std::os::unix::net::UnixListener::bind(a.join("socket")).unwrap();
    let bad_name = std::ffi::OsStr::from_bytes(b"bad-\xff-name.txt");
    std::fs::write(a.join(bad_name), "not utf-8").unwrap();
    let root_reads_all = permissions_do_not_stop_us(&a);
    if root_reads_all {
        eprintln!("note: running as root, where mode 000 does not stop reading; unreadable-file case skipped");
    } else {
        use std::os::unix::fs::PermissionsExt;
        write(&a.join("locked.txt"), "no reading", -100);
        std::fs::set_permissions(a.join("locked.txt"), std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let cases = 8 + usize::from(!root_reads_all);
    let before = user_files(&a);
    for flags in [&[][..], &["--follow-symlinks"][..]] {
        let r = e.sync("a", flags);
        assert_eq!(r.code, if root_reads_all { 0 } else { 1 }, "{flags:?}: {}", r.stderr);
        let says = |what: &str| assert!(r.stderr.contains(what), "{flags:?}: a warning with {what:?}: {}", r.stderr);
        for link in ["out-file", "out-dir", "loop1", "loop2", "ok/self"] {
            says(&format!("skipping symlink {link}"));
        }
        says("fifo");
        says("socket");
        says("not UTF-8");
        if !root_reads_all {
            says("locked.txt");
        }
        let mut keys = e.remote_keys();
        keys.retain(|k| k != ".index");
        assert_eq!(keys, vec!["ok/plain.txt"], "{flags:?}: only the plain file goes up");
    }
    assert_eq!(before, user_files(&a), "nothing local changed");
    eprintln!(
        "summary: hostile local files, {cases} cases (fifo, socket, 2 links out, 2-link loop, link to the root, \
         non-UTF-8 name{}) with and without --follow-symlinks, 1 plain file up, 0 outside bytes uploaded",
        if root_reads_all { "" } else { ", unreadable file" }
    );
}
