//! Large objects: multipart upload with a bounded pool of parallel parts (aborted on
//! failure, so no orphaned parts keep costing money), and parallel ranged download into
//! one file. The part arithmetic is pure and unit-tested.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use hyper::Method;
use tokio::task::JoinSet;

use super::bodies;
use super::client::{Client, Request};
use super::error::{Error, ErrorKind, Result};
use super::flow::Tap;
use super::http::Payload;
use super::ops::{etag_of, ObjectMeta, PutOptions};
use super::xml::{self, Upload};

pub const MIB: u64 = 1 << 20;
/// S3 limits: parts 5 MiB..5 GiB (the last may be smaller), at most 10,000 parts, 5 TiB objects.
pub const MIN_PART: u64 = 5 * MIB;
pub const MAX_PART: u64 = 5 << 30;
pub const MAX_PARTS: u64 = 10_000;
pub const MAX_OBJECT: u64 = 5 << 40;

/// How big transfers are cut and how many pieces are in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Objects at least this big go multipart (upload) or ranged (download).
    pub threshold: u64,
    /// Preferred part size; grown when the object would need more than 10,000 parts.
    pub part_size: u64,
    pub concurrency: usize,
}

impl Default for Transfer {
    fn default() -> Self {
        // 8 parts in flight: a 1 GiB download on Garage went 730 → 905 MiB/s from 4 to 8 and no
        // further at 16 (`s4 bench get --jobs`); uploads are the same at 4..16. Ranges are
        // written in place, so more in flight costs no memory.
        Transfer { threshold: 16 * MIB, part_size: 8 * MIB, concurrency: 8 }
    }
}

/// The part size for an object of `total` bytes: `preferred` (at least 5 MiB), grown in whole
/// MiB until 10,000 parts cover the object. `Err` when no legal part size fits (over 5 TiB).
pub fn part_size(total: u64, preferred: u64) -> std::result::Result<u64, String> {
    if total > MAX_OBJECT {
        return Err(format!("{total} bytes is over S3's 5 TiB object limit"));
    }
    let mut size = preferred.clamp(MIN_PART, MAX_PART);
    let needed = total.div_ceil(MAX_PARTS);
    if needed > size {
        size = needed.div_ceil(MIB) * MIB;
    }
    Ok(size.min(MAX_PART))
}

/// (part number from 1, offset, length) of each part.
pub fn parts(total: u64, part_size: u64) -> impl Iterator<Item = (u32, u64, u64)> {
    let count = total.div_ceil(part_size).max(1);
    (0..count).map(move |i| {
        let offset = i * part_size;
        (i as u32 + 1, offset, part_size.min(total - offset))
    })
}

/// What tells us a file changed under an upload: size and mtime (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    size: u64,
    mtime: Option<std::time::SystemTime>,
}

impl Snapshot {
    fn of(path: &Path) -> std::io::Result<Snapshot> {
        let m = std::fs::metadata(path)?;
        Ok(Snapshot { size: m.len(), mtime: m.modified().ok() })
    }
}

/// Whole small files are read into memory before they are sent (a consistent version, and
/// one read instead of many); this caps the bytes held at once across all transfers.
const MEMORY_BUDGET_KIB: u32 = 128 * 1024;

async fn memory_budget(size: u64) -> tokio::sync::SemaphorePermit<'static> {
    static BUDGET: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MEMORY_BUDGET_KIB as usize);
    let kib = (size.div_ceil(1024) as u32).clamp(1, MEMORY_BUDGET_KIB);
    BUDGET.acquire_many(kib).await.expect("the budget semaphore is never closed")
}

/// The ETag S3 gives a multipart object: the MD5 of its parts' MD5s, then `-` and the part
/// count. `None` when a part's ETag is not an MD5 (some stores, encrypted objects).
fn multipart_etag(parts: &[(u32, String)]) -> Option<String> {
    use md5::{Digest, Md5};
    let mut all = Md5::new();
    for (_, etag) in parts {
        all.update(hex::decode(etag.trim_matches('"')).ok().filter(|d| d.len() == 16)?);
    }
    Some(format!("{}-{}", hex::encode(all.finalize()), parts.len()))
}

fn join_error(op: &'static str, object: String, e: tokio::task::JoinError) -> Error {
    Error::new(op, object, ErrorKind::Io(format!("worker failed: {e}")))
}

