//! S3 XML documents: parsing the answers (streaming, no DOM); the request bodies we send are
//! built in [`super::bodies`].
//!
//! Every parser takes the raw body and never panics: malformed input is an [`XmlError`]
//! whose message names what was wrong. Elements are matched on local names, so documents
//! with or without the `http://s3.amazonaws.com/doc/2006-03-01/` namespace parse alike;
//! unknown elements (Owner, StorageClass, ChecksumAlgorithm, ...) are skipped.

use quick_xml::events::Event;
use quick_xml::Reader;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError(pub String);

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for XmlError {}

pub(super) fn err(msg: impl Into<String>) -> XmlError {
    XmlError(msg.into())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
    /// Raw ISO8601 text as S3 sent it (see [`parse_iso8601`]).
    pub last_modified: String,
    /// Quotes stripped.
    pub etag: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<Object>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_continuation_token: Option<String>,
    pub key_count: Option<u64>,
    /// The request's prefix as the store echoed it.
    pub prefix: Option<String>,
    /// The store said `<EncodingType>url</EncodingType>` (some, like s3s-fs, say so and
    /// still send keys as they are: see [`url_evidence`]).
    pub url_claimed: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3ErrorBody {
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    /// `<Region>`, as AWS sends on wrong-region errors.
    pub region: Option<String>,
    /// `<Endpoint>`, as AWS sends on PermanentRedirect.
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteFailure {
    pub key: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub key: String,
    pub upload_id: String,
    /// Unix seconds, when the store says.
    pub initiated: Option<i64>,
}

// ---------------------------------------------------------------------------------------
// A thin streaming layer over quick-xml: start/end/text events with local names, entity
// and CDATA unescaping, and an explicit check that the document is not cut short.

enum Ev {
    Start(String),
    End,
    Text(String),
    Eof,
}

pub(super) struct Xml<'a> {
    r: Reader<&'a [u8]>,
    open: Vec<String>,
}

impl<'a> Xml<'a> {
    pub(super) fn new(xml: &'a [u8]) -> Self {
        let mut r = Reader::from_reader(xml);
        let c = r.config_mut();
        c.check_end_names = true;
        c.expand_empty_elements = true; // <Prefix/> arrives as Start + End
        let open = Vec::new();
        Xml { r, open }
    }

    fn bad(&self, what: &str, e: impl fmt::Display) -> XmlError {
        let inside = self.open.last().map(|n| format!(" inside <{n}>"));
        err(format!("{what}{}: {e}", inside.unwrap_or_default()))
    }

    fn next(&mut self) -> Result<Ev, XmlError> {
        loop {
            let pos = self.r.buffer_position();
            let ev = self.r.read_event();
            match ev.map_err(|e| self.bad(&format!("malformed XML at byte {pos}"), e))? {
                Event::Start(s) => {
                    let name = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                    self.open.push(name.clone());
                    return Ok(Ev::Start(name));
                }
                Event::End(_) => {
                    self.open.pop();
                    return Ok(Ev::End);
                }
                Event::Text(t) => {
                    let t = t.unescape().map_err(|e| self.bad("bad text", e))?;
                    return Ok(Ev::Text(t.into_owned()));
                }
                Event::CData(c) => {
                    let t = c.decode().map_err(|e| self.bad("bad CDATA", e))?;
                    return Ok(Ev::Text(t.into_owned()));
                }
                Event::Eof if !self.open.is_empty() => return Err(self.bad("document truncated", "unexpected end")),
                Event::Eof => return Ok(Ev::Eof),
                // Empty never comes with expand_empty_elements.
                Event::Empty(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
                Event::DocType(_) => {}
            }
        }
    }

    /// The root element's local name; None for an empty body or one that is not XML markup.
    fn root(&mut self) -> Result<Option<String>, XmlError> {
        loop {
            match self.next()? {
                Ev::Start(n) => return Ok(Some(n)),
                Ev::Text(t) if t.trim().is_empty() => {}
                _ => return Ok(None),
            }
        }
    }

    /// Reads the root element, which must be `want`. An `<Error>` document instead (S3 can
    /// answer 200 with one) is reported by its code and message.
    pub(super) fn expect_root(&mut self, want: &str) -> Result<(), XmlError> {
        let found = match self.root()? {
            Some(n) if n == want => return Ok(()),
            // moto names the CompleteMultipartUpload answer `...Response`, rclone serve s3 the
            // InitiateMultipartUpload one without `Result`; same content.
            Some(n) if want.strip_suffix("Result").is_some_and(|w| n == w || n.strip_suffix("Response") == Some(w)) => {
                return Ok(())
            }
            Some(n) if n == "Error" => {
                let e = error_body(self)?;
                format!("<Error> {}: {}", e.code, e.message)
            }
            Some(n) => format!("<{n}>"),
            None => "no element".to_owned(),
        };
        Err(err(format!("expected <{want}> document, found {found}")))
    }

    /// After a Start: the element's text content, up to and including its End.
    pub(super) fn text(&mut self) -> Result<String, XmlError> {
        let mut out = String::new();
        loop {
            match self.next()? {
                Ev::Text(t) => out.push_str(&t),
                Ev::End | Ev::Eof => return Ok(out), // Eof with open elements is an Err in next()
                Ev::Start(n) => {
                    let parent = self.open.iter().rev().nth(1).cloned().unwrap_or_default();
                    return Err(err(format!("unexpected element <{n}> inside <{parent}>")));
                }
            }
        }
    }

    /// After a Start: consume the element and everything in it (iteratively: a deeply
    /// nested document must not exhaust the stack).
    pub(super) fn skip(&mut self) -> Result<(), XmlError> {
        let mut depth = 1usize;
        while depth > 0 {
            match self.next()? {
                Ev::Start(_) => depth += 1,
                Ev::End | Ev::Eof => depth -= 1,
                Ev::Text(_) => {}
            }
        }
        Ok(())
    }

    /// After a Start: call `f` for each child element (which `f` must consume whole with
    /// `text`, `skip`, `children` or `fields`), up to and including the element's End.
    pub(super) fn children(
        &mut self,
        mut f: impl FnMut(&mut Self, &str) -> Result<(), XmlError>,
    ) -> Result<(), XmlError> {
        loop {
            match self.next()? {
                Ev::Start(n) => f(self, &n)?,
                Ev::End | Ev::Eof => return Ok(()),
                Ev::Text(_) => {}
            }
        }
    }

    /// After a Start: the text of each child named in `names` (the last one wins when
    /// repeated); other children are skipped.
    pub(super) fn fields<const N: usize>(&mut self, names: [&str; N]) -> Result<[Option<String>; N], XmlError> {
        let mut out = [(); N].map(|_| None);
        self.children(|x, n| match names.iter().position(|f| *f == n) {
            Some(i) => x.text().map(|t| out[i] = Some(t)),
            None => x.skip(),
        })?;
        Ok(out)
    }
}

pub(super) fn required<T>(v: Option<T>, field: &str, parent: &str) -> Result<T, XmlError> {
    v.ok_or_else(|| err(format!("missing <{field}> in <{parent}>")))
}

pub(super) fn parse_u64(s: &str, field: &str) -> Result<u64, XmlError> {
    s.trim().parse().map_err(|_| err(format!("<{field}> is not a number: {s:?}")))
}

pub(super) fn parse_bool(s: &str, field: &str) -> Result<bool, XmlError> {
    match s.trim() {
        "true" | "True" | "TRUE" => Ok(true),
        "false" | "False" | "FALSE" => Ok(false),
        _ => Err(err(format!("<{field}> is not true/false: {s:?}"))),
    }
}

pub(super) fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub(super) fn strip_quotes(s: &str) -> String {
    let s = s.strip_prefix('"').unwrap_or(s);
    s.strip_suffix('"').unwrap_or(s).to_owned()
}

pub(super) fn is_url(s: &str) -> bool {
    s.trim().eq_ignore_ascii_case("url")
}

/// `encoding-type=url` values: '+' is a space, %XX a byte; the result must be UTF-8.
pub(super) fn url_decode(s: &str, field: &str) -> Result<String, XmlError> {
    if !s.contains(['%', '+']) {
        return Ok(s.to_owned());
    }
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => out.push(b' '),
            b'%' => match (hex(b.get(i + 1)), hex(b.get(i + 2))) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => return Err(err(format!("invalid percent escape in <{field}>: {s:?}"))),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| err(format!("<{field}> is not UTF-8 after URL-decoding: {s:?}")))
}

/// What the keys of one `encoding-type=url` listing say about the store: stores differ. AWS
/// encodes keys and the echoed prefix; Ceph RGW encodes keys, '/' included, and echoes the
/// prefix plain; s3s-fs claims the encoding and sends keys as they are. Only the keys matter,
/// and only evidence that cannot misread a real key counts: every listed key starts with the
/// requested prefix, and no encoder sends a space, a control or non-ASCII byte, or a bare `%`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlEvidence {
    /// Keys are encoded: decode them.
    Encoded,
    /// Keys are sent as they are.
    Raw,
    /// Decoding would change no key: either reading gives the same keys.
    Irrelevant,
    /// These keys (the first few) read as two different keys each, and nothing on the page
    /// tells which is real (the caller asks the store: HEAD each reading).
    Ambiguous(Vec<String>),
}

