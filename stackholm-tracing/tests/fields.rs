//! The declared context fields on every event, in text and JSON.

mod support;

use futures_util::StreamExt;
use stackholm::{Checkpoint, CheckpointExt, Key, DEFAULT};
use stackholm_tracing::LogContext;
use support::Captured;

static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
static USER: Key<&'static str> = Key::new("user");
static SECRET: Key<&'static str> = Key::new("secret");

fn context() -> LogContext {
    LogContext::new()
        .display("request_id", &REQUEST_ID)
        .debug("user", &USER)
        .chain("checkpoints")
}

/// Runs `f` with a text subscriber; the lines it logged.
fn text(f: impl FnOnce()) -> Vec<String> {
    let out = Captured::default();
    tracing::subscriber::with_default(out.text_subscriber(&context()), f);
    out.lines()
}

/// Runs `f` with a JSON subscriber; each line parsed.
fn json(f: impl FnOnce()) -> Vec<serde_json::Value> {
    let out = Captured::default();
    tracing::subscriber::with_default(out.json_subscriber(&context()), f);
    out.lines()
        .iter()
        .map(|line| serde_json::from_str(line).expect("every line is a JSON object"))
        .collect()
}

fn a_request() {
    tracing::info!("outside");
    let _request = DEFAULT.enter_with(Checkpoint::named("request"));
    DEFAULT.set(&REQUEST_ID, "r-1".to_owned()).unwrap();
    DEFAULT.set(&SECRET, "hunter2").unwrap();
    tracing::info!(step = 1, "anonymous");
    DEFAULT.set(&USER, "alice").unwrap();
    tracing::info!(step = 2, "signed in");
    {
        let _sudo = DEFAULT.enter_with(Checkpoint::named("sudo"));
        DEFAULT.set(&USER, "root").unwrap();
        tracing::warn!("elevated");
    }
    tracing::info!("back");
}

