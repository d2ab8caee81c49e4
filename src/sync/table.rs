//! Both indexes held compactly (issue 13: at a million files two `BTreeMap<String, Entry>`
//! took most of the memory). Keys are mostly the same on both sides, so one sorted table holds
//! each key once, in an arena, with both sides' records packed beside it: 48 bytes a key plus
//! its text and, once per distinct version, its ETag. Loaded by streaming the files into it,
//! written by streaming it out; a run's changes wait in an overlay (state.rs) and are merged
//! in at commit, which rewrites the whole index anyway: never one insert at a time.

use std::io::{Read, Write};
use std::num::NonZeroU32;

use super::index::{self, Entry, Etag};

/// The two indexes, as columns of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Local = 0,
    Remote = 1,
}

/// A stamp is an f64's bits; JSON has no NaN, so two NaN payloads are free to mean "this side
/// has no entry for the key" and "the stamp is null" (a tombstone's `local_timestamp`).
const ABSENT: u64 = 0x7ff8_5334_0000_0001;
const NULL: u64 = 0x7ff8_5334_0000_0002;
/// An ETag's place in the pool, plus one: never zero, so `Option<Packed>` costs nothing more
/// (the overlay holds four a key).
const NO_ETAG: NonZeroU32 = NonZeroU32::MAX;

fn etag_ref(i: usize) -> NonZeroU32 {
    u32::try_from(i + 1).ok().and_then(NonZeroU32::new).filter(|r| *r != NO_ETAG).expect("fewer than 4 billion ETags")
}

/// One side's record of a key, packed; its ETag is a place in the table's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    lt: u64,
    rt: u64,
    etag: NonZeroU32,
}

impl Packed {
    pub const ABSENT: Packed = Packed { lt: ABSENT, rt: NULL, etag: NO_ETAG };

    pub fn is_absent(&self) -> bool {
        self.lt == ABSENT
    }
}

fn pack_stamp(t: Option<f64>) -> u64 {
    t.filter(|t| !t.is_nan()).map_or(NULL, f64::to_bits)
}

fn unpack_stamp(bits: u64) -> Option<f64> {
    (bits != NULL).then(|| f64::from_bits(bits))
}

/// A key (offset and length in the arena: 48 + 16 bits) and both sides' records, flat so the
/// row is 48 bytes rather than the 56 of two padded `Packed`.
#[derive(Debug, Clone, Copy)]
struct Row {
    key: u64,
    lt: [u64; 2],
    rt: [u64; 2],
    etag: [NonZeroU32; 2],
}

impl Row {
    fn empty(key: u64) -> Row {
        Row { key, lt: [ABSENT; 2], rt: [NULL; 2], etag: [NO_ETAG; 2] }
    }

    fn get(&self, s: Side) -> Packed {
        let i = s as usize;
        Packed { lt: self.lt[i], rt: self.rt[i], etag: self.etag[i] }
    }

    fn put(&mut self, s: Side, p: Packed) {
        let i = s as usize;
        (self.lt[i], self.rt[i], self.etag[i]) = (p.lt, p.rt, p.etag);
    }

    fn is_empty(&self) -> bool {
        self.lt == [ABSENT; 2]
    }
}

/// Rows sorted by the key's bytes (S3's order, and the order the files are written in).
#[derive(Default)]
pub struct Table {
    arena: Vec<u8>,
    rows: Vec<Row>,
    /// ETags, each pushed once and never moved: `Packed` points into it. Both sides of a key
    /// usually name the same version and share one.
    etags: Vec<Etag>,
    count: [usize; 2],
}

impl Table {
    fn key_of(&self, r: &Row) -> &[u8] {
        let off = (r.key >> 16) as usize;
        &self.arena[off..off + (r.key & 0xffff) as usize]
    }

    fn key_str(&self, r: &Row) -> &str {
        std::str::from_utf8(self.key_of(r)).expect("keys are pushed from &str")
    }

    fn push_key(&mut self, key: &str) -> u64 {
        let off = self.arena.len() as u64;
        assert!(key.len() <= 0xffff && off < 1 << 48, "an index key of {} bytes", key.len());
        self.arena.extend_from_slice(key.as_bytes());
        off << 16 | key.len() as u64
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.rows.binary_search_by(|r| self.key_of(r).cmp(key.as_bytes()))
    }

