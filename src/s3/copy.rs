//! Server-side copies (issue 13: a moved file is copied on S3, not sent again): CopyObject up
//! to 5 GiB, UploadPartCopy beyond. The source is pinned to the ETag the caller checked, and
//! the destination can be required not to exist, like a conditional upload.

use hyper::Method;

use super::client::{Client, Request};
use super::error::{Error, ErrorKind, Result};
use super::multipart::{part_size, parts};
use super::ops::PutOptions;
use super::sigv4::uri_encode;
use super::xml;

/// CopyObject's limit: larger objects are copied in parts.
pub const COPY_LIMIT: u64 = 5 << 30;

impl Client {
    /// `x-amz-copy-source` names the bucket and the key, URI-encoded but for its slashes; the
    /// copy goes only while the source's ETag is `etag`, when given.
    fn with_source<'a>(&self, req: Request<'a>, key: &str, etag: Option<&str>) -> Request<'a> {
        let req = req.header("x-amz-copy-source", format!("/{}/{}", self.bucket(), uri_encode(key, false)));
        match etag {
            Some(tag) => req.header("x-amz-copy-source-if-match", format!("\"{}\"", tag.trim_matches('"'))),
            None => req,
        }
    }

    /// Copies `src` (only while its ETag is `src_etag`, when given) to `dst` of `size` bytes,
    /// with `opts`' conditions on the destination. Returns the new object's ETag. Beyond 5 GiB,
    /// in parts of the uploads' own size (`part`): the copy's multipart ETag is then the one
    /// an upload of the file makes, which content checks recognise.
    pub async fn copy(
        &self,
        src: &str,
        dst: &str,
        (size, part): (u64, u64),
        src_etag: Option<&str>,
        opts: &PutOptions,
    ) -> Result<Option<String>> {
        if size > COPY_LIMIT {
            return self.copy_in_parts(src, dst, (size, part), src_etag, opts).await;
        }
        let req = self.with_source(Request::new("CopyObject", Method::PUT, Some(dst)), src, src_etag);
        // The new name's content type, not the old one's (a rename may change the extension).
        let directive = if opts.content_type.is_some() || !opts.metadata.is_empty() { "REPLACE" } else { "COPY" };
        let req = opts.apply(req.header("x-amz-metadata-directive", directive), true);
        let a = self.send_full(&req).await?;
        xml::parse_copy_result(&a.body, "CopyObjectResult")
            .map_err(|e| Error::new("CopyObject", self.uri(dst), ErrorKind::Xml(e.to_string())))
    }

    async fn copy_in_parts(
        &self,
        src: &str,
        dst: &str,
        (size, part): (u64, u64),
        src_etag: Option<&str>,
        opts: &PutOptions,
    ) -> Result<Option<String>> {
        let part = part_size(size, part)
            .map_err(|m| Error::new("CreateMultipartUpload", self.uri(dst), ErrorKind::Config(m)))?;
        let id = self.create_multipart(dst, opts).await?;
        let mut etags = Vec::new();
        for (n, offset, len) in parts(size, part) {
            match self.upload_part_copy(src, dst, &id, n, (offset, offset + len - 1), src_etag).await {
                Ok(tag) => etags.push((n, tag)),
                Err(e) => {
                    let _ = self.abort_multipart(dst, &id).await;
                    return Err(e);
                }
            }
        }
        match self.complete_multipart(dst, &id, &etags, opts).await {
            Ok(tag) => Ok(Some(tag)),
            Err(e) => {
                let _ = self.abort_multipart(dst, &id).await;
                Err(e)
            }
        }
    }

    async fn upload_part_copy(
        &self,
        src: &str,
        dst: &str,
        id: &str,
        number: u32,
        (first, last): (u64, u64),
        src_etag: Option<&str>,
    ) -> Result<String> {
        let req = Request::new("UploadPartCopy", Method::PUT, Some(dst))
            .query("partNumber", number.to_string())
            .query("uploadId", id)
            .header("x-amz-copy-source-range", format!("bytes={first}-{last}"));
        let req = self.with_source(req, src, src_etag);
        let a = self.send_full(&req).await?;
        let fail = |m: String| Error::new("UploadPartCopy", self.uri(dst), ErrorKind::Xml(m));
        xml::parse_copy_result(&a.body, "CopyPartResult")
            .map_err(|e| fail(e.to_string()))?
            .ok_or_else(|| fail(format!("part {number}: no ETag in the answer")))
    }
}
