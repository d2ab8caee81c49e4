//! AWS Signature Version 4, header and query-string (presigned URL) forms.
//!
//! Follows "Create a signed AWS API request" (IAM user guide, docs.aws.amazon.com/IAM/latest/
//! UserGuide/create-signed-request.html) and the S3 API reference "Authenticating Requests
//! (AWS Signature Version 4)" (docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-
//! requests.html). Pure: the caller passes the time in as unix seconds, so every stage can be
//! checked against the published examples with a fixed clock.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// SHA-256 hex of an empty body, and the UNSIGNED-PAYLOAD marker.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// RFC 3986 encoding as SigV4 wants it: unreserved A-Z a-z 0-9 - . _ ~ kept, everything else
/// %XX uppercase (UTF-8 bytes); '/' kept when encode_slash is false (used for S3 object key paths).
///
/// AWS: "URI encode every byte ... hexadecimal digits must be uppercase"; S3 keys keep '/'
/// in the path but not in query values ("UriEncode()" in the S3 sig-v4 header-based auth page).
/// Done by hand because generic URL encoders disagree with AWS on '*', '~' or space ('+').
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        let keep = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (b == b'/' && !encode_slash);
        if keep {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0x0f)] as char);
        }
    }
    out
}

/// Query string for the wire AND the canonical request: each name and value
/// uri_encode(.., true)'d, pairs sorted by encoded name then encoded value, joined as `a=b&c=`
/// (a pair with empty value still gets '=').
///
/// Sorting after encoding is what AWS specifies ("sort the encoded parameter names by character
/// code"); sending the same string on the wire means the server sees exactly what was signed.
pub fn canonical_query(pairs: &[(&str, &str)]) -> String {
    let mut enc: Vec<(String, String)> =
        pairs.iter().map(|(k, v)| (uri_encode(k, true), uri_encode(v, true))).collect();
    enc.sort();
    let parts: Vec<String> = enc.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join("&")
}

/// (amz_date "YYYYMMDDTHHMMSSZ", date "YYYYMMDD") from unix seconds (UTC), by a hand-written
/// civil-from-days so no date crate or clock is needed.
///
/// The date-only part goes into the credential scope and must be the same UTC day as
/// X-Amz-Date (IAM guide, "Credential scope"). Meaningful for years 0..=9999.
pub fn amz_dates(unix_secs: i64) -> (String, String) {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let date = format!("{y:04}{m:02}{d:02}");
    let (h, min, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let amz = format!("{date}T{h:02}{min:02}{s:02}Z");
    (amz, date)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
/// Howard Hinnant's `civil_from_days` (howardhinnant.github.io/date_algorithms.html): shift the
/// year to start on 1 March so the leap day is the last day of the year, then split into
/// 400-year eras of 146097 days.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// Hand-written so a stray `{:?}` in a log never shows the secret or the token.
impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// host header value exactly as sent (include :port when not the scheme default)
    pub host: &'a str,
    /// canonical URI = the path exactly as sent on the wire, already encoded
    /// (S3: uri_encode(key, false) once, never normalised)
    pub path: &'a str,
    /// already-canonical query (from canonical_query), "" when none
    pub query: &'a str,
    /// extra headers to sign besides host / x-amz-date / x-amz-content-sha256 /
    /// x-amz-security-token: names in any case, values raw (names are lowercased, values trimmed
    /// and inner runs of spaces collapsed here)
    pub headers: &'a [(&'a str, &'a str)],
    /// hex SHA-256 of the body, or UNSIGNED_PAYLOAD
    pub payload_hash: &'a str,
}

/// Canonical request for S3: signs host, `req.headers`, x-amz-content-sha256 (S3 requires it
/// to be present and signed on every header-authenticated request, S3 API "Signature
/// Calculations for the Authorization Header"), x-amz-date, and x-amz-security-token when a
/// session token is used. Returns (canonical request, signed headers). `req.headers` must not
/// repeat those four: a second copy would be signed as a comma list and never match the wire.
pub fn canonical_request(req: &Request, amz_date: &str, session_token: Option<&str>) -> (String, String) {
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(req.headers.len() + 4);
    headers.push(("host", req.host));
    headers.extend_from_slice(req.headers);
    headers.push(("x-amz-content-sha256", req.payload_hash));
    headers.push(("x-amz-date", amz_date));
    if let Some(token) = session_token {
        headers.push(("x-amz-security-token", token));
    }
    canonical_request_with(req.method, req.path, req.query, &headers, req.payload_hash)
}

/// The canonical request from the complete list of headers to sign. Kept apart from
/// `canonical_request` so presigning (host only) and the generic SigV4 suite (no
/// x-amz-content-sha256) can share it.
///
/// IAM guide, "Canonical request": method, URI, query, canonical headers (lowercase names,
/// trimmed values with sequential spaces made one, sorted by name, each line ending in '\n'),
/// an empty line from that trailing '\n', signed header names joined by ';', payload hash.
fn canonical_request_with(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
) -> (String, String) {
    let mut hs: Vec<(String, String)> =
        headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), normalize_value(v))).collect();
    // Stable sort by name only: repeated headers keep their sent order when joined below.
    hs.sort_by(|a, b| a.0.cmp(&b.0));

    // AWS: a header sent more than once is signed once, its values joined by ','.
    let mut merged: Vec<(String, String)> = Vec::with_capacity(hs.len());
    for (name, value) in hs {
        match merged.last_mut() {
            Some(last) if last.0 == name => last.1 = format!("{},{value}", last.1),
            _ => merged.push((name, value)),
        }
    }
    let canon_headers: String = merged.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed: Vec<&str> = merged.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let creq = format!("{method}\n{path}\n{query}\n{canon_headers}\n{signed}\n{payload_hash}");
    (creq, signed)
}