/// See [`UrlEvidence`]. `prefix` is the prefix the request asked for (never the echo).
pub fn url_evidence<'a>(prefix: &str, keys: impl IntoIterator<Item = &'a str>) -> Result<UrlEvidence, XmlError> {
    let (mut encoded, mut raw, mut ambiguous) = (false, false, Vec::new());
    for k in keys {
        let never_encoded = k.bytes().any(|b| b <= b' ' || b >= 0x7f);
        let decoded = if never_encoded { None } else { url_decode(k, "Key").ok() };
        match decoded {
            None => raw = true,
            Some(d) if d == k => {}
            Some(d) => match (k.starts_with(prefix), d.starts_with(prefix)) {
                (false, true) => encoded = true,
                (true, false) => raw = true,
                _ if ambiguous.len() < 8 => ambiguous.push(k.to_string()),
                _ => {}
            },
        }
    }
    match (encoded, raw) {
        (true, true) => Err(err(format!(
            "the store's listing of prefix {prefix:?} mixes URL-encoded and plain keys; s4 cannot tell which keys \
             are real and stops rather than misread one"
        ))),
        (true, false) => Ok(UrlEvidence::Encoded),
        (false, true) => Ok(UrlEvidence::Raw),
        (false, false) if ambiguous.is_empty() => Ok(UrlEvidence::Irrelevant),
        (false, false) => Ok(UrlEvidence::Ambiguous(ambiguous)),
    }
}

