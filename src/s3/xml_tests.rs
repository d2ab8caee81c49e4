//! Unit tests of `xml`: real-shaped documents, malformed input, round trips.
use super::*;
use crate::s3::bodies::{complete_multipart_body, delete_objects_body};

const LIST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>example-bucket</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <Contents>
<Key>ExampleObject.txt</Key><LastModified>2013-09-17T18:07:53.000Z</LastModified>
<ETag>&quot;599bab3ed2c697f1d26842727561fd94&quot;</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm><Size>857</Size>
<Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>webfile</DisplayName></Owner>
<StorageClass>REDUCED_REDUNDANCY</StorageClass>
  </Contents>
  <Contents><Key>Tom &amp; Jerry&#x2019;s &lt;b&gt;</Key><LastModified>2013-09-17T18:08:00Z</LastModified><ETag>"3a6f-2"</ETag>
<Size>0</Size><RestoreStatus><IsRestoreInProgress>false</IsRestoreInProgress></RestoreStatus><StorageClass>STANDARD</StorageClass></Contents>
</ListBucketResult>
"#;

fn list(doc: &str) -> Result<ListPage, XmlError> {
    parse_list_objects_v2(doc.as_bytes())
}

fn keys(page: &ListPage) -> Vec<&str> {
    page.objects.iter().map(|o| o.key.as_str()).collect()
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

#[test]
fn list_objects_aws_page() {
    let page = list(LIST).unwrap();
    let token = some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    assert_eq!(page.next_continuation_token, token);
    assert_eq!((page.is_truncated, page.key_count), (true, Some(2)));
    assert!(page.common_prefixes.is_empty());
    let want = r#"[Object { key: "ExampleObject.txt", size: 857, last_modified: "2013-09-17T18:07:53.000Z", etag: Some("599bab3ed2c697f1d26842727561fd94") }, Object { key: "Tom & Jerry’s <b>", size: 0, last_modified: "2013-09-17T18:08:00Z", etag: Some("3a6f-2") }]"#;
    assert_eq!(format!("{:?}", page.objects), want);
}

#[test]
fn list_objects_url_encoded_empty_and_prefixes() {
    let doc = r#"<ListBucketResult><Name>b</Name><Prefix>p%2F</Prefix><Delimiter>%2F</Delimiter>
        <Contents><Key>a%20b</Key><LastModified>x</LastModified><Size>1</Size></Contents>
        <Contents><Key>a+b</Key><LastModified>x</LastModified><Size>2</Size></Contents>
        <Contents><Key>%2B</Key><LastModified>x</LastModified><Size>3</Size></Contents>
        <Contents><Key><![CDATA[caf%C3%A9]]></Key><LastModified>x</LastModified><Size>4</Size></Contents>
        <CommonPrefixes><Prefix>dir+1%2F</Prefix></CommonPrefixes>
        <IsTruncated>false</IsTruncated><EncodingType>url</EncodingType></ListBucketResult>"#;
    let page = list(doc).unwrap();
    assert_eq!(keys(&page), ["a b", "a b", "+", "café"]);
    assert_eq!(page.common_prefixes, ["dir 1/"]);
    assert_eq!(page.objects[0].etag, None);
    // Without EncodingType the same text is taken literally.
    let literal = list(&doc.replace("url", "")).unwrap();
    assert_eq!(keys(&literal)[..2], ["a%20b", "a+b"]);

    let empty = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix/>
<KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>"#;
    let page = list(empty).unwrap();
    let want = ListPage { key_count: Some(0), prefix: Some(String::new()), ..Default::default() };
    assert_eq!(page, want);

    let dirs = r#"<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix>photos/</Prefix><KeyCount>2</KeyCount><Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>
  <CommonPrefixes><Prefix>photos/2006/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>photos/2007/</Prefix></CommonPrefixes>
</ListBucketResult>"#;
    let page = list(dirs).unwrap();
    assert_eq!(page.common_prefixes, ["photos/2006/", "photos/2007/"]);
    assert!(page.objects.is_empty() && !page.is_truncated);
}

const ERRORS: [&str; 4] = [
    r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>a/b.txt</Key><RequestId>4442587FB7D0A2F9</RequestId><HostId>ZYX=</HostId></Error>"#,
    r#"<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message>
<AWSAccessKeyId>AKIAEXAMPLE</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256
20240101T000000Z
20240101/us-east-1/s3/aws4_request</StringToSign><SignatureProvided>deadbeef</SignatureProvided><StringToSignBytes>41 57 53 34</StringToSignBytes>
<CanonicalRequest>GET
/key
a=b&amp;c=d</CanonicalRequest><RequestId>R1</RequestId><HostId>H1</HostId></Error>"#,
    r#"<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message>
<Endpoint>mybucket.s3.eu-west-1.amazonaws.com</Endpoint><Bucket>mybucket</Bucket><RequestId>R2</RequestId></Error>"#,
    r#"<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message>
<Region>eu-west-1</Region><RequestId>R3</RequestId><HostId>H3</HostId></Error>"#,
];

#[test]
fn aws_errors() {
    let [nsk, sig, redirect, region] = ERRORS.map(|s| parse_error(s.as_bytes()).unwrap());
    let want = r#"Some(S3ErrorBody { code: "NoSuchKey", message: "The specified key does not exist.", request_id: Some("4442587FB7D0A2F9"), region: None, endpoint: None })"#;
    assert_eq!(format!("{nsk:?}"), want);
    let want = r#"Some(S3ErrorBody { code: "SignatureDoesNotMatch", message: "The request signature we calculated does not match the signature you provided.", request_id: Some("R1"), region: None, endpoint: None })"#;
    assert_eq!(format!("{sig:?}"), want);
    let redirect = redirect.unwrap();
    let endpoint = some("mybucket.s3.eu-west-1.amazonaws.com");
    assert_eq!((redirect.code, redirect.endpoint), ("PermanentRedirect".into(), endpoint));
    let region = region.unwrap();
    assert_eq!(region.region, some("eu-west-1"));
    assert!(region.message.contains("'us-east-1' is wrong"));
    for other in ["", " \n", "Bad Gateway", "<ListBucketResult/>", "<?xml version='1.0'?><a/>"] {
        assert_eq!(parse_error(other.as_bytes()), Ok(None), "{other:?}");
    }
    let no_code = parse_error(b"<Error><Message>m</Message></Error>").unwrap_err();
    assert!(no_code.0.contains("<Code>"), "{no_code}");
}

#[test]
fn multipart_documents() {
    let init = r#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>big.bin</Key>
<UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId></InitiateMultipartUploadResult>"#;
    let id = "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA";
    assert_eq!(parse_initiate_multipart(init.as_bytes()).unwrap(), id);
    assert!(parse_initiate_multipart(b"<InitiateMultipartUploadResult/>").is_err());
    // rclone serve s3 (gofakes3) drops the `Result` of the root's name.
    let rclone =
        "<InitiateMultipartUpload><Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUpload>";
    assert_eq!(parse_initiate_multipart(rclone.as_bytes()).unwrap(), "u1");
    assert!(parse_initiate_multipart(b"<Initiate><UploadId>u1</UploadId></Initiate>").is_err());
    // S3 sends whitespace while it works, then the document.
    let done = r#"

<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>https://b.s3.amazonaws.com/big.bin</Location>
<Bucket>b</Bucket><Key>big.bin</Key><ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag></CompleteMultipartUploadResult>"#;
    let etag = "3858f62230ac3c915f300c664312c11f-9";
    assert_eq!(parse_complete_multipart(done.as_bytes()).unwrap().as_deref(), Some(etag));
    let failed = r#"<?xml version="1.0" encoding="UTF-8"?>

<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message>
<RequestId>656c76696e6727732072657175657374</RequestId><HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>"#;
    let error = parse_error(failed.as_bytes()).unwrap().unwrap();
    assert_eq!(error.code, "InternalError");
    let e = parse_complete_multipart(failed.as_bytes()).unwrap_err();
    assert!(e.0.contains("<Error> InternalError: We encountered"), "{e}");
}

#[test]
fn rgw_complete_multipart_empty_etag_is_none_not_an_error() {
    // Ceph RGW 16.2.15, verbatim: the object is complete, its ETag (HEAD: "6d9d…-1") left out.
    let rgw = r#"<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>http://127.0.0.1:45105/probe/m/k2</Location><Bucket>probe</Bucket><Key>m/k2</Key><ETag></ETag></CompleteMultipartUploadResult>"#;
    assert_eq!(parse_complete_multipart(rgw.as_bytes()).unwrap(), None);
    assert!(parse_complete_multipart(b"<Other><ETag>\"a\"</ETag></Other>").is_err());

    let body = complete_multipart_body(&[(1, "a&b".into()), (2, "\"c\"".into())]);
    let want = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"a&amp;b\"</ETag>\
        </Part><Part><PartNumber>2</PartNumber><ETag>\"c\"</ETag></Part></CompleteMultipartUpload>";
    assert_eq!(body, want);

    let uploads = r#"<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><NextKeyMarker>my%2Bmovie.m2ts</NextKeyMarker>
<NextUploadIdMarker>YW55IGlkZWE</NextUploadIdMarker><EncodingType>url</EncodingType><MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>
<Upload><Key>my+divisor</Key><UploadId>XMgbGlrZSBlbHZpbmcncyBub3Q</UploadId><Initiator><ID>arn:aws:iam::1:user/u</ID>
<DisplayName>u</DisplayName></Initiator><Owner><ID>o</ID></Owner><StorageClass>STANDARD</StorageClass>
<Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload></ListMultipartUploadsResult>"#;
    let (list, truncated, key, id) = parse_list_multipart_uploads(uploads.as_bytes()).unwrap();
    let want =
        r#"[Upload { key: "my divisor", upload_id: "XMgbGlrZSBlbHZpbmcncyBub3Q", initiated: Some(1289422113) }]"#;
    assert_eq!((format!("{list:?}").as_str(), truncated), (want, true));
    assert_eq!((key, id), (some("my+movie.m2ts"), some("YW55IGlkZWE")));
}

#[test]
fn delete_result_and_round_trip() {
    let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Deleted><Key>sample1.txt</Key><DeleteMarker>true</DeleteMarker></Deleted>
  <Error><Key>sample2.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
</DeleteResult>"#;
    let (deleted, failed) = parse_delete_result(doc.as_bytes()).unwrap();
    assert_eq!(deleted, ["sample1.txt"]);
    let want = r#"[DeleteFailure { key: "sample2.txt", code: "AccessDenied", message: "Access Denied" }]"#;
    assert_eq!(format!("{failed:?}"), want);

    let keys = "a&b|<x>|\"q\" 'a'|café/日本語 🦀| sp |tab\tnl\ncr\r\n|&amp;";
    let keys: Vec<&str> = keys.split('|').collect();
    let body = delete_objects_body(&keys, true).unwrap();
    assert!(body.starts_with("<Delete><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object>"));
    let mut x = Xml::new(body.as_bytes());
    x.expect_root("Delete").unwrap();
    let mut back = Vec::new();
    let mut object = |x: &mut Xml, _: &str| x.fields(["Key"]).map(|[k]| back.extend(k));
    x.children(&mut object).unwrap();
    assert_eq!(back, keys);
    let bell = delete_objects_body(&["ok", "bell\u{7}"], false).unwrap_err();
    assert!(bell.0.contains("U+0007"), "{bell}");
    assert!(delete_objects_body(&["nul\0"], true).is_err());
    let none = delete_objects_body(&[], false).unwrap();
    assert_eq!(none, "<Delete><Quiet>false</Quiet></Delete>");
}

#[test]
fn malformed_documents_are_errors() {
    let bad = |inner: &str| {
        let doc = format!("<ListBucketResult><Contents>{inner}</Contents></ListBucketResult>");
        let doc = doc.replace("LM", "<LastModified>t</LastModified>");
        list(&doc).unwrap_err().0
    };
    assert!(bad("<Key>k</Key>LM<Size>x</Size>").contains("<Size> is not a number"));
    assert!(bad("<Key>k</Key>LM<Size>-1</Size>").contains("<Size>"));
    assert!(bad("LM<Size>1</Size>").contains("missing <Key> in <Contents>"));
    assert!(bad("<Key>k</Key>LM").contains("missing <Size>"));
    assert!(bad("<Key>k</Size>LM").contains("malformed"));
    assert!(bad("<Key>k<b/></Key>LM<Size>1</Size>").contains("<b> inside <Key>"));
    assert!(bad("<Key>&bogus;</Key>").contains("bad text inside <Key>"));
    assert!(list("<ListBucketResult><IsTruncated>maybe</IsTruncated>").is_err());
    let count = list("<ListBucketResult><KeyCount>7x</KeyCount></ListBucketResult>");
    assert!(count.unwrap_err().0.contains("KeyCount"));
    let other = list("<DeleteResult/>").unwrap_err();
    assert!(other.0.contains("found <DeleteResult>"));
    let truncated = list("<ListBucketResult><Contents><Key>ab").unwrap_err();
    assert!(truncated.0.contains("truncated inside <Key>"));
    for doc in ["", "garbage", "\0\u{1}<<>>", "<a></b>", "<ListBucketResult></Contents>"] {
        assert!(list(doc).is_err(), "{doc:?}");
    }
    assert!(parse_list_objects_v2(b"<ListBucketResult><Prefix>\xff</Prefix>").is_err());
    let url = |key: &str| {
        let doc = "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>@</Key>\
            <LastModified>t</LastModified><Size>1</Size></Contents></ListBucketResult>";
        list(&doc.replace('@', key))
    };
    assert_eq!(keys(&url("ok%21").unwrap()), ["ok!"]);
    for key in ["%zz", "a%2", "%", "%+1", "%C3", "%FF%FE", "%C3%28"] {
        assert!(url(key).is_err(), "{key:?}");
    }
    assert!(url("%C3").unwrap_err().0.contains("UTF-8"));
    let bad_escape = url("%g0").unwrap_err().0;
    assert!(bad_escape.contains("percent escape in <Key>"));
}

#[test]
fn never_panics() {
    let parsers: [fn(&[u8]) -> bool; 6] = [
        |b| parse_list_objects_v2(b).is_ok(),
        |b| parse_error(b).is_ok(),
        |b| parse_initiate_multipart(b).is_ok(),
        |b| parse_complete_multipart(b).is_ok(),
        |b| parse_delete_result(b).is_ok(),
        |b| parse_list_multipart_uploads(b).is_ok(),
    ];
    // Every proper prefix of a real document is an error; other parsers just must not panic.
    for cut in 0..LIST.trim_end().len() {
        let prefix = &LIST.as_bytes()[..cut];
        assert!(!parsers[0](prefix), "cut at {cut}");
        parsers.iter().for_each(|p| _ = p(prefix));
    }
    let (mut seed, mut junk) = (0x2545_f491_4f6c_dd1d_u64, Vec::new());
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        junk.push(b"<>/&;#x\"'=aE! \n\xc3\xa9\xff"[(seed % 18) as usize]);
    }
    let deep = format!("<Error><Code>{}", "<a>".repeat(100_000));
    for p in parsers {
        p(&junk);
        assert!(!p(deep.as_bytes()));
    }
}

