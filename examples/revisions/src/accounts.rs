//! Accounts: the entities whose changes are tracked.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::tracking::record;

/// The name deltas of accounts are filed under.
pub const ENTITY: &str = "account";

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account's id.
    pub id: i64,
    /// Who owns it.
    pub owner: String,
    /// Its balance, in cents.
    pub balance: i64,
    /// `open`, `frozen` or `closed`.
    pub status: String,
}

/// The fields of a new account.
#[derive(Debug, Clone, Deserialize)]
pub struct NewAccount {
    /// Who owns it.
    pub owner: String,
    /// Its opening balance, in cents.
    #[serde(default)]
    pub balance: i64,
    /// Its status; `open` if not given.
    #[serde(default = "open")]
    pub status: String,
}

fn open() -> String {
    "open".to_owned()
}

/// The fields to change; those not given stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AccountPatch {
    /// A new owner.
    pub owner: Option<String>,
    /// A new balance, in cents.
    pub balance: Option<i64>,
    /// A new status.
    pub status: Option<String>,
}

/// Creates the accounts table.
///
/// # Errors
///
/// The database's.
pub fn create_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS accounts (
             id INTEGER PRIMARY KEY,
             owner TEXT NOT NULL,
             balance INTEGER NOT NULL,
             status TEXT NOT NULL
         );",
    )
}

/// The account `id`, if it exists.
///
/// # Errors
///
/// The database's.
pub fn find(conn: &Connection, id: i64) -> rusqlite::Result<Option<Account>> {
    conn.query_row(
        "SELECT id, owner, balance, status FROM accounts WHERE id = ?1",
        params![id],
        |row| {
            Ok(Account {
                id: row.get(0)?,
                owner: row.get(1)?,
                balance: row.get(2)?,
                status: row.get(3)?,
            })
        },
    )
    .optional()
}

/// Inserts an account, recording each field as a delta from `null`.
///
/// # Errors
///
/// The database's.
pub fn create(conn: &Connection, new: &NewAccount) -> rusqlite::Result<Account> {
    conn.execute(
        "INSERT INTO accounts (owner, balance, status) VALUES (?1, ?2, ?3)",
        params![new.owner, new.balance, new.status],
    )?;
    let account = Account {
        id: conn.last_insert_rowid(),
        owner: new.owner.clone(),
        balance: new.balance,
        status: new.status.clone(),
    };
    for (field, value) in fields(&account) {
        record(ENTITY, account.id, field, Value::Null, value);
    }
    Ok(account)
}

/// Applies `patch` to `account`, recording a delta for each field whose
/// value actually changes. Returns the account as it is now.
///
/// # Errors
///
/// The database's.
pub fn update(
    conn: &Connection,
    account: &Account,
    patch: &AccountPatch,
) -> rusqlite::Result<Account> {
    let mut updated = account.clone();
    if let Some(owner) = &patch.owner {
        updated.owner.clone_from(owner);
    }
    if let Some(balance) = patch.balance {
        updated.balance = balance;
    }
    if let Some(status) = &patch.status {
        updated.status.clone_from(status);
    }
    conn.execute(
        "UPDATE accounts SET owner = ?2, balance = ?3, status = ?4 WHERE id = ?1",
        params![updated.id, updated.owner, updated.balance, updated.status],
    )?;
    for ((field, old), (_, new)) in fields(account).into_iter().zip(fields(&updated)) {
        record(ENTITY, account.id, field, old, new);
    }
    Ok(updated)
}

/// Deletes `account`, recording each field as a delta to `null`.
///
/// # Errors
///
/// The database's.
pub fn delete(conn: &Connection, account: &Account) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM accounts WHERE id = ?1", params![account.id])?;
    for (field, value) in fields(account) {
        record(ENTITY, account.id, field, value, Value::Null);
    }
    Ok(())
}

fn fields(account: &Account) -> [(&'static str, Value); 3] {
    [
        ("owner", json!(account.owner)),
        ("balance", json!(account.balance)),
        ("status", json!(account.status)),
    ]
}