impl Client {
    pub async fn create_multipart(&self, key: &str, opts: &PutOptions) -> Result<String> {
        let req =
            opts.apply(Request::new("CreateMultipartUpload", Method::POST, Some(key)).query("uploads", ""), false);
        let a = self.send_full(&req).await?;
        xml::parse_initiate_multipart(&a.body)
            .map_err(|e| Error::new("CreateMultipartUpload", self.uri(key), ErrorKind::Xml(e.to_string())))
    }

    pub async fn upload_part(&self, key: &str, upload_id: &str, number: u32, payload: Payload) -> Result<String> {
        self.upload_part_tapped(key, upload_id, number, payload, &Tap::default()).await
    }

    async fn upload_part_tapped(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        payload: Payload,
        tap: &Tap,
    ) -> Result<String> {
        let req = Request::new("UploadPart", Method::PUT, Some(key))
            .query("partNumber", number.to_string())
            .query("uploadId", upload_id)
            .payload(payload)
            .tap(tap);
        let a = self.send_full(&req).await?;
        etag_of(&a.headers).ok_or_else(|| {
            Error::new("UploadPart", self.uri(key), ErrorKind::Xml(format!("part {number}: no ETag in the answer")))
        })
    }

    /// Completes the upload; `cond`'s If-Match / If-None-Match make it conditional.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        cond: &PutOptions,
    ) -> Result<String> {
        let req = cond
            .conditions(Request::new("CompleteMultipartUpload", Method::POST, Some(key)))
            .query("uploadId", upload_id)
            .header("content-type", "application/xml")
            .payload(Payload::Bytes(Bytes::from(bodies::complete_multipart_body(parts))));
        let a = self.send_full(&req).await?;
        let etag = xml::parse_complete_multipart(&a.body)
            .map_err(|e| Error::new("CompleteMultipartUpload", self.uri(key), ErrorKind::Xml(e.to_string())))?;
        // Ceph RGW 16.2 completes the upload but answers an empty <ETag>: the object's ETag is
        // the one its parts make (S3's rule, which RGW follows), else what HEAD says.
        match etag.or_else(|| multipart_etag(parts)) {
            Some(etag) => Ok(etag),
            None => self.head(key).await?.and_then(|m| m.etag).ok_or_else(|| {
                let why = "the store completed the upload but named no ETag, and HEAD shows none".to_string();
                Error::new("CompleteMultipartUpload", self.uri(key), ErrorKind::Xml(why))
            }),
        }
    }

    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        let req = Request::new("AbortMultipartUpload", Method::DELETE, Some(key)).query("uploadId", upload_id);
        match self.send_full(&req).await {
            Err(e) if e.status() == Some(404) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// In-progress multipart uploads under `prefix` (first 1000).
    pub async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<Upload>> {
        let req = Request::new("ListMultipartUploads", Method::GET, None)
            .query("uploads", "")
            .query("encoding-type", "url")
            .query("prefix", prefix);
        let a = self.send_full(&req).await?;
        xml::parse_list_multipart_uploads(&a.body)
            .map(|(uploads, ..)| uploads)
            .map_err(|e| Error::new("ListMultipartUploads", self.uri(prefix), ErrorKind::Xml(e.to_string())))
    }

    /// The parts already stored for an upload, by number (ListParts, paged).
    pub async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<xml::Part>> {
        let mut all = Vec::new();
        let mut marker = None;
        loop {
            let mut req = Request::new("ListParts", Method::GET, Some(key)).query("uploadId", upload_id);
            if let Some(m) = marker {
                req = req.query("part-number-marker", format!("{m}"));
            }
            let a = self.send_full(&req).await?;
            let (parts, next) = xml::parse_list_parts(&a.body)
                .map_err(|e| Error::new("ListParts", self.uri(key), ErrorKind::Xml(e.to_string())))?;
            all.extend(parts);
            match next {
                Some(n) if marker != Some(n) => marker = Some(n),
                _ => return Ok(all),
            }
        }
    }

    /// Upload the file at `path`, which the caller saw at `size` bytes, as one consistent
    /// version: below the threshold it is read whole and sent from memory; above it, parts
    /// are uploaded (resuming an interrupted upload of ours) and the upload is completed only
    /// if the file did not change meanwhile. A file that changes fails with
    /// [`ErrorKind::Changed`] and nothing new is visible on S3. Returns the ETag. `tap` hears
    /// the bytes as they go (a part sent again is not heard again) and paces them.
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        opts: &PutOptions,
        xfer: &Transfer,
        tap: &Tap,
    ) -> Result<Option<String>> {
        let changed = || Error::new("PutObject", path.display().to_string(), ErrorKind::Changed);
        let io = |e: std::io::Error| Error::new("PutObject", path.display().to_string(), ErrorKind::Io(e.to_string()));
        let before = Snapshot::of(path).map_err(io)?;
        if before.size != size {
            return Err(changed());
        }
        if size < xfer.threshold {
            // One blocking read, also the cheap way: a streamed tokio file costs three
            // thread-pool hops (open, seek, read) per request in a many-small-files sync.
            let _budget = memory_budget(size).await;
            let p = path.to_path_buf();
            let body = tokio::task::spawn_blocking(move || std::fs::read(p))
                .await
                .map_err(|e| join_error("PutObject", self.uri(key), e))?
                .map_err(io)?;
            if body.len() as u64 != size || Snapshot::of(path).map_err(io)? != before {
                return Err(changed());
            }
            return self.put_tapped(key, Payload::Bytes(Bytes::from(body)), opts, tap).await;
        }
        let part = part_size(size, xfer.part_size)
            .map_err(|m| Error::new("CreateMultipartUpload", self.uri(key), ErrorKind::Config(m)))?;
        let (upload_id, stored) = match self.resumable_upload(key, path, size, part).await {
            Some(found) => found,
            None => (self.create_multipart(key, opts).await?, Vec::new()),
        };
        let have: std::collections::HashSet<u32> = stored.iter().map(|(n, _)| *n).collect();
        let todo = parts(size, part).filter(|(n, ..)| !have.contains(n));
        let uploaded = self.upload_parts(key, &upload_id, path, todo, stored, xfer.concurrency, tap).await;
        let etags = match uploaded {
            Ok(etags) if Snapshot::of(path).map_err(io)? == before => etags,
            other => {
                // Best effort: the original error is the one the user needs.
                let _ = self.abort_multipart(key, &upload_id).await;
                return Err(other.err().unwrap_or_else(changed));
            }
        };
        match self.complete_multipart(key, &upload_id, &etags, opts).await {
            Ok(etag) => Ok(Some(etag)),
            // A retry after a lost answer finds the upload already completed (404
            // NoSuchUpload): the object is ours if its ETag is the one our parts make.
            Err(e) if e.status() == Some(404) => match self.head(key).await {
                Ok(Some(m))
                    if m.etag.as_deref().is_some_and(|t| multipart_etag(&etags).is_some_and(|ours| ours == t)) =>
                {
                    Ok(m.etag)
                }
                _ => Err(e),
            },
            Err(e) => {
                let _ = self.abort_multipart(key, &upload_id).await;
                Err(e)
            }
        }
    }

    /// An interrupted multipart upload of this key (the newest) whose stored parts all hold
    /// the file's bytes at their place (size and MD5): only the missing parts are sent. Content
    /// decides, not age or owner, so any such upload is safe to finish. One holding other
    /// bytes (the file changed since) is aborted: some stores refuse to replace a part
    /// (rclone: 501). `None` when there is none to resume, or the store cannot list uploads.
    async fn resumable_upload(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        part: u64,
    ) -> Option<(String, Vec<(u32, String)>)> {
        let upload = self
            .list_multipart_uploads(key)
            .await
            .ok()?
            .into_iter()
            .filter(|u| u.key == key)
            .max_by_key(|u| u.initiated)?;
        let stored = self.list_parts(key, &upload.upload_id).await.ok()?;
        if stored.is_empty() {
            return None; // nothing to gain, and it may be another machine's, just begun
        }
        let want: std::collections::HashMap<u32, (u64, u64)> =
            parts(size, part).map(|(n, off, len)| (n, (off, len))).collect();
        let path = path.to_path_buf();
        let count = stored.len();
        let reusable = tokio::task::spawn_blocking(move || {
            stored
                .into_iter()
                .filter(|p| {
                    want.get(&p.number).is_some_and(|&(off, len)| {
                        len == p.size
                            && crate::fsutil::md5_range(&path, off, len)
                                .is_ok_and(|d| hex::encode(d) == p.etag.to_ascii_lowercase())
                    })
                })
                .map(|p| (p.number, p.etag))
                .collect::<Vec<_>>()
        })
        .await
        .ok()?;
        if reusable.len() != count {
            // Other bytes: ours from before the file changed (aborted), or another machine's
            // upload in flight (left alone while young; a day-old one is aborted by the sync).
            let young = upload.initiated.is_some_and(|t| crate::log::now_secs() - t < 3600);
            if !young {
                let _ = self.abort_multipart(key, &upload.upload_id).await;
            }
            return None;
        }
        crate::debug!("{}: resuming multipart upload with {} part(s) already stored", self.uri(key), reusable.len());
        Some((upload.upload_id, reusable))
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        path: &Path,
        todo: impl Iterator<Item = (u32, u64, u64)>,
        mut done: Vec<(u32, String)>,
        concurrency: usize,
        tap: &Tap,
    ) -> Result<Vec<(u32, String)>> {
        let mut set = JoinSet::new();
        for (number, offset, len) in todo {
            while set.len() >= concurrency.max(1) {
                done.push(self.next_part(&mut set, key).await?);
            }
            let (client, key, id, tap) = (self.clone(), key.to_string(), upload_id.to_string(), tap.clone());
            let payload = Payload::File { path: path.to_path_buf(), offset, len };
            set.spawn(
                async move { client.upload_part_tapped(&key, &id, number, payload, &tap).await.map(|t| (number, t)) },
            );
        }
        while !set.is_empty() {
            done.push(self.next_part(&mut set, key).await?);
        }
        done.sort_by_key(|(n, _)| *n);
        Ok(done)
    }

    async fn next_part(&self, set: &mut JoinSet<Result<(u32, String)>>, key: &str) -> Result<(u32, String)> {
        match set.join_next().await {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(join_error("UploadPart", self.uri(key), e)),
            None => unreachable!("joined an empty set"),
        }
    }

    /// Download an object of known `size` into `dest` (a new file): one GET below the
    /// threshold, else ranges fetched in parallel, written in place, all pinned to one ETag
    /// (If-Match) so a concurrent overwrite cannot mix two versions in one file.
    pub async fn download_to_file(&self, key: &str, dest: &Path, size: u64, xfer: &Transfer) -> Result<ObjectMeta> {
        self.download_pinned(key, None, dest, size, None, xfer, &Tap::default()).await
    }

    /// [`Client::download_to_file`] of the version with this ETag only, the first request
    /// included (412 when the object changed since it was planned); `tap` hears the bytes as
    /// they arrive and paces them.
    pub async fn download_to_file_if(
        &self,
        key: &str,
        dest: &Path,
        size: u64,
        if_match: Option<&str>,
        xfer: &Transfer,
        tap: &Tap,
    ) -> Result<ObjectMeta> {
        self.download_pinned(key, None, dest, size, if_match, xfer, tap).await
    }

    /// [`Client::download_to_file`] of one version (`None`: the current one).
    pub async fn download_version_to_file(
        &self,
        key: &str,
        version: Option<&str>,
        dest: &Path,
        size: u64,
        xfer: &Transfer,
    ) -> Result<ObjectMeta> {
        self.download_pinned(key, version, dest, size, None, xfer, &Tap::default()).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn download_pinned(
        &self,
        key: &str,
        version: Option<&str>,
        dest: &Path,
        size: u64,
        if_match: Option<&str>,
        xfer: &Transfer,
        tap: &Tap,
    ) -> Result<ObjectMeta> {
        if size < xfer.threshold {
            let meta = self.get_version_to_file_if(key, version, dest, if_match, tap).await?;
            // A store (or a proxy) that sends a short body under a matching Content-Length
            // passes every HTTP check: only the size the listing gave can tell.
            let got = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
            if got != size {
                let m = format!("got {got} bytes, expected {size}: the answer was cut short or the object changed");
                return Err(Error::new("GetObject", self.uri(key), ErrorKind::Transport(m)));
            }
            return Ok(meta);
        }
        let io = |e: std::io::Error| Error::new("GetObject", dest.display().to_string(), ErrorKind::Io(e.to_string()));
        let file = std::fs::File::options().write(true).create_new(true).open(dest).map_err(io)?;
        file.set_len(size).map_err(io)?;
        let file = Arc::new(file);
        let part = xfer.part_size.max(MIN_PART);
        let mut ranges = parts(size, part);
        // The first range tells the ETag that pins every other range.
        let (_, off, len) = ranges.next().expect("at least one range");
        let (meta, _) = self.fetch_range(key, version, &file, off, len, if_match, tap).await?;
        if meta.size != size {
            return Err(Error::new(
                "GetObject",
                self.uri(key),
                ErrorKind::Io(format!(
                    "object is {} bytes now, expected {size}: it changed during the sync",
                    meta.size
                )),
            ));
        }
        let etag = meta.etag.clone();
        let mut set = JoinSet::new();
        for (_, off, len) in ranges {
            while set.len() >= xfer.concurrency.max(1) {
                self.next_range(&mut set, key).await?;
            }
            let (client, key, file, etag) = (self.clone(), key.to_string(), file.clone(), etag.clone());
            let (version, tap) = (version.map(str::to_string), tap.clone());
            set.spawn(async move {
                client.fetch_range(&key, version.as_deref(), &file, off, len, etag.as_deref(), &tap).await.map(|_| ())
            });
        }
        while !set.is_empty() {
            self.next_range(&mut set, key).await?;
        }
        Ok(meta)
    }

    async fn next_range(&self, set: &mut JoinSet<Result<()>>, key: &str) -> Result<()> {
        match set.join_next().await {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(join_error("GetObject", self.uri(key), e)),
            None => Ok(()),
        }
    }

    /// One range into its place in the file. A body cut off mid-way resumes from the last
    /// byte written (a few times), instead of failing the whole download: no byte is fetched,
    /// or heard by `tap`, twice.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_range(
        &self,
        key: &str,
        version: Option<&str>,
        file: &Arc<std::fs::File>,
        offset: u64,
        len: u64,
        etag: Option<&str>,
        tap: &Tap,
    ) -> Result<(ObjectMeta, u64)> {
        let end = offset + len;
        let mut at = offset;
        let mut resumed = 0;
        let meta = loop {
            let result = self
                .get_into(key, version, Some((at, end - 1)), etag, tap, |chunk| {
                    // Positional writes of one chunk land in the page cache; cheap enough inline.
                    let r = file.write_all_at(&chunk, at);
                    at += chunk.len() as u64;
                    std::future::ready(r)
                })
                .await;
            match result {
                Ok((meta, _)) => break meta,
                // Only a range pinned to an ETag may resume: unpinned, the rest could come
                // from a newer version of the object.
                Err(e) if etag.is_some() && super::retry::is_retryable(&e) && resumed < 3 && at < end => resumed += 1,
                Err(e) => return Err(e),
            }
        };
        if at != end {
            return Err(Error::new(
                "GetObject",
                self.uri(key),
                ErrorKind::Transport(format!(
                    "range at {offset}: got {} of {len} bytes (does the store support Range?)",
                    at - offset
                )),
            ));
        }
        Ok((meta, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_fits_every_size_in_10000_parts() {
        assert_eq!(part_size(0, 8 * MIB).unwrap(), 8 * MIB);
        assert_eq!(part_size(100 * MIB, 1).unwrap(), MIN_PART);
        assert_eq!(part_size(100 * MIB, 8 * MIB).unwrap(), 8 * MIB);
        for total in [80_000 * MIB, 1 << 40, 3 << 40, MAX_OBJECT] {
            let p = part_size(total, 8 * MIB).unwrap();
            assert!(total.div_ceil(p) <= MAX_PARTS, "{total}: {p}");
            assert!((MIN_PART..=MAX_PART).contains(&p));
            assert_eq!(p % MIB, 0);
        }
        assert!(part_size(MAX_OBJECT + 1, 8 * MIB).is_err());
    }

    #[test]
    fn multipart_etag_is_the_md5_of_the_part_md5s() {
        // md5("a") and md5("b") as parts: md5(bin(md5 a) ++ bin(md5 b)) with "-2".
        let parts = vec![
            (1, "\"0cc175b9c0f1b6a831c399e269772661\"".to_string()),
            (2, "92eb5ffee6ae2fec3ad71c777531578f".to_string()),
        ];
        let mut h = <md5::Md5 as md5::Digest>::new();
        for d in ["0cc175b9c0f1b6a831c399e269772661", "92eb5ffee6ae2fec3ad71c777531578f"] {
            md5::Digest::update(&mut h, hex::decode(d).unwrap());
        }
        assert_eq!(multipart_etag(&parts), Some(format!("{}-2", hex::encode(md5::Digest::finalize(h)))));
        assert_eq!(multipart_etag(&[(1, "not-an-md5".into())]), None);
    }

    #[test]
    fn parts_cover_the_object_exactly() {
        let v: Vec<_> = parts(3 * 5 * MIB + 7, 5 * MIB).collect();
        assert_eq!(v.len(), 4);
        assert_eq!(v[0], (1, 0, 5 * MIB));
        assert_eq!(v[3], (4, 15 * MIB, 7));
        assert_eq!(parts(10 * MIB, 5 * MIB).count(), 2);
        assert_eq!(parts(0, 5 * MIB).collect::<Vec<_>>(), vec![(1, 0, 0)]);
    }
}
