//! `add`, `edit`, `rm`: S4's prompts, and a flag for each so scripts never prompt.

use std::io::{BufRead, IsTerminal, Write};

use super::{lookup, unknown_target, Fatal, OK};
use crate::cli::{AddCmd, EditCmd};
use crate::config::{parse_s3_uri, Config, Target};

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
    if scripted {
        let uri = a.s3_uri.clone().ok_or("add: --s3-uri s3://BUCKET/PREFIX is required when answering by flags")?;
        let (b, p) = parse_s3_uri(&uri)?;
        (bucket, path) = (b, p.trim_end_matches('/').to_string());
        t.local_folder = absolute(a.local_folder.as_deref().unwrap_or("."))?;
        t.endpoint_url = a.endpoint_url.clone().and_then(none_if_blank);
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
    } else {
        crate::info!("To add a new target, please enter the following\n");
        let folder = ask("local folder path to sync [leave blank for current folder]: ")?;
        t.endpoint_url = none_if_blank(ask("endpoint url [leave blank for AWS]: ")?);
        bucket = ask_required("S3 Bucket [required]: ")?;
        path = ask("S3 Path: ")?.trim_matches('/').to_string();
        t.region_name = none_if_blank(ask("region name [leave blank if unknown]: ")?);
        match copied {
            Some((id, secret)) => (t.aws_access_key_id, t.aws_secret_access_key) = (id, secret),
            None => {
                t.aws_access_key_id = Some(ask_required("AWS Access Key ID [required]: ")?);
                t.aws_secret_access_key =
                    Some(ask_secret("AWS Secret Access Key [required]: ")?).filter(|s| !s.is_empty());
            }
        }
        let default = path.rsplit('/').next().unwrap_or("").to_string();
        let given = ask(&format!("Provide a name for this entry [leave blank to default to '{default}']: "))?;
        name = if given.is_empty() { default } else { given };
        t.local_folder = absolute(if folder.is_empty() { "." } else { &folder })?;
    }
    if name.is_empty() {
        return Err("add: the target needs a name (the S3 path is empty): pass --name".into());
    }
    t.s3_uri = format!("s3://{bucket}/{path}");
    config.set(&name, &t);
    config.save()?;
    crate::info!("\nTarget has been added. Start syncing with the 'sync' command");
    crate::info!("You can edit anything you have entered here using the 'edit' command");
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
    let (folder, endpoint, uri, key_id, secret, region) = if scripted {
        let secret = if e.secret_access_key_stdin { Some(secret_from_stdin()?) } else { None };
        (e.local_folder, e.endpoint_url, e.s3_uri, e.access_key_id, secret, e.region)
    } else {
        let folder = ask(&format!("local folder [{}]: ", t.local_folder))?;
        let endpoint = ask(&format!("endpoint url [{}]: ", shown(&t.endpoint_url)))?;
        let uri = ask(&format!("s3 uri [{}]: ", t.s3_uri))?;
        let key_id = ask(&format!("AWS Access Key ID [{}]: ", shown(&t.aws_access_key_id)))?;
        // S4 printed the current secret here; we never do.
        let hint = if t.aws_secret_access_key.is_some() { "leave blank to keep the current one" } else { "None" };
        let secret = ask_secret(&format!("AWS Secret Access Key [{hint}]: "))?;
        let region = ask(&format!("region name [{}]: ", shown(&t.region_name)))?;
        let b = none_if_blank;
        (b(folder), b(endpoint), b(uri), b(key_id), b(secret), b(region))
    };
    if let Some(f) = folder {
        t.local_folder = absolute(&f)?;
    }
    if let Some(u) = uri {
        parse_s3_uri(&u)?;
        t.s3_uri = u;
    }
    if let Some(v) = endpoint {
        t.endpoint_url = none_if_blank(v);
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
    config.set(&e.target, &t);
    config.save()?;
    Ok(OK)
}

pub fn rm(config: &mut Config, name: &str) -> Result<i32, Fatal> {
    if !config.remove(name) {
        return Err(unknown_target(config, name));
    }
    config.save()?;
    Ok(OK)
}