#[test]
fn iso8601() {
    let t = Some(1_255_369_830);
    assert_eq!(parse_iso8601("2009-10-12T17:50:30.000Z"), t);
    assert_eq!(parse_iso8601("2009-10-12T17:50:30Z"), t);
    assert_eq!(parse_iso8601("2009-10-12T17:50:30.999+00:00"), t);
    assert_eq!(parse_iso8601("2009-10-12T19:50:30+02:00"), t);
    assert_eq!(parse_iso8601("2009-10-12T16:50:30-0100"), t);
    assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_iso8601("1969-12-31T23:59:59.5Z"), Some(-1));
    assert_eq!(parse_iso8601("2000-02-29T00:00:00Z"), Some(951_782_400));
    assert_eq!(parse_iso8601("2038-01-19T03:14:08Z"), Some(1 << 31));
    let bad = "|2009-10-12|2009-10-12T17:50:30|2009-13-01T00:00:00Z|2001-02-29T00:00:00Z\
        |2009-10-12T24:00:00Z|2009-10-12T17:50:30.Z|2009-10-12T17:50:30+0x:00|2009-10-12T17:5é:30Z\
        |2009-10-12T17:50:30Zjunk|+2009-10-12T17:50:30Z|2009-10-12T17:50:30+01:0";
    for s in bad.split('|') {
        assert_eq!(parse_iso8601(s), None, "{s:?}");
    }
}

