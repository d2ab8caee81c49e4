//! S4's `.index` (SPEC-S4 §1): gzip of compact JSON `{key: {"local_timestamp", "remote_timestamp"}}`.
//! Read as plain JSON, gzip or zlib; written as gzip, exactly as S4 writes it.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use flate2::read::{GzDecoder, ZlibDecoder};
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize, Serializer};

/// One key's record. `local_timestamp: None` with a `remote_timestamp` is a tombstone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
pub struct Entry {
    #[serde(default)]
    pub local_timestamp: Option<f64>,
    /// The version stamp both sides agreed on; an integer in practice, written as one.
    #[serde(default, serialize_with = "int_if_whole")]
    pub remote_timestamp: Option<f64>,
    /// Which object version the entry describes (issue 10: stamps are second-granular and
    /// two machines can pick the same one; an ETag names one version). An extra field: S4
    /// 0.4.4 ignores it and drops it when it rewrites an entry, so it may be missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<Etag>,
}

/// An object's ETag, held compactly (indexes hold one per file): the MD5 (for a multipart
/// object, the MD5 of the parts' MD5s) and the part count. An ETag that is not hex (some
/// stores make their own) is kept as the MD5 of its text: good for telling versions apart,
/// not for sending back in `If-Match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Etag {
    digest: [u8; 16],
    /// 0: a plain MD5; n: "…-n"; `OPAQUE`: the digest is of the text.
    parts: u32,
}

const OPAQUE: u32 = u32::MAX;

impl Etag {
    pub fn parse(text: &str) -> Etag {
        let t = text.trim_matches('"');
        let (hex_part, parts) = match t.split_once('-') {
            Some((h, n)) => (h, n.parse::<u32>().ok().filter(|n| *n != OPAQUE && *n != 0)),
            None => (t, Some(0)),
        };
        let mut digest = [0u8; 16];
        match (parts, hex::decode_to_slice(hex_part.to_ascii_lowercase(), &mut digest)) {
            (Some(parts), Ok(())) => Etag { digest, parts },
            _ => {
                use md5::Digest;
                Etag { digest: md5::Md5::digest(t.as_bytes()).into(), parts: OPAQUE }
            }
        }
    }

    /// The text to send in `If-Match`, when it can be rebuilt exactly.
    pub fn header(&self) -> Option<String> {
        (self.parts != OPAQUE).then(|| self.to_string())
    }
}

impl std::fmt::Display for Etag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.parts {
            0 => write!(f, "{}", hex::encode(self.digest)),
            OPAQUE => write!(f, "~{}", hex::encode(self.digest)),
            n => write!(f, "{}-{n}", hex::encode(self.digest)),
        }
    }
}

impl Serialize for Etag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Etag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(match text.strip_prefix('~').map(hex::decode) {
            Some(Ok(b)) if b.len() == 16 => Etag { digest: b.try_into().expect("16 bytes"), parts: OPAQUE },
            _ => Etag::parse(&text),
        })
    }
}

fn int_if_whole<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) if x.fract() == 0.0 && x.abs() < 9e15 => s.serialize_i64(*x as i64),
        Some(x) => s.serialize_f64(*x),
        None => s.serialize_none(),
    }
}

impl Entry {
    pub fn new(local_timestamp: Option<f64>, remote_timestamp: Option<f64>, etag: Option<Etag>) -> Entry {
        Entry { local_timestamp, remote_timestamp, etag }
    }

    pub fn is_tombstone(&self) -> bool {
        self.local_timestamp.is_none()
    }
}

pub type Index = BTreeMap<String, Entry>;

