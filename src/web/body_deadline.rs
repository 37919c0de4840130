//! A deadline on the whole request body: a client that sends its headers and then stalls (or
//! trickles a byte at a time) is answered 408 once its deadline has passed since the
//! request arrived (`body_timeout_secs`), instead of holding the connection until the request
//! timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Sleep;

use crate::state::AppState;

/// The error a body reports once its deadline has passed.
#[derive(Debug)]
pub struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimedOut {}

/// Whether `e`, or an error it was caused by, is [`BodyTimedOut`].
pub fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.is::<BodyTimedOut>() {
            return true;
        }
        source = s.source();
    }
    false
}

struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    /// Set when the deadline passed: the middleware then answers 408 whatever the handler
    /// made of the broken body.
    fired: Arc<AtomicBool>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.fired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: puts the deadline on every request body that is not already complete.
pub async fn deadline(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let limit = Duration::from_secs(app.config.body_timeout_secs);
    let fired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        if body.is_end_stream() {
            body
        } else {
            Body::new(DeadlineBody {
                inner: body,
                deadline: Box::pin(tokio::time::sleep(limit)),
                fired: fired.clone(),
            })
        }
    });
    let response = next.run(request).await;
    if fired.load(Ordering::Relaxed) && response.status() != StatusCode::REQUEST_TIMEOUT {
        // A handler that swallowed the error (a page that shows its form again) still
        // answers what happened; the connection is not reused.
        return (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            "the request body did not arrive in time",
        )
            .into_response();
    }
    response
}
