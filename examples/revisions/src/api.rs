//! The HTTP API: accounts, transfers, and their revision history.

use std::fmt;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use stackholm::{CheckpointExt, DEFAULT};
use stackholm_tower::StackholmLayer;

use crate::accounts::{self, Account, AccountPatch, NewAccount};
use crate::tracking::{self, open_revision, transaction, untracked, StoredRevision};

/// The database: one SQLite connection, used from tokio's blocking pool.
#[derive(Clone, Debug)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
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

    /// Runs `f` on the connection in tokio's blocking pool, carrying the
    /// request's checkpoint values (actor, open revision) along.
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let conn = Arc::clone(&self.conn);
        DEFAULT
            .spawn_blocking(move || {
                // A panic mid-transaction rolled it back on its way out, so
                // the connection is consistent even if the lock is poisoned.
                let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                f(&conn)
            })
            .await
            .map_err(|err| ApiError::Internal(format!("the database task failed: {err}")))?
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
    if DEFAULT.task().depth() == 0 {
        return ApiError::Internal(
            "no request root: StackholmLayer must wrap this middleware".into(),
        )
        .into_response();
    }
    // The rest of the request runs inside the revision's checkpoint, entered
    // on each of its polls: right however the handlers below interleave
    // their awaits.
    next.run(request)
        .in_checkpoint(open_revision(actor, description))
        .await
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