/// Trim, then turn every run of spaces into one (AWS "Trimall").
fn normalize_value(v: &str) -> String {
    let words: Vec<&str> = v.trim().split(' ').filter(|w| !w.is_empty()).collect();
    words.join(" ")
}

/// Credential scope "date/region/service/aws4_request" (IAM guide, "Credential scope").
pub fn scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// IAM guide, "String to sign": algorithm, request time, scope, hex SHA-256 of the canonical
/// request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// IAM guide, "Derive the signing key": HMAC chain over date, region, service, "aws4_request",
/// starting from "AWS4" + secret. Depends only on the day, so a caller may cache it per day.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_secret = format!("AWS4{secret}");
    let k_date = hmac_sha256(k_secret.as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// Lowercase hex HMAC-SHA256 of the string to sign (IAM guide, "Calculate the signature").
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// Everything together: returns the headers the caller must add to the request, in order:
/// ("x-amz-date", ..), ("x-amz-content-sha256", payload_hash), ("x-amz-security-token", ..) when
/// a token is set, ("authorization", "AWS4-HMAC-SHA256 Credential=AK/scope, SignedHeaders=...,
/// Signature=...").
pub fn sign(
    req: &Request,
    creds: &Credentials,
    region: &str,
    service: &str,
    unix_secs: i64,
) -> Vec<(&'static str, String)> {
    let (amz_date, date) = amz_dates(unix_secs);
    let (creq, signed_headers) = canonical_request(req, &amz_date, creds.session_token);
    let scope = scope(&date, region, service);
    let sts = string_to_sign(&amz_date, &scope, &creq);
    let key = signing_key(creds.secret_access_key, &date, region, service);
    let sig = signature(&key, &sts);

    let mut out = Vec::with_capacity(4);
    out.push(("x-amz-date", amz_date));
    out.push(("x-amz-content-sha256", req.payload_hash.to_string()));
    if let Some(token) = creds.session_token {
        out.push(("x-amz-security-token", token.to_string()));
    }
    let auth = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={sig}",
        creds.access_key_id
    );
    out.push(("authorization", auth));
    out
}

