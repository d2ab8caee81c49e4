//! Tests of state.rs: loading, merging and committing the two indexes.

use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::sim::bucket::{Behaviour, Bucket, Handle};
use crate::sim::sched::Sched;
use crate::sync::index::{self, Index};

fn store() -> Handle {
    let b = Behaviour {
        conditional_put: true,
        conditional_delete: true,
        list_etags: true,
        page: 1000,
        faults: 0,
        copy_conditions: true,
        copy_source_pinned: true,
    };
    Handle::new(Arc::new(Bucket::new(b, Arc::new(Sched::free()))), 0)
}

fn e(lm: f64, stamp: f64, etag: &str) -> Entry {
    Entry::new(Some(lm), Some(stamp), Some(Etag::parse(etag)))
}

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// Write `index` as the remote index another machine committed.
async fn commit_as_other(s: &Handle, index: &Index) {
    s.put_bytes("p/.index", Bytes::from(index::encode(index)), &PutOptions::default()).await.unwrap();
}

/// The index merge after a 412 (issue 10: the riskiest logic had no unit test): keys only
/// the other machine changed keep its entry; keys only we changed keep ours; a key we
/// downloaded that it re-recorded under another stamp, same ETag, adopts its stamp; the
/// same LastModified with another ETag is another version and is not adopted.
#[tokio::test]
async fn merge_after_412_keeps_both_machines_changes() {
    let s = store();
    let dir = tempfile::tempdir().unwrap();
    let base: Index = [("theirs", e(10.0, 10.0, A)), ("ours", e(10.0, 10.0, A)), ("both", e(10.0, 10.0, A))]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    commit_as_other(&s, &base).await;
    let mut idx = Indexes::load(&s, dir.path(), "p/").await.unwrap();
    // We: upload a new version of "ours"; download a version of "both" that the other
    // machine uploaded (same ETag B), recorded under our stamp 21; and "same-second",
    // downloaded as ETag A at LastModified 30.
    idx.set("ours", e(20.0, 20.0, B), e(20.0, 20.0, B));
    idx.set("both", e(21.0, 21.0, B), e(20.0, 21.0, B));
    idx.mark_adoptable("both");
    idx.set("same-second", e(30.0, 30.0, A), e(30.0, 30.0, A));
    idx.mark_adoptable("same-second");
    // They: changed "theirs", recorded "both" (their upload, ETag B) under stamp 25, and
    // "same-second" as ETag B at the same LastModified.
    let mut other = base.clone();
    other.insert("theirs".into(), e(15.0, 15.0, B));
    other.insert("both".into(), e(20.0, 25.0, B));
    other.insert("same-second".into(), e(30.0, 31.0, B));
    commit_as_other(&s, &other).await;
    idx.merge_newer(&s).await.unwrap();
    // What the next PUT sends, and the local record the commit writes.
    let remote = index::decode(&idx.table.write(Side::Remote, Vec::new()).unwrap()).unwrap();
    let local = |k: &str| idx.table.get(Side::Local, k).unwrap();
    assert_eq!(remote["theirs"], e(15.0, 15.0, B), "their change kept");
    assert_eq!(remote["ours"], e(20.0, 20.0, B), "our change kept");
    assert_eq!(remote["both"], e(20.0, 25.0, B), "their stamp for the same version");
    assert_eq!(local("both").remote_timestamp, Some(25.0), "our record adopts it");
    assert_eq!(remote["same-second"], e(30.0, 30.0, A), "another version: ours stands");
    assert_eq!(local("same-second").remote_timestamp, Some(30.0));
}

/// The run's changes are read through before the commit (new keys too, in the merge's key
/// walk), and the commit writes both files with them merged in: a tombstone, a dropped
/// local record, a new key, and the ETag field.
#[tokio::test]
async fn overlay_reads_through_and_commits() {
    let s = store();
    let dir = tempfile::tempdir().unwrap();
    let synced: Index = [("a", e(1.0, 1.0, A)), ("c", e(1.0, 1.0, A))].map(|(k, v)| (k.to_string(), v)).into();
    commit_as_other(&s, &synced).await;
    std::fs::write(dir.path().join(".index"), index::encode(&synced)).unwrap();
    let mut idx = Indexes::load(&s, dir.path(), "p/").await.unwrap();
    let gone = Entry::new(None, Some(2.0), None);
    idx.set("a", gone, gone);
    idx.set("b", e(3.0, 3.0, B), e(3.0, 3.0, B));
    idx.drop_local("c");
    assert_eq!(idx.local().get("a"), Some(gone));
    assert_eq!(idx.local().get("b"), Some(e(3.0, 3.0, B)));
    assert_eq!(idx.local().get("c"), None);
    assert_eq!(idx.remote().get("c"), Some(e(1.0, 1.0, A)));
    assert_eq!(idx.next_key(Some("a")).as_deref(), Some("b"), "a key new this run is walked");
    idx.commit(&s, "p/").await.unwrap();
    let local = index::decode(&std::fs::read(dir.path().join(".index")).unwrap()).unwrap();
    let remote = index::decode(&s.get_bytes("p/.index").await.unwrap().unwrap().0).unwrap();
    let want: Index = [("a", gone), ("b", e(3.0, 3.0, B))].map(|(k, v)| (k.to_string(), v)).into();
    assert_eq!(local, want);
    assert_eq!(
        remote,
        [("a", gone), ("b", e(3.0, 3.0, B)), ("c", e(1.0, 1.0, A))].map(|(k, v)| (k.to_string(), v)).into()
    );
    assert_eq!((idx.local().len(), idx.remote().len()), (2, 3));
    assert_eq!(idx.local().get("b"), Some(e(3.0, 3.0, B)), "read from the table once committed");
    // A commit batch at a million files holds 100,000 of these.
    assert_eq!(std::mem::size_of::<Change>(), 104);
}

