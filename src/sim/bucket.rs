//! An in-memory model of one S3 bucket behind the engine's seam, for the simulation only
//! (integration tests keep talking to real stores). Strongly consistent, as AWS, Garage and
//! RGW are for single keys; ETags are the MD5 of the body, LastModified whole seconds of the
//! simulated clock; and the behaviours of the stores s4 supports are switches: conditional
//! writes and deletes honoured or ignored, listings with or without ETags, small pages.
//! Every call waits for its turn from the scheduler, and may meet a fault: refused before it
//! takes effect (503), or its answer lost after it did.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::sched::Sched;
use crate::s3::fence::Fence;
use crate::s3::{Error, ErrorKind, PutOptions};
use crate::sync::remote::{Fresh, Fut, Meta, Page, Remote, Upload};

/// Seconds of the simulated epoch (late 2023): LastModified values look like real ones.
pub const BASE_SECS: i64 = 1_700_000_000;

#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    pub conditional_put: bool,
    pub conditional_delete: bool,
    pub list_etags: bool,
    /// Keys per listing page: small, so pages interleave with other machines' writes.
    pub page: usize,
    /// Chance in percent that a call fails before taking effect, and again that its answer
    /// is lost after it took effect.
    pub faults: u64,
    /// CopyObject honours If-None-Match / If-Match on its destination (with `conditional_put`).
    pub copy_conditions: bool,
    /// CopyObject honours `x-amz-copy-source-if-match` (a store may not: the copy then takes
    /// whatever version the source holds, and s4 must notice by the new ETag).
    pub copy_source_pinned: bool,
}

#[derive(Debug, Clone)]
pub struct Object {
    pub body: Bytes,
    pub etag: String,
    pub lm: i64,
}

pub struct Bucket {
    objects: Mutex<BTreeMap<String, Object>>,
    /// No more faults: the quiet rounds at the end.
    pub calm: std::sync::atomic::AtomicBool,
    pub behaviour: Behaviour,
    pub sched: Arc<Sched>,
    epoch: tokio::time::Instant,
    /// ListObjectsV2 requests served (for tests that count them).
    pub lists: std::sync::atomic::AtomicUsize,
}

fn status(op: &'static str, key: &str, status: u16, code: &str) -> Error {
    let kind = ErrorKind::Status { status, code: code.into(), message: String::new(), request_id: None };
    Error::new(op, format!("s3://sim/{key}"), kind)
}

fn etag_of(body: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(body))
}

impl Bucket {
    pub fn new(behaviour: Behaviour, sched: Arc<Sched>) -> Bucket {
        Bucket {
            objects: Mutex::new(BTreeMap::new()),
            calm: Default::default(),
            behaviour,
            sched,
            epoch: tokio::time::Instant::now(),
            lists: Default::default(),
        }
    }

    pub fn now(&self) -> i64 {
        BASE_SECS + self.epoch.elapsed().as_secs() as i64
    }

    /// The simulated wall clock, to the millisecond (users' mtimes).
    pub fn clock(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(BASE_SECS as u64) + self.epoch.elapsed()
    }

    pub fn object(&self, key: &str) -> Option<Object> {
        self.objects.lock().unwrap().get(key).cloned()
    }

    pub fn objects(&self) -> BTreeMap<String, Object> {
        self.objects.lock().unwrap().clone()
    }

    fn faulty(&self) -> bool {
        let calm = self.calm.load(std::sync::atomic::Ordering::Relaxed);
        !calm && self.behaviour.faults > 0 && self.sched.chance(self.behaviour.faults)
    }

    /// Wait for the turn, then maybe fail before doing anything.
    async fn enter(&self, machine: usize, op: &'static str, key: &str) -> Result<(), Error> {
        self.sched.turn(machine, format!("{op} {key}")).await;
        self.maybe_fault(machine, op, key)
    }

    /// The store committing a request whose body has left (see [`Sched::landing`]).
    async fn land(&self, machine: usize, op: &'static str, key: &str) -> Result<(), Error> {
        self.sched.landing(machine, format!("{op} {key}")).await;
        self.maybe_fault(machine, op, key)
    }

    fn maybe_fault(&self, machine: usize, op: &'static str, key: &str) -> Result<(), Error> {
        if self.faulty() {
            self.sched.note(format!("m{machine} fault: 503 before {op} {key}"));
            return Err(status(op, key, 503, "SlowDown"));
        }
        Ok(())
    }

