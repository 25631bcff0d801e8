//! The response future: the inner future, polled inside the request's scope.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use stackholm::futures::Scoped;

use crate::body::ScopedBody;
use crate::end::RequestEnd;

pin_project! {
    /// The response future of [`StackholmService`](crate::StackholmService).
    ///
    /// Polls the inner future inside the request's scope, then hands the
    /// scope on to the response body. Dropped early (a cancelled request),
    /// it drops the inner future inside the scope, then the scope.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Scoped<F>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: Scoped<F>) -> Self {
        Self { inner }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<ScopedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.project().inner;
        let result = ready!(inner.as_mut().poll(cx));
        let mut scope = inner.take_scope();
        if let (Ok(response), Some(scope)) = (&result, &mut scope) {
            let status = response.status();
            RequestEnd::record(scope.stack_mut(), |end| end.status = Some(status));
        }
        Poll::Ready(result.map(|response| response.map(|body| ScopedBody::new(body, scope))))
    }
}
