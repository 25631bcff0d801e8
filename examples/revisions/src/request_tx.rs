//! A database transaction per request, opened lazily by the first code that
//! needs it, at any depth, and committed or rolled back by how the request
//! ended: the pattern `axum-sqlx-tx` users reach for, built on a root exit
//! hook.
//!
//! - [`with_tx`] runs a closure on the request's transaction, opening it on
//!   first use: it takes the connection, `BEGIN`s, keeps the transaction in
//!   the request's root checkpoint (a key that is not inherited: no spawned
//!   task can reach it), and registers a root exit hook.
//! - The hook runs when the request's root ends, while the transaction is
//!   still in it, and commits only if the request succeeded (a 2xx or 3xx
//!   response sent to the end of its body, [`RequestEnd::succeeded`]); it
//!   rolls back on an error status, an error, a panic, or a client that
//!   went away. Then the connection goes back.
//!
//! Nothing is threaded through the handlers: a helper three calls deep
//! writes in the same transaction as the handler.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use rusqlite::Connection;
use serde::Deserialize;
use stackholm::{Key, Outcome, DEFAULT};
use stackholm_tower::{RequestEnd, StackholmLayer};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tower_http::catch_panic::CatchPanicLayer;

/// The connection the transactions run on: one at a time, each held by the
/// request whose transaction it carries. (A pool would hand out one per
/// request; the pattern is the same.)
#[derive(Clone, Debug)]
pub struct NotesDb {
    conn: Arc<Mutex<Connection>>,
}

/// The request's open transaction: the connection, held until the request
/// ends. Not inherited: it stays in the request's own task.
static TX: Key<OwnedMutexGuard<Connection>> = Key::new("request_tx");

/// How each request's transaction ended, as its hook saw it, for the tests
/// and the log: `(outcome, committed)`.
pub type Endings = Arc<std::sync::Mutex<Vec<(Outcome, bool)>>>;

impl NotesDb {
    /// Opens the notes database over `conn` and creates its table.
    ///
    /// # Errors
    ///
    /// The database's.
    pub fn new(conn: Connection) -> rusqlite::Result<Self> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The notes committed so far, read outside any request.
    pub async fn committed(&self) -> Vec<String> {
        let conn = self.conn.lock().await;
        let mut statement = conn
            .prepare("SELECT text FROM notes ORDER BY id")
            .expect("the notes table exists");
        let rows = statement
            .query_map([], |row| row.get(0))
            .expect("the query is valid");
        rows.map(|row| row.expect("text")).collect()
    }
}

/// Runs `f` on the request's transaction, opening it first if this is the
/// request's first use of it.
///
/// `f` runs while the storage lends the transaction to it: it may read the
/// storage, not enter checkpoints (see [`crate::api`]'s `Db::run` for a
/// handle taken out of the storage instead, which savepoints need).
///
/// # Errors
///
/// The database's; or an error if called outside a request of the layer.
pub async fn with_tx<R>(
    db: &NotesDb,
    endings: &Endings,
    f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
) -> rusqlite::Result<R> {
    if DEFAULT.with(&TX, |tx| tx.is_none()) {
        open(db, endings).await?;
    }
    DEFAULT.with(&TX, |tx| f(tx.expect("opened above")))
}

async fn open(db: &NotesDb, endings: &Endings) -> rusqlite::Result<()> {
    let conn = Arc::clone(&db.conn).lock_owned().await;
    conn.execute_batch("BEGIN")?;
    let endings = Arc::clone(endings);
    let registered = DEFAULT.on_root_exit(move |outcome| {
        let commit = outcome == Outcome::Left
            && RequestEnd::current(DEFAULT).is_some_and(|end| end.succeeded());
        DEFAULT.with(&TX, |tx| {
            let tx = tx.expect("the transaction is in the root until it ends");
            let end = if commit { "COMMIT" } else { "ROLLBACK" };
            if let Err(err) = tx.execute_batch(end) {
                eprintln!("request transaction: {end} failed: {err}");
            }
        });
        endings.lock().unwrap().push((outcome, commit));
    });
    let outside = || rusqlite::Error::InvalidParameterName("no request scope".into());
    registered.map_err(|_| outside())?;
    // In the root, whatever checkpoint the first use is nested in.
    DEFAULT.set_root(&TX, conn).map_err(|_| outside())
}

/// What `POST /notes` can be asked to do after writing, to show each ending.
#[derive(Debug, Default, Deserialize)]
struct Then {
    then: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NewNote {
    text: String,
}

/// The notes app: `POST /notes` writes a note in the request's transaction,
/// two levels down, then ends as asked (`?then=fail`, `panic`, `hang`).
pub fn router(db: NotesDb, endings: Endings) -> Router {
    Router::new()
        .route("/notes", post(add_note))
        .with_state((db, endings))
        .layer(StackholmLayer::new())
        // Outermost, so a panic unwinds through the layer first.
        .layer(CatchPanicLayer::new())
}

async fn add_note(
    State((db, endings)): State<(NotesDb, Endings)>,
    Query(then): Query<Then>,
    Json(note): Json<NewNote>,
) -> (StatusCode, String) {
    if let Err(err) = store(&db, &endings, &note.text).await {
        return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string());
    }
    match then.then.as_deref() {
        Some("fail") => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "written, then refused".into(),
        ),
        Some("panic") => panic!("the handler failed after writing"),
        Some("hang") => std::future::pending().await,
        _ => (StatusCode::CREATED, "stored".into()),
    }
}

/// Deep inside the request: knows nothing of transactions but `with_tx`.
async fn store(db: &NotesDb, endings: &Endings, text: &str) -> rusqlite::Result<usize> {
    with_tx(db, endings, |tx| {
        tx.execute("INSERT INTO notes (text) VALUES (?1)", [text])
    })
    .await
}