    /// After the call took effect: maybe lose its answer.
    fn leave<T>(&self, machine: usize, op: &'static str, key: &str, v: T) -> Result<T, Error> {
        if self.faulty() {
            self.sched.note(format!("m{machine} fault: answer to {op} {key} lost"));
            return Err(Error::new(op, format!("s3://sim/{key}"), ErrorKind::Transport("connection reset".into())));
        }
        Ok(v)
    }

    fn meta(&self, o: &Object) -> Meta {
        Meta { size: o.body.len() as u64, etag: Some(o.etag.clone()), lm: Some(o.lm) }
    }

    /// The conditions of a PUT, as a store that honours them checks them.
    fn precondition(&self, key: &str, cur: Option<&Object>, opts: &PutOptions) -> Result<(), Error> {
        if !self.behaviour.conditional_put {
            return Ok(());
        }
        if opts.if_none_match && cur.is_some() {
            return Err(status("PutObject", key, 412, "PreconditionFailed"));
        }
        match (&opts.if_match, cur) {
            (Some(_), None) => Err(status("PutObject", key, 404, "NoSuchKey")),
            (Some(tag), Some(o)) if tag.trim_matches('"') != o.etag => {
                Err(status("PutObject", key, 412, "PreconditionFailed"))
            }
            _ => Ok(()),
        }
    }

    fn write(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<String, Error> {
        let mut all = self.objects.lock().unwrap();
        self.precondition(key, all.get(key), opts)?;
        let etag = etag_of(&body);
        all.insert(key.to_string(), Object { body, etag: etag.clone(), lm: self.now() });
        Ok(etag)
    }

    /// Does a delete's condition hold? Stores that ignore it delete anyway.
    fn delete_allowed(&self, cur: Option<&Object>, if_match: Option<&str>) -> bool {
        match (if_match, self.behaviour.conditional_delete) {
            (Some(tag), true) => cur.is_some_and(|o| o.etag == tag.trim_matches('"')),
            _ => true,
        }
    }
}

/// One machine's view of the bucket: its calls are scheduled as that machine's.
pub struct Handle {
    pub bucket: Arc<Bucket>,
    pub machine: usize,
    runs: Arc<std::sync::atomic::AtomicU64>,
    /// Checked where the real client checks it: before a request goes, and before a body's
    /// last byte (between an upload's two steps).
    fence: Option<Fence>,
}

impl Handle {
    pub fn new(bucket: Arc<Bucket>, machine: usize) -> Handle {
        Handle { bucket, machine, runs: Default::default(), fence: None }
    }

    fn fenced(&self, op: &'static str, key: &str) -> Result<(), Error> {
        self.fence.as_ref().map_or(Ok(()), |f| crate::s3::fence::ask(f, op, &self.uri(key)))
    }
}

fn snapshot(path: &Path) -> std::io::Result<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(path)?;
    Ok((m.len(), m.modified()?))
}

impl Remote for Handle {
    fn uri(&self, key: &str) -> String {
        format!("s3://sim/{key}")
    }

    fn store_id(&self) -> String {
        "sim".into()
    }

    fn with_fence(&self, fence: Fence) -> Option<Arc<dyn Remote>> {
        let (bucket, runs) = (self.bucket.clone(), self.runs.clone());
        Some(Arc::new(Handle { bucket, machine: self.machine, runs, fence: Some(fence) }))
    }

    fn remembers(&self) -> bool {
        false
    }

    fn token(&self) -> String {
        let n = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("m{}-{n}", self.machine)
    }

    fn page_keys(&self) -> usize {
        self.bucket.behaviour.page
    }

