//! The shared files, `~/.aws/credentials` and `~/.aws/config` (or `AWS_SHARED_CREDENTIALS_FILE`
//! and `AWS_CONFIG_FILE`), under `AWS_PROFILE` (default `default`): what a profile says about
//! keys (static keys, `role_arn` with `source_profile` / `credential_source` /
//! `web_identity_token_file`, `credential_process`) and the region.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::error::{CredentialsError, Kind, PROFILE};
use super::sts::Role;
use super::{Credentials, Env};

/// What a profile says the keys are.
#[derive(Debug, Clone)]
pub enum ProfileCreds {
    Static {
        creds: Credentials,
        profile: String,
        file: PathBuf,
    },
    Process {
        command: String,
        profile: String,
    },
    AssumeRole {
        role: Role,
        profile: String,
        source: Box<ProfileCreds>,
    },
    WebIdentity {
        role: Role,
        profile: String,
        token_file: PathBuf,
    },
    /// `credential_source` of a role profile.
    Named(NamedSource),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedSource {
    Environment,
    Ec2InstanceMetadata,
    EcsContainer,
}

fn home(env: Env) -> Option<PathBuf> {
    env("HOME").map(PathBuf::from)
}

pub fn profile_name(env: Env) -> String {
    env("AWS_PROFILE").unwrap_or_else(|| "default".into())
}

fn credentials_file(env: Env) -> Option<PathBuf> {
    env("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from).or_else(|| home(env).map(|h| h.join(".aws/credentials")))
}

fn config_file(env: Env) -> Option<PathBuf> {
    env("AWS_CONFIG_FILE").map(PathBuf::from).or_else(|| home(env).map(|h| h.join(".aws/config")))
}

/// The key/value pairs of one `[section]` of an INI file as the AWS tools write them.
pub fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    ini_find(text, section).unwrap_or_default()
}

/// `None` when the file has no such section (an empty section is `Some(vec![])`).
fn ini_find(text: &str, section: &str) -> Option<Vec<(String, String)>> {
    let mut out = None;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            if inside && out.is_none() {
                out = Some(Vec::new());
            }
            continue;
        }
        if let (true, Some(pairs)) = (inside, out.as_mut()) {
            if let Some((k, v)) = line.split_once('=') {
                pairs.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    out
}

fn lookup(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn static_keys(pairs: &[(String, String)]) -> Option<Credentials> {
    Some(Credentials {
        access_key_id: lookup(pairs, "aws_access_key_id")?,
        secret_access_key: lookup(pairs, "aws_secret_access_key")?,
        session_token: lookup(pairs, "aws_session_token"),
    })
}

/// The section name of a profile in `~/.aws/config`.
fn config_section(profile: &str) -> String {
    if profile == "default" {
        "default".into()
    } else {
        format!("profile {profile}")
    }
}

/// Both files, read once.
pub struct Files {
    creds: Option<(PathBuf, String)>,
    config: Option<(PathBuf, String)>,
}

/// One profile: its section of each file (the credentials file wins a key both set).
struct Profile {
    creds: Option<Vec<(String, String)>>,
    config: Option<Vec<(String, String)>>,
}

impl Profile {
    fn get(&self, key: &str) -> Option<String> {
        self.creds
            .as_deref()
            .and_then(|p| lookup(p, key))
            .or_else(|| self.config.as_deref().and_then(|p| lookup(p, key)))
    }
}

impl Files {
    pub fn load(env: Env) -> Files {
        let both = |p: Option<PathBuf>| p.and_then(|p| read(&p).map(|t| (p, t)));
        Files { creds: both(credentials_file(env)), config: both(config_file(env)) }
    }

    fn profile(&self, name: &str) -> Option<Profile> {
        let creds = self.creds.as_ref().and_then(|(_, t)| ini_find(t, name));
        let config = self.config.as_ref().and_then(|(_, t)| ini_find(t, &config_section(name)));
        (creds.is_some() || config.is_some()).then_some(Profile { creds, config })
    }

    /// What profile `name` says the keys are; `Ok(None)` when it says nothing (or does not exist).
    pub fn credentials(&self, name: &str) -> Result<Option<ProfileCreds>, CredentialsError> {
        let mut seen = HashSet::new();
        self.resolve(name, true, &mut seen)
    }

    fn resolve(
        &self,
        name: &str,
        top: bool,
        seen: &mut HashSet<String>,
    ) -> Result<Option<ProfileCreds>, CredentialsError> {
        let fail = |m: String| CredentialsError::new(PROFILE, format!("reading profile \"{name}\""), Kind::Config(m));
        let Some(p) = self.profile(name) else {
            return if top { Ok(None) } else { Err(fail(format!("source_profile \"{name}\" does not exist"))) };
        };
        seen.insert(name.to_string());
        let from_creds = p.creds.as_deref().and_then(static_keys);
        let from_config = p.config.as_deref().and_then(static_keys);
        let static_ = |creds: Credentials, in_creds: bool| {
            let file = if in_creds { &self.creds } else { &self.config };
            ProfileCreds::Static {
                creds,
                profile: name.to_string(),
                file: file.as_ref().map(|(p, _)| p.clone()).unwrap_or_default(),
            }
        };
        // A source profile's own keys win over its role_arn, as botocore and the SDKs chain.
        if !top {
            if let Some(c) = from_creds.clone() {
                return Ok(Some(static_(c, true)));
            }
        }
        if let Some(arn) = p.get("role_arn") {
            let mut role = Role::new(arn, p.get("role_session_name"));
            role.external_id = p.get("external_id");
            role.duration_secs = match p.get("duration_seconds") {
                Some(d) => Some(d.parse().map_err(|_| fail(format!("duration_seconds = {d}: give whole seconds")))?),
                None => None,
            };
            if let Some(file) = p.get("web_identity_token_file") {
                return Ok(Some(ProfileCreds::WebIdentity { role, profile: name.into(), token_file: file.into() }));
            }
            let source = match (p.get("source_profile"), p.get("credential_source")) {
                (Some(_), Some(_)) => return Err(fail("set source_profile or credential_source, not both".into())),
                (None, None) => {
                    return Err(fail("role_arn needs source_profile (a profile with keys) or credential_source".into()))
                }
                (None, Some(cs)) => ProfileCreds::Named(match cs.as_str() {
                    "Environment" => NamedSource::Environment,
                    "Ec2InstanceMetadata" => NamedSource::Ec2InstanceMetadata,
                    "EcsContainer" => NamedSource::EcsContainer,
                    other => {
                        return Err(fail(format!(
                            "credential_source = {other}: choose Environment, Ec2InstanceMetadata or EcsContainer"
                        )))
                    }
                }),
                (Some(src), None) if src == name => match from_creds.or(from_config) {
                    Some(c) => static_(c, true),
                    None => return Err(fail("source_profile names the profile itself, which has no keys".into())),
                },
                (Some(src), None) if seen.contains(&src) => {
                    return Err(fail(format!("source_profile \"{src}\" leads back to itself (a loop)")))
                }
                (Some(src), None) => match self.resolve(&src, false, seen)? {
                    Some(c) => c,
                    None => return Err(fail(format!("source_profile \"{src}\" has no keys"))),
                },
            };
            return Ok(Some(ProfileCreds::AssumeRole { role, profile: name.into(), source: Box::new(source) }));
        }
        // botocore's order: the credentials file's keys, then credential_process, then the
        // config file's keys.
        if let Some(c) = from_creds {
            return Ok(Some(static_(c, true)));
        }
        if let Some(command) = p.get("credential_process") {
            return Ok(Some(ProfileCreds::Process { command, profile: name.into() }));
        }
        Ok(from_config.map(|c| static_(c, false)))
    }
}

/// Region: explicit, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else us-east-1.
pub fn resolve_region(explicit: Option<&str>, env: Env) -> String {
    if let Some(r) = explicit.filter(|r| !r.is_empty()) {
        return r.into();
    }
    if let Some(r) = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")) {
        return r;
    }
    let section = config_section(&profile_name(env));
    config_file(env)
        .as_deref()
        .and_then(read)
        .and_then(|text| lookup(&ini_section(&text, &section), "region"))
        .unwrap_or_else(|| "us-east-1".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::credentials::env_of;

    fn keys(c: Option<ProfileCreds>) -> String {
        match c {
            Some(ProfileCreds::Static { creds, .. }) => creds.access_key_id,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shared_files_and_profiles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".aws")).unwrap();
        std::fs::write(
            dir.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n\n[work]\naws_access_key_id=W\naws_secret_access_key=WS\naws_session_token=WT\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".aws/config"),
            "[default]\nregion = eu-west-1\n[profile work]\nregion=ap-south-1\n[profile cfgonly]\naws_access_key_id=C\naws_secret_access_key=CS\n",
        )
        .unwrap();
        let home = dir.path().to_str().unwrap();
        let env = env_of(&[("HOME", home)]);
        assert_eq!(keys(Files::load(&env).credentials("default").unwrap()), "D");
        assert_eq!(resolve_region(None, &env), "eu-west-1");
        let env = env_of(&[("HOME", home), ("AWS_PROFILE", "work")]);
        match Files::load(&env).credentials(&profile_name(&env)).unwrap() {
            Some(ProfileCreds::Static { creds, .. }) => assert_eq!(creds.session_token.as_deref(), Some("WT")),
            other => panic!("{other:?}"),
        }
        assert_eq!(resolve_region(None, &env), "ap-south-1");
        assert_eq!(resolve_region(Some("us-west-2"), &env), "us-west-2");
        assert_eq!(keys(Files::load(&env).credentials("cfgonly").unwrap()), "C");
        assert!(Files::load(&env).credentials("missing").unwrap().is_none());
        assert_eq!(resolve_region(None, &env_of(&[])), "us-east-1");
    }

    #[test]
    fn roles_processes_and_their_mistakes() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("c");
        let config = dir.path().join("k");
        std::fs::write(&creds, "[base]\naws_access_key_id=B\naws_secret_access_key=BS\n").unwrap();
        std::fs::write(
            &config,
            "[profile role]\nrole_arn=arn:aws:iam::1:role/r\nsource_profile=base\nexternal_id=x\nrole_session_name=me\n\
             [profile chain]\nrole_arn=arn:aws:iam::1:role/c\nsource_profile=role\n\
             [profile proc]\ncredential_process=/bin/creds --json\n\
             [profile ec2]\nrole_arn=arn:aws:iam::1:role/e\ncredential_source=Ec2InstanceMetadata\n\
             [profile web]\nrole_arn=arn:aws:iam::1:role/w\nweb_identity_token_file=/t\n\
             [profile loop1]\nrole_arn=a\nsource_profile=loop2\n[profile loop2]\nrole_arn=b\nsource_profile=loop1\n\
             [profile nosrc]\nrole_arn=a\n[profile badsrc]\nrole_arn=a\ncredential_source=Moon\n",
        )
        .unwrap();
        let env = env_of(&[
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ]);
        let files = Files::load(&env);
        match files.credentials("role").unwrap() {
            Some(ProfileCreds::AssumeRole { role, source, .. }) => {
                assert_eq!((role.arn.as_str(), role.session_name.as_str()), ("arn:aws:iam::1:role/r", "me"));
                assert_eq!(role.external_id.as_deref(), Some("x"));
                assert_eq!(keys(Some(*source)), "B");
            }
            other => panic!("{other:?}"),
        }
        match files.credentials("chain").unwrap() {
            Some(ProfileCreds::AssumeRole { source, .. }) => {
                assert!(matches!(*source, ProfileCreds::AssumeRole { .. }))
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(files.credentials("proc").unwrap(), Some(ProfileCreds::Process { command, .. }) if command == "/bin/creds --json")
        );
        assert!(matches!(
            files.credentials("ec2").unwrap(),
            Some(ProfileCreds::AssumeRole { source, .. }) if matches!(*source, ProfileCreds::Named(NamedSource::Ec2InstanceMetadata))
        ));
        assert!(matches!(files.credentials("web").unwrap(), Some(ProfileCreds::WebIdentity { .. })));
        for (bad, says) in [("loop1", "loop"), ("nosrc", "needs source_profile"), ("badsrc", "Moon")] {
            let err = files.credentials(bad).unwrap_err().to_string();
            assert!(err.contains(says) && err.contains(bad), "{bad}: {err}");
        }
    }
}
