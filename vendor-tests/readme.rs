//! The README's commands, run as written (issue 12: a README line piped `s4 rm docs` into
//! other commands and deleted a target). Every command line of its ```sh blocks runs in bash
//! against the test store, in order, in a temp HOME; a few words are swapped for the test's
//! own (the store's endpoint, bucket and a prefix of its own). Lines that need a terminal run
//! without one and must refuse (exit 2) rather than act; lines that need another store or run
//! for ever are skipped, and the test prints which and why.

mod support;

use std::process::{Command, Stdio};

use support::env::{write, Env};
use support::store;

const README: &str = include_str!("../README.md");

/// The command lines of the README's ```sh blocks: `\` continuations joined; in a block
/// showing a session (`$ cmd` then its output) only the `$` lines.
fn command_lines(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in readme.lines() {
        match (&mut block, line.trim_start()) {
            (None, l) if l.starts_with("```sh") => block = Some(Vec::new()),
            (Some(lines), l) if l.starts_with("```") => {
                let session = lines.iter().any(|l| l.starts_with("$ "));
                let mut joined = String::new();
                for l in lines.iter() {
                    let l = if session {
                        match l.strip_prefix("$ ") {
                            Some(c) => c,
                            None => continue,
                        }
                    } else {
                        l
                    };
                    joined.push_str(l.trim().trim_end_matches('\\').trim_end());
                    if l.trim_end().ends_with('\\') {
                        joined.push(' ');
                        continue;
                    }
                    if !joined.trim().is_empty() {
                        out.push(joined.trim().to_string());
                    }
                    joined.clear();
                }
                block = None;
            }
            (Some(lines), _) => lines.push(line),
            (None, _) => {}
        }
    }
    out
}

/// How a README line is tried.
#[derive(Debug, PartialEq)]
enum Plan {
    Run,
    /// Needs a terminal: run without one, it must refuse with exit 2.
    Refuses(&'static str),
    Skip(&'static str),
}

fn plan(line: &str) -> Plan {
    let words: Vec<&str> = line.split_whitespace().take_while(|w| !w.starts_with('#')).collect();
    if matches!(words.first(), Some(&"docker") | Some(&"podman"))
        || line.contains("docker run")
        || line.starts_with("$run")
    {
        return Plan::Skip("needs a container engine (the image names itself s4)");
    }
    let Some(at) = words.iter().position(|w| *w == "s4" || w.ends_with("(s4")) else {
        return Plan::Skip(match words.first() {
            Some(&"./quickstart.sh") => "builds s4 and starts a store of its own",
            Some(&"cargo") => "this test is part of it",
            _ => "not an s4 command (another store or tool)",
        });
    };
    let args: Vec<&str> = words[at + 1..].to_vec();
    let flags = args.iter().skip(1).any(|a| a.starts_with("--") || *a == "-y");
    match args.first().copied() {
        Some("add") if args.len() == 1 => Plan::Refuses("asks at prompts: needs a terminal"),
        Some("edit") if !flags => Plan::Refuses("asks at prompts: needs a terminal"),
        Some("rm") if !flags => Plan::Refuses("asks for confirmation: needs a terminal (--yes in scripts)"),
        Some("daemon") => Plan::Skip("runs until stopped (cli.rs runs the daemon)"),
        Some("versions" | "restore") => {
            Plan::Skip("needs a store with versioning (versions.rs runs them on moto); s3s-fs has none")
        }
        _ => Plan::Run,
    }
}

#[test]
fn readme_has_no_pipeline_between_s4_commands() {
    // Issue 12: `s4 targets | s4 ls docs -A -s local | s4 edit docs | s4 rm docs | s4 version`
    // pasted into a shell removed the target and exited 0.
    for line in command_lines(README) {
        let code = line.split(" #").next().unwrap_or("");
        let piped_into_s4 = code.split('|').skip(1).any(|part| part.trim_start().starts_with("s4 "));
        let s4_piped = code.split('|').count() > 1 && code.split('|').next().is_some_and(|p| p.contains("s4 "));
        assert!(!(piped_into_s4 && s4_piped), "the README pipes one s4 command into another: {line}");
    }
}

#[test]
fn readme_commands_run_as_written() {
    let e = Env::new("readme");
    let s = store();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_s4")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let endpoint = s.endpoint_url().unwrap_or_default();
    let prefix = e.prefix.trim_end_matches('/');
    write(&e.dir.path().join("docs/notes/todo.txt"), "milk\n", -60);
    let lines = command_lines(README);
    assert!(lines.len() >= 20, "the README's sh blocks hold fewer command lines than expected: {lines:?}");
    let (mut ran, mut refused, mut skipped) = (0, 0, 0);
    for line in &lines {
        let how = plan(line);
        if let Plan::Skip(why) = how {
            println!("skipped: {line}\n         ({why})");
            skipped += 1;
            continue;
        }
        let cmd = line
            .replace("s3://bucket/", &format!("s3://{}/{prefix}-", s.bucket))
            .replace("http://127.0.0.1:9000", &endpoint)
            .replace("--region us-east-1", &format!("--region {}", s.region));
        let out = Command::new("bash")
            .args(["-c", &cmd])
            .current_dir(e.dir.path())
            .env("PATH", &path)
            .env("HOME", e.dir.path())
            .env("S4_CONFIG", e.conf())
            .env("KEY", &s.access_key)
            .env("SECRET", &s.secret_key)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (code, stderr) = (out.status.code(), String::from_utf8_lossy(&out.stderr));
        match how {
            Plan::Refuses(why) => {
                assert_eq!(code, Some(2), "without a terminal this README line must refuse: {line}\n{stderr}");
                println!("refused: {line}\n         ({why}; it said: {})", stderr.trim().lines().last().unwrap_or(""));
                refused += 1;
            }
            _ => {
                assert_eq!(code, Some(0), "README line failed: {cmd}\nstderr: {stderr}");
                println!("ran:     {line}");
                ran += 1;
            }
        }
    }
    println!("README: {ran} lines ran, {refused} refused without a terminal as they should, {skipped} skipped");
    // What the lines did: the target exists (rm refused without --yes), the file went up.
    let conf = std::fs::read_to_string(e.conf()).unwrap();
    assert!(conf.contains("\"docs\""), "{conf}");
    assert!(e.dir.path().join("docs/.index").exists());
    assert!(e.dir.path().join("s4.1").exists());
    let out = e.s4(&["rm", "docs", "--yes"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn readme_lines_are_classified_as_expected() {
    assert_eq!(plan("s4 add                # asks"), Plan::Refuses("asks at prompts: needs a terminal"));
    assert_eq!(plan("s4 add --name x --s3-uri s3://b/x"), Plan::Run);
    assert!(matches!(plan("s4 rm docs   # asks first, --yes in scripts"), Plan::Refuses(_)));
    assert_eq!(plan("s4 rm docs --yes"), Plan::Run);
    assert!(matches!(plan("vendor-tests/run garage"), Plan::Skip(_)));
    assert_eq!(plan("echo \"$SECRET\" | s4 add --name docs"), Plan::Run);
    let lines = command_lines("```sh\na \\\n  b\n```\n```sh\n$ s4 x\noutput\n```\n");
    assert_eq!(lines, vec!["a b", "s4 x"]);
}
