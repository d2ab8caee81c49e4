//! `sync.conf`, in S4's format and places (SPEC-S4 §1): `{"targets": {NAME: {...}}}`.
//! Unknown fields are kept; the file is written atomically with mode 0600 because it
//! holds secrets (S4 left it world-readable).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::fsutil;

/// One sync target: a local folder and an S3 prefix. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Target {
    pub local_folder: String,
    pub s3_uri: String,
    pub endpoint_url: Option<String>,
    pub region_name: Option<String>,
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<String>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("local_folder", &self.local_folder)
            .field("s3_uri", &self.s3_uri)
            .field("endpoint_url", &self.endpoint_url)
            .field("region_name", &self.region_name)
            .field("aws_access_key_id", &self.aws_access_key_id)
            .field("aws_secret_access_key", &self.aws_secret_access_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `s3://bucket/prefix` split as S4 does: the prefix gets a trailing '/' unless empty.
pub fn parse_s3_uri(uri: &str) -> Result<(String, String), String> {
    let rest = uri
        .strip_prefix("s3://")
        .ok_or_else(|| format!("\"{uri}\" is not an S3 URI: write it as s3://BUCKET/PREFIX"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("\"{uri}\" names no bucket: write it as s3://BUCKET/PREFIX"));
    }
    let mut prefix = prefix.to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok((bucket.to_string(), prefix))
}

fn opt_str(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

impl Target {
    fn from_json(v: &Value) -> Target {
        let s = |k: &str| opt_str(v.get(k));
        Target {
            local_folder: s("local_folder").unwrap_or_default(),
            s3_uri: s("s3_uri").unwrap_or_default(),
            endpoint_url: s("endpoint_url").filter(|e| !e.is_empty()),
            region_name: s("region_name").filter(|e| !e.is_empty()),
            aws_access_key_id: s("aws_access_key_id").filter(|e| !e.is_empty()),
            aws_secret_access_key: s("aws_secret_access_key").filter(|e| !e.is_empty()),
        }
    }

    /// Write the known fields into `obj`, leaving any others as they were.
    fn write_json(&self, obj: &mut Map<String, Value>) {
        let o = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
        obj.insert("local_folder".into(), Value::String(self.local_folder.clone()));
        obj.insert("endpoint_url".into(), o(&self.endpoint_url));
        obj.insert("s3_uri".into(), Value::String(self.s3_uri.clone()));
        obj.insert("region_name".into(), o(&self.region_name));
        obj.insert("aws_access_key_id".into(), o(&self.aws_access_key_id));
        obj.insert("aws_secret_access_key".into(), o(&self.aws_secret_access_key));
    }

    /// The local folder with S4's trailing '/', as S4 names it in messages.
    pub fn local_uri(&self) -> String {
        let mut s = self.local_folder.clone();
        if !s.ends_with('/') {
            s.push('/');
        }
        s
    }

    /// The S3 URI with S4's trailing '/'.
    pub fn remote_uri(&self) -> String {
        let mut s = self.s3_uri.clone();
        if !s.ends_with('/') {
            s.push('/');
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    root: Map<String, Value>,
}

/// `$S4_CONFIG`, else `$XDG_CONFIG_HOME/s4/sync.conf`, else `~/.config/s4/sync.conf` (S4's place).
pub fn default_path(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(p) = env("S4_CONFIG") {
        return PathBuf::from(p);
    }
    if let Some(x) = env("XDG_CONFIG_HOME") {
        return Path::new(&x).join("s4/sync.conf");
    }
    Path::new(&env("HOME").unwrap_or_else(|| ".".into())).join(".config/s4/sync.conf")
}

impl Config {
    /// A missing file is an empty config; a broken one is an error naming the file.
    pub fn load(path: &Path) -> Result<Config, String> {
        let root = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(format!("reading config {}: {e}", path.display())),
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(format!("config {} is not a JSON object", path.display())),
                Err(e) => {
                    return Err(format!("config {} is not valid JSON ({e}); fix or move it away", path.display()))
                }
            },
        };
        Ok(Config { path: path.to_path_buf(), root })
    }

    fn targets_map(&self) -> Option<&Map<String, Value>> {
        self.root.get("targets").and_then(Value::as_object)
    }

    /// Target names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.targets_map().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        v.sort();
        v
    }

    pub fn get(&self, name: &str) -> Option<Target> {
        self.targets_map().and_then(|m| m.get(name)).map(Target::from_json)
    }

    pub fn set(&mut self, name: &str, target: &Target) {
        let targets = self.root.entry("targets").or_insert_with(|| Value::Object(Map::new()));
        if !targets.is_object() {
            *targets = Value::Object(Map::new());
        }
        let map = targets.as_object_mut().expect("object");
        let entry = map.entry(name.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        target.write_json(entry.as_object_mut().expect("object"));
    }

    pub fn remove(&mut self, name: &str) -> bool {
        self.root
            .get_mut("targets")
            .and_then(Value::as_object_mut)
            .map(|m| m.shift_remove(name).is_some())
            .unwrap_or(false)
    }

    /// Atomic write, mode 0600, indented by 5 as S4 writes it.
    pub fn save(&self) -> Result<(), String> {
        if !self.root.contains_key("targets") {
            // S4 expects the key.
        }
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"     ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        let mut root = self.root.clone();
        root.entry("targets").or_insert_with(|| Value::Object(Map::new()));
        serde::Serialize::serialize(&Value::Object(root), &mut ser).map_err(|e| e.to_string())?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        fsutil::write_atomic(&self.path, 0o600, |f| f.write_all(&out))
            .map_err(|e| format!("writing config {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn s3_uris_split_like_s4() {
        assert_eq!(parse_s3_uri("s3://b/p").unwrap(), ("b".into(), "p/".into()));
        assert_eq!(parse_s3_uri("s3://b/p/q/").unwrap(), ("b".into(), "p/q/".into()));
        assert_eq!(parse_s3_uri("s3://b/").unwrap(), ("b".into(), "".into()));
        assert_eq!(parse_s3_uri("s3://b").unwrap(), ("b".into(), "".into()));
        assert!(parse_s3_uri("b/p").unwrap_err().contains("s3://BUCKET/PREFIX"));
        assert!(parse_s3_uri("s3:///p").is_err());
    }

    #[test]
    fn reads_s4_file_keeps_unknown_fields_writes_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s4/sync.conf");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            r#"{"targets": {"docs": {"local_folder": "/home/u/docs", "endpoint_url": null, "s3_uri": "s3://b/docs", "region_name": null, "aws_access_key_id": "AK", "aws_secret_access_key": "SK", "extra": 5}}, "top": true}"#,
        )
        .unwrap();
        let mut c = Config::load(&path).unwrap();
        let t = c.get("docs").unwrap();
        assert_eq!(t.endpoint_url, None);
        assert!(!format!("{t:?}").contains("SK\""));
        c.set("new", &Target { local_folder: "/x".into(), s3_uri: "s3://b/x".into(), ..Default::default() });
        c.save().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"extra\": 5") && text.contains("\"top\": true"), "{text}");
        assert!(text.contains("\n     \"targets\""), "indent 5: {text}");
        let c2 = Config::load(&path).unwrap();
        assert_eq!(c2.names(), vec!["docs", "new"]);
        assert_eq!(c2.get("new").unwrap().aws_access_key_id, None);
    }

    #[test]
    fn broken_config_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.conf");
        std::fs::write(&path, "{not json").unwrap();
        let err = Config::load(&path).unwrap_err();
        assert!(err.contains("sync.conf") && err.contains("not valid JSON"), "{err}");
        assert_eq!(Config::load(&dir.path().join("none")).unwrap().names(), Vec::<String>::new());
    }
}