// ---------------------------------------------------------------------------------------
// Parsers

/// ListBucketResult of ListObjectsV2. When the document contains <EncodingType>url</EncodingType>,
/// Key, Prefix (in CommonPrefixes), StartAfter, Delimiter values are URL-decoded: '+' → ' ', %XX → byte,
/// then the bytes must be valid UTF-8 (else XmlError). Without that element nothing is decoded.
/// (StartAfter and Delimiter only echo the request and are not returned, so they are skipped.)
pub fn parse_list_objects_v2(xml: &[u8]) -> Result<ListPage, XmlError> {
    let mut page = parse_list_objects_v2_raw(xml)?;
    if page.url_claimed {
        url_decode_page(&mut page)?;
    }
    Ok(page)
}

/// The page exactly as sent, nothing decoded.
pub fn parse_list_objects_v2_raw(xml: &[u8]) -> Result<ListPage, XmlError> {
    let mut x = Xml::new(xml);
    x.expect_root("ListBucketResult")?;
    let mut page = ListPage::default();
    x.children(|x, name| {
        match name {
            "Contents" => page.objects.push(parse_object(x)?),
            "CommonPrefixes" => x.children(|x, n| {
                if n == "Prefix" {
                    page.common_prefixes.push(x.text()?);
                    return Ok(());
                }
                x.skip()
            })?,
            "IsTruncated" => page.is_truncated = parse_bool(&x.text()?, name)?,
            "NextContinuationToken" => page.next_continuation_token = non_empty(x.text()?),
            "KeyCount" => page.key_count = Some(parse_u64(&x.text()?, name)?),
            "EncodingType" => page.url_claimed = is_url(&x.text()?),
            "Prefix" => page.prefix = Some(x.text()?),
            _ => x.skip()?,
        }
        Ok(())
    })?;
    Ok(page)
}

