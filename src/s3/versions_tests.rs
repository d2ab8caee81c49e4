use super::*;

/// The example answer of the AWS S3 API reference (ListObjectVersions, "Example 1").
const AWS_EXAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01">
    <Name>bucket</Name>
    <Prefix>my</Prefix>
    <KeyMarker/>
    <VersionIdMarker/>
    <MaxKeys>5</MaxKeys>
    <IsTruncated>false</IsTruncated>
    <Version>
        <Key>my-image.jpg</Key>
        <VersionId>3/L4kqtJl40Nr8X8gdRQBpUMLUo</VersionId>
        <IsLatest>true</IsLatest>
        <LastModified>2009-10-12T17:50:30.000Z</LastModified>
        <ETag>"fba9dede5f27731c9771645a39863328"</ETag>
        <Size>434234</Size>
        <StorageClass>STANDARD</StorageClass>
        <Owner>
            <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
            <DisplayName>mtd@amazon.com</DisplayName>
        </Owner>
    </Version>
    <DeleteMarker>
        <Key>my-second-image.jpg</Key>
        <VersionId>03jpff543dhffds434rfdsFDN943fdsFkdmqnh892</VersionId>
        <IsLatest>true</IsLatest>
        <LastModified>2009-11-12T17:50:30.000Z</LastModified>
        <Owner>
            <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
            <DisplayName>mtd@amazon.com</DisplayName>
        </Owner>
    </DeleteMarker>
    <Version>
        <Key>my-second-image.jpg</Key>
        <VersionId>QUpfdndhfd8438MNFDN93jdnJFkdmqnh893</VersionId>
        <IsLatest>false</IsLatest>
        <LastModified>2009-10-10T17:50:30.000Z</LastModified>
        <ETag>"9b2cf535f27731c974343645a3985328"</ETag>
        <Size>166434</Size>
        <StorageClass>STANDARD</StorageClass>
        <Owner>
            <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
            <DisplayName>mtd@amazon.com</DisplayName>
        </Owner>
    </Version>
    <DeleteMarker>
        <Key>my-third-image.jpg</Key>
        <VersionId>03jpff543dhffds434rfdsFDN943fdsFkdmqnh892</VersionId>
        <IsLatest>true</IsLatest>
        <LastModified>2009-10-15T17:50:30.000Z</LastModified>
        <Owner>
            <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
            <DisplayName>mtd@amazon.com</DisplayName>
        </Owner>
    </DeleteMarker>
    <Version>
        <Key>my-third-image.jpg</Key>
        <VersionId>UIORUnfndfhnw89493jJFJ</VersionId>
        <IsLatest>false</IsLatest>
        <LastModified>2009-10-11T12:50:30.000Z</LastModified>
        <ETag>"772cf535f27731c974343645a3985328"</ETag>
        <Size>64</Size>
        <StorageClass>STANDARD</StorageClass>
        <Owner>
            <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
            <DisplayName>mtd@amazon.com</DisplayName>
        </Owner>
    </Version>
</ListVersionsResult>"#;

fn version(key: &str, id: &str, latest: bool, lm: &str, size: u64, marker: bool) -> Version {
    Version {
        key: key.into(),
        version_id: id.into(),
        is_latest: latest,
        last_modified: lm.into(),
        size,
        etag: None,
        delete_marker: marker,
    }
}

#[test]
fn aws_example_parses_versions_and_delete_markers_in_order() {
    let page = parse_list_versions(AWS_EXAMPLE.as_bytes()).unwrap();
    assert!(!page.is_truncated && !page.url_claimed);
    assert_eq!(page.next_key_marker, None);
    assert_eq!(page.versions.len(), 5);
    let first = &page.versions[0];
    assert_eq!(first.key, "my-image.jpg");
    assert_eq!(first.version_id, "3/L4kqtJl40Nr8X8gdRQBpUMLUo");
    assert!(first.is_latest && !first.delete_marker);
    assert_eq!((first.size, first.etag.as_deref()), (434234, Some("fba9dede5f27731c9771645a39863328")));
    assert_eq!(first.time(), Some(1255369830));
    let marker = &page.versions[1];
    assert_eq!(marker.key, "my-second-image.jpg");
    assert!(marker.delete_marker && marker.is_latest);
    assert_eq!((marker.size, marker.etag.as_ref()), (0, None));
    let kinds: Vec<bool> = page.versions.iter().map(|v| v.delete_marker).collect();
    assert_eq!(kinds, [false, true, false, true, false]);
}

#[test]
fn only_the_exact_key_is_kept_newest_first() {
    let page = parse_list_versions(AWS_EXAMPLE.as_bytes()).unwrap();
    let v = versions_of("my-second-image.jpg", page.versions);
    let ids: Vec<&str> = v.iter().map(|v| v.version_id.as_str()).collect();
    assert_eq!(ids, ["03jpff543dhffds434rfdsFDN943fdsFkdmqnh892", "QUpfdndhfd8438MNFDN93jdnJFkdmqnh893"]);
    // A prefix of other keys is not the key.
    let all =
        vec![version("a", "1", true, "2024-01-01T00:00:00Z", 1, false), version("a.bak", "2", true, "x", 1, false)];
    assert_eq!(versions_of("a", all).len(), 1);
}

