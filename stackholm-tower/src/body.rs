//! The response body: polled inside the request's scope.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use stackholm::{Scope, Storage};

use crate::end::{drop_caught, end_complete, end_unfinished, record, telling, RequestEnd};

pin_project! {
    /// Response body for [`StackholmService`](crate::StackholmService): the
    /// inner body, polled inside its request's scope, so that streaming
    /// bodies (server-sent events, chunked downloads) read the request's
    /// values as the handler did.
    ///
    /// The scope, with its stack, is dropped as soon as the body ends, or
    /// with the body. An inner body dropped before its end is dropped
    /// inside the scope (or without it, where the scope cannot be run then:
    /// inside a `with` closure of its storage, or on an exiting thread);
    /// one that ended goes later, with nothing left to see.
    ///
    /// A root exit hook (or a value's destructor) that panics once the body
    /// is complete, or when the body is dropped before it, is reported by
    /// the panic hook, as every panic is, and goes no further: the response
    /// is sent whole, and the panic does not reach the connection.
    pub struct ScopedBody<B> {
        #[pin]
        body: Option<B>,
        scope: Option<Scope>,
        storage: Storage,
        // How the request has ended so far.
        end: RequestEnd,
    }

    impl<B> PinnedDrop for ScopedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // With a scope left, dropped before its end: the response was
            // not sent whole. Without, the body goes as any field does.
            if let Some(scope) = this.scope.take() {
                end_unfinished(this.body, Some(scope), *this.storage, *this.end);
            }
        }
    }
}

impl<B: Body> ScopedBody<B> {
    /// A body that is empty from the start (a `204`, a `HEAD` response, a
    /// gRPC call's trailers-only one), complete in `end`, may never be
    /// polled: its request ends with its head.
    pub(crate) fn new(
        body: B,
        mut scope: Option<Scope>,
        storage: Storage,
        end: RequestEnd,
    ) -> Self {
        if end.body_complete() {
            if let Some(scope) = scope.take() {
                end_complete(scope, storage, end);
            }
        }
        Self {
            body: Some(body),
            scope,
            storage,
            end,
        }
    }
}

impl<B> ScopedBody<B> {
    /// The inner body.
    pub fn get_ref(&self) -> &B {
        self.body.as_ref().expect(PRESENT)
    }

    /// The inner body, mutably.
    pub fn get_mut(&mut self) -> &mut B {
        self.body.as_mut().expect(PRESENT)
    }

    /// The inner body, taken out of the request's scope: polled afterwards,
    /// it no longer sees the request's values. The scope is dropped here,
    /// with the values still in it.
    pub fn into_inner(mut self) -> B {
        self.body.take().expect(PRESENT)
    }
}

const PRESENT: &str = "the inner body is present until `ScopedBody` is dropped";

impl<B: Body> Body for ScopedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut body = this.body.as_pin_mut().expect(PRESENT);
        let scope = this.scope;
        if scope.is_none() {
            return body.poll_frame(cx);
        }
        let mut end = *this.end;
        let polled = telling(*this.storage, end, || {
            let Some(running) = scope.as_mut() else {
                return body.as_mut().poll_frame(cx);
            };
            let (polled, ended) = running.run(|| {
                let polled = body.as_mut().poll_frame(cx);
                let ended = match &polled {
                    Poll::Ready(None) => true,
                    // Trailers come last, and tell how a gRPC call that
                    // got as far as its body ended: hyper's HTTP/2 server
                    // sends them and polls the body no more.
                    Poll::Ready(Some(Ok(frame))) => match frame.trailers_ref() {
                        Some(trailers) => {
                            end = end.trailers(trailers);
                            true
                        }
                        // A server need not poll a body again once it says
                        // it is at its end (hyper does not, for a body of
                        // known length).
                        None => body.is_end_stream(),
                    },
                    _ => false,
                };
                (polled, ended)
            });
            if ended {
                // Told the request is complete, in the same telling.
                end = end.completed();
                record(end);
                if let Some(scope) = scope.take() {
                    drop_caught(scope);
                }
            }
            polled
        });
        *this.end = end;
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.get_ref().is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.get_ref().size_hint()
    }
}

impl<B> fmt::Debug for ScopedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedBody")
            .field("body", &std::any::type_name::<B>())
            .field("scope", &self.scope)
            .finish()
    }
}
