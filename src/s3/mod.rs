//! A small S3 client of our own: SigV4 by hand, hyper + rustls, quick-xml listings.
//! The sync engine talks to S3 only through [`Client`].

pub mod bodies;
mod client;
pub mod copy;
pub mod credentials;
pub mod error;
pub mod fence;
pub mod flow;
pub mod http;
pub mod multipart;
mod ops;
pub mod resolve;
pub mod retry;
pub mod sigv4;
pub mod versions;
pub mod xml;

pub use client::{Client, Config};
pub use credentials::{Credentials, Provider};
pub use error::{Error, ErrorKind, Result};
pub use flow::{Limits, Meter, Tap};
pub use http::Payload;
pub use multipart::Transfer;
pub use ops::{base64, content_md5, Lister, ObjectMeta, PutOptions};
pub use versions::{Version, Versioning};
pub use xml::{ListPage, Object};
