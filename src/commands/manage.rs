//! `add`, `edit`, `rm`: S4's prompts, and a flag for each so scripts never prompt.

use std::io::{BufRead, IsTerminal, Write};

use super::{lookup, unknown_target, validate, Fatal, OK};
use crate::cli::{AddCmd, EditCmd};
use crate::config::{Config, Target};

/// One answer from stdin after a prompt on stderr. EOF is an error, never an endless loop.
fn ask(prompt: &str) -> Result<String, Fatal> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let n = std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("reading an answer: {e}"))?;
    if n == 0 {
        return Err(format!("no answer to \"{}\" (stdin closed); pass the value as a flag instead", prompt.trim_end()));
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn ask_required(prompt: &str) -> Result<String, Fatal> {
    loop {
        let v = ask(prompt)?;
        if !v.is_empty() {
            return Ok(v);
        }
    }
}

/// The secret, hidden on a terminal (rpassword); a plain line from a pipe.
fn ask_secret(prompt: &str) -> Result<String, Fatal> {
    if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt).map_err(|e| format!("reading the secret: {e}"))
    } else {
        ask(prompt)
    }
}

fn secret_from_stdin() -> Result<String, Fatal> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("reading the secret from stdin: {e}"))?;
    let s = line.trim_end_matches(['\n', '\r']).to_string();
    if s.is_empty() {
        return Err("--secret-access-key-stdin: stdin held no secret".into());
    }
    Ok(s)
}

fn absolute(folder: &str) -> Result<String, Fatal> {
    let expanded = match folder.strip_prefix("~") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            format!("{}{rest}", std::env::var("HOME").unwrap_or_default())
        }
        _ => folder.to_string(),
    };
    let p = std::path::Path::new(&expanded);
    let base = if p.is_absolute() {
        std::path::PathBuf::new()
    } else {
        std::env::current_dir().map_err(|e| format!("current folder: {e}"))?
    };
    // Lexical clean-up ("a/./b/../c" → "a/c"), as S4's os.path.abspath does.
    let mut abs = base;
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                abs.pop();
            }
            other => abs.push(other),
        }
    }
    Ok(abs.to_string_lossy().into_owned())
}

fn none_if_blank(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

/// Ask until `check` accepts the answer (an invalid answer re-asks, saying why).
fn ask_until<T>(prompt: &str, mut check: impl FnMut(&str) -> Result<T, String>) -> Result<T, Fatal> {
    loop {
        let answer = ask(prompt)?;
        match check(&answer) {
            Ok(v) => return Ok(v),
            Err(why) => eprintln!("{why}"),
        }
    }
}

/// A yes/no question; blank takes `default`.
fn confirm(prompt: &str, default: bool) -> Result<bool, Fatal> {
    ask_until(prompt, |a| match a.trim().to_ascii_lowercase().as_str() {
        "" => Ok(default),
        "y" | "yes" => Ok(true),
        "n" | "no" => Ok(false),
        _ => Err("Please answer y or n".into()),
    })
}

/// The folder at the prompt: blank is the current folder; a missing one may be created.
fn ask_folder(prompt: &str, blank: &str) -> Result<String, Fatal> {
    loop {
        let given = ask(prompt)?;
        let path = absolute(if given.trim().is_empty() { blank } else { given.trim() })?;
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => return Ok(path),
            Ok(_) => eprintln!("{path} is a file, not a folder"),
            Err(_) => {
                if confirm(&format!("{path} does not exist. Create it? [y/N]: "), false)? {
                    validate::create_folder(&path)?;
                    return Ok(path);
                }
            }
        }
    }
}

/// Before saving: one request proves the target works, unless `--no-check`. At the prompts a
/// failed check may still be saved on request (the answers are not lost).
fn check_before_saving(name: &str, t: &Target, no_check: bool, interactive: bool) -> Result<(), Fatal> {
    if no_check {
        return Ok(());
    }
    match validate::check_access(name, t) {
        Ok(()) => Ok(()),
        Err(e) if interactive => {
            eprintln!("{e}");
            if confirm("Save the target anyway? [y/N]: ", false)? {
                Ok(())
            } else {
                Err("Not saved".into())
            }
        }
        Err(e) => Err(e),
    }
}

