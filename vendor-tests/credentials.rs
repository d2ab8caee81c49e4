//! Every credentials source against a local server on 127.0.0.1 that speaks its endpoint's
//! documented format (IMDSv2, the container endpoint, STS AssumeRole and
//! AssumeRoleWithWebIdentity), through the public chain with an `Env` of the test's own (the
//! process environment is never touched: tests run in parallel). Success, expiry and refresh,
//! a rotating token file, 401/403/500, malformed answers, timeouts; then the S3 client signing
//! with refreshed keys against the in-process store, and `s4 doctor` / `s4 sync` with them.

#[path = "credentials/server.rs"]
mod server;
mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use s4::s3::credentials::{self, CredentialsError, Kind, Options, Provider, Tuning};
use server::{closed, iso_in, reply, serve, silent, Server};

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k: &str| map.get(k).cloned()
}

/// Short timeouts and backoff, so failures are quick to see.
fn fast() -> Options {
    Options {
        metadata_timeout: Duration::from_millis(500),
        sts_timeout: Duration::from_millis(800),
        process_timeout: Duration::from_secs(5),
        tuning: Tuning {
            refresh_before: Duration::from_secs(300),
            attempts: 3,
            backoff: Duration::from_millis(20),
            quiet_after_failure: Duration::from_millis(100),
        },
    }
}

