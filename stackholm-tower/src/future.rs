//! The response future: the inner future, polled inside the request's scope.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use stackholm::{Scope, Storage};

use crate::body::ScopedBody;
use crate::end::{end, end_unfinished, record, tell, telling, OnEnd, RequestEnd};
use crate::request_id::Echo;

pin_project! {
    /// Response future for [`StackholmService`](crate::StackholmService):
    /// the inner service's future, polled inside the request's scope, whose
    /// response body goes on in the same scope.
    ///
    /// Dropped before it completes, it drops the inner future inside the
    /// scope, then the scope: the request was cancelled.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ResponseFuture<F, X = (), E: OnEnd = ()> {
        #[pin]
        inner: Option<F>,
        // `None` once handed to the response body.
        scope: Option<Scope>,
        storage: Storage,
        // The request's id to echo, with `request_id`.
        echo: X,
        // `None` once handed to the response body.
        hook: Option<E>,
    }

    impl<F, X, E: OnEnd> PinnedDrop for ResponseFuture<F, X, E> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Completed: the scope went on to the body with the response.
            if this.inner.is_none() {
                return;
            }
            let Some(hook) = this.hook.as_ref() else {
                return;
            };
            end_unfinished(this.inner, this.scope.take(), *this.storage, RequestEnd::default(), hook);
        }
    }
}

impl<F, X, E: OnEnd> ResponseFuture<F, X, E> {
    pub(crate) fn new(scope: Option<Scope>, storage: Storage, inner: F, echo: X, hook: E) -> Self {
        Self {
            inner: Some(inner),
            scope,
            storage,
            echo,
            hook: Some(hook),
        }
    }
}

impl<F, B, Error, X, E> Future for ResponseFuture<F, X, E>
where
    F: Future<Output = Result<Response<B>, Error>>,
    B: http_body::Body,
    X: Echo,
    E: OnEnd,
{
    type Output = Result<Response<ScopedBody<B, E>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut inner = this.inner;
        let scope = this.scope.as_mut().expect(PRESENT);
        let (storage, outcome) = (*this.storage, scope.outcome());
        let echo = this.echo;
        let hook = this.hook.as_ref().expect(PRESENT);
        let mut answered = RequestEnd::default();
        let result = ready!(telling(storage, answered, || {
            scope.run(|| {
                let mut polled = inner.as_mut().as_pin_mut().expect(PRESENT).poll(cx);
                if let Poll::Ready(result) = &mut polled {
                    if let Ok(response) = result {
                        echo.echo(response.headers_mut());
                        answered = RequestEnd::answered(response);
                        record(answered);
                    }
                    // Dropped here, inside the scope, as on cancellation.
                    inner.set(None);
                    // Without a response, or with one whose body is empty
                    // from the start, the request is over.
                    if result.is_err() || answered.body_complete() {
                        tell(hook, outcome, answered);
                    }
                }
                polled
            })
        }));
        let (scope, hook) = (this.scope.take(), this.hook.take().expect(PRESENT));
        Poll::Ready(match result {
            Ok(response) => {
                Ok(response.map(|body| ScopedBody::new(body, scope, storage, answered, hook)))
            }
            Err(err) => {
                if let Some(scope) = scope {
                    end(scope, storage, RequestEnd::default());
                }
                Err(err)
            }
        })
    }
}

const PRESENT: &str = "`ResponseFuture` polled after completion";

impl<F, X, E: OnEnd> fmt::Debug for ResponseFuture<F, X, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("inner", &std::any::type_name::<F>())
            .field("scope", &self.scope)
            .field("on_end", &std::any::type_name::<E>())
            .finish()
    }
}