pub fn add(config: &mut Config, a: AddCmd) -> Result<i32, Fatal> {
    let copied = match &a.copy_target_credentials {
        Some(name) => {
            let t = lookup(config, name)?;
            Some((t.aws_access_key_id, t.aws_secret_access_key))
        }
        None => None,
    };
    let scripted = a.local_folder.is_some()
        || a.s3_uri.is_some()
        || a.name.is_some()
        || a.access_key_id.is_some()
        || a.secret_access_key_stdin;
    let mut t = Target::default();
    let (bucket, path);
    let name;
    let mut make_folder = false;
    if scripted {
        let uri = a.s3_uri.clone().ok_or("add: --s3-uri s3://BUCKET/PREFIX is required when answering by flags")?;
        (bucket, path) = validate::s3_uri(&uri)?;
        t.local_folder = absolute(a.local_folder.as_deref().unwrap_or("."))?;
        make_folder = validate::folder(&t.local_folder, a.create)?;
        t.endpoint_url = a.endpoint_url.clone().and_then(none_if_blank).map(|e| validate::endpoint(&e)).transpose()?;
        t.region_name = a.region.clone().and_then(none_if_blank);
        match copied {
            Some((id, secret)) => (t.aws_access_key_id, t.aws_secret_access_key) = (id, secret),
            None => {
                t.aws_access_key_id = a.access_key_id.clone().and_then(none_if_blank);
                if a.secret_access_key_stdin {
                    t.aws_secret_access_key = Some(secret_from_stdin()?);
                }
                if t.aws_access_key_id.is_some() != t.aws_secret_access_key.is_some() {
                    return Err("add: give both --access-key-id and --secret-access-key-stdin, or neither (to use the AWS credential chain)".into());
                }
            }
        }
        let default = path.rsplit('/').next().unwrap_or("").to_string();
        name = a.name.clone().filter(|n| !n.is_empty()).unwrap_or(default);
        validate::new_name(config, &name)?;
    } else {
        crate::info!("To add a new target, please enter the following\n");
        t.local_folder = ask_folder("local folder path to sync [leave blank for current folder]: ", ".")?;
        t.endpoint_url = ask_until("endpoint url [leave blank for AWS]: ", |e| {
            none_if_blank(e.trim().to_string()).map(|e| validate::endpoint(&e)).transpose()
        })?;
        bucket = ask_until("S3 Bucket [required]: ", validate::bucket_answer)?;
        path = ask_until("S3 Path: ", |p| {
            let p = p.trim().trim_matches('/');
            validate::s3_uri(&format!("s3://{bucket}/{p}")).map(|(_, p)| p)
        })?;
        t.region_name = none_if_blank(ask("region name [leave blank if unknown]: ")?.trim().to_string());
        match copied {
            Some((id, secret)) => (t.aws_access_key_id, t.aws_secret_access_key) = (id, secret),
            None => {
                t.aws_access_key_id = Some(ask_required("AWS Access Key ID [required]: ")?.trim().to_string());
                t.aws_secret_access_key =
                    Some(ask_secret("AWS Secret Access Key [required]: ")?).filter(|s| !s.is_empty());
            }
        }
        let default = path.rsplit('/').next().unwrap_or("").to_string();
        name = ask_until(&format!("Provide a name for this entry [leave blank to default to '{default}']: "), |n| {
            let n = if n.trim().is_empty() { default.clone() } else { n.trim().to_string() };
            validate::new_name(config, &n).map(|()| n)
        })?;
    }
    t.s3_uri = format!("s3://{bucket}/{path}");
    check_before_saving(&name, &t, a.no_check, !scripted)?;
    if make_folder {
        validate::create_folder(&t.local_folder)?;
    }
    config.set(&name, &t);
    config.save()?;
    crate::info!("\nTarget \"{name}\" has been added. Start syncing with `s4 sync {name}`");
    crate::info!("You can change anything you have entered here with `s4 edit {name}`");
    Ok(OK)
}

