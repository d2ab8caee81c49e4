//! s4: two-way sync of local folders and S3 prefixes, file-compatible with S4 0.4.4.
//!
//! Layout: [`s3`] is our own S3 client; [`sync`] the engine (scan, index, plan, exec);
//! [`commands`] what each CLI command does; [`config`] S4's `sync.conf`.
#![forbid(unsafe_code)]
// stdout goes through `out!`: println! panics on a closed pipe (`s4 ls | head`).
#![cfg_attr(not(test), deny(clippy::print_stdout))]

pub mod cli;
pub mod commands;
pub mod config;
pub mod content_type;
pub mod events;
pub mod fsutil;
pub mod ignore;
#[macro_use]
pub mod log;
pub mod manual;
pub mod progress;
pub mod s3;
pub mod sync;
pub mod watch;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
#[cfg(test)]
mod sim;
