//! The response body: polled inside the request's scope.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use stackholm::{Scope, Storage};

use crate::end::{
    drop_caught, end_complete, end_unfinished, record, tell, telling, OnEnd, RequestEnd,
};

pin_project! {
    /// Response body for [`StackholmService`](crate::StackholmService): the
    /// inner body, polled inside its request's scope, so that streaming
    /// bodies (server-sent events, chunked downloads) read the request's
    /// values as the handler did.
    ///
    /// The request is complete once the body has said it is at its end (a
    /// frame after which [`is_end_stream`](Body::is_end_stream) is true,
    /// or a body empty from the start), or has yielded its trailers or its
    /// last poll's `None`. Its scope, with its stack, is dropped at that
    /// last poll, or with the body, whichever comes first: a poll after the
    /// body said it was at its end, as a body collected in process gets,
    /// still runs inside the scope, so that what an inner layer does there
    /// (tower-http's `TraceLayer` logging the end of the stream) sees the
    /// request's values. An inner body dropped before its end is dropped
    /// inside the scope (or without it, where the scope cannot be run then:
    /// inside a `with` closure of its storage, or on an exiting thread);
    /// one that ended goes later, with nothing left to see.
    ///
    /// A root exit hook (or a value's destructor) that panics once the body
    /// is complete, or when the body is dropped before it, is reported by
    /// the panic hook, as every panic is, and goes no further: the response
    /// is sent whole, and the panic does not reach the connection.
    pub struct ScopedBody<B, E: OnEnd = ()> {
        #[pin]
        body: Option<B>,
        scope: Option<Scope>,
        storage: Storage,
        // How the request has ended so far.
        end: RequestEnd,
        // Told once, when the request is complete or dropped unfinished.
        hook: E,
    }

    impl<B, E: OnEnd> PinnedDrop for ScopedBody<B, E> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Without a scope, the body goes as any field does.
            let Some(scope) = this.scope.take() else {
                return;
            };
            if this.end.body_complete() {
                end_complete(scope, *this.storage, *this.end);
            } else {
                end_unfinished(this.body, Some(scope), *this.storage, *this.end, this.hook);
            }
        }
    }
}

impl<B, E: OnEnd> ScopedBody<B, E> {
    /// `end` is complete for a body that is empty from the start (a `204`,
    /// a `HEAD` response, a gRPC call's trailers-only one), whose request
    /// `hook` has then been told of.
    pub(crate) fn new(
        body: B,
        scope: Option<Scope>,
        storage: Storage,
        end: RequestEnd,
        hook: E,
    ) -> Self {
        Self {
            body: Some(body),
            scope,
            storage,
            end,
            hook,
        }
    }
}

impl<B, E: OnEnd> ScopedBody<B, E> {
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

impl<B: Body, E: OnEnd> Body for ScopedBody<B, E> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut body = this.body.as_pin_mut().expect(PRESENT);
        let scope = this.scope;
        let Some(outcome) = scope.as_ref().map(Scope::outcome) else {
            return body.poll_frame(cx);
        };
        let hook = &*this.hook;
        let mut end = *this.end;
        let polled = telling(*this.storage, end, || {
            let Some(running) = scope.as_mut() else {
                return body.as_mut().poll_frame(cx);
            };
            let (polled, ended) = running.run(|| {
                let polled = body.as_mut().poll_frame(cx);
                let (complete, ended) = match &polled {
                    Poll::Ready(None) => (true, true),
                    // Trailers come last, and tell how a gRPC call that
                    // got as far as its body ended: hyper's HTTP/2 server
                    // sends them and polls the body no more.
                    Poll::Ready(Some(Ok(frame))) => match frame.trailers_ref() {
                        Some(trailers) => {
                            end = end.trailers(trailers);
                            (true, true)
                        }
                        // A server need not poll a body again once it says
                        // it is at its end (hyper does not, for a body of
                        // known length): the request is complete, and its
                        // scope ends with the body if no poll ends it first.
                        None => (body.is_end_stream(), false),
                    },
                    _ => (false, false),
                };
                if complete && !end.body_complete() {
                    end = end.completed();
                    record(end);
                    tell(hook, outcome, end);
                }
                (polled, ended)
            });
            if ended {
                // Told the request is complete, in the same telling.
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

impl<B, E: OnEnd> fmt::Debug for ScopedBody<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedBody")
            .field("body", &std::any::type_name::<B>())
            .field("scope", &self.scope)
            .field("end", &self.end)
            .field("on_end", &std::any::type_name::<E>())
            .finish()
    }
}
