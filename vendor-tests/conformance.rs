//! The conformance suite: the same tests against any store (s3s-fs in-process by default).
mod support;
