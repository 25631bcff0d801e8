//! The service: opens a scope per request around the inner service.

use std::fmt;
use std::task::{Context, Poll};

use http::{Request, Response};
use stackholm::{Checkpoint, Scope, Storage};
use tower_service::Service;

use crate::body::ScopedBody;
use crate::end::{telling, RequestEnd};
use crate::future::ResponseFuture;
use crate::seed::{Root, SeedRoot};

/// Service for [`StackholmLayer`](crate::StackholmLayer): opens a scope per
/// request around the inner service.
#[derive(Clone)]
pub struct StackholmService<S, R> {
    inner: S,
    storage: Storage,
    seed: R,
}

impl<S, R> StackholmService<S, R> {
    pub(crate) fn new(inner: S, storage: Storage, seed: R) -> Self {
        Self {
            inner,
            storage,
            seed,
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

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for StackholmService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body,
    R: SeedRoot,
{
    type Response = Response<ScopedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let storage = self.storage;
        let (seed, inner) = (&self.seed, &mut self.inner);
        // The scope made inside `telling`, so that if the seed or the call
        // panics, its root's hooks, unwound, still read the request's end.
        let (scope, future) = telling(storage, RequestEnd::default(), move || {
            let mut scope = Scope::new(storage, Checkpoint::new());
            let future = scope.run(move || {
                let (parts, body) = request.into_parts();
                seed.seed(&parts, &mut Root::new(storage));
                inner.call(Request::from_parts(parts, body))
            });
            (scope, future)
        });
        ResponseFuture::new(scope, storage, future)
    }
}

impl<S: fmt::Debug, R> fmt::Debug for StackholmService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackholmService")
            .field("inner", &self.inner)
            .field("storage", &self.storage)
            .field("seed", &std::any::type_name::<R>())
            .finish()
    }
}