    /// How many keys the side holds (as of the last load or merge).
    pub fn len(&self, s: Side) -> usize {
        self.count[s as usize]
    }

    pub fn get(&self, s: Side, key: &str) -> Option<Entry> {
        self.find(key).ok().and_then(|i| self.unpack(self.rows[i].get(s)))
    }

    pub fn packed(&self, s: Side, key: &str) -> Packed {
        self.find(key).map_or(Packed::ABSENT, |i| self.rows[i].get(s))
    }

    pub fn unpack(&self, p: Packed) -> Option<Entry> {
        if p.is_absent() {
            return None;
        }
        let etag = (p.etag != NO_ETAG).then(|| self.etags[p.etag.get() as usize - 1]);
        Some(Entry::new(unpack_stamp(p.lt), unpack_stamp(p.rt), etag))
    }

    /// Pack an entry, pushing its ETag unless `share` (or the last one pushed) already holds it.
    pub fn pack(&mut self, e: Option<Entry>, share: Packed) -> Packed {
        let Some(e) = e else { return Packed::ABSENT };
        let etag = match e.etag {
            None => NO_ETAG,
            Some(t) if share.etag != NO_ETAG && self.etags[share.etag.get() as usize - 1] == t => share.etag,
            Some(t) if self.etags.last() == Some(&t) => etag_ref(self.etags.len() - 1),
            Some(t) => {
                self.etags.push(t);
                etag_ref(self.etags.len() - 1)
            }
        };
        Packed { lt: pack_stamp(e.local_timestamp), rt: pack_stamp(e.remote_timestamp), etag }
    }

    /// `e`'s stamps with `like`'s ETag (a record whose stamps alone changed).
    pub fn restamp(&self, e: Entry, like: Packed) -> Packed {
        Packed { lt: pack_stamp(e.local_timestamp), rt: pack_stamp(e.remote_timestamp), etag: like.etag }
    }

    /// Replace side `s` with the index file streamed from `src`.
    pub fn load(&mut self, s: Side, src: impl Read) -> Result<(), String> {
        for r in &mut self.rows {
            r.put(s, Packed::ABSENT);
        }
        let other = if s == Side::Local { Side::Remote } else { Side::Local };
        let mut new: Vec<Row> = Vec::new();
        let mut hint = 0;
        index::read_each(src, |key, e| {
            // Files are mostly in key order, and mostly hold the keys the other side holds:
            // try the row after the last one found before searching.
            let at = match self.rows.get(hint) {
                Some(r) if self.key_of(r) == key.as_bytes() => Ok(hint),
                _ => self.find(key),
            };
            match at {
                Ok(i) => {
                    let p = self.pack(Some(e), self.rows[i].get(other));
                    self.rows[i].put(s, p);
                    hint = i + 1;
                }
                Err(_) => {
                    let mut row = Row::empty(self.push_key(key));
                    row.put(s, self.pack(Some(e), Packed::ABSENT));
                    new.push(row);
                }
            }
        })?;
        self.insert(new);
        self.settle(true);
        Ok(())
    }

