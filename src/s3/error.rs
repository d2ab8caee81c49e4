//! One error type for every S3 operation. Each error names the operation and the object
//! (`ListObjectsV2 s3://b/p: 403 SignatureDoesNotMatch: ...`), never a secret.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The store answered with an error status (or a 200 whose body was an `<Error>`).
    Status { status: u16, code: String, message: String, request_id: Option<String> },
    /// Connecting, TLS, or the connection broke mid-request.
    Transport(String),
    /// No answer (or no body bytes) within the read timeout.
    Timeout,
    /// The store sent a document we could not parse.
    Xml(String),
    /// Local file I/O while streaming a body.
    Io(String),
    /// Bad input on our side (endpoint, credentials, URI).
    Config(String),
    /// The local file changed while it was being uploaded; nothing new was made visible.
    Changed,
    /// The write fence said no (the lease lapsed): this attempt was not sent, or its body not
    /// completed ([`super::fence`]). As after any failure, an earlier attempt whose answer was
    /// lost may have landed.
    Fenced(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub op: &'static str,
    /// `s3://bucket/key` (or a local path for I/O failures).
    pub object: String,
    pub kind: ErrorKind,
}

impl Error {
    pub fn new(op: &'static str, object: impl Into<String>, kind: ErrorKind) -> Self {
        Error { op, object: object.into(), kind }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            ErrorKind::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Status { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A missing key: 404 with `NoSuchKey` (or no body, as HEAD answers). A missing
    /// *bucket* is not "not found": it is a configuration error the user must see.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404) && matches!(self.code(), Some("NoSuchKey") | Some("") | None)
    }

    pub fn is_changed(&self) -> bool {
        self.kind == ErrorKind::Changed
    }

    /// The store does not implement the operation (501, or its `NotImplemented` code).
    pub fn is_not_implemented(&self) -> bool {
        self.status() == Some(501) || self.code() == Some("NotImplemented")
    }

    /// A conditional write lost: 412 PreconditionFailed, or 409 when two writers raced.
    pub fn is_precondition_failed(&self) -> bool {
        matches!(self.status(), Some(412) | Some(409))
    }
}

/// What the user can do about an answer that no retry will change.
fn hint(status: u16, code: &str) -> Option<&'static str> {
    Some(match (status, code) {
        (_, "NoSuchBucket") => "The bucket does not exist: check the bucket in the target's s3_uri (s4 edit NAME)",
        (_, "SignatureDoesNotMatch") => {
            "The store refused the signature: check the target's secret access key (s4 edit NAME) and region"
        }
        (_, "InvalidAccessKeyId") => {
            "The store does not know this access key: check the target's credentials (s4 edit NAME)"
        }
        (403, _) => "Access denied: check the target's credentials (s4 edit NAME) and that they may use this bucket",
        _ => return None,
    })
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.op, self.object)?;
        match &self.kind {
            ErrorKind::Status { status, code, message, request_id } => {
                write!(f, "{status}")?;
                if !code.is_empty() {
                    write!(f, " {code}")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                if let Some(id) = request_id {
                    write!(f, " (request id {id})")?;
                }
                match hint(*status, code) {
                    Some(h) => write!(f, ". {h}"),
                    None => Ok(()),
                }
            }
            ErrorKind::Transport(m) => write!(f, "connection failed: {m}"),
            ErrorKind::Timeout => write!(f, "timed out: no answer from the store in the time allowed"),
            ErrorKind::Xml(m) => write!(f, "malformed answer from the store: {m}"),
            ErrorKind::Io(m) => write!(f, "{m}"),
            ErrorKind::Config(m) => write!(f, "{m}"),
            ErrorKind::Changed => write!(f, "the file changed while it was being uploaded"),
            ErrorKind::Fenced(why) => write!(f, "not written: {why}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: &str) -> Error {
        Error::new(
            "GetObject",
            "s3://b/k",
            ErrorKind::Status { status, code: code.into(), message: "m".into(), request_id: Some("R1".into()) },
        )
    }

    #[test]
    fn display_names_operation_object_and_code() {
        assert_eq!(
            status(403, "SignatureDoesNotMatch").to_string(),
            "GetObject s3://b/k: 403 SignatureDoesNotMatch: m (request id R1). The store refused the signature: \
             check the target's secret access key (s4 edit NAME) and region"
        );
    }

    #[test]
    fn missing_bucket_is_not_a_missing_key() {
        assert!(status(404, "NoSuchKey").is_not_found());
        assert!(status(404, "").is_not_found());
        assert!(!status(404, "NoSuchBucket").is_not_found());
        assert!(!status(403, "AccessDenied").is_not_found());
    }
}
