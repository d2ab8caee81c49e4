//! The one seam between the sync engine and S3 (DESIGN.md): everything the engine asks of a
//! store, and nothing about HTTP. [`S3`] carries it to a real store through our client; the
//! simulation's model bucket implements it too, so a seeded scheduler can choose every
//! interleaving of several machines.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use bytes::Bytes;

use crate::s3::fence::Fence;
use crate::s3::{Client, Error, Limits, Meter, PutOptions, Tap, Transfer};

/// What the engine's calls return: boxed so the trait can be used as `dyn Remote`.
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = crate::s3::Result<T>> + Send + 'a>>;

/// What the plan needs of an object, from a listing entry, a HEAD or a GET.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub size: u64,
    /// Quotes stripped. Some stores list no ETag (s3s-fs); HEAD and GET always carry one.
    pub etag: Option<String>,
    /// LastModified, unix seconds.
    pub lm: Option<i64>,
}

/// One page of a listing: full keys in byte order, and where the next page starts.
#[derive(Debug, Default)]
pub struct Page {
    pub objects: Vec<(String, Meta)>,
    pub next: Option<String>,
}

/// A small object asked for again, only if it changed since a known version.
#[derive(Debug)]
pub enum Fresh {
    /// Still the version named (304 Not Modified).
    Unchanged,
    Missing,
    Changed(Bytes, Meta),
}

/// A multipart upload in progress.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: String,
    pub id: String,
    /// Unix seconds.
    pub initiated: Option<i64>,
}

pub trait Remote: Send + Sync {
    /// `s3://bucket/key`, for messages.
    fn uri(&self, key: &str) -> String;
    /// Names the store (endpoint and bucket) in what s4 remembers about it between runs.
    fn store_id(&self) -> String;
    /// May verdicts about the store be remembered on disk between runs? (The model: no.)
    fn remembers(&self) -> bool {
        true
    }
    /// A name for this run's lease and probe objects, unique among the machines.
    fn token(&self) -> String {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}", std::process::id())
    }
    /// This store, whose writes are checked against `fence` right before each can take effect
    /// (every attempt, and a body's last byte): `None` where the store cannot (then the engine's
    /// own checks before each write are all there is).
    fn with_fence(&self, _fence: Fence) -> Option<std::sync::Arc<dyn Remote>> {
        None
    }
    /// Keys a full listing page holds: ListObjectsV2's 1,000 (the model's own size).
    fn page_keys(&self) -> usize {
        1000
    }
    /// One ListObjectsV2 page under `prefix`: after `start_after`, or from `token` on.
    fn list<'a>(&'a self, prefix: &'a str, start_after: Option<&'a str>, token: Option<&'a str>) -> Fut<'a, Page>;
    fn head<'a>(&'a self, key: &'a str) -> Fut<'a, Option<Meta>>;
    /// A small object (an index, `.syncignore`) into memory; `None` when missing.
    fn get_bytes<'a>(&'a self, key: &'a str) -> Fut<'a, Option<(Bytes, Meta)>>;
    /// [`Remote::get_bytes`] only if the object's ETag is no longer `etag` (If-None-Match):
    /// one request, and no body when nothing changed.
    fn get_if_changed<'a>(&'a self, key: &'a str, etag: &'a str) -> Fut<'a, Fresh>;
    /// The object into `dest` (a new file), only while its ETag is `if_match` (412 else).
    /// `moved` may hear the bytes as they arrive (the progress display), each byte once.
    fn get_file<'a>(
        &'a self,
        key: &'a str,
        dest: &'a Path,
        size: u64,
        if_match: Option<&'a str>,
        moved: &'a Meter,
    ) -> Fut<'a, Meta>;
    /// The file's bytes, sent only if they held still (`ErrorKind::Changed` else). The ETag.
    /// `moved` may hear the bytes as they go, each byte once per call.
    fn put_file<'a>(
        &'a self,
        key: &'a str,
        path: &'a Path,
        size: u64,
        opts: &'a PutOptions,
        moved: &'a Meter,
    ) -> Fut<'a, Option<String>>;
    fn put_bytes<'a>(&'a self, key: &'a str, body: Bytes, opts: &'a PutOptions) -> Fut<'a, Option<String>>;
    /// A file's bytes as one PUT, never multipart (its conditions must hold for one request):
    /// the remote index, which [`S3`] streams from disk, so its ~28 MB at a million keys need
    /// not sit in memory while they are sent (issue 13). Elsewhere: read, then `put_bytes`.
    fn put_whole_file<'a>(&'a self, key: &'a str, path: &'a Path, opts: &'a PutOptions) -> Fut<'a, Option<String>> {
        Box::pin(async move {
            let body = std::fs::read(path).map_err(|e| file_error(path, e))?;
            self.put_bytes(key, Bytes::from(body), opts).await
        })
    }
    /// CopyObject of `src` (only while its ETag is `src_etag`, when given) to `dst`, with
    /// `opts`' conditions on `dst`. The new object's ETag.
    fn copy<'a>(
        &'a self,
        src: &'a str,
        dst: &'a str,
        size: u64,
        src_etag: Option<&'a str>,
        opts: &'a PutOptions,
    ) -> Fut<'a, Option<String>>;
    /// DeleteObject, only of the version with this ETag when given.
    fn delete<'a>(&'a self, key: &'a str, if_match: Option<&'a str>) -> Fut<'a, ()>;
    /// DeleteObjects: the keys refused, with why.
    fn delete_many<'a>(&'a self, items: &'a [(String, Option<String>)]) -> Fut<'a, Vec<(String, Error)>>;
    fn uploads<'a>(&'a self, prefix: &'a str) -> Fut<'a, Vec<Upload>>;
    fn abort_upload<'a>(&'a self, key: &'a str, id: &'a str) -> Fut<'a, ()>;
}

