//! A store in memory for the engine's unit tests (lease, merge) that misbehaves as real ones
//! were measured to: down for a while, PUT answers lost, listings that lag (a deleted key still
//! listed, a present one not yet), on tokio's clock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::s3::{Error, ErrorKind, Meter, PutOptions};
use crate::sync::remote::{Fresh, Fut, Meta, Page, Remote, Upload};

/// A store with objects in memory that is down (every call fails) or loses the answers of
/// PUTs (they land, the caller hears an error) between two offsets of the clock.
pub struct Flaky {
    pub objects: Mutex<BTreeMap<String, (Bytes, String)>>,
    t0: Instant,
    pub down: Mutex<Option<(Duration, Duration)>>,
    pub lose_answers: Mutex<Option<(Duration, Duration)>>,
    /// Deleted, yet still listed (HEAD and GET know better).
    pub ghosts: Mutex<BTreeMap<String, Meta>>,
    /// Present, yet not listed.
    pub hidden: Mutex<BTreeSet<String>>,
}

impl Flaky {
    pub fn new() -> Arc<Flaky> {
        Arc::new(Flaky {
            objects: Default::default(),
            t0: Instant::now(),
            down: Default::default(),
            lose_answers: Default::default(),
            ghosts: Default::default(),
            hidden: Default::default(),
        })
    }

    fn within(&self, w: &Mutex<Option<(Duration, Duration)>>) -> bool {
        let at = self.t0.elapsed();
        w.lock().unwrap().is_some_and(|(from, to)| at >= from && at < to)
    }

    fn check(&self, op: &'static str, key: &str) -> crate::s3::Result<()> {
        match self.within(&self.down) {
            true => Err(Error::new(op, key, ErrorKind::Transport("connection refused".into()))),
            false => Ok(()),
        }
    }
}

fn meta(body: &Bytes, etag: &str) -> Meta {
    Meta { size: body.len() as u64, etag: Some(etag.to_string()), lm: Some(0) }
}

impl Remote for Flaky {
    fn uri(&self, key: &str) -> String {
        format!("s3://flaky/{key}")
    }
    fn store_id(&self) -> String {
        "flaky".into()
    }
    fn list<'a>(&'a self, prefix: &'a str, _: Option<&'a str>, _: Option<&'a str>) -> Fut<'a, Page> {
        Box::pin(async move {
            self.check("ListObjectsV2", prefix)?;
            let all = self.objects.lock().unwrap();
            let hidden = self.hidden.lock().unwrap();
            let mut objects: BTreeMap<String, Meta> = all
                .iter()
                .filter(|(k, _)| k.starts_with(prefix) && !hidden.contains(*k))
                .map(|(k, (b, e))| (k.clone(), meta(b, e)))
                .collect();
            for (k, m) in self.ghosts.lock().unwrap().iter().filter(|(k, _)| k.starts_with(prefix)) {
                objects.insert(k.clone(), m.clone());
            }
            Ok(Page { objects: objects.into_iter().collect(), next: None })
        })
    }
    fn head<'a>(&'a self, key: &'a str) -> Fut<'a, Option<Meta>> {
        Box::pin(async move {
            self.check("HeadObject", key)?;
            Ok(self.objects.lock().unwrap().get(key).map(|(b, e)| meta(b, e)))
        })
    }
    fn get_bytes<'a>(&'a self, key: &'a str) -> Fut<'a, Option<(Bytes, Meta)>> {
        Box::pin(async move {
            self.check("GetObject", key)?;
            Ok(self.objects.lock().unwrap().get(key).map(|(b, e)| (b.clone(), meta(b, e))))
        })
    }
    fn get_if_changed<'a>(&'a self, key: &'a str, _: &'a str) -> Fut<'a, Fresh> {
        Box::pin(async move { Err(Error::new("GetObject", key, ErrorKind::Config("not in this test".into()))) })
    }
    fn get_file<'a>(&'a self, key: &'a str, _: &'a Path, _: u64, _: Option<&'a str>, _: &'a Meter) -> Fut<'a, Meta> {
        Box::pin(async move { Err(Error::new("GetObject", key, ErrorKind::Config("not in this test".into()))) })
    }
    fn put_file<'a>(
        &'a self,
        key: &'a str,
        _: &'a Path,
        _: u64,
        _: &'a PutOptions,
        _: &'a Meter,
    ) -> Fut<'a, Option<String>> {
        Box::pin(async move { Err(Error::new("PutObject", key, ErrorKind::Config("not in this test".into()))) })
    }
    fn put_bytes<'a>(&'a self, key: &'a str, body: Bytes, _: &'a PutOptions) -> Fut<'a, Option<String>> {
        Box::pin(async move {
            self.check("PutObject", key)?;
            use md5::Digest;
            let etag = hex::encode(md5::Md5::digest(&body));
            self.objects.lock().unwrap().insert(key.to_string(), (body, etag.clone()));
            if self.within(&self.lose_answers) {
                return Err(Error::new("PutObject", key, ErrorKind::Transport("connection reset".into())));
            }
            Ok(Some(etag))
        })
    }
    fn copy<'a>(
        &'a self,
        _: &'a str,
        dst: &'a str,
        _: u64,
        _: Option<&'a str>,
        _: &'a PutOptions,
    ) -> Fut<'a, Option<String>> {
        Box::pin(async move { Err(Error::new("CopyObject", dst, ErrorKind::Config("not in this test".into()))) })
    }
    fn delete<'a>(&'a self, key: &'a str, _: Option<&'a str>) -> Fut<'a, ()> {
        Box::pin(async move {
            self.check("DeleteObject", key)?;
            self.objects.lock().unwrap().remove(key);
            Ok(())
        })
    }
    fn delete_many<'a>(&'a self, _: &'a [(String, Option<String>)]) -> Fut<'a, Vec<(String, Error)>> {
        Box::pin(async move { Ok(Vec::new()) })
    }
    fn uploads<'a>(&'a self, _: &'a str) -> Fut<'a, Vec<Upload>> {
        Box::pin(async move { Ok(Vec::new()) })
    }
    fn abort_upload<'a>(&'a self, _: &'a str, _: &'a str) -> Fut<'a, ()> {
        Box::pin(async move { Ok(()) })
    }
}