/// The ListParts answer of the S3 API reference (trimmed), then a last page.
#[test]
fn list_parts_pages() {
    let page = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>example-bucket</Bucket><Key>example-object</Key>
  <UploadId>XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA</UploadId>
  <PartNumberMarker>1</PartNumberMarker><NextPartNumberMarker>3</NextPartNumberMarker>
  <MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>
  <Part><PartNumber>2</PartNumber><LastModified>2010-11-10T20:48:34.000Z</LastModified>
    <ETag>"7778aef83f66abc1fa1e8477f296d394"</ETag><Size>10485760</Size></Part>
  <Part><PartNumber>3</PartNumber><LastModified>2010-11-10T20:48:33.000Z</LastModified>
    <ETag>"aaaa18db4cc2f85cedef654fccc4a4x8"</ETag><Size>10485760</Size></Part>
</ListPartsResult>"#;
    let (parts, next) = parse_list_parts(page).unwrap();
    assert_eq!(next, Some(3));
    assert_eq!(parts[0], Part { number: 2, etag: "7778aef83f66abc1fa1e8477f296d394".into(), size: 10_485_760 });
    assert_eq!(parts[1].number, 3);
    let last = b"<ListPartsResult><IsTruncated>false</IsTruncated><NextPartNumberMarker>9</NextPartNumberMarker></ListPartsResult>";
    assert_eq!(parse_list_parts(last).unwrap(), (vec![], None));
    assert!(parse_list_parts(b"<ListPartsResult><Part><PartNumber>x</PartNumber></Part></ListPartsResult>").is_err());
}