/// Presigned GET URL (query-string auth: X-Amz-Algorithm / Credential / Date / Expires /
/// SignedHeaders=host / Signature, X-Amz-Security-Token when a token is set, payload
/// UNSIGNED-PAYLOAD). Returns the full query string (canonical order, then X-Amz-Signature last
/// as AWS shows) for `scheme://host/path?` + result.
///
/// S3 API "Authenticating Requests: Using Query Parameters": only host is signed, the payload is
/// UNSIGNED-PAYLOAD, and the token, when used, is part of the signed query. `expires_secs` must
/// be 1..=604800 (7 days) or S3 rejects the URL; `path` is already encoded as for `Request::path`.
#[allow(clippy::too_many_arguments)] // the caller is written against this exact signature
pub fn presign_query(
    method: &str,
    host: &str,
    path: &str,
    extra_query: &[(&str, &str)],
    creds: &Credentials,
    region: &str,
    service: &str,
    unix_secs: i64,
    expires_secs: u64,
) -> String {
    let (amz_date, date) = amz_dates(unix_secs);
    let scope = scope(&date, region, service);
    let credential = format!("{}/{scope}", creds.access_key_id);
    let expires = expires_secs.to_string();

    let mut pairs: Vec<(&str, &str)> = extra_query.to_vec();
    pairs.push(("X-Amz-Algorithm", ALGORITHM));
    pairs.push(("X-Amz-Credential", &credential));
    pairs.push(("X-Amz-Date", &amz_date));
    pairs.push(("X-Amz-Expires", &expires));
    pairs.push(("X-Amz-SignedHeaders", "host"));
    if let Some(token) = creds.session_token {
        pairs.push(("X-Amz-Security-Token", token));
    }
    let query = canonical_query(&pairs);

    let (creq, _) = canonical_request_with(method, path, &query, &[("host", host)], UNSIGNED_PAYLOAD);
    let sts = string_to_sign(&amz_date, &scope, &creq);
    let key = signing_key(creds.secret_access_key, &date, region, service);
    // The signature cannot sign itself, so it is appended after the signed query.
    format!("{query}&X-Amz-Signature={}", signature(&key, &sts))
}

#[cfg(test)]
mod tests {
    use super::*;

    // S3 API reference, "Examples: Signature Calculations in AWS Signature Version 4"
    // (docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html).
    const AK: &str = "AKIAIOSFODNN7EXAMPLE";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const T: i64 = 1_369_353_600; // 20130524T000000Z
    const AMZ: &str = "20130524T000000Z";
    const HOST: &str = "examplebucket.s3.amazonaws.com";
    const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";
    const CREDS: Credentials = creds(None);
    const TOKEN: Credentials = creds(Some("tok/en+1"));

    const fn creds(session_token: Option<&'static str>) -> Credentials<'static> {
        let (access_key_id, secret_access_key) = (AK, SK);
        Credentials { access_key_id, secret_access_key, session_token }
    }

    fn get<'a>(path: &'a str, query: &'a str, headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
        let (method, host, payload_hash) = ("GET", HOST, EMPTY_SHA256);
        Request { method, host, path, query, headers, payload_hash }
    }

    /// The Signature= part of the authorization header `sign` returns.
    fn sig_of(r: &Request) -> String {
        let out = sign(r, &CREDS, "us-east-1", "s3", T);
        let auth = &out.last().unwrap().1;
        auth.rsplit("Signature=").next().unwrap().to_string()
    }

    fn presign(path: &str, extra: &[(&str, &str)], c: &Credentials, exp: u64) -> String {
        presign_query("GET", HOST, path, extra, c, "us-east-1", "s3", T, exp)
    }

    #[test]
    fn s3_get_object_every_stage() {
        let r = get("/test.txt", "", &[("Range", "bytes=0-9")]);
        assert_eq!(amz_dates(T), (AMZ.to_string(), "20130524".to_string()));
        let (creq, signed) = canonical_request(&r, AMZ, None);
        let want_signed = "host;range;x-amz-content-sha256;x-amz-date";
        let want_creq = format!(
            "GET\n/test.txt\n\nhost:{HOST}\nrange:bytes=0-9\nx-amz-content-sha256:{EMPTY_SHA256}\n\
             x-amz-date:{AMZ}\n\n{want_signed}\n{EMPTY_SHA256}"
        );
        assert_eq!((creq.as_str(), signed.as_str()), (&*want_creq, want_signed));
        assert_eq!(scope("20130524", "us-east-1", "s3"), SCOPE);
        let sts = string_to_sign(AMZ, SCOPE, &creq);
        let hash = "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972";
        assert_eq!(sts, format!("AWS4-HMAC-SHA256\n{AMZ}\n{SCOPE}\n{hash}"));
        let key = signing_key(SK, "20130524", "us-east-1", "s3");
        let want = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
        assert_eq!(signature(&key, &sts), want);

        let auth = format!("AWS4-HMAC-SHA256 Credential={AK}/{SCOPE}, SignedHeaders={signed}, Signature={want}");
        let want_out = [
            ("x-amz-date", AMZ.to_string()),
            ("x-amz-content-sha256", EMPTY_SHA256.to_string()),
            ("authorization", auth),
        ];
        assert_eq!(sign(&r, &CREDS, "us-east-1", "s3", T), want_out);
    }

