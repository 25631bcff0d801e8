//! The HTTP API: accounts, transfers, and their revision history.

use std::fmt;
use std::path::Path as FsPath;
use std::sync::Arc;

use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use stackholm::{Key, Outcome, DEFAULT};
use stackholm_tower::{RequestEnd, StackholmLayer};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tower_http::catch_panic::CatchPanicLayer;

use crate::accounts::{self, Account, AccountPatch, NewAccount};
use crate::tracking::{self, transaction, untracked, OpenRevision, StoredRevision};

/// The database: one SQLite connection, held by one request at a time for
/// the length of its transaction.
#[derive(Clone, Debug)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

/// The request's database transaction: the connection, held from the
/// request's first use of the database to the request's end. Not inherited:
/// nothing the request spawns can reach it. A handle that code takes out of
/// the storage, so that the storage is free (to enter savepoints'
/// checkpoints) while the connection is used.
type RequestConn = Arc<std::sync::Mutex<OwnedMutexGuard<Connection>>>;
static REQUEST_DB: Key<RequestConn> = Key::new("request_db");

/// Locks the request's connection; a panic that poisoned it rolled back
/// the savepoint it was in, so the connection is consistent.
fn lock(conn: &RequestConn) -> std::sync::MutexGuard<'_, OwnedMutexGuard<Connection>> {
    conn.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Db {
    /// Opens the database file at `path`, or an in-memory database, and
    /// creates the tables.
    ///
    /// # Errors
    ///
    /// The database's.
    pub fn open(path: Option<&FsPath>) -> rusqlite::Result<Self> {
        let conn = match path {
            Some(path) => Connection::open(path)?,
            None => Connection::open_in_memory()?,
        };
        accounts::create_schema(&conn)?;
        tracking::create_schema(&conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection, inside the request's transaction, which
    /// the first call opens.
    ///
    /// SQLite is called right here, on the request's task: the transaction
    /// belongs to the request, and a value that is not inherited does not
    /// cross into a blocking task. Fine for one local SQLite connection; a
    /// service on a remote database would use an async driver the same way.
    async fn run<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let conn = match DEFAULT.get(&REQUEST_DB) {
            Some(conn) => conn,
            None => self.begin_request().await?,
        };
        let conn = lock(&conn);
        f(&conn)
    }

    /// Opens the request's transaction, keeps it in the request's root, and
    /// registers the root exit hook that ends it: the revision is written
    /// and everything committed only if the request succeeded.
    async fn begin_request(&self) -> Result<RequestConn, ApiError> {
        let conn = Arc::clone(&self.conn).lock_owned().await;
        tracking::begin(&conn)?;
        let conn = Arc::new(std::sync::Mutex::new(conn));
        let no_root = |err: stackholm::Error| {
            ApiError::Internal(format!("{err}: StackholmLayer must wrap the app"))
        };
        DEFAULT
            .set_root(&REQUEST_DB, Arc::clone(&conn))
            .map_err(|err| no_root(err.error()))?;
        DEFAULT
            .on_root_exit(|outcome| {
                let succeeded = outcome == Outcome::Left
                    && RequestEnd::current(DEFAULT).is_some_and(|end| end.succeeded());
                let conn = DEFAULT
                    .get(&REQUEST_DB)
                    .expect("the transaction is in the root until it ends");
                let ended = tracking::finish(&lock(&conn), succeeded);
                if let Err(err) = ended {
                    eprintln!("revisions: ending a request's transaction failed: {err}");
                }
            })
            .map_err(no_root)?;
        Ok(conn)
    }
}

/// The app: every request gets its own root checkpoint, and a middleware
/// opens its revision.
pub fn router(db: Db) -> Router {
    Router::new()
        .route("/accounts", post(create_account))
        .route(
            "/accounts/{id}",
            get(get_account)
                .patch(update_account)
                .delete(delete_account),
        )
        .route("/accounts/{id}/revisions", get(account_revisions))
        .route("/transfers", post(transfer))
        .layer(middleware::from_fn(open_request_revision))
        .layer(StackholmLayer::new())
        // Outermost, so that a panic unwinds through the layer, whose root
        // exit hook then rolls the request back.
        .layer(CatchPanicLayer::new())
        .with_state(db)
}

/// Sets the actor from the `x-actor` header and opens the request's
/// revision, described by its method and route, for the rest of the request.
async fn open_request_revision(request: Request, next: Next) -> Response {
    let actor = request
        .headers()
        .get("x-actor")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("anonymous")
        .to_owned();
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |path| path.as_str().to_owned(),
    );
    let description = format!("{} {route}", request.method());
    // In the request's root, where its exit hook finds them when it writes
    // the revision.
    let revision = Arc::new(OpenRevision { description });
    let opened = DEFAULT
        .task()
        .set(&tracking::ACTOR, actor)
        .map_err(|err| err.error())
        .and_then(|()| {
            DEFAULT
                .task()
                .set(&tracking::REVISION, revision)
                .map_err(|err| err.error())
        });
    if let Err(err) = opened {
        return ApiError::Internal(format!("{err}: StackholmLayer must wrap this middleware"))
            .into_response();
    }
    next.run(request).await
}