    /// Set records of keys, in key order, each side given (`None`: left as it is). One merge
    /// for the keys that are new, whatever their number.
    pub fn apply<'a>(&mut self, changes: impl Iterator<Item = (&'a str, [Option<Packed>; 2])>) {
        let mut new = Vec::new();
        let mut emptied = false;
        for (key, sides) in changes {
            let row = match self.find(key) {
                Ok(i) => &mut self.rows[i],
                Err(_) if sides.iter().flatten().all(Packed::is_absent) => continue,
                Err(_) => {
                    new.push(Row::empty(self.push_key(key)));
                    new.last_mut().expect("just pushed")
                }
            };
            for (s, p) in [Side::Local, Side::Remote].into_iter().zip(sides) {
                if let Some(p) = p {
                    row.put(s, p);
                }
            }
            emptied |= row.is_empty();
        }
        self.insert(new);
        self.settle(emptied);
    }

    /// Merge rows whose keys are not in the table yet (the last of equal keys wins), in place
    /// from the back: no second table, however many.
    fn insert(&mut self, mut new: Vec<Row>) {
        if new.is_empty() {
            return;
        }
        if !new.is_sorted_by(|a, b| self.key_of(a) < self.key_of(b)) {
            new.sort_by(|a, b| self.key_of(a).cmp(self.key_of(b)));
            let mut last: Vec<Row> = Vec::with_capacity(new.len());
            for r in new {
                match last.last_mut() {
                    Some(l) if self.key_of(l) == self.key_of(&r) => *l = r,
                    _ => last.push(r),
                }
            }
            new = last;
        }
        if self.rows.is_empty() {
            self.rows = new;
            return;
        }
        let (mut i, mut j) = (self.rows.len(), new.len());
        self.rows.resize(i + j, Row::empty(0));
        while j > 0 {
            let k = i + j - 1;
            if i > 0 && self.key_of(&self.rows[i - 1]) > self.key_of(&new[j - 1]) {
                self.rows[k] = self.rows[i - 1];
                i -= 1;
            } else {
                self.rows[k] = new[j - 1];
                j -= 1;
            }
        }
    }

    /// Drop keys neither side holds any more, and count each side's.
    fn settle(&mut self, drop_empty: bool) {
        if drop_empty {
            self.rows.retain(|r| !r.is_empty());
        }
        self.count = [0, 1].map(|i| self.rows.iter().filter(|r| r.lt[i] != ABSENT).count());
    }

    /// Does the table hold much more than its rows need: the text of keys dropped since it
    /// was read, or ETags no record names any more? (A table kept between a daemon's rounds
    /// gathers both; one read from the files has neither.)
    pub fn bloated(&self) -> bool {
        let live: usize = self.rows.iter().map(|r| (r.key & 0xffff) as usize).sum();
        self.arena.len() > 2 * live + (1 << 20) || self.etags.len() > 2 * self.rows.len() + 100_000
    }

    /// The first key after `after` that either side holds.
    pub fn next_key(&self, after: Option<&str>) -> Option<&str> {
        let from = after.map_or(0, |a| self.rows.partition_point(|r| self.key_of(r) <= a.as_bytes()));
        self.rows[from..].iter().find(|r| !r.is_empty()).map(|r| self.key_str(r))
    }

    /// Every `step`-th live key of side `s` (tombstones name no object), in order, the last
    /// excepted: where a listing of the keys may be cut into ranges of about `step` keys
    /// (listing.rs).
    pub fn every(&self, s: Side, step: usize) -> Vec<&str> {
        let i = s as usize;
        let live = || self.rows.iter().filter(move |r| r.lt[i] != ABSENT && r.lt[i] != NULL);
        let n = live().count();
        live()
            .enumerate()
            .filter(|(j, _)| (j + 1) % step.max(1) == 0 && j + 1 < n)
            .map(|(_, r)| self.key_str(r))
            .collect()
    }

    /// Side `s` as S4's file (gzip of compact JSON), streamed into `out`.
    pub fn write<W: Write>(&self, s: Side, out: W) -> std::io::Result<W> {
        let rows = self.rows.iter().filter_map(|r| Some((self.key_str(r), self.unpack(r.get(s))?)));
        index::write_each(out, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::index::Index;

    const A: &str = "0123456789abcdef0123456789abcdef";

    fn e(lt: Option<f64>, rt: f64, etag: Option<&str>) -> Entry {
        Entry::new(lt, Some(rt), etag.map(Etag::parse))
    }

    fn index(pairs: &[(&str, Entry)]) -> Index {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn table(local: &Index, remote: &Index) -> Table {
        let mut t = Table::default();
        t.load(Side::Local, &index::encode(local)[..]).unwrap();
        t.load(Side::Remote, &index::encode(remote)[..]).unwrap();
        t
    }

    fn side(t: &Table, s: Side) -> Index {
        index::decode(&t.write(s, Vec::new()).unwrap()).unwrap()
    }

    /// What goes in comes out: stamps integer or float, tombstones, ETags present or not, and
    /// the bytes are what the map writer (S4's format, tested in index.rs) writes.
    #[test]
    fn round_trips_both_sides_byte_for_byte() {
        let local = index(&[
            ("b", e(Some(1700000000.25), 1700000000.0, Some(A))),
            ("a/x", e(None, 5.0, None)),
            ("é", e(Some(-1.5), 7.0, Some("not-hex"))),
        ]);
        let remote = index(&[("b", e(Some(1700000001.0), 1700000000.0, Some(A))), ("c", e(None, 9.0, None))]);
        let t = table(&local, &remote);
        assert_eq!(side(&t, Side::Local), local);
        assert_eq!(side(&t, Side::Remote), remote);
        assert_eq!(t.write(Side::Local, Vec::new()).unwrap(), index::encode(&local));
        assert_eq!(t.write(Side::Remote, Vec::new()).unwrap(), index::encode(&remote));
        assert_eq!((t.len(Side::Local), t.len(Side::Remote), t.rows.len()), (3, 2, 4));
        assert_eq!(t.etags.len(), 2, "b's ETag is held once for both sides");
        assert_eq!(t.get(Side::Remote, "a/x"), None);
        assert!(t.get(Side::Local, "a/x").unwrap().is_tombstone());
        assert_eq!(t.next_key(None), Some("a/x"));
        assert_eq!(t.next_key(Some("b")), Some("c"));
        assert_eq!(t.next_key(Some("é")), None);
    }

    /// S4 writes keys in its dict's order, may repeat one (the last counts), and adds fields
    /// we do not know.
    #[test]
    fn reads_s4_files_in_any_order() {
        let text = r#"{"z": {"local_timestamp": 2.5, "remote_timestamp": 2, "size": 1}, "a": {"local_timestamp": null, "remote_timestamp": 1}, "z": {"local_timestamp": 3.5, "remote_timestamp": 3}}"#;
        let mut t = Table::default();
        t.load(Side::Local, text.as_bytes()).unwrap();
        assert_eq!(t.get(Side::Local, "z"), Some(e(Some(3.5), 3.0, None)));
        assert_eq!(t.next_key(None), Some("a"));
        assert_eq!(t.len(Side::Local), 2);
        assert!(t.load(Side::Remote, &b"[1]"[..]).is_err());
        t.load(Side::Remote, &b" "[..]).unwrap();
        assert_eq!(t.len(Side::Remote), 0);
    }

    /// Changes merge in at once, new keys in order, and keys no side holds any more go.
    #[test]
    fn apply_sets_inserts_and_drops() {
        let both = e(Some(1.0), 1.0, Some(A));
        let mut t = table(&index(&[("b", both), ("d", both)]), &index(&[("b", both), ("d", both)]));
        let live = t.pack(Some(e(Some(2.0), 2.0, Some(A))), Packed::ABSENT);
        let changes = [
            ("a", [Some(live), Some(live)]),
            ("b", [Some(Packed::ABSENT), None]),
            ("c", [None, Some(live)]),
            ("d", [Some(Packed::ABSENT), Some(Packed::ABSENT)]),
            ("e", [Some(Packed::ABSENT), None]),
        ];
        t.apply(changes.into_iter());
        assert_eq!(t.etags.len(), 1, "the same ETag is not pushed twice");
        assert_eq!(std::mem::size_of::<Option<Packed>>(), 24);
        assert_eq!(std::mem::size_of::<Row>(), 48);
        let keys: Vec<_> = std::iter::successors(t.next_key(None), |k| t.next_key(Some(k))).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(side(&t, Side::Local).into_keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(side(&t, Side::Remote).into_keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!((t.len(Side::Local), t.len(Side::Remote)), (1, 3));
    }

    /// Reloading one side (the remote index changed under us) keeps the other.
    #[test]
    fn reload_replaces_one_side() {
        let x = e(Some(1.0), 1.0, None);
        let mut t = table(&index(&[("a", x), ("b", x)]), &index(&[("b", x), ("c", x)]));
        t.load(Side::Remote, &index::encode(&index(&[("d", x)]))[..]).unwrap();
        assert_eq!(side(&t, Side::Local), index(&[("a", x), ("b", x)]));
        assert_eq!(side(&t, Side::Remote), index(&[("d", x)]));
        assert_eq!(t.rows.len(), 3, "c is gone from both");
    }
}
