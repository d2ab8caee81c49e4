//! Content comparison: do these local bytes equal that object? (S4 called every key present on
//! both sides at a first sync a conflict, identical or not; and a transfer that finished but was
//! not recorded before a crash is recognised this way, not sent again.)

use std::path::Path;

/// Does the file's content produce this ETag? Plain ETags are the MD5; multipart ones
/// ("md5-of-md5s-N") are checked against the part sizes uploaders commonly use.
pub fn local_matches_etag(path: &Path, size: u64, etag: &str, preferred_part: u64) -> bool {
    use md5::{Digest, Md5};
    let etag = etag.trim_matches('"').to_ascii_lowercase();
    let md5_of = |offset: u64, len: u64| crate::fsutil::md5_range(path, offset, len).ok();
    match etag.split_once('-') {
        None if etag.len() == 32 => md5_of(0, size).is_some_and(|d| hex::encode(d) == etag),
        None => false,
        Some((digest, count)) => {
            let Ok(count) = count.parse::<u64>() else { return false };
            let mib = crate::s3::multipart::MIB;
            let ours = crate::s3::multipart::part_size(size, preferred_part).unwrap_or(0);
            let mut candidates = vec![ours, 8 * mib, 5 * mib, 16 * mib, 64 * mib];
            candidates.dedup();
            candidates.into_iter().filter(|p| *p > 0 && size.div_ceil(*p) == count).any(|p| {
                let mut all = Md5::new();
                for (_, off, len) in crate::s3::multipart::parts(size, p) {
                    match md5_of(off, len) {
                        Some(d) => all.update(d),
                        None => return false,
                    }
                }
                hex::encode(all.finalize()) == digest
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_of_local_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        // md5("hello")
        assert!(local_matches_etag(&p, 5, "\"5d41402abc4b2a76b9719d911017c592\"", 8 << 20));
        assert!(!local_matches_etag(&p, 5, "00000000000000000000000000000000", 8 << 20));
        let big = d.path().join("big");
        let data: Vec<u8> = (0..(11u32 << 20)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&big, &data).unwrap();
        // Multipart ETag with 5 MiB parts: md5 of the concatenated part md5s, "-3".
        use md5::{Digest, Md5};
        let mut all = Md5::new();
        for c in data.chunks(5 << 20) {
            all.update(Md5::digest(c));
        }
        let etag = format!("{}-3", hex::encode(all.finalize()));
        assert!(local_matches_etag(&big, data.len() as u64, &etag, 8 << 20));
        assert!(!local_matches_etag(&big, data.len() as u64, "abc-3", 8 << 20));
    }
}
