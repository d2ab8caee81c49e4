//! Errors made actionable where the target is known: the S3 layer names the failed step and
//! the object; here a network failure gets one line naming the endpoint and what to check, and
//! hints name the real target (`s4 edit docs`, not `s4 edit NAME`).

/// `message` with the target's name in its hints, preceded by a line saying what to check
/// when the failure is one a person can diagnose from here (nothing listens, no answer, TLS
/// against plain http, a server that is not S3, an unknown host).
pub fn explain(message: &str, target: &str, endpoint: Option<&str>) -> String {
    let message = message.replace("s4 edit NAME", &format!("s4 edit {target}"));
    match network_hint(&message, target, endpoint) {
        Some(hint) => format!("{hint}\n  ({message})"),
        None => message,
    }
}

fn network_hint(message: &str, target: &str, endpoint: Option<&str>) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    let at = endpoint.map(str::to_string).unwrap_or_else(|| "the AWS endpoint".into());
    let edit = format!("s4 edit {target}");
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    if has(&["connection refused"]) {
        return Some(format!(
            "Nothing answers at {at}: is the store running, and are the host and port right? (change the endpoint with `{edit}`)"
        ));
    }
    if has(&["invalidcontenttype", "corrupt message", "wrong version number", "record overflow"]) {
        let plain = endpoint.map(|e| e.replacen("https://", "http://", 1)).unwrap_or_else(|| "http://…".into());
        return Some(format!(
            "{at} does not speak https: if the store serves plain http, set the endpoint to {plain} (`{edit}`)"
        ));
    }
    if has(&["invalid http version", "invalid status", "connection closed before message completed"])
        && endpoint.is_some_and(|e| e.starts_with("http://"))
    {
        let tls = endpoint.map(|e| e.replacen("http://", "https://", 1)).unwrap_or_default();
        return Some(format!(
            "{at} did not answer in plain http: if it serves https, set the endpoint to {tls} (`{edit}`)"
        ));
    }
    if has(&["dns error", "failed to lookup address", "name or service not known", "no such host"]) {
        return Some(format!("The host of {at} is not known: check its spelling (`{edit}`) and your network"));
    }
    if has(&["certificate", "unknownissuer", "invalidcertificate"]) {
        return Some(format!(
            "The certificate of {at} is not trusted (self-signed, expired or for another name): check the endpoint (`{edit}`)"
        ));
    }
    if has(&["timed out", "deadline has elapsed"]) {
        return Some(format!(
            "No answer from {at} in time: is the host reachable (firewall, VPN) and the store up? \
             (S4_READ_TIMEOUT_SECS waits longer)"
        ));
    }
    if bare_404(message) {
        return Some(format!(
            "{at} answered 404 without an S3 error code: it may not be an S3 store, or the endpoint URL carries a \
             path it should not (most stores want only scheme, host and port; `{edit}`)"
        ));
    }
    None
}

/// A 404 whose answer named no S3 error code (`ListObjectsV2 s3://b/p/: 404` or `: 404 (request
/// id …)`): S3 stores always say `NoSuchBucket`, `NoSuchKey`, …
fn bare_404(message: &str) -> bool {
    message.match_indices(": 404").any(|(i, m)| {
        let rest = &message[i + m.len()..];
        rest.is_empty() || rest.starts_with(" (") || rest.starts_with(':') || rest.starts_with('\n')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_real_target_not_name() {
        let m = "ListObjectsV2 s3://b/p/: 404 NoSuchBucket. The bucket does not exist: check the bucket in the \
                 target's s3_uri (s4 edit NAME)";
        let out = explain(m, "docs", Some("http://127.0.0.1:9000"));
        assert!(out.contains("(s4 edit docs)") && !out.contains("NAME"), "{out}");
    }

    #[test]
    fn network_failures_name_the_endpoint_and_what_to_check() {
        let ep = Some("https://127.0.0.1:9000");
        let refused = "ListObjectsV2 s3://b/: connection failed: client error (Connect): tcp connect error: \
                       Connection refused (os error 111)";
        let out = explain(refused, "docs", ep);
        assert!(out.starts_with("Nothing answers at https://127.0.0.1:9000: is the store running"), "{out}");
        assert!(out.contains("s4 edit docs"), "{out}");
        let tls = "GetObject s3://b/.index: connection failed: received corrupt message of type InvalidContentType";
        let out = explain(tls, "docs", ep);
        assert!(out.contains("does not speak https") && out.contains("http://127.0.0.1:9000"), "{out}");
        let out = explain("ListObjectsV2 s3://b/p/: 404", "docs", Some("http://127.0.0.1:8000"));
        assert!(out.starts_with("http://127.0.0.1:8000 answered 404 without an S3 error code"), "{out}");
        let out = explain("HeadObject s3://b/k: 404 NoSuchKey: gone", "docs", ep);
        assert!(!out.contains("without an S3 error code"), "{out}");
        let out = explain("GetObject s3://b/k: timed out: no answer from the store in the time allowed", "d", None);
        assert!(out.starts_with("No answer from the AWS endpoint in time"), "{out}");
    }
}