fn provider(pairs: &[(&str, &str)]) -> Provider {
    credentials::provider(None, &env_of(pairs), &fast()).expect("a source")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn creds_json(token_field: &str, id: &str, expires_in: i64) -> String {
    format!(
        r#"{{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"{id}","SecretAccessKey":"secret-{id}","{token_field}":"token-{id}","Expiration":"{}"}}"#,
        iso_in(expires_in)
    )
}

// ---------------------------------------------------------------------------------------
// IMDSv2

/// IMDSv2 as EC2 documents it; the credentials document comes from `creds(n)` for the nth fetch.
fn imds(creds: impl Fn(usize) -> server::Reply + Send + Sync + 'static) -> Server {
    let n = AtomicUsize::new(0);
    serve(move |s| match (s.method.as_str(), s.path.as_str()) {
        ("PUT", "/latest/api/token") if s.header("x-aws-ec2-metadata-token-ttl-seconds") == Some("21600") => {
            reply(200, "IMDS-TOKEN")
        }
        ("PUT", _) => reply(400, "bad token request"),
        _ if s.header("x-aws-ec2-metadata-token") != Some("IMDS-TOKEN") => reply(401, ""),
        ("GET", "/latest/meta-data/iam/security-credentials/") => reply(200, "s4-role\n"),
        ("GET", "/latest/meta-data/iam/security-credentials/s4-role") => creds(n.fetch_add(1, Ordering::SeqCst)),
        _ => reply(404, ""),
    })
}

fn imds_env(url: &str) -> Vec<(&str, &str)> {
    vec![("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)]
}

#[test]
fn imds_v2_token_role_then_keys() {
    let srv = imds(|i| reply(200, creds_json("Token", &format!("ASIAIMDS{i}"), 3600)));
    let p = provider(&imds_env(&srv.url));
    assert_eq!(p.kind(), "imds");
    let c = rt().block_on(p.credentials()).unwrap();
    assert_eq!((c.access_key_id.as_str(), c.session_token.as_deref()), ("ASIAIMDS0", Some("token-ASIAIMDS0")));
    let seen = srv.seen();
    let steps: Vec<(&str, &str)> = seen.iter().map(|s| (s.method.as_str(), s.path.as_str())).collect();
    assert_eq!(
        steps,
        [
            ("PUT", "/latest/api/token"),
            ("GET", "/latest/meta-data/iam/security-credentials/"),
            ("GET", "/latest/meta-data/iam/security-credentials/s4-role")
        ]
    );
    // Asked again within the hour: no request.
    rt().block_on(p.credentials()).unwrap();
    assert_eq!(srv.seen().len(), 3);
    println!("IMDSv2: {} from {}", c.access_key_id, p.describe());
}

/// Keys expiring 2 s after the refresh window opens are used as they are, then refreshed by
/// the first request after the window opens.
#[test]
fn imds_keys_are_refreshed_before_they_expire() {
    let srv = imds(|i| reply(200, creds_json("Token", &format!("ASIAIMDS{i}"), 302)));
    let p = provider(&imds_env(&srv.url));
    let rt = rt();
    assert_eq!(rt.block_on(p.credentials()).unwrap().access_key_id, "ASIAIMDS0");
    assert_eq!(rt.block_on(p.credentials()).unwrap().access_key_id, "ASIAIMDS0");
    assert_eq!(p.fetches(), 1);
    std::thread::sleep(Duration::from_millis(2_300));
    assert_eq!(rt.block_on(p.credentials()).unwrap().access_key_id, "ASIAIMDS1");
    assert_eq!(p.fetches(), 2);
}

fn err_of(p: &Provider) -> CredentialsError {
    rt().block_on(p.credentials()).expect_err("the source must fail")
}

#[test]
fn imds_errors_name_the_step() {
    // 401 on the token: refused, not retried.
    let srv = serve(|_| reply(401, ""));
    let e = err_of(&provider(&imds_env(&srv.url)));
    assert!(matches!(e.kind, Kind::Status { status: 401, .. }) && e.step.contains("token PUT"), "{e}");
    assert_eq!(srv.seen().len(), 1);
    // No role attached: 404 on the role list, with the hint.
    let srv = serve(|s| if s.method == "PUT" { reply(200, "T") } else { reply(404, "") });
    let e = err_of(&provider(&imds_env(&srv.url))).to_string();
    assert!(e.contains("404") && e.contains("no IAM role"), "{e}");
    // 500 on the keys: tried three times, then reported.
    let srv = imds(|_| reply(500, "busy"));
    let e = err_of(&provider(&imds_env(&srv.url)));
    assert!(matches!(e.kind, Kind::Status { status: 500, .. }), "{e}");
    assert_eq!(srv.count("/latest/meta-data/iam/security-credentials/s4-role"), 3);
    // Malformed JSON, and a document that says it failed.
    let srv = imds(|_| reply(200, "{\"AccessKeyId\": "));
    assert!(matches!(err_of(&provider(&imds_env(&srv.url))).kind, Kind::Malformed(_)));
    let srv = imds(|_| reply(200, r#"{"Code":"AssumeRoleUnauthorizedAccess","Message":"no trust"}"#));
    let e = err_of(&provider(&imds_env(&srv.url))).to_string();
    assert!(e.contains("AssumeRoleUnauthorizedAccess: no trust"), "{e}");
}

#[test]
fn imds_token_timeout_hints_at_the_hop_limit() {
    let url = silent();
    let started = std::time::Instant::now();
    let e = err_of(&provider(&imds_env(&url)));
    assert_eq!(e.kind, Kind::Timeout);
    assert!(e.to_string().contains("hop limit must be at least 2"), "{e}");
    // Three attempts of 0.5 s plus backoff: short, as on a machine that is not on EC2.
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    println!("{e}");
}

#[test]
fn nothing_configured_and_no_imds_says_so() {
    let e = err_of(&provider(&imds_env(&closed())));
    let s = e.to_string();
    assert!(s.starts_with("no AWS credentials found") && s.contains("s4 edit TARGET"), "{s}");
    let e = credentials::provider(None, &env_of(&[("AWS_EC2_METADATA_DISABLED", "true")]), &fast()).unwrap_err();
    assert!(e.to_string().contains("AWS_EC2_METADATA_DISABLED is true"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Container endpoint

/// The container endpoint: keys only for the right Authorization header.
fn container(token: impl Fn() -> String + Send + Sync + 'static, expires_in: i64) -> Server {
    let n = AtomicUsize::new(0);
    serve(move |s| {
        if s.header("authorization") != Some(token().as_str()) {
            return reply(401, r#"{"code":"Unauthorized","message":"bad token"}"#);
        }
        reply(200, creds_json("Token", &format!("ASIACONT{}", n.fetch_add(1, Ordering::SeqCst)), expires_in))
    })
}

#[test]
fn container_full_uri_with_a_token_file_that_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "token-A\n").unwrap();
    let current = Arc::new(std::sync::Mutex::new("token-A".to_string()));
    let expected = current.clone();
    let srv = container(move || expected.lock().unwrap().clone(), 302);
    let url = format!("{}/v1/credentials", srv.url);
    let p = provider(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", file.to_str().unwrap()),
    ]);
    assert_eq!(p.kind(), "container");
    let rt = rt();
    assert_eq!(rt.block_on(p.credentials()).unwrap().access_key_id, "ASIACONT0");
    // The platform rotates the token; the next refresh must send the new one.
    std::fs::write(&file, "token-B").unwrap();
    *current.lock().unwrap() = "token-B".into();
    std::thread::sleep(Duration::from_millis(2_300));
    assert_eq!(rt.block_on(p.credentials()).unwrap().access_key_id, "ASIACONT1");
    let sent: Vec<String> = srv.seen().iter().map(|s| s.header("authorization").unwrap_or("").to_string()).collect();
    assert_eq!(sent, ["token-A", "token-B"]);
    assert!(!format!("{p:?} {}", p.describe()).contains("token-"));
}

#[test]
fn container_errors() {
    let srv = container(|| "right".into(), 3600);
    let url = format!("{}/creds", srv.url);
    let p = provider(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url), ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong")]);
    let e = err_of(&p).to_string();
    assert!(e.contains("401 Unauthorized: bad token") && e.contains("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), "{e}");
    assert!(!e.contains("wrong"), "the token must not be shown: {e}");
    let srv = serve(|_| reply(500, "oops"));
    let url = format!("{}/creds", srv.url);
    let e = err_of(&provider(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url)]));
    assert!(matches!(e.kind, Kind::Status { status: 500, .. }));
    assert_eq!(srv.seen().len(), 3, "a 500 is retried");
    let srv = serve(|_| reply(200, "<html>not json</html>"));
    let url = format!("{}/creds", srv.url);
    assert!(matches!(err_of(&provider(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url)])).kind, Kind::Malformed(_)));
    let url = format!("{}/creds", silent());
    assert_eq!(err_of(&provider(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url)])).kind, Kind::Timeout);
    // Only the hosts the SDKs allow get the token.
    let e =
        credentials::provider(None, &env_of(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.1/c")]), &fast())
            .unwrap_err();
    assert!(matches!(e.kind, Kind::Config(_)), "{e}");
}

// ---------------------------------------------------------------------------------------
// STS

fn sts_xml(op: &str, id: &str, expires_in: i64) -> String {
    format!(
        r#"<{op}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><{op}Result>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s4</Arn><AssumedRoleId>AROA:s4</AssumedRoleId></AssumedRoleUser>
<Credentials><AccessKeyId>{id}</AccessKeyId><SecretAccessKey>secret-{id}</SecretAccessKey><SessionToken>token-{id}</SessionToken><Expiration>{}</Expiration></Credentials>
</{op}Result><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></{op}Response>"#,
        iso_in(expires_in)
    )
}

fn form(body: &str) -> HashMap<String, String> {
    body.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), percent_decode(v))).collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn web_identity_assumes_the_role_unsigned_and_rereads_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "jwt-1").unwrap();
    let n = AtomicUsize::new(0);
    let srv = serve(move |s| {
        let f = form(&s.body);
        if s.method != "POST" || f.get("Action").map(String::as_str) != Some("AssumeRoleWithWebIdentity") {
            return reply(400, "");
        }
        reply(200, sts_xml("AssumeRoleWithWebIdentity", &format!("ASIAWEB{}", n.fetch_add(1, Ordering::SeqCst)), 302))
    });
    let p = provider(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", file.to_str().unwrap()),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/s4 role"),
        ("AWS_ROLE_SESSION_NAME", "pod-1"),
        ("AWS_ENDPOINT_URL_STS", &srv.url),
    ]);
    assert_eq!(p.kind(), "web_identity");
    let rt = rt();
    let c = rt.block_on(p.credentials()).unwrap();
    assert_eq!((c.access_key_id.as_str(), c.session_token.as_deref()), ("ASIAWEB0", Some("token-ASIAWEB0")));
    std::fs::write(&file, "jwt-2").unwrap();
    std::thread::sleep(Duration::from_millis(2_300));
    assert_eq!(rt.block_on(p.credentials()).unwrap().access_key_id, "ASIAWEB1");
    let seen = srv.seen();
    let forms: Vec<HashMap<String, String>> = seen.iter().map(|s| form(&s.body)).collect();
    assert_eq!(forms[0]["RoleArn"], "arn:aws:iam::123456789012:role/s4 role");
    assert_eq!((forms[0]["RoleSessionName"].as_str(), forms[0]["Version"].as_str()), ("pod-1", "2011-06-15"));
    assert_eq!((forms[0]["WebIdentityToken"].as_str(), forms[1]["WebIdentityToken"].as_str()), ("jwt-1", "jwt-2"));
    assert!(seen.iter().all(|s| s.header("authorization").is_none()), "AssumeRoleWithWebIdentity is unsigned");
}

