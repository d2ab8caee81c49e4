//! `s4 versions` and `s4 restore`: a file's S3 versions, and bringing one back.

use super::Fatal;
use crate::cli::{RestoreCmd, VersionsCmd};
use crate::config::Config;

pub fn list(_config: &Config, _cmd: VersionsCmd) -> Result<i32, Fatal> {
    Err("versions: not built yet".into())
}

pub fn restore(_config: &Config, _cmd: RestoreCmd) -> Result<i32, Fatal> {
    Err("restore: not built yet".into())
}