/// A real store, through our S3 client.
pub struct S3 {
    pub client: Client,
    pub transfer: Transfer,
    /// `--bwlimit`, shared by every transfer of the run.
    pub limits: Limits,
}

fn file_error(path: &Path, e: std::io::Error) -> Error {
    Error::new("PutObject", path.display().to_string(), crate::s3::ErrorKind::Io(e.to_string()))
}

fn meta(m: crate::s3::ObjectMeta) -> Meta {
    Meta { size: m.size, etag: m.etag, lm: m.last_modified }
}

impl Remote for S3 {
    fn uri(&self, key: &str) -> String {
        self.client.uri(key)
    }

    fn with_fence(&self, fence: Fence) -> Option<std::sync::Arc<dyn Remote>> {
        let client = self.client.with_fence(fence);
        Some(std::sync::Arc::new(S3 { client, transfer: self.transfer, limits: self.limits.clone() }))
    }

    fn store_id(&self) -> String {
        self.client.store_id()
    }

    fn list<'a>(&'a self, prefix: &'a str, start_after: Option<&'a str>, token: Option<&'a str>) -> Fut<'a, Page> {
        Box::pin(async move {
            let page = self.client.list_page(prefix, None, token, start_after, None).await?;
            let objects = page
                .objects
                .into_iter()
                .map(|o| {
                    let lm = crate::s3::xml::parse_iso8601(&o.last_modified);
                    (o.key, Meta { size: o.size, etag: o.etag, lm })
                })
                .collect();
            // A truncated page without a token would loop for ever: treat it as the end.
            let next = page.next_continuation_token.filter(|_| page.is_truncated);
            Ok(Page { objects, next })
        })
    }

    fn head<'a>(&'a self, key: &'a str) -> Fut<'a, Option<Meta>> {
        Box::pin(async move { Ok(self.client.head(key).await?.map(meta)) })
    }

    fn get_bytes<'a>(&'a self, key: &'a str) -> Fut<'a, Option<(Bytes, Meta)>> {
        Box::pin(async move { Ok(self.client.get_bytes(key).await?.map(|(b, m)| (b, meta(m)))) })
    }

    fn get_if_changed<'a>(&'a self, key: &'a str, etag: &'a str) -> Fut<'a, Fresh> {
        Box::pin(async move {
            Ok(match self.client.get_bytes_if_changed(key, etag).await? {
                None => Fresh::Unchanged,
                Some(None) => Fresh::Missing,
                Some(Some((b, m))) => Fresh::Changed(b, meta(m)),
            })
        })
    }

    fn get_file<'a>(
        &'a self,
        key: &'a str,
        dest: &'a Path,
        size: u64,
        if_match: Option<&'a str>,
        moved: &'a Meter,
    ) -> Fut<'a, Meta> {
        Box::pin(async move {
            let tap = Tap { meter: Some(moved.clone()), throttle: self.limits.down.clone() };
            Ok(meta(self.client.download_to_file_if(key, dest, size, if_match, &self.transfer, &tap).await?))
        })
    }

    fn put_file<'a>(
        &'a self,
        key: &'a str,
        path: &'a Path,
        size: u64,
        opts: &'a PutOptions,
        moved: &'a Meter,
    ) -> Fut<'a, Option<String>> {
        Box::pin(async move {
            let tap = Tap { meter: Some(moved.clone()), throttle: self.limits.up.clone() };
            self.client.put_file(key, path, size, opts, &self.transfer, &tap).await
        })
    }

    fn put_bytes<'a>(&'a self, key: &'a str, body: Bytes, opts: &'a PutOptions) -> Fut<'a, Option<String>> {
        Box::pin(self.client.put(key, crate::s3::Payload::Bytes(body), opts))
    }

    fn put_whole_file<'a>(&'a self, key: &'a str, path: &'a Path, opts: &'a PutOptions) -> Fut<'a, Option<String>> {
        Box::pin(async move {
            let len = std::fs::metadata(path).map_err(|e| file_error(path, e))?.len();
            // Unsigned, as file bodies go (client.rs): the caller's Content-MD5 guards it.
            let body = crate::s3::Payload::File { path: path.to_path_buf(), offset: 0, len };
            self.client.put(key, body, opts).await
        })
    }

    fn copy<'a>(
        &'a self,
        src: &'a str,
        dst: &'a str,
        size: u64,
        src_etag: Option<&'a str>,
        opts: &'a PutOptions,
    ) -> Fut<'a, Option<String>> {
        Box::pin(self.client.copy(src, dst, (size, self.transfer.part_size), src_etag, opts))
    }

    fn delete<'a>(&'a self, key: &'a str, if_match: Option<&'a str>) -> Fut<'a, ()> {
        Box::pin(self.client.delete_if(key, if_match))
    }

    fn delete_many<'a>(&'a self, items: &'a [(String, Option<String>)]) -> Fut<'a, Vec<(String, Error)>> {
        Box::pin(self.client.delete_objects_if(items))
    }

    fn uploads<'a>(&'a self, prefix: &'a str) -> Fut<'a, Vec<Upload>> {
        Box::pin(async move {
            let all = self.client.list_multipart_uploads(prefix).await?;
            Ok(all.into_iter().map(|u| Upload { key: u.key, id: u.upload_id, initiated: u.initiated }).collect())
        })
    }

    fn abort_upload<'a>(&'a self, key: &'a str, id: &'a str) -> Fut<'a, ()> {
        Box::pin(self.client.abort_multipart(key, id))
    }
}
