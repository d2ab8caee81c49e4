//! Broken local state and bad settings: a corrupt or foreign `.index` (local or remote), a
//! broken `sync.conf`, a bucket that does not exist, wrong credentials. Each stops the run
//! (exit 2) with a message that names the thing and what to do, and changes no local file.

use std::io::Write;

use crate::common::*;
use crate::support::env::{block_on, write, Env, Run};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Change one field of target `a` in the config file.
fn edit_conf(e: &Env, field: &str, value: &str) {
    let text = std::fs::read_to_string(e.conf()).unwrap();
    let mut conf: serde_json::Value = serde_json::from_str(&text).unwrap();
    conf["targets"]["a"][field] = serde_json::Value::String(value.to_string());
    std::fs::write(e.conf(), serde_json::to_string_pretty(&conf).unwrap()).unwrap();
}

#[test]
fn broken_state_and_bad_settings_stop_with_a_clear_message_and_change_nothing() {
    let e = Env::new("broken");
    e.add("a");
    let a = e.folder("a");
    write(&a.join("doc.txt"), "v1", -100);
    write(&a.join("dir/x.txt"), "x", -100);
    assert_eq!(e.sync("a", &[]).code, 0);
    write(&a.join("doc.txt"), "v2 not yet synced", -50);
    let good_index = std::fs::read(a.join(".index")).unwrap();
    let good_conf = std::fs::read(e.conf()).unwrap();
    let good_remote = block_on(e.client().get_bytes(&format!("{}.index", e.prefix))).unwrap().unwrap().0;
    let json = b"{\"doc.txt\": {\"local_timestamp\": 1, \"remote_timestamp\": 1}}";
    // (case, set it up, words the message must hold)
    type Setup<'a> = Box<dyn Fn() + 'a>;
    let index_path = a.join(".index");
    let local_index = |bytes: Vec<u8>| -> Setup {
        let path = index_path.clone();
        Box::new(move || std::fs::write(&path, &bytes).unwrap())
    };
    let cases: Vec<(&str, Setup, Vec<&str>)> = vec![
        (
            "garbage local .index",
            local_index(b"\x00\x01 not an index \xfe\xff".to_vec()),
            vec![".index", "move it aside"],
        ),
        ("truncated gzip .index", local_index(gzip(json)[..20].to_vec()), vec![".index", "gzip", "move it aside"]),
        (
            "foreign JSON .index",
            local_index(br#"{"version": 3, "files": ["doc.txt"]}"#.to_vec()),
            vec![".index", "move it aside"],
        ),
        ("JSON array .index", local_index(b"[1, 2, 3]".to_vec()), vec![".index", "move it aside"]),
        (
            "garbage remote .index",
            Box::new(|| e.try_put_remote(".index", b"\x1f\x8b garbage").unwrap()),
            vec!["s3://", ".index", "move it aside"],
        ),
        (
            "broken sync.conf",
            Box::new(|| std::fs::write(e.conf(), "{\"targets\": {").unwrap()),
            vec!["sync.conf", "not valid JSON", "fix"],
        ),
        (
            "no such bucket",
            Box::new(|| edit_conf(&e, "s3_uri", "s3://s4-no-such-bucket-4e1f/p")),
            vec!["s4-no-such-bucket-4e1f", "NoSuchBucket", "s3_uri"],
        ),
        (
            "wrong secret",
            Box::new(|| edit_conf(&e, "aws_secret_access_key", "wrong-secret-0123456789")),
            vec!["403", "s4 edit"],
        ),
        (
            "unknown access key",
            Box::new(|| edit_conf(&e, "aws_access_key_id", "GKunknownkey000000000000")),
            vec!["403", "credentials"],
        ),
    ];
    let n = cases.len();
    for (what, setup, words) in cases {
        setup();
        let before = snapshot(&a);
        let r = Run::from_killed(&e.s4(&["--no-colors", "sync", "--json", "a"], ""));
        assert_eq!(r.code, 2, "{what}: {}", r.stderr);
        for w in words {
            assert!(r.stderr.contains(w), "{what}: the message says {w:?}:\n{}", r.stderr);
        }
        assert_eq!(snapshot(&a), before, "{what}: a local file changed");
        eprintln!("{what}: {}", r.stderr.lines().filter(|l| !l.starts_with("Syncing")).collect::<Vec<_>>().join(" / "));
        // Put things right for the next case.
        std::fs::write(a.join(".index"), &good_index).unwrap();
        std::fs::write(e.conf(), &good_conf).unwrap();
        if what.contains("remote") {
            e.try_put_remote(".index", &good_remote).unwrap();
        }
    }
    let r = e.sync("a", &[]);
    assert_eq!((r.code, r.done("upload")), (0, vec!["doc.txt".to_string()]), "healthy again: {}", r.stderr);
    eprintln!(
        "summary: broken state, {n} cases, each exit 2 with a clear message, local files changed 0, bytes lost 0"
    );
}