#[test]
fn moto_order_is_sorted_by_time_to_the_millisecond() {
    // moto lists all Versions, then all DeleteMarkers, and one sync may make several
    // versions within a second.
    let all = vec![
        version("f", "v2", false, "2024-05-01T10:00:00.420Z", 2, false),
        version("f", "v1", false, "2024-05-01T10:00:00.100Z", 1, false),
        version("f", "dm", true, "2024-05-01T10:00:00.900Z", 0, true),
        version("f", "v0", false, "2024-05-01T09:59:59Z", 1, false),
    ];
    let ids: Vec<String> = versions_of("f", all).into_iter().map(|v| v.version_id).collect();
    assert_eq!(ids, ["dm", "v2", "v1", "v0"]);
}

#[test]
fn paging_markers_and_url_encoded_keys() {
    let xml = br#"<ListVersionsResult><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
        <NextKeyMarker>a+b%2Bc</NextKeyMarker><NextVersionIdMarker>v9</NextVersionIdMarker>
        <Version><Key>a+b%2Bc</Key><VersionId>v9</VersionId><IsLatest>false</IsLatest>
        <LastModified>2024-05-01T10:00:00Z</LastModified><ETag>&quot;e&quot;</ETag><Size>3</Size></Version>
        </ListVersionsResult>"#;
    let mut page = parse_list_versions(xml).unwrap();
    assert!(page.is_truncated && page.url_claimed);
    assert_eq!(page.versions[0].etag.as_deref(), Some("e"));
    url_decode_versions(&mut page).unwrap();
    assert_eq!(page.versions[0].key, "a b+c");
    assert_eq!(page.next_key_marker.as_deref(), Some("a b+c"));
    assert_eq!(page.next_version_id_marker.as_deref(), Some("v9"));
    // Ceph RGW encodes the keys but sends the marker as the key is: left as it came.
    let rgw = br#"<ListVersionsResult><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
        <NextKeyMarker>p/a b+c%41</NextKeyMarker><NextVersionIdMarker>v9</NextVersionIdMarker>
        <Version><Key>p%2Fa%20b%2Bc%2541</Key><VersionId>v9</VersionId><IsLatest>false</IsLatest>
        <LastModified>2024-05-01T10:00:00Z</LastModified><ETag>&quot;e&quot;</ETag><Size>3</Size></Version>
        </ListVersionsResult>"#;
    let mut page = parse_list_versions(rgw).unwrap();
    url_decode_versions(&mut page).unwrap();
    assert_eq!(page.versions[0].key, "p/a b+c%41");
    assert_eq!(page.next_key_marker.as_deref(), Some("p/a b+c%41"));
}

#[test]
fn malformed_answers_are_errors_naming_the_problem() {
    let no_size =
        b"<ListVersionsResult><Version><Key>k</Key><LastModified>x</LastModified></Version></ListVersionsResult>";
    assert!(parse_list_versions(no_size).unwrap_err().0.contains("missing <Size> in <Version>"));
    let err = parse_list_versions(b"<Error><Code>NotImplemented</Code><Message>m</Message></Error>").unwrap_err();
    assert!(err.0.contains("NotImplemented"), "{err}");
    assert!(parse_list_versions(b"<ListVersionsResult><Version>").is_err());
}

#[test]
fn versioning_states() {
    let doc = |s: &str| {
        format!(
            "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{s}</VersioningConfiguration>"
        )
    };
    assert_eq!(parse_versioning(doc("<Status>Enabled</Status>").as_bytes()), Ok(Versioning::Enabled));
    assert_eq!(parse_versioning(doc("<Status>Suspended</Status>").as_bytes()), Ok(Versioning::Suspended));
    assert_eq!(parse_versioning(doc("").as_bytes()), Ok(Versioning::Off));
    assert_eq!(parse_versioning(b"<VersioningConfiguration/>"), Ok(Versioning::Off));
    // moto 5.2
    let moto = br#"<GetBucketVersioningResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></GetBucketVersioningResponse>"#;
    assert_eq!(parse_versioning(moto), Ok(Versioning::Enabled));
    assert!(parse_versioning(b"<Other/>").unwrap_err().0.contains("expected <VersioningConfiguration>"));
    assert!(parse_versioning(doc("<Status>Maybe</Status>").as_bytes()).is_err());
    assert_eq!(parse_versioning(versioning_body(true).as_bytes()), Ok(Versioning::Enabled));
    assert_eq!(parse_versioning(versioning_body(false).as_bytes()), Ok(Versioning::Suspended));
}