async fn create_account(
    State(db): State<Db>,
    Json(new): Json<NewAccount>,
) -> Result<(StatusCode, Json<Account>), ApiError> {
    let account = db
        .run(move |conn| transaction(conn, |tx| Ok(accounts::create(tx, &new)?)))
        .await?;
    Ok((StatusCode::CREATED, Json(account)))
}

async fn get_account(State(db): State<Db>, Path(id): Path<i64>) -> Result<Json<Account>, ApiError> {
    let account = db
        .run(move |conn| accounts::find(conn, id)?.ok_or(ApiError::NotFound(id)))
        .await?;
    Ok(Json(account))
}

/// `?track=false` makes the update without recording it.
#[derive(Debug, Deserialize)]
struct Tracking {
    #[serde(default = "yes")]
    track: bool,
}

fn yes() -> bool {
    true
}

async fn update_account(
    State(db): State<Db>,
    Path(id): Path<i64>,
    Query(tracking): Query<Tracking>,
    Json(patch): Json<AccountPatch>,
) -> Result<Json<Account>, ApiError> {
    let account = db
        .run(move |conn| {
            transaction(conn, |tx| {
                let account = accounts::find(tx, id)?.ok_or(ApiError::NotFound(id))?;
                let update = || accounts::update(tx, &account, &patch);
                Ok(if tracking.track {
                    update()?
                } else {
                    untracked(update)?
                })
            })
        })
        .await?;
    Ok(Json(account))
}

async fn delete_account(State(db): State<Db>, Path(id): Path<i64>) -> Result<StatusCode, ApiError> {
    db.run(move |conn| {
        transaction(conn, |tx| {
            let account = accounts::find(tx, id)?.ok_or(ApiError::NotFound(id))?;
            Ok(accounts::delete(tx, &account)?)
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn account_revisions(
    State(db): State<Db>,
    Path(id): Path<i64>,
) -> Result<Json<Vec<StoredRevision>>, ApiError> {
    let revisions = db
        .run(move |conn| Ok(tracking::revisions_of(conn, accounts::ENTITY, id)?))
        .await?;
    Ok(Json(revisions))
}

/// Moves `amount` from one account to another; an optional fee is charged
/// to the sender in a savepoint of its own.
#[derive(Debug, Deserialize)]
struct Transfer {
    from: i64,
    to: i64,
    amount: i64,
    fee: Option<Fee>,
}

#[derive(Debug, Deserialize)]
struct Fee {
    amount: i64,
    /// Makes the fee fail after it was charged, to show its savepoint
    /// rolling back alone.
    #[serde(default)]
    fail: bool,
}

#[derive(Debug, Serialize)]
struct Receipt {
    from: Account,
    to: Account,
    fee_charged: bool,
}

async fn transfer(
    State(db): State<Db>,
    Json(transfer): Json<Transfer>,
) -> Result<Json<Receipt>, ApiError> {
    if transfer.amount <= 0 || transfer.from == transfer.to {
        return Err(ApiError::Invalid(
            "a transfer moves a positive amount between two accounts".into(),
        ));
    }
    let receipt = db
        .run(move |conn| {
            transaction(conn, |tx| {
                let find = |id| accounts::find(tx, id)?.ok_or(ApiError::NotFound(id));
                let (from, to) = (find(transfer.from)?, find(transfer.to)?);
                let debit = AccountPatch {
                    balance: Some(from.balance - transfer.amount),
                    ..AccountPatch::default()
                };
                let from = accounts::update(tx, &from, &debit)?;
                if from.balance < 0 {
                    // Everything this transaction did, and recorded, goes.
                    return Err(ApiError::InsufficientFunds(from.id));
                }
                let credit = AccountPatch {
                    balance: Some(to.balance + transfer.amount),
                    ..AccountPatch::default()
                };
                let to = accounts::update(tx, &to, &credit)?;
                let mut receipt = Receipt {
                    from,
                    to,
                    fee_charged: false,
                };
                if let Some(fee) = &transfer.fee {
                    let charged = transaction(tx, |savepoint| {
                        let charge = AccountPatch {
                            balance: Some(receipt.from.balance - fee.amount),
                            ..AccountPatch::default()
                        };
                        let charged = accounts::update(savepoint, &receipt.from, &charge)?;
                        if fee.fail {
                            return Err(ApiError::Invalid("the fee was rejected".into()));
                        }
                        Ok(charged)
                    });
                    // A rejected fee rolls back its savepoint only.
                    if let Ok(charged) = charged {
                        receipt.from = charged;
                        receipt.fee_charged = true;
                    }
                }
                Ok(receipt)
            })
        })
        .await?;
    Ok(Json(receipt))
}

/// What a request can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// No account has this id.
    NotFound(i64),
    /// The account would go below zero.
    InsufficientFunds(i64),
    /// The request makes no sense.
    Invalid(String),
    /// The database failed.
    Database(rusqlite::Error),
    /// Something else failed.
    Internal(String),
}

impl From<rusqlite::Error> for ApiError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Database(err)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(id) => write!(f, "no account {id}"),
            Self::InsufficientFunds(id) => write!(f, "account {id} has insufficient funds"),
            Self::Invalid(why) => f.write_str(why),
            Self::Database(err) => write!(f, "database error: {err}"),
            Self::Internal(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::InsufficientFunds(_) => StatusCode::CONFLICT,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}