/// Decode an index file's bytes: empty, plain JSON, gzip or zlib (sniffed by magic bytes,
/// which is what S4's libmagic check amounts to).
pub fn decode(bytes: &[u8]) -> Result<Index, String> {
    let text: Vec<u8> = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(bytes).read_to_end(&mut out).map_err(|e| format!("bad gzip: {e}"))?;
        out
    } else if bytes.len() >= 2 && bytes[0] == 0x78 && (u16::from(bytes[0]) << 8 | u16::from(bytes[1])) % 31 == 0 {
        let mut out = Vec::new();
        ZlibDecoder::new(bytes).read_to_end(&mut out).map_err(|e| format!("bad zlib: {e}"))?;
        out
    } else {
        bytes.to_vec()
    };
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(Index::new());
    }
    serde_json::from_slice(&text).map_err(|e| format!("not an S4 index: {e}"))
}

/// Gzip of compact JSON, as S4 writes it (`json.dump` then `gzip.open(.., "wt")`).
pub fn encode(index: &Index) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    let json = serde_json::to_vec(index).expect("index serialises");
    // S4's json.dump separates with ", " and ": ": Python reads either; compact is smaller.
    gz.write_all(&json).expect("in-memory write");
    gz.finish().expect("in-memory write")
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::ZlibEncoder;

    const S4_JSON: &str = r#"{"dir/f.txt": {"local_timestamp": 1700000000.25, "remote_timestamp": 1700000000}, "gone": {"local_timestamp": null, "remote_timestamp": 1690000000}, "x": {"remote_timestamp": 5, "size": 10}}"#;

    #[test]
    fn reads_plain_gzip_zlib_and_empty() {
        let plain = decode(S4_JSON.as_bytes()).unwrap();
        assert_eq!(plain["dir/f.txt"].local_timestamp, Some(1700000000.25));
        assert!(plain["gone"].is_tombstone());
        assert_eq!(plain["x"].remote_timestamp, Some(5.0));
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(S4_JSON.as_bytes()).unwrap();
        assert_eq!(decode(&gz.finish().unwrap()).unwrap(), plain);
        let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(S4_JSON.as_bytes()).unwrap();
        assert_eq!(decode(&z.finish().unwrap()).unwrap(), plain);
        assert!(decode(b"").unwrap().is_empty());
        assert!(decode(b"{}").unwrap().is_empty());
        assert!(decode(b"\x1f\x8bjunk").is_err());
        assert!(decode(b"[1,2]").is_err());
    }

    #[test]
    fn etags_round_trip_and_stay_optional() {
        for text in ["0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef-12"] {
            let e = Etag::parse(&format!("\"{text}\""));
            assert_eq!(e.to_string(), text);
            assert_eq!(e.header().as_deref(), Some(text));
            assert_eq!(Etag::parse(&text.to_uppercase()), e);
        }
        let odd = Etag::parse("not-hex-at-all");
        assert_eq!(odd.header(), None);
        assert_ne!(odd, Etag::parse("not-hex-at-al1"));
        let mut idx = decode(S4_JSON.as_bytes()).unwrap();
        idx.get_mut("x").unwrap().etag = Some(Etag::parse("0123456789abcdef0123456789abcdef"));
        idx.get_mut("gone").unwrap().etag = Some(odd);
        let back = decode(&encode(&idx)).unwrap();
        assert_eq!(back, idx);
        // Entries without one (S4's) are written as S4 writes them.
        assert!(!String::from_utf8_lossy(&serde_json::to_vec(&back["dir/f.txt"]).unwrap()).contains("etag"));
    }

    #[test]
    fn writes_what_s4_writes() {
        let idx = decode(S4_JSON.as_bytes()).unwrap();
        let bytes = encode(&idx);
        assert!(bytes.starts_with(&[0x1f, 0x8b]));
        let mut text = String::new();
        GzDecoder::new(&bytes[..]).read_to_string(&mut text).unwrap();
        assert_eq!(
            text,
            r#"{"dir/f.txt":{"local_timestamp":1700000000.25,"remote_timestamp":1700000000},"gone":{"local_timestamp":null,"remote_timestamp":1690000000},"x":{"local_timestamp":null,"remote_timestamp":5}}"#
        );
        assert_eq!(decode(&bytes).unwrap(), idx);
    }
}
