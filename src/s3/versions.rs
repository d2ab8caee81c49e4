//! Object versions: the versions of one key (ListObjectVersions), and the bucket's versioning
//! state (GetBucketVersioning, PutBucketVersioning). Fetching a version's bytes is a GET with
//! `versionId` (`Client::download_version_to_file`).
//!
//! The parsers are pure and share `xml`'s streaming layer; the `Client` methods are thin.

use bytes::Bytes;
use hyper::Method;

use super::client::{Client, Request};
use super::error::{Error, ErrorKind, Result};
use super::http::Payload;
use super::xml::{
    is_url, non_empty, parse_bool, parse_iso8601, parse_u64, required, strip_quotes, url_decode, Xml, XmlError,
};

/// One entry of ListObjectVersions: a version with content, or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub key: String,
    /// `"null"` for an object written while versioning was off.
    pub version_id: String,
    /// The current version of the key (a delete marker here means the key reads as deleted).
    pub is_latest: bool,
    /// Raw ISO8601 text as the store sent it.
    pub last_modified: String,
    /// 0 for delete markers.
    pub size: u64,
    /// Quotes stripped; delete markers have none.
    pub etag: Option<String>,
    pub delete_marker: bool,
}

impl Version {
    /// Unix seconds of LastModified (None if the store sent something unreadable).
    pub fn time(&self) -> Option<i64> {
        parse_iso8601(&self.last_modified)
    }

