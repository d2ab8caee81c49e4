//! `s4 versions` and `s4 restore` through the built binary. On a store with versioning (moto:
//! `vendor-tests/moto.sh cargo test --test versions`) a file overwritten and then deleted by
//! syncs comes back; on stores without it (the in-process s3s-fs, Garage) both commands must
//! fail clearly, not skip.

mod support;

use serde_json::Value;
use support::env::{read, write, Env};
use support::store;

/// Does this store keep versions? Known stores are asserted, not guessed: moto must accept
/// versioning, s3s-fs and Garage have none. Versioning is switched on for the test bucket.
fn keeps_versions() -> bool {
    let c = support::client();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    match store().name.as_str() {
        "s3s-fs" | "garage" => false,
        "moto" => {
            rt.block_on(c.set_versioning(true)).expect("moto accepts PutBucketVersioning");
            true
        }
        other => match rt.block_on(c.set_versioning(true)) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("note: store {other} refused PutBucketVersioning ({e}); testing the no-versioning path");
                false
            }
        },
    }
}

fn run(e: &Env, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--no-colors"];
    all.extend_from_slice(args);
    let out = e.s4(&all, "");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn versions_json(e: &Env, path: &str) -> Vec<Value> {
    let (code, out, err) = run(e, &["versions", "--json", "a", path]);
    assert_eq!(code, 0, "versions: {err}");
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect()
}

#[test]
fn a_file_overwritten_then_deleted_by_syncs_comes_back_from_its_versions() {
    if !keeps_versions() {
        eprintln!("note: {} keeps no versions; see versions_fail_clearly_without_versioning", store().name);
        return;
    }
    let e = Env::new("versions");
    e.add("a");
    let dir = e.folder("a");
    let f = dir.join("docs/doc.txt");
    // Other files, so deleting one is not an emptied side for the deletion guards.
    write(&dir.join("keep1.txt"), "k", -100);
    write(&dir.join("keep2.txt"), "k", -100);
    write(&f, "first", -100);
    assert_eq!(e.sync("a", &[]).count("uploaded"), 3);
    write(&f, "second, longer", -50);
    assert_eq!(e.sync("a", &[]).actions(), vec![("upload".into(), "docs/doc.txt".into())]);
    std::fs::remove_file(&f).unwrap();
    let r = e.sync("a", &[]);
    assert_eq!(r.actions(), vec![("delete_remote".into(), "docs/doc.txt".into())], "{}", r.stderr);

    // Newest first: the delete marker (current), the overwrite, the first upload.
    let v = versions_json(&e, "docs/doc.txt");
    assert_eq!(v.len(), 3, "{v:?}");
    let flags: Vec<(bool, bool, u64)> = v
        .iter()
        .map(|v| (v["deleted"].as_bool().unwrap(), v["current"].as_bool().unwrap(), v["size"].as_u64().unwrap()))
        .collect();
    assert_eq!(flags, [(true, true, 0), (false, false, 14), (false, false, 5)]);
    let first_id = v[2]["version_id"].as_str().unwrap().to_string();
    // The same file named by its absolute path; the table marks the deletion.
    let (code, table, err) = run(&e, &["versions", "a", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(table.lines().count(), 2 + 3, "{table}");
    assert!(table.lines().nth(2).unwrap().contains("deleted (current)"), "{table}");
    assert!(table.contains(&first_id), "{table}");

    // The bare command brings back the newest content, into the file's place.
    let (code, out, err) = run(&e, &["restore", "a", "docs/doc.txt"]);
    assert_eq!(code, 0, "restore: {err}");
    assert_eq!(read(&f), "second, longer");
    assert!(out.contains("Restored docs/doc.txt from version") && out.contains("next `s4 sync a` uploads it"), "{out}");
    // Not over a file that is there now, unless forced.
    let (code, _, err) = run(&e, &["restore", "a", "docs/doc.txt"]);
    assert_eq!(code, 2);
    assert!(err.contains("exists") && err.contains("--to") && err.contains("--force"), "{err}");
    // An older version, elsewhere.
    let other = e.dir.path().join("first.txt");
    let (code, out, err) =
        run(&e, &["restore", "a", "docs/doc.txt", "--version-id", &first_id, "--to", other.to_str().unwrap()]);
    assert_eq!(code, 0, "restore --to: {err}");
    assert_eq!(read(&other), "first");
    assert!(!out.contains("next `s4 sync"), "{out}");
    let (code, _, err) = run(&e, &["restore", "a", "docs/doc.txt", "--version-id", &first_id, "--force"]);
    assert_eq!(code, 0, "restore --force: {err}");
    assert_eq!(read(&f), "first");
    let (code, _, err) = run(&e, &["restore", "a", "docs/doc.txt", "--version-id", "no-such-version", "--force"]);
    assert_eq!(code, 2);
    assert!(err.contains("no version no-such-version"), "{err}");

    // The next sync uploads the restored file as the newest version.
    let r = e.sync("a", &[]);
    assert_eq!(r.actions(), vec![("upload".into(), "docs/doc.txt".into())], "{}", r.stderr);
    let v = versions_json(&e, "docs/doc.txt");
    assert_eq!(v.len(), 4);
    assert_eq!(
        (v[0]["current"].as_bool(), v[0]["deleted"].as_bool(), v[0]["size"].as_u64()),
        (Some(true), Some(false), Some(5))
    );
    assert!(e.sync("a", &[]).actions().is_empty());
}

#[test]
fn versions_fail_clearly_without_versioning() {
    if keeps_versions() {
        eprintln!(
            "note: {} keeps versions; see a_file_overwritten_then_deleted_by_syncs_comes_back_from_its_versions",
            store().name
        );
        return;
    }
    let e = Env::new("no-versions");
    e.add("a");
    write(&e.folder("a").join("doc.txt"), "x", -100);
    assert_eq!(e.sync("a", &[]).count("uploaded"), 1);
    for args in [&["versions", "a", "doc.txt"][..], &["restore", "a", "doc.txt", "--to", "/nonexistent/x"]] {
        let (code, out, err) = run(&e, args);
        assert_eq!(code, 2, "{args:?}: {out} {err}");
        assert!(err.contains("versioning is not"), "{args:?}: {err}");
        assert!(err.contains(&store().bucket), "{args:?}: {err}");
    }
}

#[test]
fn unknown_targets_and_paths_outside_the_folder_are_refused_before_s3() {
    let e = Env::new("versions-paths");
    e.add("a");
    let (code, _, err) = run(&e, &["versions", "nope", "f"]);
    assert_eq!(code, 2);
    assert!(err.contains("\"nope\" is an unknown target. Choices are: ['a']"), "{err}");
    for path in ["/etc/passwd", "../x", "docs/../../x"] {
        let (code, _, err) = run(&e, &["restore", "a", path]);
        assert_eq!(code, 2, "{path}");
        assert!(err.contains("outside the target's folder"), "{path}: {err}");
    }
}

#[test]
fn an_old_version_of_a_large_file_downloads_in_ranges_from_that_version() {
    if !keeps_versions() {
        return;
    }
    use s4::s3::multipart::{Transfer, MIB, MIN_PART};
    let c = support::client();
    let key = format!("{}big.bin", support::unique_prefix("versions-big"));
    let old: Vec<u8> = (0..11 * MIB).map(|i| (i % 251) as u8).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("old.bin");
    rt.block_on(async {
        c.put(&key, s4::s3::Payload::Bytes(old.clone().into()), &Default::default()).await.unwrap();
        c.put(&key, s4::s3::Payload::Bytes(vec![7u8; 100].into()), &Default::default()).await.unwrap();
        let versions = c.object_versions(&key).await.unwrap();
        assert_eq!(
            versions.iter().map(|v| (v.size, v.is_latest)).collect::<Vec<_>>(),
            [(100, true), (old.len() as u64, false)]
        );
        // Three ranges, each asking for the old version, not the current one.
        let xfer = Transfer { threshold: 1, part_size: MIN_PART, concurrency: 2 };
        let v = &versions[1];
        c.download_version_to_file(&key, Some(&v.version_id), &dest, v.size, &xfer).await.unwrap();
    });
    assert!(std::fs::read(&dest).unwrap() == old, "the old version's bytes");
}