    #[test]
    fn s3_put_object() {
        let hash = sha256_hex(b"Welcome to Amazon S3.");
        let want_hash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
        assert_eq!(hash, want_hash);
        let path = format!("/{}", uri_encode("test$file.text", false));
        assert_eq!(path, "/test%24file.text");
        let date = ("Date", "Fri, 24 May 2013 00:00:00 GMT");
        let hs = [date, ("x-amz-storage-class", "REDUCED_REDUNDANCY")];
        let mut r = get(&path, "", &hs);
        (r.method, r.payload_hash) = ("PUT", &hash);
        let (creq, signed) = canonical_request(&r, AMZ, None);
        let want_signed = "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class";
        let want_creq = format!(
            "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\nhost:{HOST}\n\
             x-amz-content-sha256:{hash}\nx-amz-date:{AMZ}\n\
             x-amz-storage-class:REDUCED_REDUNDANCY\n\n{want_signed}\n{hash}"
        );
        assert_eq!((creq.as_str(), signed.as_str()), (&*want_creq, want_signed));
        let sts_hash = "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d";
        assert!(string_to_sign(AMZ, SCOPE, &creq).ends_with(sts_hash));
        let want = "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd";
        assert_eq!(sig_of(&r), want);
    }

    #[test]
    fn s3_get_bucket_lifecycle_and_list_objects() {
        let q = canonical_query(&[("lifecycle", "")]);
        assert_eq!(q, "lifecycle=");
        let (creq, _) = canonical_request(&get("/", &q, &[]), AMZ, None);
        assert!(creq.starts_with("GET\n/\nlifecycle=\nhost:"));
        let want = "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543";
        assert_eq!(sig_of(&get("/", &q, &[])), want);

        let q = canonical_query(&[("prefix", "J"), ("max-keys", "2")]);
        assert_eq!(q, "max-keys=2&prefix=J");
        let want = "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7";
        assert_eq!(sig_of(&get("/", &q, &[])), want);
    }

    #[test]
    fn s3_presigned_get() {
        // S3 API "Authenticating Requests: Using Query Parameters", example.
        let unsigned = "X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host";
        let sig = "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
        let q = presign("/test.txt", &[], &CREDS, 86_400);
        assert_eq!(q, format!("{unsigned}&X-Amz-Signature={sig}"));
        let hs = [("host", HOST)];
        let (creq, _) = canonical_request_with("GET", "/test.txt", unsigned, &hs, UNSIGNED_PAYLOAD);
        let want_creq = format!("GET\n/test.txt\n{unsigned}\nhost:{HOST}\n\nhost\n{UNSIGNED_PAYLOAD}");
        assert_eq!(creq, want_creq);
        let sts_hash = "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04";
        assert!(string_to_sign(AMZ, SCOPE, &creq).ends_with(sts_hash));
    }

    #[test]
    fn presign_signs_token_and_extra_query() {
        let extra = [("response-content-type", "text/plain")];
        let with_token = presign("/a", &extra, &TOKEN, 60);
        assert!(with_token.contains("&X-Amz-Security-Token=tok%2Fen%2B1&"));
        assert!(with_token.contains("&response-content-type=text%2Fplain&X-Amz-Signature="));
        let without = presign("/a", &extra, &CREDS, 60);
        assert_ne!(with_token.rsplit('=').next(), without.rsplit('=').next());
    }

