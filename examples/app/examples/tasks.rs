//! Task-local scopes, an instrumented future and propagation into a spawned
//! task.
//!
//! Run with `cargo run --example tasks`. Three "requests" run concurrently on
//! a multi-threaded runtime, each in a task-local scope of its own; each
//! prints what it saw, and none sees another's values.

use std::time::Duration;

use stackholm::{Checkpoint, CheckpointExt, Error, Key, DEFAULT};

static REQUEST_ID: Key<u32> = Key::new("request_id").inherited();
static USER: Key<&'static str> = Key::new("user").inherited();
static STEP: Key<&'static str> = Key::new("step").inherited();

/// A synchronous helper: it neither knows nor cares whether it runs in a
/// task or on a plain thread.
fn describe() -> String {
    format!(
        "request {} as {} at step {}",
        DEFAULT
            .get(&REQUEST_ID)
            .map_or("-".into(), |id| id.to_string()),
        DEFAULT.get(&USER).unwrap_or("nobody"),
        DEFAULT.get(&STEP).unwrap_or("-"),
    )
}

async fn handle(user: &'static str) -> Result<Vec<String>, Error> {
    let mut log = Vec::new();
    DEFAULT.set(&USER, user)?;
    log.push(describe());

    // A nested checkpoint across awaits: the future runs inside it, and the
    // checkpoint is entered on each of its polls only, so nothing else this
    // task polls (a `join!` branch, say) ever sees it.
    let validated = async {
        DEFAULT.set(&STEP, "validate")?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok::<_, Error>(describe())
    }
    .in_checkpoint(Checkpoint::new())
    .await?;
    log.push(validated);

    // The checkpoint may come pre-loaded.
    let charged = async {
        tokio::task::yield_now().await;
        describe()
    }
    .in_checkpoint(Checkpoint::new().with_value(&STEP, "charge"))
    .await;
    log.push(charged);

    // A spawned task starts with a snapshot of what is visible here; what it
    // sets does not come back.
    let audit = tokio::spawn(DEFAULT.inherit(async {
        DEFAULT.set(&STEP, "audit").unwrap();
        format!("spawned audit task: {}", describe())
    }));
    log.push(audit.await.expect("the audit task does not panic"));
    log.push(format!("after the audit task: {}", describe()));
    Ok(log)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let users = ["alice", "bob", "carol"];
    let requests: Vec<_> = (1..)
        .zip(users)
        .map(|(id, user)| {
            let root = Checkpoint::new().with_value(&REQUEST_ID, id);
            tokio::spawn(DEFAULT.scope(root, handle(user)))
        })
        .collect();
    for request in requests {
        for line in request.await.expect("no request panics")? {
            println!("{line}");
        }
        println!();
    }
    println!("outside any scope: {}", describe());
    Ok(())
}
