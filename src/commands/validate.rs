//! What `add` and `edit` check before saving a target (S4 saved anything, and mistakes surfaced
//! at the first sync): the S3 URI, the bucket's name, the endpoint, the folder, the name; then
//! one cheap request proves the endpoint, bucket and keys work.

use super::{client_for, hints, runtime, Fatal};
use crate::config::{Config, Target};

/// S3's bucket naming rules: 3 to 63 characters, lowercase letters, digits, dots and hyphens,
/// starting and ending with a letter or digit, no `..`, not an IP address.
pub fn bucket(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("\"{name}\" is not a valid bucket name: {why}"));
    if name.contains('/') {
        return bad("a bucket name has no '/' (the path inside the bucket comes after it: s3://BUCKET/PATH)");
    }
    if !(3..=63).contains(&name.len()) {
        return bad("it must be 3 to 63 characters long");
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-')) {
        return bad(&format!("'{c}' is not allowed (lowercase letters, digits, '.' and '-' only)"));
    }
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ends_ok(name.chars().next()) || !ends_ok(name.chars().last()) {
        return bad("it must start and end with a letter or a digit");
    }
    if name.contains("..") {
        return bad("it may not contain \"..\"");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("it may not be an IP address");
    }
    Ok(())
}

/// `s3://BUCKET/PATH`, strictly: `s3://` exactly once, a valid bucket, no empty path parts.
/// Returns (bucket, path without slashes at either end).
pub fn s3_uri(uri: &str) -> Result<(String, String), String> {
    let rest = uri
        .trim()
        .strip_prefix("s3://")
        .ok_or_else(|| format!("\"{uri}\" is not an S3 URI: write it as s3://BUCKET/PATH (PATH may be empty)"))?;
    if rest.to_ascii_lowercase().starts_with("s3:") {
        return Err(format!("\"{uri}\" has s3:// twice: write it as s3://BUCKET/PATH"));
    }
    let (b, path) = rest.split_once('/').unwrap_or((rest, ""));
    bucket(b)?;
    let path = path.trim_end_matches('/');
    if path.starts_with('/') || path.contains("//") {
        return Err(format!("\"{uri}\": the path has an empty part (\"//\"): write it as s3://BUCKET/PATH"));
    }
    Ok((b.to_string(), path.to_string()))
}

/// The bucket as typed at the `add` prompt: a pasted `s3://foo` is taken as `foo` (a note
/// says so); anything else must be a valid name.
pub fn bucket_answer(answer: &str) -> Result<String, String> {
    let a = answer.trim();
    let name = match a.strip_prefix("s3://") {
        Some(rest) => {
            let rest = rest.trim_end_matches('/');
            if rest.contains('/') {
                return Err(format!("\"{a}\": give only the bucket here; the path inside it comes at the next prompt"));
            }
            crate::info!("Taking \"{a}\" as the bucket \"{rest}\"");
            rest
        }
        None => a,
    };
    bucket(name)?;
    Ok(name.to_string())
}

/// An endpoint is an http(s) URL: `127.0.0.1:9000` gets a suggestion, not a silent save.
/// Returns it without a trailing slash.
pub fn endpoint(url: &str) -> Result<String, String> {
    let u = url.trim().trim_end_matches('/');
    let Some((scheme, rest)) = u.split_once("://") else {
        let host = u.split([':', '/']).next().unwrap_or("");
        let local = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok();
        let suggest = if local { "http" } else { "https" };
        return Err(format!("endpoint \"{u}\" has no scheme: did you mean {suggest}://{u} ?"));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("endpoint \"{u}\": s4 speaks http:// or https://, not {scheme}://"));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("endpoint \"{u}\" names no host: write it as {scheme}://HOST[:PORT]"));
    }
    if let Some((_, port)) = host.rsplit_once(':').filter(|_| !host.ends_with(']')) {
        if port.parse::<u16>().is_err() {
            return Err(format!("endpoint \"{u}\": \"{port}\" is not a port number"));
        }
    }
    Ok(u.to_string())
}

/// The local folder exists, or may be created (`create`): `Ok(true)` when it is still to be
/// made (by [`create_folder`], once everything else checked out); a file there is refused.
pub fn folder(path: &str, create: bool) -> Result<bool, String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(false),
        Ok(_) => Err(format!("{path} is a file, not a folder")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("{path} does not exist: create it first, or pass --create"))
        }
        Err(e) => Err(format!("{path}: {e}")),
    }
}

pub fn create_folder(path: &str) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("creating {path}: {e}"))?;
    crate::info!("Created {path}");
    Ok(())
}

/// A new target's name: not empty, not taken (a second `add --name t1` silently replaced t1).
pub fn new_name(config: &Config, name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the target needs a name: pass --name".into());
    }
    if name.starts_with('-') {
        return Err(format!("\"{name}\": a target name may not start with '-'"));
    }
    if let Some(t) = config.get(name) {
        return Err(format!(
            "a target named \"{name}\" exists already ({} <=> {}): change it with `s4 edit {name}`, or choose another name",
            t.local_folder, t.s3_uri
        ));
    }
    Ok(())
}