/// URL-decode the keys and common prefixes of a raw page. The echoed prefix stays as sent:
/// stores disagree on encoding it (RGW does not), and it only echoes the request.
pub fn url_decode_page(page: &mut ListPage) -> Result<(), XmlError> {
    for o in &mut page.objects {
        o.key = url_decode(&o.key, "Key")?;
    }
    for p in &mut page.common_prefixes {
        *p = url_decode(p, "Prefix")?;
    }
    Ok(())
}

fn parse_object(x: &mut Xml) -> Result<Object, XmlError> {
    let [key, size, modified, etag] = x.fields(["Key", "Size", "LastModified", "ETag"])?;
    Ok(Object {
        key: required(key, "Key", "Contents")?,
        size: parse_u64(&required(size, "Size", "Contents")?, "Size")?,
        last_modified: required(modified, "LastModified", "Contents")?,
        etag: etag.map(|e| strip_quotes(&e)),
    })
}

/// Parses an <Error> document; Ok(None) if the root element is not <Error> (e.g. empty body or another document).
pub fn parse_error(xml: &[u8]) -> Result<Option<S3ErrorBody>, XmlError> {
    let mut x = Xml::new(xml);
    match x.root()? {
        Some(n) if n == "Error" => error_body(&mut x).map(Some),
        _ => Ok(None),
    }
}

fn error_body(x: &mut Xml) -> Result<S3ErrorBody, XmlError> {
    let [code, message, request_id, region, endpoint] =
        x.fields(["Code", "Message", "RequestId", "Region", "Endpoint"])?;
    let code = required(code, "Code", "Error")?;
    let message = message.unwrap_or_default();
    Ok(S3ErrorBody { code, message, request_id, region, endpoint })
}

/// Reads the root `want` and returns the text of its child `field` (required, non-empty).
fn single_field(xml: &[u8], want: &str, field: &str) -> Result<String, XmlError> {
    let mut x = Xml::new(xml);
    x.expect_root(want)?;
    let [value] = x.fields([field])?;
    required(value.and_then(non_empty), field, want)
}

/// InitiateMultipartUploadResult → UploadId
pub fn parse_initiate_multipart(xml: &[u8]) -> Result<String, XmlError> {
    single_field(xml, "InitiateMultipartUploadResult", "UploadId")
}

/// CompleteMultipartUploadResult → ETag (quotes stripped), `None` when the store leaves it
/// empty (Ceph RGW 16.2 answers `<ETag></ETag>`). NB: S3 may answer 200 with an <Error> body:
/// the caller checks parse_error first; this function returns Err if the root is not CompleteMultipartUploadResult.
pub fn parse_complete_multipart(xml: &[u8]) -> Result<Option<String>, XmlError> {
    let mut x = Xml::new(xml);
    x.expect_root("CompleteMultipartUploadResult")?;
    let [etag] = x.fields(["ETag"])?;
    Ok(etag.map(|e| strip_quotes(&e)).and_then(non_empty))
}

/// CopyObjectResult / CopyPartResult → ETag (quotes stripped), `None` when empty. (An
/// <Error> answered with 200 is caught before, by the request path.)
pub fn parse_copy_result(xml: &[u8], root: &str) -> Result<Option<String>, XmlError> {
    let mut x = Xml::new(xml);
    x.expect_root(root)?;
    let [etag] = x.fields(["ETag"])?;
    Ok(etag.map(|e| strip_quotes(&e)).and_then(non_empty))
}

/// DeleteResult → (deleted keys, failures)
pub fn parse_delete_result(xml: &[u8]) -> Result<(Vec<String>, Vec<DeleteFailure>), XmlError> {
    let mut x = Xml::new(xml);
    x.expect_root("DeleteResult")?;
    let (mut deleted, mut failed) = (Vec::new(), Vec::new());
    x.children(|x, name| {
        if name == "Deleted" {
            let [key] = x.fields(["Key"])?;
            deleted.push(required(key, "Key", name)?);
        } else if name == "Error" {
            let [key, code, message] = x.fields(["Key", "Code", "Message"])?;
            failed.push(DeleteFailure {
                key: required(key, "Key", name)?,
                code: required(code, "Code", name)?,
                message: message.unwrap_or_default(),
            });
        } else {
            x.skip()?;
        }
        Ok(())
    })?;
    Ok((deleted, failed))
}