#[test]
fn sts_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "jwt").unwrap();
    let with = |url: &str| {
        provider(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", file.to_str().unwrap()),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("AWS_ENDPOINT_URL_STS", url),
        ])
    };
    let srv = serve(|_| {
        reply(
            403,
            r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>x</RequestId></ErrorResponse>"#,
        )
    });
    let e = err_of(&with(&srv.url));
    let s = e.to_string();
    assert!(s.contains("403 AccessDenied: Not authorized") && s.contains("trust policy"), "{s}");
    assert!(s.contains("AssumeRoleWithWebIdentity of arn:aws:iam::1:role/r at http://127.0.0.1"), "{s}");
    assert_eq!(srv.seen().len(), 1, "a refusal is not retried");
    let srv =
        serve(|_| reply(200, "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"));
    assert!(matches!(err_of(&with(&srv.url)).kind, Kind::Malformed(_)));
    let srv = serve(|_| reply(503, "<ErrorResponse><Error><Code>ServiceUnavailable</Code></Error></ErrorResponse>"));
    assert!(matches!(err_of(&with(&srv.url)).kind, Kind::Status { status: 503, .. }));
    assert_eq!(srv.seen().len(), 3);
    assert_eq!(err_of(&with(&silent())).kind, Kind::Timeout);
    // An unreadable token file names the variable.
    let p = provider(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"),
        ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ("AWS_ENDPOINT_URL_STS", &srv.url),
    ]);
    assert!(err_of(&p).to_string().contains("AWS_WEB_IDENTITY_TOKEN_FILE=/nonexistent/token"));
}