/// `--bwlimit`: bytes per second. A bare number is KiB/s, as rsync and rclone read it; a
/// unit (B, K, M, G: powers of 1024) says otherwise. `0` means no limit.
pub fn bwlimit(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let bad =
        || format!("--bwlimit {value}: give a rate such as 500K, 10M or 1G (bytes per second; a bare number is KiB/s)");
    let split = v.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim().trim_end_matches("/s").trim_end_matches(['i', 'I', 'b', 'B']);
    let scale = match unit.to_ascii_uppercase().as_str() {
        "" if v.ends_with(['b', 'B']) => 1.0,
        "" | "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    if !n.is_finite() || n < 0.0 {
        return Err(bad());
    }
    Ok((n * scale) as u64)
}

/// An `--exclude` / `--include` pattern: .syncignore's syntax, one pattern a flag.
pub fn pattern(p: &str) -> Result<(), String> {
    if p.trim().is_empty() || p.contains('\n') {
        return Err(format!("pattern \"{p}\": give one non-empty pattern per flag (.syncignore syntax)"));
    }
    if let Some(rest) = p.strip_prefix('!') {
        return Err(format!("pattern \"{p}\": write --include {rest} instead of a '!' pattern"));
    }
    Ok(())
}

/// One ListObjectsV2 (max-keys=1) on the target's prefix: proves endpoint, bucket and keys
/// work before the target is saved, with the messages a sync would give.
pub fn check_access(name: &str, target: &Target) -> Result<(), Fatal> {
    let explain = |e: &str| hints::explain(e, name, target.endpoint_url.as_deref());
    let (client, prefix) = client_for(target).map_err(|e| explain(&e))?;
    let rt = runtime()?;
    rt.block_on(client.list_page(&prefix, Some("/"), None, None, Some(1))).map(|_| ()).map_err(|e| {
        format!("{}\nNot saved: fix the value, or pass --no-check to save it anyway", explain(&e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris_are_parsed_strictly() {
        // Issue 12: `s3://s3://b/p` was accepted.
        assert_eq!(s3_uri("s3://my-bucket/docs/").unwrap(), ("my-bucket".into(), "docs".into()));
        assert_eq!(s3_uri("s3://my.bucket").unwrap(), ("my.bucket".into(), "".into()));
        assert!(s3_uri("s3://s3://b/p").unwrap_err().contains("s3:// twice"));
        assert!(s3_uri("bucket/p").unwrap_err().contains("not an S3 URI"));
        assert!(s3_uri("s3://b/p").unwrap_err().contains("3 to 63"));
        assert!(s3_uri("s3://My_Bucket/p").unwrap_err().contains("not allowed"));
        assert!(s3_uri("s3://bucket//p").unwrap_err().contains("empty part"));
        assert!(s3_uri("s3://-bucket/p").is_err());
        assert!(s3_uri("s3://192.168.1.1/p").unwrap_err().contains("IP address"));
    }

    #[test]
    fn a_bucket_typed_as_a_uri_at_the_prompt_is_taken_as_its_name() {
        // Issue 12: bucket `s3://foo` at the prompt became s3://s3://foo/mypath.
        assert_eq!(bucket_answer("s3://foo").unwrap(), "foo");
        assert_eq!(bucket_answer(" foo ").unwrap(), "foo");
        assert!(bucket_answer("s3://foo/bar").unwrap_err().contains("next prompt"));
    }

    #[test]
    fn an_endpoint_without_scheme_is_refused_with_a_suggestion() {
        // Issue 12: `--endpoint-url 127.0.0.1:9000` was saved as is.
        assert_eq!(
            endpoint("127.0.0.1:9000").unwrap_err(),
            "endpoint \"127.0.0.1:9000\" has no scheme: did you mean http://127.0.0.1:9000 ?"
        );
        assert!(endpoint("s3.example.com").unwrap_err().contains("https://s3.example.com"));
        assert_eq!(endpoint("http://127.0.0.1:9000/").unwrap(), "http://127.0.0.1:9000");
        assert!(endpoint("ftp://x").unwrap_err().contains("not ftp://"));
        assert!(endpoint("http://").is_err());
        assert!(endpoint("http://host:port").unwrap_err().contains("not a port number"));
        assert!(endpoint("https://[::1]:9000").is_ok());
    }

    #[test]
    fn bandwidth_limits_read_like_rsync_and_rclone() {
        assert_eq!(bwlimit("500").unwrap(), 500 * 1024);
        assert_eq!(bwlimit("10M").unwrap(), 10 << 20);
        assert_eq!(bwlimit("1.5MiB").unwrap(), 3 << 19);
        assert_eq!(bwlimit("1G").unwrap(), 1 << 30);
        assert_eq!(bwlimit("800B").unwrap(), 800);
        assert!(bwlimit("fast").unwrap_err().contains("500K"));
        assert!(pattern("!x").unwrap_err().contains("--include x"));
    }

    #[test]
    fn a_missing_folder_is_refused_unless_created() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("new/sub");
        let p = p.to_str().unwrap();
        assert!(folder(p, false).unwrap_err().contains("--create"));
        assert!(folder(p, true).unwrap(), "to be created");
        assert!(!std::path::Path::new(p).exists(), "not before everything else checked out");
        create_folder(p).unwrap();
        assert!(!folder(p, false).unwrap());
    }

    #[test]
    fn a_taken_name_is_refused_with_the_edit_hint() {
        let d = tempfile::tempdir().unwrap();
        let mut c = Config::load(&d.path().join("sync.conf")).unwrap();
        c.set("t1", &Target { local_folder: "/x".into(), s3_uri: "s3://bbb/x".into(), ..Default::default() });
        assert!(new_name(&c, "t1").unwrap_err().contains("`s4 edit t1`"));
        assert!(new_name(&c, "t2").is_ok());
    }
}