/// Issue 9: Ceph RGW encodes '/' in listed keys and echoes the prefix plain; s4 took the plain
/// echo for a store that does not encode, found no key under `s4test/`, and deleted the files.
#[test]
fn rgw_listing_with_encoded_slash_is_decoded() {
    let doc = r#"<ListBucketResult><Name>cephb</Name><Prefix>s4test/</Prefix><KeyCount>2</KeyCount>
        <Contents><Key>s4test%2F.index</Key><LastModified>x</LastModified><Size>1</Size></Contents>
        <Contents><Key>s4test%2Ff1.txt</Key><LastModified>x</LastModified><Size>2</Size></Contents>
        <IsTruncated>false</IsTruncated><EncodingType>url</EncodingType></ListBucketResult>"#;
    let mut page = parse_list_objects_v2_raw(doc.as_bytes()).unwrap();
    let wire = keys(&page);
    assert_eq!(url_evidence("s4test/", wire.iter().copied()), Ok(UrlEvidence::Encoded));
    url_decode_page(&mut page).unwrap();
    assert_eq!(keys(&page), ["s4test/.index", "s4test/f1.txt"]);
    // The echoed prefix is left as sent.
    assert_eq!(page.prefix.as_deref(), Some("s4test/"));
}

/// Keys that read differently decoded are judged only on evidence no real key can fake.
#[test]
fn url_evidence_never_misreads_a_real_key() {
    use UrlEvidence::*;
    let cases: &[(&str, &[&str], UrlEvidence)] = &[
        // s3s-fs: claims url, sends keys as they are.
        ("p/", &["p/a b.txt"], Raw),
        ("p/", &["p/café"], Raw),
        ("p/", &["p/100%"], Raw),
        ("p/", &["p/%zz"], Raw),
        ("a+b/", &["a+b/x"], Raw),
        ("a b/", &["a b/x"], Raw),
        // Encoders: AWS ('+' for space, '/' kept), RGW ('/' too).
        ("a b/", &["a+b/x"], Encoded),
        ("a+b/", &["a%2Bb/x"], Encoded),
        ("p/", &["p%2Fx"], Encoded),
        ("ü/", &["%C3%BC/x"], Encoded),
        // Nothing changes when decoded: either reading is right.
        ("p/", &["p/x.txt", "p/y"], Irrelevant),
        ("", &[], Irrelevant),
        // A literal "%2F", "%41" or '+' in a key under a plain prefix: the page cannot tell.
        ("p/", &["p/x", "p/a%2Fb"], Ambiguous(vec!["p/a%2Fb".into()])),
        ("p/", &["p/%41", "p/a+b"], Ambiguous(vec!["p/%41".into(), "p/a+b".into()])),
        ("", &["a%2Fb"], Ambiguous(vec!["a%2Fb".into()])),
        // One definite key settles an ambiguous one.
        ("p/", &["p/%41", "p/a b"], Raw),
        ("p/", &["p%2F%2541"], Encoded),
    ];
    for (prefix, keys, want) in cases {
        assert_eq!(url_evidence(prefix, keys.iter().copied()).as_ref(), Ok(want), "{prefix:?} {keys:?}");
    }
    // Mixed evidence is an error, never a guess.
    assert!(url_evidence("p/", ["p%2Fx", "p/a b"]).is_err());
}

#[test]
fn copy_results_name_the_new_etag() {
    // AWS's documented answers to CopyObject and UploadPartCopy.
    let object = r#"<?xml version="1.0" encoding="UTF-8"?>
<CopyObjectResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LastModified>2009-10-12T17:50:30.000Z</LastModified><ETag>"9b2cf535f27731c974343645a3985328"</ETag></CopyObjectResult>"#;
    let tag = parse_copy_result(object.as_bytes(), "CopyObjectResult").unwrap();
    assert_eq!(tag.as_deref(), Some("9b2cf535f27731c974343645a3985328"));
    let part = r#"<CopyPartResult><LastModified>2011-04-11T20:34:56.000Z</LastModified><ETag>"b20b0f9f2f5d4b1a6d8e6d2f0a6c7f1e"</ETag></CopyPartResult>"#;
    assert!(parse_copy_result(part.as_bytes(), "CopyPartResult").unwrap().is_some());
    assert!(parse_copy_result(object.as_bytes(), "CopyPartResult").is_err());
}