    fn list<'a>(&'a self, prefix: &'a str, start_after: Option<&'a str>, token: Option<&'a str>) -> Fut<'a, Page> {
        Box::pin(async move {
            let b = &*self.bucket;
            b.enter(self.machine, "ListObjectsV2", prefix).await?;
            b.lists.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let after = token.or(start_after).unwrap_or("");
            let all = b.objects.lock().unwrap();
            let from = match after > prefix {
                true => std::ops::Bound::Excluded(after),
                false => std::ops::Bound::Included(prefix),
            };
            let mut objects = Vec::new();
            let mut more = false;
            for (k, o) in all.range::<str, _>((from, std::ops::Bound::Unbounded)) {
                if !k.starts_with(prefix) {
                    break;
                }
                if objects.len() == b.behaviour.page {
                    more = true;
                    break;
                }
                let mut m = b.meta(o);
                if !b.behaviour.list_etags {
                    m.etag = None;
                }
                objects.push((k.clone(), m));
            }
            drop(all);
            let next = if more { objects.last().map(|(k, _)| k.clone()) } else { None };
            b.leave(self.machine, "ListObjectsV2", prefix, Page { objects, next })
        })
    }

    fn head<'a>(&'a self, key: &'a str) -> Fut<'a, Option<Meta>> {
        Box::pin(async move {
            let b = &*self.bucket;
            b.enter(self.machine, "HeadObject", key).await?;
            let m = b.objects.lock().unwrap().get(key).map(|o| b.meta(o));
            b.leave(self.machine, "HeadObject", key, m)
        })
    }

    fn get_bytes<'a>(&'a self, key: &'a str) -> Fut<'a, Option<(Bytes, Meta)>> {
        Box::pin(async move {
            let b = &*self.bucket;
            b.enter(self.machine, "GetObject", key).await?;
            let got = b.objects.lock().unwrap().get(key).map(|o| (o.body.clone(), b.meta(o)));
            b.leave(self.machine, "GetObject", key, got)
        })
    }

