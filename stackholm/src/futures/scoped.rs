//! A future run inside a task-local scope.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::Scope;

pin_project! {
    /// A future run inside its own task-local stack; see
    /// [`Storage::scope`](crate::Storage::scope).
    ///
    /// Every poll installs the stack, and so does dropping the inner future,
    /// so that its destructors see the same stack as its polls. Where the
    /// stack cannot be installed at drop time (inside a `with` closure of
    /// the storage, or on an exiting thread), the inner future is dropped
    /// without it, as `tokio::task::futures::TaskLocalFuture` does.
    ///
    /// # Panics
    ///
    /// A poll panics as [`Scope::run`] does: above all, if the inner future
    /// returns from a poll holding a checkpoint guard (a guard held across
    /// an `.await`).
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Scoped<F> {
        scope: Option<Scope>,
        #[pin]
        future: Option<F>,
    }

    impl<F> PinnedDrop for Scoped<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut future = this.future;
            if future.as_mut().as_pin_mut().is_none() {
                return;
            }
            let dropped = match this.scope {
                Some(scope) => {
                    scope.cancel();
                    scope.try_run(|| future.set(None)).is_ok()
                }
                None => false,
            };
            if !dropped {
                future.set(None);
            }
        }
    }
}

impl<F> Scoped<F> {
    /// Runs `future` inside `scope`; see also
    /// [`Storage::scope`](crate::Storage::scope).
    pub fn new(scope: Scope, future: F) -> Self {
        Self {
            scope: Some(scope),
            future: Some(future),
        }
    }

    /// The scope the future runs in; `None` once taken with
    /// [`take_scope`](Self::take_scope).
    #[must_use]
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// Takes the scope out, with everything the future left in it, so that
    /// something else can run in it after the future has completed (a
    /// response body, say).
    ///
    /// Polling the future again afterwards panics.
    pub fn take_scope(self: Pin<&mut Self>) -> Option<Scope> {
        self.project().scope.take()
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut future = this.future;
        let scope = this
            .scope
            .as_mut()
            .expect("`Scoped` polled after its scope was taken");
        scope.run(|| {
            let output = future
                .as_mut()
                .as_pin_mut()
                .expect("`Scoped` polled after completion")
                .poll(cx);
            if output.is_ready() {
                // Dropped here, inside the scope, like on cancellation.
                future.set(None);
            }
            output
        })
    }
}

impl<F> fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped")
            .field("scope", &self.scope)
            .field("future", &std::any::type_name::<F>())
            .finish()
    }
}