#[test]
fn profile_role_is_assumed_with_a_signed_request() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, config) = (dir.path().join("credentials"), dir.path().join("config"));
    std::fs::write(&creds, "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = base-secret\n").unwrap();
    std::fs::write(
        &config,
        "[profile deploy]\nrole_arn = arn:aws:iam::123456789012:role/deploy\nsource_profile = base\nexternal_id = ext-1\nregion = eu-west-3\n",
    )
    .unwrap();
    let srv = serve(|s| {
        let f = form(&s.body);
        match (f.get("Action").map(String::as_str), s.header("authorization")) {
            (Some("AssumeRole"), Some(auth)) if auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDBASE/") => {
                reply(200, sts_xml("AssumeRole", "ASIAROLE", 3600))
            }
            _ => reply(403, "<ErrorResponse><Error><Code>InvalidClientTokenId</Code></Error></ErrorResponse>"),
        }
    });
    let p = provider(&[
        ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ("AWS_PROFILE", "deploy"),
        ("AWS_ENDPOINT_URL_STS", &srv.url),
    ]);
    assert_eq!(p.kind(), "assume_role");
    assert!(p.describe().contains("arn:aws:iam::123456789012:role/deploy"), "{}", p.describe());
    let c = rt().block_on(p.credentials()).unwrap();
    assert_eq!(c.access_key_id, "ASIAROLE");
    let s = &srv.seen()[0];
    let auth = s.header("authorization").unwrap();
    assert!(auth.contains("/eu-west-3/sts/aws4_request"), "signed for the profile's region and sts: {auth}");
    assert!(auth.contains("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date"), "{auth}");
    let f = form(&s.body);
    assert_eq!((f["RoleArn"].as_str(), f["ExternalId"].as_str()), ("arn:aws:iam::123456789012:role/deploy", "ext-1"));
    assert!(!auth.contains("base-secret") && !s.body.contains("base-secret"));
}