    fn get_if_changed<'a>(&'a self, key: &'a str, etag: &'a str) -> Fut<'a, Fresh> {
        Box::pin(async move {
            let b = &*self.bucket;
            b.enter(self.machine, "GetObject(If-None-Match)", key).await?;
            // Every store honours If-None-Match on GET (HTTP's own conditional request).
            let got = match b.objects.lock().unwrap().get(key) {
                None => Fresh::Missing,
                Some(o) if o.etag == etag.trim_matches('"') => Fresh::Unchanged,
                Some(o) => Fresh::Changed(o.body.clone(), b.meta(o)),
            };
            b.leave(self.machine, "GetObject(If-None-Match)", key, got)
        })
    }

    fn get_file<'a>(
        &'a self,
        key: &'a str,
        dest: &'a Path,
        size: u64,
        if_match: Option<&'a str>,
        _moved: &'a crate::s3::Meter,
    ) -> Fut<'a, Meta> {
        Box::pin(async move {
            let b = &*self.bucket;
            b.enter(self.machine, "GetObject", key).await?;
            let o = b.objects.lock().unwrap().get(key).cloned();
            let o = o.ok_or_else(|| status("GetObject", key, 404, "NoSuchKey"))?;
            // Every store honours If-Match on GET.
            if if_match.is_some_and(|t| t.trim_matches('"') != o.etag) {
                return Err(status("GetObject", key, 412, "PreconditionFailed"));
            }
            if o.body.len() as u64 != size {
                let m = format!("got {} bytes, expected {size}: the object changed", o.body.len());
                return Err(Error::new("GetObject", self.uri(key), ErrorKind::Transport(m)));
            }
            crate::fsutil::write_new(dest, &o.body)
                .map_err(|e| Error::new("GetObject", dest.display().to_string(), ErrorKind::Io(e.to_string())))?;
            let meta = b.meta(&o);
            b.leave(self.machine, "GetObject", key, meta)
        })
    }

    fn put_file<'a>(
        &'a self,
        key: &'a str,
        path: &'a Path,
        size: u64,
        opts: &'a PutOptions,
        moved: &'a crate::s3::Meter,
    ) -> Fut<'a, Option<String>> {
        Box::pin(async move {
            let b = &*self.bucket;
            let changed = || Error::new("PutObject", path.display().to_string(), ErrorKind::Changed);
            let io =
                |e: std::io::Error| Error::new("PutObject", path.display().to_string(), ErrorKind::Io(e.to_string()));
            // Two steps, as a real upload takes time: the file is read, then the write lands;
            // a user may edit the file in between, and the upload must notice.
            self.fenced("PutObject", key)?;
            b.enter(self.machine, "PutObject(read)", key).await?;
            let before = snapshot(path).map_err(io)?;
            let body = std::fs::read(path).map_err(io)?;
            if before.0 != size || body.len() as u64 != size {
                return Err(changed());
            }
            moved(size);
            // The body's last byte: sent only while the fence allows (hyper never polls an
            // empty body: no second check then); the store commits it whenever it does,
            // whatever the machine does meanwhile.
            if size > 0 {
                self.fenced("PutObject", key)?;
            }
            b.land(self.machine, "PutObject", key).await?;
            if snapshot(path).map_err(io)? != before {
                return Err(changed());
            }
            let etag = b.write(key, Bytes::from(body), opts)?;
            b.leave(self.machine, "PutObject", key, Some(etag))
        })
    }

    fn put_bytes<'a>(&'a self, key: &'a str, body: Bytes, opts: &'a PutOptions) -> Fut<'a, Option<String>> {
        Box::pin(async move {
            let b = &*self.bucket;
            // As an upload from a file: the request goes, then its last byte, then the commit.
            self.fenced("PutObject", key)?;
            b.enter(self.machine, "PutObject(send)", key).await?;
            if !body.is_empty() {
                self.fenced("PutObject", key)?;
            }
            b.land(self.machine, "PutObject", key).await?;
            let etag = b.write(key, body, opts)?;
            b.leave(self.machine, "PutObject", key, Some(etag))
        })
    }

    fn copy<'a>(
        &'a self,
        src: &'a str,
        dst: &'a str,
        _size: u64,
        src_etag: Option<&'a str>,
        opts: &'a PutOptions,
    ) -> Fut<'a, Option<String>> {
        Box::pin(async move {
            let b = &*self.bucket;
            self.fenced("CopyObject", dst)?;
            b.enter(self.machine, "CopyObject", dst).await?;
            let etag = {
                let mut all = b.objects.lock().unwrap();
                let o = all.get(src).cloned().ok_or_else(|| status("CopyObject", src, 404, "NoSuchKey"))?;
                // The source's condition, as the destination's, only where the store honours them.
                if b.behaviour.copy_source_pinned && src_etag.is_some_and(|t| t.trim_matches('"') != o.etag) {
                    return Err(status("CopyObject", src, 412, "PreconditionFailed"));
                }
                if b.behaviour.copy_conditions {
                    b.precondition(dst, all.get(dst), opts)?;
                }
                all.insert(dst.to_string(), Object { lm: b.now(), ..o.clone() });
                o.etag
            };
            b.leave(self.machine, "CopyObject", dst, Some(etag))
        })
    }

    fn delete<'a>(&'a self, key: &'a str, if_match: Option<&'a str>) -> Fut<'a, ()> {
        Box::pin(async move {
            let b = &*self.bucket;
            self.fenced("DeleteObject", key)?;
            b.enter(self.machine, "DeleteObject", key).await?;
            {
                let mut all = b.objects.lock().unwrap();
                if !b.delete_allowed(all.get(key), if_match) {
                    return Err(status("DeleteObject", key, 412, "PreconditionFailed"));
                }
                all.remove(key);
            }
            b.leave(self.machine, "DeleteObject", key, ())
        })
    }

    fn delete_many<'a>(&'a self, items: &'a [(String, Option<String>)]) -> Fut<'a, Vec<(String, Error)>> {
        Box::pin(async move {
            let b = &*self.bucket;
            let first = items.first().map_or("", |(k, _)| k.as_str());
            // A body (the keys) too: its last byte is fenced, then the store commits.
            self.fenced("DeleteObjects", first)?;
            b.enter(self.machine, "DeleteObjects(send)", first).await?;
            self.fenced("DeleteObjects", first)?;
            b.land(self.machine, "DeleteObjects", first).await?;
            let mut failed = Vec::new();
            {
                let mut all = b.objects.lock().unwrap();
                for (key, tag) in items {
                    if b.delete_allowed(all.get(key), tag.as_deref()) {
                        all.remove(key);
                    } else {
                        failed.push((key.clone(), status("DeleteObjects", key, 200, "PreconditionFailed")));
                    }
                }
            }
            b.leave(self.machine, "DeleteObjects", first, failed)
        })
    }

    fn uploads<'a>(&'a self, _prefix: &'a str) -> Fut<'a, Vec<Upload>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn abort_upload<'a>(&'a self, _key: &'a str, _id: &'a str) -> Fut<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}
