//! `credential_process` in a profile: run the command (through `sh -c`, as the SDKs do on
//! Unix) and read its JSON from stdout: `{"Version": 1, "AccessKeyId", "SecretAccessKey",
//! "SessionToken", "Expiration"}` (AWS SDKs and Tools reference, "Process credential
//! provider"). This is also how SSO is used without an SDK (`aws configure export-credentials`).

use std::time::Duration;

use super::error::{CredentialsError, Kind, PROCESS};
use super::{fetch, Expiring};

#[derive(Debug, Clone)]
pub struct Process {
    pub command: String,
    /// The profile it came from, for messages.
    pub profile: String,
    pub timeout: Duration,
}

impl Process {
    pub async fn fetch(&self) -> Result<Expiring, CredentialsError> {
        let step = format!("running credential_process of profile \"{}\" ({})", self.profile, self.command);
        let fail = |kind: Kind| CredentialsError::new(PROCESS, step.clone(), kind);
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true) // a command that hangs past the timeout is not left behind
            .output();
        let out = match tokio::time::timeout(self.timeout, child).await {
            Err(_) => return Err(fail(Kind::Timeout)),
            Ok(Err(e)) => return Err(fail(Kind::Io(format!("could not start it: {e}")))),
            Ok(Ok(out)) => out,
        };
        if !out.status.success() {
            // Its stderr says why (an expired SSO session, say); stdout may hold keys, so never it.
            let err = String::from_utf8_lossy(&out.stderr);
            let err: String = err.trim().chars().take(300).collect();
            return Err(fail(Kind::Io(format!("it failed ({}): {err}", out.status))));
        }
        parse(&out.stdout).map_err(fail)
    }
}

pub fn parse(stdout: &[u8]) -> Result<Expiring, Kind> {
    let v: serde_json::Value =
        serde_json::from_slice(stdout).map_err(|e| Kind::Malformed(format!("its output is not JSON ({e})")))?;
    match v.get("Version").and_then(|v| v.as_i64()) {
        Some(1) => {}
        other => {
            return Err(Kind::Malformed(format!(
                "its JSON says \"Version\": {}; s4 reads Version 1",
                other.map(|v| v.to_string()).unwrap_or_else(|| "(missing)".into())
            )))
        }
    }
    fetch::json_credentials(stdout, "SessionToken")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(command: &str) -> Process {
        Process { command: command.into(), profile: "p".into(), timeout: Duration::from_secs(5) }
    }

    #[test]
    fn parses_version_1() {
        let e = parse(br#"{"Version":1,"AccessKeyId":"A","SecretAccessKey":"S","SessionToken":"T","Expiration":"2030-01-01T00:00:00Z"}"#)
            .unwrap();
        assert_eq!(e.expires, Some(1_893_456_000));
        let e = parse(br#"{"Version":1,"AccessKeyId":"A","SecretAccessKey":"S"}"#).unwrap();
        assert_eq!((e.creds.session_token, e.expires), (None, None));
        assert!(
            matches!(parse(br#"{"Version":2,"AccessKeyId":"A","SecretAccessKey":"S"}"#), Err(Kind::Malformed(m)) if m.contains("Version 1"))
        );
        assert!(matches!(parse(b"hello"), Err(Kind::Malformed(_))));
    }

    #[tokio::test]
    async fn runs_the_command() {
        let ok = process(r#"printf '{"Version": 1, "AccessKeyId": "PA", "SecretAccessKey": "PS"}'"#);
        assert_eq!(ok.fetch().await.unwrap().creds.access_key_id, "PA");
        // stdout (here "LEAK", spelt otherwise in the command) never reaches the message.
        let err =
            process(r"echo 'sso session expired' >&2; printf '\x4c\x45\x41\x4b'; exit 3").fetch().await.unwrap_err();
        let s = err.to_string();
        assert!(s.contains("sso session expired") && !s.contains("LEAK"), "{s}");
        let slow = Process { timeout: Duration::from_millis(200), ..process("sleep 5") };
        assert_eq!(slow.fetch().await.unwrap_err().kind, Kind::Timeout);
    }
}