/// ListMultipartUploadsResult → (uploads, is_truncated, next_key_marker, next_upload_id_marker); URL-decoding as above when EncodingType is url.
#[allow(clippy::type_complexity)]
pub fn parse_list_multipart_uploads(
    xml: &[u8],
) -> Result<(Vec<Upload>, bool, Option<String>, Option<String>), XmlError> {
    let mut x = Xml::new(xml);
    x.expect_root("ListMultipartUploadsResult")?;
    let (mut uploads, mut truncated, mut url) = (Vec::new(), false, false);
    let (mut next_key, mut next_id) = (None, None);
    x.children(|x, name| {
        match name {
            "Upload" => {
                let [key, id, initiated] = x.fields(["Key", "UploadId", "Initiated"])?;
                let key = required(key, "Key", name)?;
                let upload_id = required(id, "UploadId", name)?;
                let initiated = initiated.as_deref().and_then(parse_iso8601);
                uploads.push(Upload { key, upload_id, initiated });
            }
            "IsTruncated" => truncated = parse_bool(&x.text()?, name)?,
            "NextKeyMarker" => next_key = non_empty(x.text()?),
            "NextUploadIdMarker" => next_id = non_empty(x.text()?),
            "EncodingType" => url = is_url(&x.text()?),
            _ => x.skip()?,
        }
        Ok(())
    })?;
    if url {
        for u in &mut uploads {
            u.key = url_decode(&u.key, "Key")?;
        }
        next_key = next_key.map(|k| url_decode(&k, "NextKeyMarker")).transpose()?;
    }
    Ok((uploads, truncated, next_key, next_id))
}

/// One stored part of a multipart upload (ListParts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub number: u32,
    pub etag: String,
    pub size: u64,
}

/// A ListParts page: the parts, and the marker of the next page when truncated.
pub fn parse_list_parts(xml: &[u8]) -> Result<(Vec<Part>, Option<u32>), XmlError> {
    let mut x = Xml::new(xml);
    x.expect_root("ListPartsResult")?;
    let (mut parts, mut truncated, mut next) = (Vec::new(), false, None);
    x.children(|x, name| {
        match name {
            "Part" => {
                let [number, etag, size] = x.fields(["PartNumber", "ETag", "Size"])?;
                let number = parse_u64(&required(number, "PartNumber", name)?, "PartNumber")?;
                let number = u32::try_from(number).map_err(|_| err(format!("PartNumber {number} out of range")))?;
                let etag = strip_quotes(&required(etag, "ETag", name)?);
                let size = parse_u64(&required(size, "Size", name)?, "Size")?;
                parts.push(Part { number, etag, size });
            }
            "IsTruncated" => truncated = parse_bool(&x.text()?, name)?,
            "NextPartNumberMarker" => next = x.text()?.trim().parse::<u32>().ok(),
            _ => x.skip()?,
        }
        Ok(())
    })?;
    Ok((parts, if truncated { next } else { None }))
}

// ---------------------------------------------------------------------------------------
// Dates

/// ISO8601 "2009-10-12T17:50:30.000Z" (also without millis, and with "+00:00") → unix seconds (floor), by hand (days-from-civil).
pub fn parse_iso8601(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| digits(b.get(r)?);
    let at = |i: usize, ok: &[u8]| b.get(i).is_some_and(|c| ok.contains(c));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = match mo {
        2 => 28 + i64::from(leap),
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if d < 1 || d > month_days || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = b.get(19..)?;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        rest = frac.get(n..).filter(|_| n > 0)?;
    }
    // The fraction only adds to a non-negative remainder, so dropping it is the floor.
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), tz @ ..] if matches!(tz, [_, _, b':', _, _] | [_, _, _, _]) => {
            let secs = digits(&tz[..2])? * 3600 + digits(&tz[tz.len() - 2..])? * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

fn digits(d: &[u8]) -> Option<i64> {
    let ok = !d.is_empty() && d.iter().all(u8::is_ascii_digit);
    ok.then(|| d.iter().fold(0, |acc, c| acc * 10 + i64::from(c - b'0')))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
#[cfg(test)]
#[path = "xml_tests.rs"]
mod tests;
