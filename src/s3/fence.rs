//! A write fence: a condition checked right before a write can take effect, on every attempt.
//!
//! Under the lease (stores without conditional writes, issue 10) a machine may write only while
//! its lease is fresh. Checking that when a job starts left a window: a request retried for up
//! to 90 s (a store node restarting), or a process frozen between the check and its request's
//! last byte, could land after another machine took the lease over (simulation seed 4245494: a
//! PUT planned before a freeze landed after the takeover, over that machine's edit). With the
//! fence, a write request is not started, and its body's last byte is not sent, once the fence
//! says no: S3 makes nothing of a request whose body never completed. What remains is the
//! store's own delay between a complete request and its commit (see README, "Several machines").

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::http::ReqBody;

/// `Err(why)` once writes must stop.
pub type Fence = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Ask `fence` on behalf of `op` on `object`: its "no" as the error a write returns.
pub fn ask(fence: &Fence, op: &'static str, object: &str) -> Result<(), super::Error> {
    fence().map_err(|why| super::Error::new(op, object, super::ErrorKind::Fenced(why)))
}

/// `body`, whose final frame is handed on only if `fence` still allows it.
pub fn guard(body: ReqBody, fence: Fence) -> ReqBody {
    http_body_util::BodyExt::boxed(Guarded { inner: body, fence })
}

struct Guarded {
    inner: ReqBody,
    fence: Fence,
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) if this.inner.is_end_stream() => match (this.fence)() {
                Ok(()) => Poll::Ready(Some(Ok(frame))),
                Err(why) => Poll::Ready(Some(Err(io::Error::other(format!("not completed: {why}"))))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
