//! S4's `.index` (SPEC-S4 §1): gzip of compact JSON `{key: {"local_timestamp", "remote_timestamp"}}`.
//! Read as plain JSON, gzip or zlib; written as gzip, exactly as S4 writes it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};

use flate2::read::{GzDecoder, ZlibDecoder};
use flate2::write::GzEncoder;
use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
        // On the stack: an index write formats one a key (a String each was 7% of a commit).
        let mut buf = [0u8; 32];
        hex::encode_to_slice(self.digest, &mut buf).expect("32 hex digits for 16 bytes");
        let hex = std::str::from_utf8(&buf).expect("hex is ASCII");
        match self.parts {
            0 => f.write_str(hex),
            OPAQUE => write!(f, "~{hex}"),
            n => write!(f, "{hex}-{n}"),
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

/// Decode an index file's bytes into a map (for `s4 ls` and the tests; a sync streams the
/// file into its compact table instead, see `read_each`).
pub fn decode(bytes: &[u8]) -> Result<Index, String> {
    let mut index = Index::new();
    read_each(bytes, |key, e| {
        index.insert(key.to_string(), e);
    })?;
    Ok(index)
}

/// Gzip of compact JSON, as S4 writes it (`json.dump` then `gzip.open(.., "wt")`).
pub fn encode(index: &Index) -> Vec<u8> {
    write_each(Vec::new(), index.iter().map(|(k, e)| (k.as_str(), *e))).expect("in-memory write")
}

/// Stream an index's entries to `each`, in file order (a key met twice: the last one counts,
/// as when Python or serde builds a map), without holding the file's text: at a million keys
/// the JSON alone is ~80 MB (issue 13). Plain JSON, gzip or zlib, sniffed by magic bytes
/// (what S4's libmagic check amounts to); empty or blank is an empty index.
pub fn read_each(src: impl Read, mut each: impl FnMut(&str, Entry)) -> Result<(), String> {
    let mut src = BufReader::with_capacity(64 << 10, src);
    let head = src.fill_buf().map_err(|e| format!("reading: {e}"))?;
    let (text, what): (Box<dyn Read>, &str) = if head.starts_with(&[0x1f, 0x8b]) {
        (Box::new(GzDecoder::new(src)), "gzip")
    } else if head.len() >= 2 && head[0] == 0x78 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0 {
        (Box::new(ZlibDecoder::new(src)), "zlib")
    } else {
        (Box::new(src), "index")
    };
    let mut text = BufReader::with_capacity(64 << 10, text);
    loop {
        let buf = text.fill_buf().map_err(|e| format!("bad {what}: {e}"))?;
        if buf.is_empty() {
            return Ok(());
        }
        let blank = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        if blank < buf.len() {
            break;
        }
        text.consume(blank);
    }
    let mut de = serde_json::Deserializer::from_reader(text);
    let bad = |e: serde_json::Error| match e.is_io() {
        true => format!("bad {what}: {e}"),
        false => format!("not an S4 index: {e}"),
    };
    de.deserialize_map(EachEntry { each: &mut each }).map_err(bad)?;
    de.end().map_err(bad)
}

/// The top-level object, one entry at a time, the key read into one reused buffer.
struct EachEntry<'f, F> {
    each: &'f mut F,
}

impl<'de, F: FnMut(&str, Entry)> Visitor<'de> for EachEntry<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object of index entries")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut key = String::new();
        while map.next_key_seed(KeyInto(&mut key))?.is_some() {
            let entry: Entry = map.next_value()?;
            (self.each)(&key, entry);
        }
        Ok(())
    }
}

struct KeyInto<'b>(&'b mut String);

impl<'de> DeserializeSeed<'de> for KeyInto<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyInto<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.clear();
        self.0.push_str(v);
        Ok(())
    }
}

/// Write entries (in key order: the caller's) as S4's file: gzip of compact JSON, one entry
/// at a time, exactly what serde writes for the whole map (`{"k":{..},"k2":{..}}`).
pub fn write_each<'a, W: Write>(out: W, entries: impl Iterator<Item = (&'a str, Entry)>) -> std::io::Result<W> {
    // S4's json.dump separates with ", " and ": ": Python reads either; compact is smaller.
    // Level 1: any gzip reader reads any level, and a daemon's round rewrites both indexes
    // (issue 13): at a million keys level 6 was over a third of the round's CPU; level 1 (by
    // zlib-rs) writes one in ~0.7 s here, for a file ~10% larger.
    let mut w = BufWriter::with_capacity(64 << 10, GzEncoder::new(out, flate2::Compression::new(1)));
    w.write_all(b"{")?;
    for (i, (key, entry)) in entries.enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        serde_json::to_writer(&mut w, key)?;
        w.write_all(b":")?;
        serde_json::to_writer(&mut w, &entry)?;
    }
    w.write_all(b"}")?;
    w.into_inner().map_err(|e| e.into_error())?.finish()
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
