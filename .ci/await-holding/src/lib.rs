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