/// Issue 10, scenario 1: our upload is deleted (or replaced) on S3 before our commit. The
/// record is undone, never left shaped like a tombstone: the next run then sees the local
/// file as changed and reports a conflict instead of deleting it.
#[tokio::test]
async fn upload_deleted_before_commit_is_unrecorded_not_a_tombstone() {
    let s = store();
    let dir = tempfile::tempdir().unwrap();
    let before = e(5.0, 5.0, A);
    let synced: Index = [("f".to_string(), before)].into_iter().collect();
    commit_as_other(&s, &synced).await;
    std::fs::write(dir.path().join(".index"), index::encode(&synced)).unwrap();
    let mut idx = Indexes::load(&s, dir.path(), "p/").await.unwrap();
    let etag = s.put_bytes("p/f", Bytes::from_static(b"new"), &PutOptions::default()).await.unwrap();
    idx.set_uploaded("f", 9.0, 9.0, etag);
    s.delete("p/f", None).await.unwrap(); // another machine's delete
    idx.commit(&s, "p/").await.unwrap();
    assert_eq!(idx.local().get("f"), Some(before), "the local record is what it was");
    let remote = index::decode(&s.get_bytes("p/.index").await.unwrap().unwrap().0).unwrap();
    assert_eq!(remote["f"], before, "the remote index never says our upload was synced");
}

/// Uploads scattered over a large tree are settled from a listing page each, not from a
/// listing of all that lies between the first and the last (issue 13: 100 files changed among
/// a million listed the whole prefix a second time, ~1,000 pages).
#[tokio::test]
async fn scattered_uploads_are_settled_from_a_page_each() {
    use std::sync::atomic::Ordering::Relaxed;
    let s = store();
    let dir = tempfile::tempdir().unwrap();
    let n = 5000;
    for i in 0..n {
        s.put_bytes(&format!("p/k{i:05}"), Bytes::from_static(b"old"), &PutOptions::default()).await.unwrap();
    }
    let mut idx = Indexes::load(&s, dir.path(), "p/").await.unwrap();
    let changed = [10, 2500, 4990];
    for i in changed {
        let etag = s.put_bytes(&format!("p/k{i:05}"), Bytes::from_static(b"new"), &PutOptions::default()).await;
        idx.set_uploaded(&format!("k{i:05}"), 9.0, 9.0, etag.unwrap());
    }
    let before = s.bucket.lists.load(Relaxed);
    idx.commit(&s, "p/").await.unwrap();
    let pages = s.bucket.lists.load(Relaxed) - before;
    println!("{} uploads among {n} keys settled from {pages} listing page(s)", changed.len());
    assert!(pages <= changed.len(), "{pages} pages for {} keys", changed.len());
    let lm = s.bucket.now() as f64;
    for i in changed {
        let entry = idx.remote().get(&format!("k{i:05}")).expect("recorded");
        assert_eq!(entry.local_timestamp, Some(lm), "k{i:05} has the LastModified S3 gave it");
    }
}