#[test]
fn profile_credential_process() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let out = format!(
        r#"{{"Version": 1, "AccessKeyId": "ASIAPROC", "SecretAccessKey": "s", "SessionToken": "t", "Expiration": "{}"}}"#,
        iso_in(3600)
    );
    std::fs::write(dir.path().join("out.json"), out).unwrap();
    std::fs::write(&config, format!("[default]\ncredential_process = cat {}\n", dir.path().join("out.json").display()))
        .unwrap();
    let p = provider(&[("AWS_CONFIG_FILE", config.to_str().unwrap()), ("HOME", dir.path().to_str().unwrap())]);
    assert_eq!(p.kind(), "credential_process");
    assert_eq!(rt().block_on(p.credentials()).unwrap().access_key_id, "ASIAPROC");
    assert!(p.expires().is_some());
}

// ---------------------------------------------------------------------------------------
// Refresh: one at a time, failures

#[test]
fn concurrent_signers_wait_for_one_refresh() {
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    let srv = serve(move |_| {
        let i = count.fetch_add(1, Ordering::SeqCst);
        server::Reply {
            delay: Duration::from_millis(300),
            ..reply(200, creds_json("Token", &format!("ASIA{i}"), 3600))
        }
    });
    let url = format!("{}/creds", srv.url);
    let p = provider(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url)]);
    let keys = rt().block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                tokio::spawn({
                    let p = p.clone();
                    async move { p.credentials().await }
                })
            })
            .collect();
        let mut keys = Vec::new();
        for t in tasks {
            keys.push(t.await.unwrap().unwrap().access_key_id);
        }
        keys
    });
    assert!(keys.iter().all(|k| k == "ASIA0"), "{keys:?}");
    assert_eq!(n.load(Ordering::SeqCst), 1, "one refresh for sixteen signers");
}

#[test]
fn a_failed_refresh_keeps_valid_keys_then_is_reported() {
    // Keys valid 3 s (so due for a refresh half-way), then the endpoint breaks.
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = broken.clone();
    let srv = serve(move |_| {
        if flag.load(Ordering::SeqCst) {
            reply(500, "{\"code\":\"Broken\"}")
        } else {
            reply(200, creds_json("Token", "ASIASHORT", 3))
        }
    });
    let p = provider(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &format!("{}/c", srv.url))]);
    let rt = rt();
    assert_eq!(rt.block_on(p.credentials()).unwrap().access_key_id, "ASIASHORT");
    broken.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1_600));
    // Due for a refresh, which fails three times: the keys are still valid, so they sign (with a warning).
    assert_eq!(rt.block_on(p.credentials()).unwrap().access_key_id, "ASIASHORT");
    assert_eq!(srv.seen().len(), 4);
    std::thread::sleep(Duration::from_millis(2_600));
    // Expired now: the failure is the request's error, never an unsigned request.
    let e = err_of(&p);
    assert!(matches!(e.kind, Kind::Status { status: 500, .. }) && e.source == "container endpoint", "{e}");
}

// ---------------------------------------------------------------------------------------
// The client and the binary with refreshed keys

/// Container credentials that are the test store's keys, expiring 2 s after the refresh
/// window opens.
fn store_keys_endpoint() -> Server {
    let s = support::store();
    let (ak, sk) = (s.access_key.clone(), s.secret_key.clone());
    serve(move |_| {
        reply(
            200,
            format!(
                r#"{{"AccessKeyId":"{ak}","SecretAccessKey":"{sk}","Token":"tok","Expiration":"{}"}}"#,
                iso_in(302)
            ),
        )
    })
}

#[test]
fn the_client_signs_every_request_with_refreshed_keys() {
    let s = support::store();
    if !s.is_s3s_fs() {
        return println!("skipped: needs the in-process store (its keys are handed out by the test endpoint)");
    }
    let srv = store_keys_endpoint();
    let p = provider(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &format!("{}/c", srv.url))]);
    let client =
        s4::s3::Client::new(s4::s3::Config::new(s.endpoint_url(), s.region.clone(), p.clone()), &s.bucket).unwrap();
    let key = format!("{}k", support::unique_prefix("creds_refresh"));
    let rt = rt();
    rt.block_on(client.put(&key, s4::s3::Payload::Bytes("one".into()), &Default::default())).unwrap();
    std::thread::sleep(Duration::from_millis(2_300));
    rt.block_on(client.put(&key, s4::s3::Payload::Bytes("two".into()), &Default::default())).unwrap();
    assert_eq!(rt.block_on(client.get_bytes(&key)).unwrap().unwrap().0, "two".as_bytes());
    assert_eq!(srv.seen().len(), 2, "refreshed once, mid-way");
    // A source that fails makes the request fail, naming the source.
    let bad = serve(|_| reply(403, "{\"code\":\"AccessDenied\"}"));
    let p = provider(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &format!("{}/c", bad.url))]);
    let client = s4::s3::Client::new(s4::s3::Config::new(s.endpoint_url(), s.region.clone(), p), &s.bucket).unwrap();
    let e = rt.block_on(client.get_bytes(&key)).unwrap_err().to_string();
    assert!(e.contains("container endpoint") && e.contains("403 AccessDenied"), "{e}");
}