    /// Milliseconds since the epoch: versions written within one second still sort.
    fn time_ms(&self) -> Option<i64> {
        let frac = self.last_modified.split_once('.').map(|(_, f)| f).unwrap_or("");
        let digits: String = frac.chars().take_while(char::is_ascii_digit).chain("000".chars()).take(3).collect();
        Some(self.time()? * 1000 + digits.parse::<i64>().unwrap_or(0))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionsPage {
    /// In document order (moto lists all Versions before all DeleteMarkers; S3 interleaves).
    pub versions: Vec<Version>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
    /// The store said `<EncodingType>url</EncodingType>` (see `Client::keys_are_encoded`).
    pub url_claimed: bool,
}

/// A bucket's versioning state, as GetBucketVersioning tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    Enabled,
    /// Was on, now off: versions made before stay, new writes replace the `null` version.
    Suspended,
    /// Never enabled: the store keeps only the current object.
    Off,
}

/// ListVersionsResult, keys left as sent (see [`url_decode_versions`]).
pub fn parse_list_versions(xml: &[u8]) -> Result<VersionsPage, XmlError> {
    let mut x = Xml::new(xml);
    x.expect_root("ListVersionsResult")?;
    let mut page = VersionsPage::default();
    x.children(|x, name| {
        match name {
            "Version" | "DeleteMarker" => page.versions.push(parse_version(x, name)?),
            "IsTruncated" => page.is_truncated = parse_bool(&x.text()?, name)?,
            "NextKeyMarker" => page.next_key_marker = non_empty(x.text()?),
            "NextVersionIdMarker" => page.next_version_id_marker = non_empty(x.text()?),
            "EncodingType" => page.url_claimed = is_url(&x.text()?),
            _ => x.skip()?,
        }
        Ok(())
    })?;
    Ok(page)
}

fn parse_version(x: &mut Xml, element: &str) -> Result<Version, XmlError> {
    let [key, id, latest, modified, size, etag] =
        x.fields(["Key", "VersionId", "IsLatest", "LastModified", "Size", "ETag"])?;
    let delete_marker = element == "DeleteMarker";
    let size = match size {
        Some(s) => parse_u64(&s, "Size")?,
        None if delete_marker => 0,
        None => return Err(XmlError(format!("missing <Size> in <{element}>"))),
    };
    Ok(Version {
        key: required(key, "Key", element)?,
        // Stores that never had versioning on may leave it out: that is the "null" version.
        version_id: id.and_then(non_empty).unwrap_or_else(|| "null".into()),
        is_latest: latest.map(|l| parse_bool(&l, "IsLatest")).transpose()?.unwrap_or(false),
        last_modified: required(modified, "LastModified", element)?,
        size,
        etag: etag.map(|e| strip_quotes(&e)),
        delete_marker,
    })
}

/// URL-decode the keys and the next key marker of a raw page. The marker is decoded only when
/// it reads as one of the page's keys as sent: AWS encodes it, Ceph RGW sends it plain (its raw
/// `%41` would otherwise become `A`, a wrong marker).
pub fn url_decode_versions(page: &mut VersionsPage) -> Result<(), XmlError> {
    let marker_as_sent = page.next_key_marker.as_ref().is_some_and(|m| page.versions.iter().any(|v| v.key == *m));
    for v in &mut page.versions {
        v.key = url_decode(&v.key, "Key")?;
    }
    if marker_as_sent {
        page.next_key_marker = page.next_key_marker.take().map(|k| url_decode(&k, "NextKeyMarker")).transpose()?;
    }
    Ok(())
}

/// The versions of exactly `key` among `all`, newest first: the current one, then by
/// LastModified (to the millisecond), then in the store's order, which is newest first.
pub fn versions_of(key: &str, all: Vec<Version>) -> Vec<Version> {
    let mut v: Vec<Version> = all.into_iter().filter(|v| v.key == key).collect();
    v.sort_by_key(|v| (std::cmp::Reverse(v.is_latest), std::cmp::Reverse(v.time_ms())));
    v
}

/// VersioningConfiguration → state; no `<Status>` means versioning was never enabled.
pub fn parse_versioning(xml: &[u8]) -> Result<Versioning, XmlError> {
    // moto 5.2 names the root GetBucketVersioningResponse; same content.
    let moto = Xml::new(xml).expect_root("GetBucketVersioningResponse").is_ok();
    let mut x = Xml::new(xml);
    x.expect_root(if moto { "GetBucketVersioningResponse" } else { "VersioningConfiguration" })?;
    let [status] = x.fields(["Status"])?;
    match status.as_deref().map(str::trim) {
        None | Some("") => Ok(Versioning::Off),
        Some("Enabled") => Ok(Versioning::Enabled),
        Some("Suspended") => Ok(Versioning::Suspended),
        Some(other) => Err(XmlError(format!("<Status> is neither Enabled nor Suspended: {other:?}"))),
    }
}

/// The PutBucketVersioning body.
pub fn versioning_body(enabled: bool) -> String {
    let status = if enabled { "Enabled" } else { "Suspended" };
    format!(
        "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>{status}</Status></VersioningConfiguration>"
    )
}

impl Client {
    /// Every version and delete marker of exactly `key`, newest first (see [`versions_of`]).
    pub async fn object_versions(&self, key: &str) -> Result<Vec<Version>> {
        let fail = |kind| Error::new("ListObjectVersions", self.uri(key), kind);
        let mut all = Vec::new();
        let mut marker: Option<(String, Option<String>)> = None;
        loop {
            let mut req = Request::new("ListObjectVersions", Method::GET, None)
                .query("versions", "")
                .query("encoding-type", "url")
                .query("prefix", key);
            if let Some((k, id)) = &marker {
                req = req.query("key-marker", k.clone());
                if let Some(id) = id {
                    req = req.query("version-id-marker", id.clone());
                }
            }
            let answer = self.send_full(&req).await.map_err(|mut e| {
                e.object = self.uri(key);
                e
            })?;
            let xml_err = |e: XmlError| fail(ErrorKind::Xml(e.to_string()));
            let mut page = parse_list_versions(&answer.body).map_err(xml_err)?;
            if page.url_claimed {
                let evidence = super::xml::url_evidence(key, page.versions.iter().map(|v| v.key.as_str()));
                // The versions of `key` itself read the same either way unless the page shows
                // which reading is right (see `Client::keys_are_encoded`): never ask the store.
                let evidence = match evidence.map_err(xml_err)? {
                    super::xml::UrlEvidence::Ambiguous(_) => super::xml::UrlEvidence::Irrelevant,
                    e => e,
                };
                if self.keys_are_encoded(evidence).await? {
                    url_decode_versions(&mut page).map_err(xml_err)?;
                }
            }
            // Listings run in key order and `key` is the first key with its own prefix:
            // once another key shows up, every version of ours has been seen.
            let past = page.versions.iter().any(|v| v.key != key);
            all.extend(page.versions);
            match page.next_key_marker {
                // A store that repeats its marker would loop for ever: that too ends the listing.
                Some(k) if page.is_truncated && !past && marker.as_ref().is_none_or(|(m, _)| *m != k) => {
                    marker = Some((k, page.next_version_id_marker))
                }
                // A truncated page without a marker would loop for ever: treat it as the end.
                _ => break,
            }
        }
        Ok(versions_of(key, all))
    }

    /// GetBucketVersioning. Stores without versioning answer 501 NotImplemented.
    pub async fn versioning(&self) -> Result<Versioning> {
        let req = Request::new("GetBucketVersioning", Method::GET, None).query("versioning", "");
        let answer = self.send_full(&req).await?;
        parse_versioning(&answer.body)
            .map_err(|e| Error::new("GetBucketVersioning", self.uri(""), ErrorKind::Xml(e.to_string())))
    }

    /// PutBucketVersioning: on (`true`) or suspended.
    pub async fn set_versioning(&self, enabled: bool) -> Result<()> {
        let body = versioning_body(enabled);
        let req = Request::new("PutBucketVersioning", Method::PUT, None)
            .query("versioning", "")
            .header("content-md5", super::ops::content_md5(body.as_bytes()))
            .header("content-type", "application/xml")
            .payload(Payload::Bytes(Bytes::from(body)));
        self.send_full(&req).await.map(|_| ())
    }
}

#[cfg(test)]
#[path = "versions_tests.rs"]
mod tests;
