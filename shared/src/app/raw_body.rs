//! The invocation's event bytes, handed past `lambda_runtime`'s deserializer.
//!
//! `lambda_runtime` deserializes every event into the handler's payload type,
//! owning each string (and tracking its path for error messages). Shardline
//! decodes the event itself, borrowing from the bytes, so [`RawBody`], the
//! outermost layer, takes the body out of each invocation, keeps it by request
//! id in [`Bodies`], and passes on `null` for a payload of
//! [`IgnoredAny`](serde::de::IgnoredAny). The handler takes the bytes back by
//! its request id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use lambda_runtime::LambdaInvocation;
use lambda_runtime::tower::{Layer, Service};

use super::Error;

/// Event bodies by request id, between [`RawBody`] and the handler.
#[derive(Clone, Default)]
pub(super) struct Bodies(Arc<Mutex<HashMap<String, Bytes>>>);

impl Bodies {
    fn put(&self, request_id: String, body: Bytes) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(request_id, body);
    }

    /// The body of invocation `request_id`, taken out.
    ///
    /// # Errors
    /// [`Error::Runtime`] if no body was kept for it (a runtime not wrapped in
    /// [`RawBody`]).
    pub(super) fn take(&self, request_id: &str) -> Result<Bytes, Error> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(request_id)
            .ok_or_else(|| {
                Error::Runtime(format!("no event body was kept for request {request_id}").into())
            })
    }
}

/// The layer that takes each invocation's body into [`Bodies`].
#[derive(Clone)]
pub(super) struct RawBody {
    pub bodies: Bodies,
}

impl<S> Layer<S> for RawBody {
    type Service = RawBodyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RawBodyService {
            inner,
            bodies: self.bodies.clone(),
        }
    }
}

/// [`RawBody`] around the runtime's own services (cloned once per worker of
/// the runtime's concurrent mode).
#[derive(Clone)]
pub(super) struct RawBodyService<S> {
    inner: S,
    bodies: Bodies,
}

/// What the inner services deserialize instead of the event.
const PLACEHOLDER: &[u8] = b"null";

impl<S> Service<LambdaInvocation> for RawBodyService<S>
where
    S: Service<LambdaInvocation>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> Self::Future {
        let body = std::mem::replace(&mut invocation.body, Bytes::from_static(PLACEHOLDER));
        self.bodies.put(invocation.context.request_id.clone(), body);
        self.inner.call(invocation)
    }
}