#[test]
fn text_lines_carry_the_context_as_it_is_when_each_is_logged() {
    let lines = text(a_request);
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(
        lines[0].ends_with("outside"),
        "unchanged outside: {}",
        lines[0]
    );
    assert!(
        lines[1].ends_with("anonymous step=1 request_id=r-1 checkpoints=request"),
        "{}",
        lines[1]
    );
    // Set after the first line, on the later ones.
    assert!(
        lines[2].ends_with(r#"signed in step=2 request_id=r-1 user="alice" checkpoints=request"#),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].ends_with(r#"elevated request_id=r-1 user="root" checkpoints=request/sudo"#),
        "{}",
        lines[3]
    );
    assert!(lines[4].ends_with(r#"back request_id=r-1 user="alice" checkpoints=request"#));
    assert!(
        lines.iter().all(|line| !line.contains("hunter2")),
        "undeclared keys never show"
    );
}

#[test]
fn json_lines_carry_the_context_as_top_level_members() {
    let lines = json(a_request);
    assert_eq!(lines.len(), 5);
    assert!(lines[0].get("request_id").is_none(), "unchanged outside");
    assert_eq!(lines[1]["request_id"], "r-1");
    assert!(lines[1].get("user").is_none());
    assert_eq!(lines[1]["fields"]["message"], "anonymous");
    assert_eq!(lines[2]["user"], "\"alice\"");
    assert_eq!(lines[3]["user"], "\"root\"");
    assert_eq!(lines[3]["checkpoints"], "request/sudo");
    assert_eq!(lines[4]["user"], "\"alice\"");
    for line in &lines {
        assert!(!line.to_string().contains("hunter2"));
    }
}

#[test]
fn values_are_escaped_in_json() {
    static NOTE: Key<&'static str> = Key::new("note");
    let out = Captured::default();
    let subscriber = out.json_subscriber(&LogContext::new().display("note", &NOTE));
    tracing::subscriber::with_default(subscriber, || {
        let _request = DEFAULT.enter();
        DEFAULT.set(&NOTE, "a \"quoted\"\nline").unwrap();
        tracing::info!("escaped");
    });
    let line: serde_json::Value = serde_json::from_str(&out.lines()[0]).unwrap();
    assert_eq!(line["note"], "a \"quoted\"\nline");
}

/// Logs from its destructor.
struct Transaction;

impl Drop for Transaction {
    fn drop(&mut self) {
        tracing::info!("rolled back");
    }
}

static TX: Key<Transaction> = Key::new("transaction");

#[test]
fn destructors_and_exit_hooks_log_in_context() {
    let lines = text(|| {
        let _request = DEFAULT.enter();
        DEFAULT.set(&REQUEST_ID, "r-2".to_owned()).unwrap();
        let _work = DEFAULT.enter();
        DEFAULT.set(&USER, "bob").unwrap();
        DEFAULT.set(&TX, Transaction).unwrap();
        DEFAULT
            .on_exit(|outcome| tracing::info!(%outcome, "work ended"))
            .unwrap();
    });
    // The hook runs while the checkpoint's values are there; the
    // destructor once its checkpoint is off, inside the request.
    assert!(
        lines[0].ends_with(r#"work ended outcome=left request_id=r-2 user="bob""#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with("rolled back request_id=r-2"),
        "{}",
        lines[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_and_blocking_work_log_inherited_keys() {
    let out = Captured::default();
    let _default = tracing::subscriber::set_default(out.text_subscriber(&context()));
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    DEFAULT
        .scope(Checkpoint::new(), async {
            DEFAULT.set(&REQUEST_ID, "r-3".to_owned()).unwrap();
            DEFAULT.set(&USER, "carol").unwrap();
            let for_task = dispatch.clone();
            tokio::spawn(DEFAULT.inherit(async move {
                tracing::dispatcher::with_default(&for_task, || tracing::info!("spawned"));
            }))
            .await
            .unwrap();
            let for_job = dispatch.clone();
            tokio::task::spawn_blocking(DEFAULT.inherit_fn(move || {
                tracing::dispatcher::with_default(&for_job, || tracing::info!("blocking"));
            }))
            .await
            .unwrap();
            async {
                tokio::task::yield_now().await;
                tracing::info!("nested");
            }
            .in_checkpoint(Checkpoint::named("nested"))
            .await;
        })
        .await;
    let lines = out.lines();
    // The user's key is not inherited: spawned work logs the request id only.
    assert!(lines[0].ends_with("spawned request_id=r-3"), "{}", lines[0]);
    assert!(
        lines[1].ends_with("blocking request_id=r-3"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].ends_with(r#"nested request_id=r-3 user="carol" checkpoints=nested"#),
        "{}",
        lines[2]
    );
}

#[tokio::test]
async fn a_streaming_body_logs_in_its_requests_context() {
    use axum::body::Body;
    use axum::routing::get;
    use stackholm_tower::StackholmLayer;
    use tower::ServiceExt;

    async fn stream() -> Body {
        let chunks = futures_util::stream::iter(0..3).map(|n| {
            // Polled by the server after the handler returned.
            tracing::info!(chunk = n, "streaming");
            Ok::<_, std::convert::Infallible>(format!("{n};"))
        });
        Body::from_stream(chunks)
    }

    let out = Captured::default();
    let _default = tracing::subscriber::set_default(out.text_subscriber(&context()));
    let app = axum::Router::new()
        .route("/", get(stream))
        .layer(StackholmLayer::new().seed(|parts, root| {
            let id = parts.headers["x-request-id"].to_str().unwrap();
            root.set(&REQUEST_ID, id.to_owned());
        }));
    let request = http::Request::get("/")
        .header("x-request-id", "r-4")
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(body, "0;1;2;");
    let lines = out.lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for (n, line) in lines.iter().enumerate() {
        assert!(
            line.ends_with(&format!("streaming chunk={n} request_id=r-4")),
            "{line}"
        );
    }
}

#[test]
fn values_declared_as_tracing_values_keep_their_type() {
    static ATTEMPT: Key<u32> = Key::new("attempt");
    static DRY_RUN: Key<bool> = Key::new("dry_run");
    static TENANT: Key<&'static str> = Key::new("tenant");
    let context = LogContext::new()
        .value("attempt", &ATTEMPT)
        .value("dry_run", &DRY_RUN)
        .value("tenant", &TENANT);
    let emit = || {
        let _request = DEFAULT.enter();
        DEFAULT.set(&ATTEMPT, 3).unwrap();
        DEFAULT.set(&DRY_RUN, true).unwrap();
        DEFAULT.set(&TENANT, "acme").unwrap();
        tracing::info!("typed");
    };

    let out = Captured::default();
    tracing::subscriber::with_default(out.json_subscriber(&context), emit);
    let line: serde_json::Value = serde_json::from_str(&out.lines()[0]).unwrap();
    assert_eq!(line["attempt"], 3);
    assert_eq!(line["dry_run"], true);
    assert_eq!(line["tenant"], "acme");

    tracing::subscriber::with_default(out.text_subscriber(&context), emit);
    let line = &out.lines()[0];
    assert!(
        line.ends_with(r#"typed attempt=3 dry_run=true tenant="acme""#),
        "{line}"
    );
}
