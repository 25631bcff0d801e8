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
        scope: Scope,
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
            this.scope.cancel();
            if this.scope.try_run(|| future.set(None)).is_err() {
                future.set(None);
            }
        }
    }
}

impl<F> Scoped<F> {
    pub(crate) fn new(scope: Scope, future: F) -> Self {
        Self {
            scope,
            future: Some(future),
        }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut future = this.future;
        this.scope.run(|| {
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