pub fn edit(config: &mut Config, e: EditCmd) -> Result<i32, Fatal> {
    let mut t = config.get(&e.target).ok_or_else(|| unknown_target(config, &e.target))?;
    let scripted = e.local_folder.is_some()
        || e.s3_uri.is_some()
        || e.endpoint_url.is_some()
        || e.region.is_some()
        || e.access_key_id.is_some()
        || e.secret_access_key_stdin;
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "None".into());
    let b = none_if_blank;
    let mut make_folder = false;
    let (endpoint, key_id, secret, region) = if scripted {
        if let Some(f) = &e.local_folder {
            t.local_folder = absolute(f)?;
            make_folder = validate::folder(&t.local_folder, e.create)?;
        }
        if let Some(u) = &e.s3_uri {
            let (bucket, path) = validate::s3_uri(u)?;
            t.s3_uri = format!("s3://{bucket}/{path}");
        }
        let secret = if e.secret_access_key_stdin { Some(secret_from_stdin()?) } else { None };
        let endpoint = e.endpoint_url.map(|v| b(v.trim().to_string()).map(|v| validate::endpoint(&v)).transpose());
        (endpoint.transpose()?, e.access_key_id, secret, e.region)
    } else {
        let current = t.local_folder.clone();
        t.local_folder = ask_folder(&format!("local folder [{current}]: "), &current)?;
        let endpoint = ask_until(&format!("endpoint url [{}]: ", shown(&t.endpoint_url)), |v| match v.trim() {
            "" => Ok(None),
            v => validate::endpoint(v).map(|v| Some(Some(v))),
        })?;
        let uri = ask_until(&format!("s3 uri [{}]: ", t.s3_uri), |u| match u.trim() {
            "" => Ok(None),
            u => validate::s3_uri(u).map(|(bucket, path)| Some(format!("s3://{bucket}/{path}"))),
        })?;
        if let Some(u) = uri {
            t.s3_uri = u;
        }
        let key_id = ask(&format!("AWS Access Key ID [{}]: ", shown(&t.aws_access_key_id)))?;
        // S4 printed the current secret here; we never do.
        let hint = if t.aws_secret_access_key.is_some() { "leave blank to keep the current one" } else { "None" };
        let secret = ask_secret(&format!("AWS Secret Access Key [{hint}]: "))?;
        let region = ask(&format!("region name [{}]: ", shown(&t.region_name)))?;
        (endpoint, b(key_id.trim().to_string()), b(secret), b(region.trim().to_string()))
    };
    if let Some(v) = endpoint {
        t.endpoint_url = v;
    }
    if let Some(v) = key_id {
        t.aws_access_key_id = none_if_blank(v);
    }
    if let Some(v) = secret {
        t.aws_secret_access_key = Some(v);
    }
    if let Some(v) = region {
        t.region_name = none_if_blank(v);
    }
    check_before_saving(&e.target, &t, e.no_check, !scripted)?;
    if make_folder {
        validate::create_folder(&t.local_folder)?;
    }
    config.set(&e.target, &t);
    config.save()?;
    Ok(OK)
}

/// Remove a target from the config (its files stay on both sides). On a terminal it asks;
/// a script says `--yes`; without either it refuses (a pasted line must not remove a target).
pub fn rm(config: &mut Config, name: &str, yes: bool) -> Result<i32, Fatal> {
    let t = config.get(name).ok_or_else(|| unknown_target(config, name))?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(format!(
                "s4 rm {name}: not removing without confirmation; no terminal to ask on. Run `s4 rm {name} --yes` to remove it"
            ));
        }
        let q = format!(
            "Remove target \"{name}\" ({} <=> {})? The files stay on both sides. [y/N]: ",
            t.local_folder, t.s3_uri
        );
        if !confirm(&q, false)? {
            crate::info!("Kept \"{name}\"");
            return Ok(OK);
        }
    }
    config.remove(name);
    config.save()?;
    crate::info!("Removed target \"{name}\" (its files stay on both sides)");
    Ok(OK)
}