#[test]
fn sync_and_doctor_with_container_credentials() {
    let s = support::store();
    if !s.is_s3s_fs() {
        return println!("skipped: needs the in-process store");
    }
    let srv = store_keys_endpoint();
    let env = support::env::Env::new("creds_sync");
    let folder = env.folder("docs");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.txt"), "hello").unwrap();
    let uri = format!("s3://{}/{}", s.bucket, env.prefix.trim_end_matches('/'));
    let add = env.s4(
        &[
            "add",
            "--local-folder",
            folder.to_str().unwrap(),
            "--s3-uri",
            &uri,
            "--endpoint-url",
            &s.endpoint,
            "--region",
            &s.region,
            "--name",
            "docs",
            // The keys come from the container endpoint, set only for the runs below.
            "--no-check",
        ],
        "",
    );
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    let url = format!("{}/c", srv.url);
    let run = |args: &[&str]| {
        env.command(args)
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    };
    let out = run(&["sync", "docs", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"uploaded\":1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["doctor", "docs", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["credentials"]["source"], "container");
    let masked = v["credentials"]["access_key_id"].as_str().unwrap();
    assert!(masked.ends_with(&s.access_key[s.access_key.len() - 4..]) && masked.starts_with('*'), "{masked}");
    assert!(!text.contains(&s.secret_key) && !text.contains("\"tok\""));
    assert_eq!((v["addressing"].as_str(), v["store"]["conditional_put"].as_bool()), (Some("path"), Some(true)));
    let out = run(&["doctor"]);
    println!("{}", String::from_utf8_lossy(&out.stdout));
}

// ---------------------------------------------------------------------------------------
// moto's STS (`vendor-tests/moto.sh cargo test --test credentials moto`): moto serves STS on
// the same port as S3 and accepts any signature, so this checks the requests' form and the
// answers' parsing against a second implementation, not the signature.

#[test]
fn moto_sts_assume_role_and_web_identity() {
    let s = support::store();
    if s.name != "moto" {
        return println!("skipped: run under vendor-tests/moto.sh for moto's STS");
    }
    let dir = tempfile::tempdir().unwrap();
    let (creds, config, token) = (dir.path().join("credentials"), dir.path().join("config"), dir.path().join("jwt"));
    std::fs::write(
        &creds,
        format!("[base]\naws_access_key_id = {}\naws_secret_access_key = {}\n", s.access_key, s.secret_key),
    )
    .unwrap();
    std::fs::write(&config, "[profile r]\nrole_arn = arn:aws:iam::123456789012:role/s4-moto\nsource_profile = base\n")
        .unwrap();
    std::fs::write(&token, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzNCJ9.c2ln").unwrap();
    let role = provider(&[
        ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ("AWS_PROFILE", "r"),
        ("AWS_ENDPOINT_URL_STS", &s.endpoint),
    ]);
    let web = provider(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap()),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/s4-moto-web"),
        ("AWS_ENDPOINT_URL_STS", &s.endpoint),
    ]);
    let rt = rt();
    for p in [&role, &web] {
        let c = rt.block_on(p.credentials()).unwrap_or_else(|e| panic!("{}: {e}", p.describe()));
        assert!(c.access_key_id.starts_with("ASIA") && c.session_token.is_some(), "{c:?}");
        assert!(p.expires().is_some());
        println!("moto STS, {}: {} (expires {:?})", p.kind(), credentials::mask(&c.access_key_id), p.expires());
    }
}