/// A page that ends before the next pending key is followed from its last key, not listed
/// again from the same start (review: keys `backup2` … `backup9` beside a large folder
/// `backup/` listed that folder's first page once for each, then were asked one by one).
#[tokio::test]
async fn uploads_beside_a_large_folder_of_their_stem_are_settled_from_one_pass() {
    use std::sync::atomic::Ordering::Relaxed;
    let s = store();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3000 {
        s.put_bytes(&format!("p/backup/{i:04}"), Bytes::from_static(b"old"), &PutOptions::default()).await.unwrap();
    }
    let mut idx = Indexes::load(&s, dir.path(), "p/").await.unwrap();
    let keys: Vec<String> = (2..10).map(|i| format!("backup{i}")).collect();
    for key in &keys {
        let etag = s.put_bytes(&format!("p/{key}"), Bytes::from_static(b"new"), &PutOptions::default()).await;
        idx.set_uploaded(key, 9.0, 9.0, etag.unwrap());
    }
    let before = s.bucket.lists.load(Relaxed);
    idx.commit(&s, "p/").await.unwrap();
    let pages = s.bucket.lists.load(Relaxed) - before;
    println!("{} uploads beside 3,000 keys of their stem settled from {pages} listing page(s)", keys.len());
    assert!(pages <= 4, "{pages} pages: the folder was listed more than once");
    for key in &keys {
        assert!(idx.remote().get(key).and_then(|e| e.local_timestamp).is_some(), "{key} settled");
    }
}

/// A key no file holds, put in a kept table's `side`: still there after a load proves the
/// side was not read again.
fn plant(kept: &mut Kept, side: Side) {
    let p = kept.table.pack(Some(e(1.0, 1.0, A)), Packed::ABSENT);
    let sides = match side {
        Side::Local => [Some(p), None],
        Side::Remote => [None, Some(p)],
    };
    kept.table.apply([("planted", sides)].into_iter());
}

/// Issue 13: a daemon's round starts from the indexes the last one committed, and reads a
/// file again exactly when someone else wrote it since: the remote one by its ETag, the local
/// one by the file (another process renames its own in). A round with uncommitted changes
/// leaves nothing to keep.
#[tokio::test]
async fn kept_indexes_are_read_again_only_when_their_files_changed() {
    let s = store();
    let dir = tempfile::tempdir().unwrap();
    let synced: Index = [("a".to_string(), e(1.0, 1.0, A))].into();
    commit_as_other(&s, &synced).await;
    std::fs::write(dir.path().join(".index"), index::encode(&synced)).unwrap();
    let mut idx = Indexes::load(&s, dir.path(), "p/").await.unwrap();
    idx.set("b", e(2.0, 2.0, B), e(2.0, 2.0, B));
    idx.commit(&s, "p/").await.unwrap();
    let mut kept = idx.keep().expect("committed: kept");
    plant(&mut kept, Side::Local);
    plant(&mut kept, Side::Remote);
    let idx = Indexes::load_kept(&s, dir.path(), "p/", Some(kept)).await.unwrap();
    assert!(idx.local().get("planted").is_some() && idx.remote().get("planted").is_some(), "neither read again");
    assert_eq!(idx.remote().get("b"), Some(e(2.0, 2.0, B)));

    // Another machine commits the remote index: that side is read again, the local one not.
    let mut kept = idx.keep().expect("nothing changed: kept");
    plant(&mut kept, Side::Local);
    plant(&mut kept, Side::Remote);
    let theirs: Index = [("c".to_string(), e(3.0, 3.0, A))].into();
    commit_as_other(&s, &theirs).await;
    let idx = Indexes::load_kept(&s, dir.path(), "p/", Some(kept)).await.unwrap();
    assert_eq!(idx.remote().get("planted"), None, "the remote index was read again");
    assert_eq!(idx.remote().get("c"), Some(e(3.0, 3.0, A)));
    assert_eq!(idx.remote().get("b"), None);
    assert!(idx.local().get("planted").is_some(), "the local one was not");

    // Another process replaces the local index: read again.
    let mut kept = idx.keep().expect("kept");
    plant(&mut kept, Side::Local);
    let mine: Index = [("d".to_string(), e(4.0, 4.0, B))].into();
    crate::fsutil::write_atomic(&dir.path().join(".index"), 0o644, |f| {
        std::io::Write::write_all(f, &index::encode(&mine))
    })
    .unwrap();
    let mut idx = Indexes::load_kept(&s, dir.path(), "p/", Some(kept)).await.unwrap();
    assert_eq!(idx.local().get("planted"), None, "the local index was read again");
    assert_eq!(idx.local().get("d"), Some(e(4.0, 4.0, B)));

    // Gone since: both read as missing.
    idx.set("e", e(5.0, 5.0, A), e(5.0, 5.0, A));
    assert!(Indexes::keep(idx).is_none(), "uncommitted changes: nothing kept");
    let idx = Indexes::load(&s, dir.path(), "p/").await.unwrap();
    let kept = idx.keep().expect("kept");
    std::fs::remove_file(dir.path().join(".index")).unwrap();
    s.delete("p/.index", None).await.unwrap();
    let idx = Indexes::load_kept(&s, dir.path(), "p/", Some(kept)).await.unwrap();
    assert_eq!((idx.local().len(), idx.remote().len()), (0, 0));
    assert!(idx.keep().is_none(), "no remote index, no ETag to ask with: nothing kept");
}
