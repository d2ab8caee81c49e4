//! `s4 bench`: time one operation with s4's own client.

use std::path::Path;

use super::Fatal;
use crate::cli::BenchCmd;

pub fn run(_cmd: BenchCmd, _config_path: &Path) -> Result<i32, Fatal> {
    Err("bench: not built yet".into())
}
