//! Micro benchmarks of the pure core: what a sync spends CPU on besides the network.
//!
//! `cargo bench --bench micro` (S4_MICRO_RUNS: timed runs per case, default 15). Each case
//! runs once to warm up, then S4_MICRO_RUNS times; the table shows the median and the
//! fastest run, and the median per item. No store needed.

use std::hint::black_box;
use std::time::Instant;

use s4::s3::{sigv4, xml};
use s4::sync::index::{self, Entry, Index};
use s4::sync::plan;

/// 2023-11-14 22:13:20 UTC: a fixed clock, as the signing code takes one.
const NOW: i64 = 1_700_000_000;

struct Case {
    name: &'static str,
    /// Items one run handles (requests, keys, entries), for the per-item column.
    items: u64,
    run: Box<dyn FnMut()>,
}

fn main() {
    let runs: usize = std::env::var("S4_MICRO_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(15).max(1);
    // `cargo bench` passes --bench; a filter word picks cases by name.
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let cases = [sign_case(), list_page_case(), plan_case(), index_write_case(), index_read_case()];
    println!("| case | runs | median | fastest | per item |");
    println!("|---|---|---|---|---|");
    for mut c in cases {
        if !filter.is_empty() && !filter.iter().any(|f| c.name.contains(f.as_str())) {
            continue;
        }
        (c.run)();
        let mut secs: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                (c.run)();
                t.elapsed().as_secs_f64()
            })
            .collect();
        secs.sort_by(f64::total_cmp);
        let median = secs[secs.len() / 2];
        println!(
            "| {} | {runs} | {} | {} | {} |",
            c.name,
            human(median),
            human(secs[0]),
            human(median / c.items as f64)
        );
    }
}

fn human(secs: f64) -> String {
    match secs {
        s if s >= 1.0 => format!("{s:.3} s"),
        s if s >= 1e-3 => format!("{:.3} ms", s * 1e3),
        s if s >= 1e-6 => format!("{:.3} µs", s * 1e6),
        s => format!("{:.0} ns", s * 1e9),
    }
}

/// Sign 1,000 PUTs of distinct keys with one extra signed header, as the client does per request.
fn sign_case() -> Case {
    const N: u64 = 1000;
    let paths: Vec<String> = (0..N).map(|i| format!("/bucket/dir {i}/file+{i}.txt")).collect();
    let creds = sigv4::Credentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        session_token: None,
    };
    Case {
        name: "sign a request (SigV4 header, x1000)",
        items: N,
        run: Box::new(move || {
            for p in &paths {
                let path = sigv4::uri_encode(p, false);
                let req = sigv4::Request {
                    method: "PUT",
                    host: "127.0.0.1:3900",
                    path: &path,
                    query: "",
                    headers: &[("content-type", "application/octet-stream")],
                    payload_hash: sigv4::UNSIGNED_PAYLOAD,
                };
                black_box(sigv4::sign(&req, &creds, "us-east-1", "s3", NOW));
            }
        }),
    }
}

/// A 1,000-key ListObjectsV2 page with url encoding, as S3 sends it; parsed with each
/// LastModified turned into seconds, as the sync does.
fn list_page_case() -> Case {
    let mut doc = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Name>bucket</Name><Prefix>photos%2F</Prefix><KeyCount>1000</KeyCount><MaxKeys>1000</MaxKeys>\
         <EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>",
    );
    for i in 0..1000 {
        doc.push_str(&format!(
            "<Contents><Key>photos%2F2023%2Fday%20{:03}%2FIMG_{i:05}.jpg</Key>\
             <LastModified>2023-11-14T22:13:{:02}.000Z</LastModified>\
             <ETag>&quot;{:032x}&quot;</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
            i % 365,
            i % 60,
            i * 7919,
            4096 + i
        ));
    }
    doc.push_str("<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken></ListBucketResult>");
    let bytes = doc.into_bytes();
    Case {
        name: "parse a 1000-key ListObjectsV2 page",
        items: 1000,
        run: Box::new(move || {
            let page = xml::parse_list_objects_v2(&bytes).expect("page parses");
            assert_eq!(page.objects.len(), 1000);
            for o in &page.objects {
                black_box(xml::parse_iso8601(&o.last_modified));
            }
        }),
    }
}

/// 100,000 keys: `n` index entries with the given stamps; local and remote times agree.
fn index_of(n: usize) -> Index {
    (0..n)
        .map(|i| {
            let t = (NOW - 86_400 + i as i64) as f64;
            let e = Entry::new(Some(t + 0.25), Some(t), None);
            (format!("d{:03}/f{i:06}.bin", i / 100), e)
        })
        .collect()
}

/// The no-op plan of a 100,000-file tree: merge-join the local walk, the listing and both
/// indexes in key order and decide each key (every one ends in `Nothing`).
fn plan_case() -> Case {
    const N: usize = 100_000;
    let local_idx = index_of(N);
    let remote_idx: Index =
        local_idx.iter().map(|(k, e)| (k.clone(), Entry { local_timestamp: e.remote_timestamp, ..*e })).collect();
    let local: Vec<(String, f64)> = local_idx.iter().map(|(k, e)| (k.clone(), e.local_timestamp.unwrap())).collect();
    let remote: Vec<(String, i64)> =
        local_idx.iter().map(|(k, e)| (k.clone(), e.remote_timestamp.unwrap() as i64)).collect();
    Case {
        name: "plan 100,000 entries (no-op merge-join + decide)",
        items: N as u64,
        run: Box::new(move || {
            let (mut l, mut r) = (local.iter().peekable(), remote.iter().peekable());
            let mut nothing = 0;
            loop {
                let key = match (l.peek(), r.peek()) {
                    (Some(a), Some(b)) => a.0.as_str().min(b.0.as_str()),
                    (Some(a), None) => a.0.as_str(),
                    (None, Some(b)) => b.0.as_str(),
                    (None, None) => break,
                };
                let lf = l.next_if(|x| x.0 == key).map(|x| x.1);
                let ro = r.next_if(|x| x.0 == key).map(|x| x.1);
                let (li, ri) = (local_idx.get(key), remote_idx.get(key));
                let ls = plan::local_side(li.and_then(|e| e.local_timestamp), lf, li.and_then(|e| e.remote_timestamp));
                let rs = plan::side(
                    ri.and_then(|e| e.local_timestamp),
                    ro.map(|t| t as f64),
                    ri.and_then(|e| e.remote_timestamp),
                );
                if plan::decide(ls, rs) == plan::Decision::Nothing {
                    nothing += 1;
                }
            }
            assert_eq!(nothing, N);
        }),
    }
}

fn index_write_case() -> Case {
    let idx = index_of(100_000);
    Case {
        name: "write a 100,000-entry index (JSON + gzip)",
        items: 100_000,
        run: Box::new(move || {
            black_box(index::encode(&idx));
        }),
    }
}

fn index_read_case() -> Case {
    let bytes = index::encode(&index_of(100_000));
    Case {
        name: "read a 100,000-entry index (gunzip + JSON)",
        items: 100_000,
        run: Box::new(move || {
            assert_eq!(index::decode(&bytes).expect("decodes").len(), 100_000);
        }),
    }
}