    #[test]
    fn generic_suite_get_vanilla() {
        // AWS SigV4 test suite, get-vanilla: outside S3 no x-amz-content-sha256 is signed.
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let (amz, date) = amz_dates(1_440_938_160);
        assert_eq!(format!("{amz} {date}"), "20150830T123600Z 20150830");
        let hs = [("Host", "example.amazonaws.com"), ("X-Amz-Date", &amz)];
        let (creq, signed) = canonical_request_with("GET", "/", "", &hs, EMPTY_SHA256);
        let want_creq = format!(
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:{amz}\n\n\
             host;x-amz-date\n{EMPTY_SHA256}"
        );
        assert_eq!((creq.as_str(), signed.as_str()), (&*want_creq, "host;x-amz-date"));
        let sts = string_to_sign(&amz, &scope(&date, "us-east-1", "service"), &creq);
        let hash = "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63";
        let sc = "20150830/us-east-1/service/aws4_request";
        assert_eq!(sts, format!("AWS4-HMAC-SHA256\n{amz}\n{sc}\n{hash}"));
        // IAM guide "Derive a signing key" publishes the key for this secret and day with
        // service "iam"; the suite itself publishes only the signature.
        let iam_key = hex::encode(signing_key(secret, &date, "us-east-1", "iam"));
        let want_key = "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9";
        assert_eq!(iam_key, want_key);
        let key = signing_key(secret, &date, "us-east-1", "service");
        let want = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        assert_eq!(signature(&key, &sts), want);
    }

    #[test]
    fn session_token_is_signed_and_returned() {
        let r = get("/", "", &[]);
        let (creq, signed) = canonical_request(&r, AMZ, TOKEN.session_token);
        assert!(creq.contains("\nx-amz-security-token:tok/en+1\n"));
        let want_signed = "host;x-amz-content-sha256;x-amz-date;x-amz-security-token";
        assert_eq!(signed, want_signed);
        let out = sign(&r, &TOKEN, "us-east-1", "s3", T);
        let names: Vec<&str> = out.iter().map(|h| h.0).collect();
        let want_names = "x-amz-date x-amz-content-sha256 x-amz-security-token authorization";
        assert_eq!(names.join(" "), want_names);
        assert_eq!(out[2].1, "tok/en+1");
        assert!(out[3].1.contains(&format!("SignedHeaders={signed}, ")));
    }

    #[test]
    fn header_values_trimmed_collapsed_and_repeats_joined() {
        let a = ("X-Amz-Meta-A", "  a   b  c ");
        let hs = [a, ("x-amz-meta-b", "2"), ("X-AMZ-META-B", "1")];
        let (creq, signed) = canonical_request_with("GET", "/", "", &hs, UNSIGNED_PAYLOAD);
        assert!(creq.contains("\nx-amz-meta-a:a b c\nx-amz-meta-b:2,1\n\n"));
        assert_eq!(signed, "x-amz-meta-a;x-amz-meta-b");
    }

    #[test]
    fn amz_dates_calendar() {
        let cases = [
            (0, "19700101T000000Z"),
            (-1, "19691231T235959Z"),
            (951_782_400, "20000229T000000Z"), // 2000 is leap: divisible by 400
            (951_868_799, "20000229T235959Z"),
            (951_868_800, "20000301T000000Z"),
            (1_709_251_199, "20240229T235959Z"), // ordinary leap year
            (4_107_542_399, "21000228T235959Z"), // 2100 is not leap: next day is 1 March
            (4_107_542_400, "21000301T000000Z"),
            (253_402_300_799, "99991231T235959Z"),
        ];
        for (secs, want) in cases {
            let (amz, date) = amz_dates(secs);
            assert_eq!((amz.as_str(), date.as_str()), (want, &want[..8]), "{secs}");
        }
    }

    #[test]
    fn uri_encode_and_canonical_query() {
        let s = "a b+c%d=e&f/ü";
        assert_eq!(uri_encode(s, true), "a%20b%2Bc%25d%3De%26f%2F%C3%BC");
        assert_eq!(uri_encode(s, false), "a%20b%2Bc%25d%3De%26f/%C3%BC");
        assert_eq!(uri_encode("AZaz09-._~*", true), "AZaz09-._~%2A");
        // Sorted by encoded bytes: uppercase before lowercase, equal names by value.
        let q = canonical_query(&[("b", "2"), ("a", "z"), ("a", "y"), ("B", ""), ("c d", "é/")]);
        assert_eq!(q, "B=&a=y&a=z&b=2&c%20d=%C3%A9%2F");
        assert_eq!(canonical_query(&[]), "");
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let s = format!("{TOKEN:?}");
        assert!(s.contains(AK) && !s.contains(SK) && !s.contains("tok/en+1"));
    }
}
