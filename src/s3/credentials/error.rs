//! Why no keys could be had: which source failed, at which step, and what to set. Messages
//! never hold a secret, a session token or a web identity token.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// No source is configured; the message says where s4 looked.
    NotFound(String),
    /// A source is configured wrongly; the message says what to set.
    Config(String),
    /// The endpoint answered with an error status.
    Status { status: u16, code: String, message: String },
    /// No answer in the time allowed.
    Timeout,
    /// Connecting failed or the connection broke.
    Transport(String),
    /// The answer could not be read (JSON, XML, a missing field).
    Malformed(String),
    /// A local file or command: a token file, `credential_process`.
    Io(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsError {
    /// The source, as `s4 doctor` names it: "web identity", "container endpoint", ...
    pub source: &'static str,
    /// What was being done: "AssumeRole at https://sts.eu-west-1.amazonaws.com", ...
    pub step: String,
    pub kind: Kind,
}

pub const TARGET: &str = "target";
pub const ENVIRONMENT: &str = "environment";
pub const WEB_IDENTITY: &str = "web identity";
pub const PROFILE: &str = "profile";
pub const PROCESS: &str = "credential_process";
pub const ASSUME_ROLE: &str = "assume role";
pub const CONTAINER: &str = "container endpoint";
pub const IMDS: &str = "instance metadata (IMDSv2)";

/// What to do when no source has keys.
pub const ADVICE: &str = "give the target keys (s4 edit TARGET), or set AWS_ACCESS_KEY_ID and \
                          AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or another source of the AWS chain";

impl CredentialsError {
    pub fn new(source: &'static str, step: impl Into<String>, kind: Kind) -> Self {
        CredentialsError { source, step: step.into(), kind }
    }

    /// Might a later attempt succeed? (Timeouts, broken connections, 5xx and throttling; never
    /// a refusal or a wrong setting, which would only be asked again and again.)
    pub fn is_transient(&self) -> bool {
        match &self.kind {
            Kind::Timeout | Kind::Transport(_) => true,
            Kind::Status { status, code, .. } => {
                *status >= 500 || *status == 429 || matches!(code.as_str(), "IDPCommunicationError" | "Throttling")
            }
            Kind::NotFound(_) | Kind::Config(_) | Kind::Malformed(_) | Kind::Io(_) => false,
        }
    }

    /// What the user can do about it, where s4 knows.
    fn hint(&self) -> Option<&'static str> {
        Some(match (self.source, &self.kind) {
            (IMDS, Kind::Timeout) if self.step.contains("token") => {
                "If s4 runs in a container on EC2, the instance's metadata hop limit must be at least 2 \
                 (aws ec2 modify-instance-metadata-options --instance-id ID --http-put-response-hop-limit 2)"
            }
            (IMDS, Kind::Status { status: 404, .. }) => {
                "The instance has no IAM role: attach an instance profile, or give the target keys (s4 edit NAME)"
            }
            (WEB_IDENTITY, Kind::Status { status: 400 | 403, .. }) => {
                "Check AWS_ROLE_ARN and that the role's trust policy allows this identity provider and subject"
            }
            (ASSUME_ROLE, Kind::Status { status: 403, .. }) => {
                "Check role_arn in ~/.aws/config and that the source profile's keys may assume it (trust policy)"
            }
            (CONTAINER, Kind::Status { status: 401 | 403, .. }) => {
                "The endpoint refused the authorization token: check AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \
                 (or AWS_CONTAINER_AUTHORIZATION_TOKEN)"
            }
            _ => return None,
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::NotFound(m) | Kind::Config(m) | Kind::Io(m) => f.write_str(m),
            Kind::Status { status, code, message } => {
                write!(f, "{status}")?;
                if !code.is_empty() {
                    write!(f, " {code}")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            Kind::Timeout => f.write_str("timed out: no answer in the time allowed"),
            Kind::Transport(m) => write!(f, "connection failed: {m}"),
            Kind::Malformed(m) => write!(f, "malformed answer: {m}"),
        }
    }
}

impl fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Kind::NotFound(m) = &self.kind {
            return f.write_str(m);
        }
        write!(f, "getting AWS credentials from the {}: {}: {}", self.source, self.step, self.kind)?;
        match self.hint() {
            Some(h) => write!(f, ". {h}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for CredentialsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_source_step_and_hint() {
        let e = CredentialsError::new(IMDS, "token PUT http://169.254.169.254/latest/api/token", Kind::Timeout);
        let s = e.to_string();
        assert!(s.starts_with("getting AWS credentials from the instance metadata (IMDSv2): token PUT"), "{s}");
        assert!(s.contains("hop limit must be at least 2"), "{s}");
        assert!(e.is_transient());
        let e = CredentialsError::new(
            ASSUME_ROLE,
            "AssumeRole at https://sts.us-east-1.amazonaws.com",
            Kind::Status { status: 403, code: "AccessDenied".into(), message: "no".into() },
        );
        assert!(e.to_string().contains("403 AccessDenied: no. Check role_arn"), "{e}");
        assert!(!e.is_transient());
    }
}
