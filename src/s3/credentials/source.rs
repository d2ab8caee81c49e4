//! A chosen source of keys, ready to be asked (again, at every refresh).

use std::future::Future;
use std::pin::Pin;

use super::container::Container;
use super::error::CredentialsError;
use super::imds::Imds;
use super::process::Process;
use super::sts::{Role, Sts};
use super::web_identity::WebIdentity;
use super::{Credentials, Expiring};

#[derive(Debug, Clone)]
pub enum Source {
    /// Keys that never change: the target's, the environment's, a profile's. `kind` is the
    /// one word for it, `from` the words.
    Static {
        creds: Credentials,
        kind: &'static str,
        from: String,
    },
    WebIdentity(WebIdentity),
    /// STS AssumeRole, signed with the keys `source` gives.
    AssumeRole {
        sts: Sts,
        role: Role,
        profile: String,
        source: Box<Source>,
    },
    Process(Process),
    Container(Container),
    Imds(Imds),
}

type Fetch<'a> = Pin<Box<dyn Future<Output = Result<Expiring, CredentialsError>> + Send + 'a>>;

impl Source {
    /// Ask the source for keys. Boxed: an assumed role's source may itself be a role.
    pub fn fetch(&self) -> Fetch<'_> {
        Box::pin(async move {
            match self {
                Source::Static { creds, .. } => Ok(Expiring { creds: creds.clone(), expires: None }),
                Source::WebIdentity(w) => w.fetch().await,
                Source::AssumeRole { sts, role, source, .. } => {
                    let base = source.fetch().await?;
                    sts.assume_role(role, &base.creds).await
                }
                Source::Process(p) => p.fetch().await,
                Source::Container(c) => c.fetch().await,
                Source::Imds(i) => i.fetch().await,
            }
        })
    }

    /// Which source this is, in words, never with a secret: what `s4 doctor` shows.
    pub fn describe(&self) -> String {
        match self {
            Source::Static { from, .. } => from.clone(),
            Source::WebIdentity(w) => w.describe(),
            Source::AssumeRole { role, profile, source, .. } => {
                format!("profile \"{profile}\": assume role {} with keys from {}", role.arn, source.describe())
            }
            Source::Process(p) => format!("profile \"{}\": credential_process ({})", p.profile, p.command),
            Source::Container(c) => c.describe(),
            Source::Imds(i) => i.describe(),
        }
    }

    /// A one-word name for `--json`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Static { kind, .. } => kind,
            Source::WebIdentity(_) => "web_identity",
            Source::AssumeRole { .. } => "assume_role",
            Source::Process(_) => "credential_process",
            Source::Container(_) => "container",
            Source::Imds(_) => "imds",
        }
    }
}
