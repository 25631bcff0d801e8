//! A guard held across an `.await`: what the clippy.toml beside this crate
//! is there to catch.

use stackholm::{Key, DEFAULT};

static USER: Key<&'static str> = Key::new("user");

/// Holds a checkpoint across an `.await`.
pub async fn held_across() {
    let _sudo = DEFAULT.enter();
    DEFAULT.set(&USER, "root").expect("inside the checkpoint");
    std::future::ready(()).await;
}

/// The same in an axum handler, where it is a compile error: the future is
/// not `Send`. `#[axum::debug_handler]` says why.
#[cfg(feature = "axum")]
#[axum::debug_handler]
pub async fn handler() -> String {
    let _sudo = DEFAULT.enter();
    DEFAULT.set(&USER, "root").expect("inside the checkpoint");
    std::future::ready(()).await;
    "hello".to_owned()
}
