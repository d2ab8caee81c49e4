//! The chain: which source gives the keys, decided in the AWS SDKs' order from the settings
//! alone (nothing is fetched here; the [`Provider`] fetches at the first request).
//! Target keys → environment → web identity → the profile → container endpoint → IMDSv2.

use std::time::Duration;

use super::container::Container;
use super::error::{CredentialsError, Kind, ADVICE, ENVIRONMENT, PROFILE, TARGET};
use super::imds::Imds;
use super::process::Process;
use super::profile::{profile_name, resolve_region, Files, NamedSource, ProfileCreds};
use super::refresh::{Provider, Tuning};
use super::source::Source;
use super::sts::Sts;
use super::web_identity::WebIdentity;
use super::{env, mask, Credentials, Env};

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Connect and read timeout of IMDS and the container endpoint (`AWS_METADATA_SERVICE_TIMEOUT`,
    /// seconds, default 1, as the SDKs).
    pub metadata_timeout: Duration,
    pub sts_timeout: Duration,
    pub process_timeout: Duration,
    pub tuning: Tuning,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            metadata_timeout: Duration::from_secs(1),
            sts_timeout: Duration::from_secs(10),
            process_timeout: Duration::from_secs(60),
            tuning: Tuning::default(),
        }
    }
}

impl Options {
    pub fn from_env(env: Env) -> Options {
        let mut o = Options::default();
        if let Some(secs) = env("AWS_METADATA_SERVICE_TIMEOUT").and_then(|v| v.trim().parse::<f64>().ok()) {
            o.metadata_timeout = Duration::from_secs_f64(secs.clamp(0.05, 60.0));
        }
        o
    }
}

/// Choose the source of the keys. `explicit` is the target's pair.
pub fn provider(explicit: Option<(&str, &str)>, env: Env, opts: &Options) -> Result<Provider, CredentialsError> {
    if let Some((id, secret)) = explicit {
        let creds = Credentials { access_key_id: id.into(), secret_access_key: secret.into(), session_token: None };
        return Ok(Provider::fixed(creds, TARGET, "the target's keys (sync.conf)".into()));
    }
    if let Some(creds) = env::credentials(env)? {
        let from = format!("environment (AWS_ACCESS_KEY_ID={})", mask(&creds.access_key_id));
        return Ok(Provider::fixed(creds, ENVIRONMENT, from));
    }
    let new = |source| Ok(Provider::new(source, opts.tuning));
    let region = resolve_region(None, env);
    let sts = || Sts::from_env(env, &region, opts.sts_timeout);
    if let Some(w) = WebIdentity::from_env(env, sts)? {
        return new(Source::WebIdentity(w));
    }
    let profile = profile_name(env);
    if let Some(p) = Files::load(env).credentials(&profile)? {
        return new(from_profile(p, env, opts, &sts)?);
    }
    if let Some(c) = Container::from_env(env, opts.metadata_timeout)? {
        return new(Source::Container(c));
    }
    let elsewhere = format!(
        "the target has none, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and AWS_WEB_IDENTITY_TOKEN_FILE are unset, \
         profile \"{profile}\" has no keys in ~/.aws/credentials or ~/.aws/config, \
         AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI are unset"
    );
    match Imds::from_env(env, opts.metadata_timeout) {
        Some(mut imds) => {
            imds.looked_elsewhere = Some(elsewhere);
            new(Source::Imds(imds))
        }
        None => Err(CredentialsError::new(
            PROFILE,
            "choosing a source",
            Kind::NotFound(format!(
                "no AWS credentials found: {elsewhere}, and AWS_EC2_METADATA_DISABLED is true; {ADVICE}"
            )),
        )),
    }
}

fn from_profile(p: ProfileCreds, env: Env, opts: &Options, sts: &dyn Fn() -> Sts) -> Result<Source, CredentialsError> {
    let named = |what: &str, var: &str| {
        CredentialsError::new(
            PROFILE,
            format!("credential_source = {what}"),
            Kind::Config(format!("the profile takes its keys from {what}, but {var} is unset")),
        )
    };
    Ok(match p {
        ProfileCreds::Static { creds, profile, file } => {
            Source::Static { creds, kind: PROFILE, from: format!("profile \"{profile}\" ({})", file.display()) }
        }
        ProfileCreds::Process { command, profile } => {
            Source::Process(Process { command, profile, timeout: opts.process_timeout })
        }
        ProfileCreds::WebIdentity { role, token_file, .. } => {
            Source::WebIdentity(WebIdentity { token_file, role, sts: sts() })
        }
        ProfileCreds::AssumeRole { role, profile, source } => {
            Source::AssumeRole { sts: sts(), role, profile, source: Box::new(from_profile(*source, env, opts, sts)?) }
        }
        ProfileCreds::Named(NamedSource::Environment) => match env::credentials(env)? {
            Some(creds) => Source::Static { creds, kind: ENVIRONMENT, from: "environment (credential_source)".into() },
            None => return Err(named("Environment", "AWS_ACCESS_KEY_ID")),
        },
        ProfileCreds::Named(NamedSource::EcsContainer) => match Container::from_env(env, opts.metadata_timeout)? {
            Some(c) => Source::Container(c),
            None => return Err(named("EcsContainer", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")),
        },
        ProfileCreds::Named(NamedSource::Ec2InstanceMetadata) => match Imds::from_env(env, opts.metadata_timeout) {
            Some(i) => Source::Imds(i),
            None => {
                return Err(CredentialsError::new(
                    PROFILE,
                    "credential_source = Ec2InstanceMetadata",
                    Kind::Config("AWS_EC2_METADATA_DISABLED is true".into()),
                ))
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::credentials::env_of;

    fn kind(pairs: &[(&str, &str)]) -> Result<&'static str, CredentialsError> {
        provider(None, &env_of(pairs), &Options::default()).map(|p| p.kind())
    }

    #[test]
    fn the_sdk_order() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        std::fs::write(&creds, "[default]\naws_access_key_id=P\naws_secret_access_key=PS\n").unwrap();
        let creds = creds.to_str().unwrap();
        let keys = [("AWS_ACCESS_KEY_ID", "E"), ("AWS_SECRET_ACCESS_KEY", "ES")];
        let web = [("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), ("AWS_ROLE_ARN", "arn:aws:iam::1:role/w")];
        let profile = [("AWS_SHARED_CREDENTIALS_FILE", creds)];
        let container = [("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/c")];
        let all: Vec<(&str, &str)> = [&keys[..], &web, &profile, &container].concat();
        let p = provider(Some(("T", "TS")), &env_of(&all), &Options::default()).unwrap();
        assert_eq!(p.kind(), "target");
        assert_eq!(kind(&all).unwrap(), "environment");
        assert_eq!(kind(&all[2..]).unwrap(), "web_identity");
        assert_eq!(kind(&all[4..]).unwrap(), "profile");
        assert_eq!(kind(&all[5..]).unwrap(), "container");
        assert_eq!(kind(&[]).unwrap(), "imds");
        let err = kind(&[("AWS_EC2_METADATA_DISABLED", "true")]).unwrap_err().to_string();
        assert!(err.starts_with("no AWS credentials found") && err.contains("s4 edit TARGET"), "{err}");
        let p = provider(None, &env_of(&keys), &Options::default()).unwrap();
        assert_eq!(p.describe(), "environment (AWS_ACCESS_KEY_ID=*)");
    }
}
