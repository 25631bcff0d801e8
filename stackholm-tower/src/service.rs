//! The service: opens a scope per request around the inner service.

use std::fmt;
use std::task::{Context, Poll};

use http::{Request, Response};
use stackholm::{Checkpoint, Scope, Storage};
use tower_service::Service;

use crate::body::ScopedBody;
use crate::end::{end_unwound, telling, OnEnd, RequestEnd};
use crate::future::ResponseFuture;
use crate::request_id::Identify;
use crate::seed::{Root, SeedRoot};

/// Service for [`StackholmLayer`](crate::StackholmLayer): opens a scope per
/// request around the inner service.
#[derive(Clone)]
pub struct StackholmService<S, R, I = (), E = ()> {
    inner: S,
    storage: Storage,
    seed: R,
    ids: I,
    on_end: E,
}

impl<S, R, I, E> StackholmService<S, R, I, E> {
    pub(crate) fn new(inner: S, storage: Storage, seed: R, ids: I, on_end: E) -> Self {
        Self {
            inner,
            storage,
            seed,
            ids,
            on_end,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, taken out.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R, I, E, ReqBody, ResBody> Service<Request<ReqBody>> for StackholmService<S, R, I, E>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body,
    R: SeedRoot,
    I: Identify,
    E: OnEnd + Clone,
{
    type Response = Response<ScopedBody<ResBody, E>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, I::Echo, E>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let storage = self.storage;
        let (seed, ids, inner, on_end) = (&self.seed, &self.ids, &mut self.inner, &self.on_end);
        let mut scope = Unwinding(
            Some(Scope::new(storage, Checkpoint::new())),
            storage,
            on_end,
        );
        let (future, echo) = telling(storage, RequestEnd::default(), || {
            scope.run(move || {
                let (mut parts, body) = request.into_parts();
                let echo = ids.identify(&mut parts, &mut Root::new(storage));
                seed.seed(&parts, &mut Root::new(storage));
                (inner.call(Request::from_parts(parts, body)), echo)
            })
        });
        ResponseFuture::new(scope.0.take(), storage, future, echo, on_end.clone())
    }
}

/// A request's scope while its service is called: if the seed or the call
/// panics, the scope ends there, its hooks told the request's end.
struct Unwinding<'a, E: OnEnd>(Option<Scope>, Storage, &'a E);

impl<E: OnEnd> Unwinding<'_, E> {
    #[inline]
    fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let scope = self.0.as_mut();
        scope.expect("taken only once the call is over").run(f)
    }
}

impl<E: OnEnd> Drop for Unwinding<'_, E> {
    fn drop(&mut self) {
        if let Some(scope) = self.0.take() {
            end_unwound(scope, self.1, self.2);
        }
    }
}

impl<S: fmt::Debug, R, I: fmt::Debug, E> fmt::Debug for StackholmService<S, R, I, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackholmService")
            .field("inner", &self.inner)
            .field("storage", &self.storage)
            .field("seed", &std::any::type_name::<R>())
            .field("ids", &self.ids)
            .field("on_end", &std::any::type_name::<E>())
            .finish()
    }
}
