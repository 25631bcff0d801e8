//! Change tracking on the fly, with nested transactions as nested
//! checkpoints.
//!
//! The request's root checkpoint holds the acting user and the open
//! revision (see [`open_revision`]), and, once [`begin`] opened the
//! request's database transaction, the request's buffer of changes. Each
//! [`transaction`] level inside it is a savepoint and a nested checkpoint
//! holding a buffer of the changes recorded inside it; every write records
//! its field-level deltas into the nearest buffer as it happens
//! ([`record`]). When a savepoint is released its buffer is merged into the
//! enclosing level's; when it is rolled back the buffer is simply dropped
//! with its checkpoint, taking exactly its own deltas with it. When the
//! request ends, [`finish`] writes the revision and its deltas and commits,
//! in that same database transaction, or rolls everything back. Nothing is
//! ever diffed after the fact.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};
use serde::Serialize;
use serde_json::Value;
use stackholm::{Checkpoint, Key, DEFAULT};

/// Who is acting: set from the `x-actor` header for each request.
pub static ACTOR: Key<String> = Key::new("actor").inherited();
/// The revision open for the request.
pub static REVISION: Key<Arc<OpenRevision>> = Key::new("revision").inherited();
/// The deltas recorded in the innermost open transaction level: the
/// request's own in its root, a savepoint's in its checkpoint. Not
/// inherited: a level lives in the one task that runs its transaction, so
/// its buffer is a plain `RefCell`, no `Arc<Mutex<..>>`.
static CHANGES: Key<RefCell<Vec<Delta>>> = Key::new("changes");
/// How many savepoints are open.
static LEVEL: Key<u32> = Key::new("savepoint_level");
/// Present (and true) while tracking is disabled.
static DISABLED: Key<bool> = Key::new("tracking_disabled").inherited();

/// What the changes made while handling one request are filed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRevision {
    /// What the request was doing, such as `PATCH /accounts/{id}`.
    pub description: String,
}

/// A checkpoint opening a revision for `actor`, for a request's root.
pub fn open_revision(actor: String, description: String) -> Checkpoint {
    Checkpoint::new()
        .with_value(&ACTOR, actor)
        .with_value(&REVISION, Arc::new(OpenRevision { description }))
}

/// One field of one entity, before and after a write.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delta {
    /// The kind of entity, such as `"account"`.
    pub entity: &'static str,
    /// Its id.
    pub entity_id: i64,
    /// The field that changed.
    pub field: &'static str,
    /// The value before (`null` for a creation).
    pub old: Value,
    /// The value after (`null` for a deletion).
    pub new: Value,
}

/// Records a write's delta into the nearest open transaction level, unless
/// tracking is disabled or nothing changed.
pub fn record(entity: &'static str, entity_id: i64, field: &'static str, old: Value, new: Value) {
    if old == new || DEFAULT.get(&DISABLED).unwrap_or(false) {
        return;
    }
    DEFAULT.with(&CHANGES, |changes| {
        let changes = changes.expect("writes happen inside `transaction`");
        changes.borrow_mut().push(Delta {
            entity,
            entity_id,
            field,
            old,
            new,
        });
    });
}

/// Runs `f` with tracking disabled: its writes record nothing (revy's
/// `as_disabled`). A nested checkpoint, so it ends with `f`.
pub fn untracked<R>(f: impl FnOnce() -> R) -> R {
    let _disabled = DEFAULT.enter_with(Checkpoint::new().with_value(&DISABLED, true));
    f()
}

/// Opens the request's database transaction, and its buffer of changes in
/// the request's root checkpoint, whatever checkpoint this is called from.
///
/// # Errors
///
/// The database's; or if there is no checkpoint to hold the buffer.
pub fn begin(conn: &Connection) -> rusqlite::Result<()> {
    DEFAULT
        .set_root(&CHANGES, RefCell::default())
        .map_err(|err| rusqlite::Error::InvalidParameterName(err.to_string()))?;
    conn.execute_batch("BEGIN IMMEDIATE")
}

/// Ends the request's database transaction: if `commit`, writes the
/// revision with every delta the request recorded, in the same transaction,
/// and commits; otherwise rolls back, changes and deltas alike.
///
/// # Errors
///
/// The database's; the transaction is rolled back then.
pub fn finish(conn: &Connection, commit: bool) -> rusqlite::Result<()> {
    let changes = DEFAULT.with(&CHANGES, |changes| {
        changes.map(RefCell::take).unwrap_or_default()
    });
    let committed = if commit {
        write_revision(conn, &changes).and_then(|()| conn.execute_batch("COMMIT"))
    } else {
        Ok(())
    };
    if !commit || committed.is_err() {
        conn.execute_batch("ROLLBACK")?;
    }
    committed
}

/// Runs `f` in a savepoint of the request's transaction (see [`begin`]).
///
/// On success the savepoint is released and its deltas join the enclosing
/// level's, up to the request's own buffer. On error (or panic) it is
/// rolled back and its deltas are dropped.
///
/// # Errors
///
/// What `f` returns, or the database's errors.
pub fn transaction<R, E: From<rusqlite::Error>>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<R, E>,
) -> Result<R, E> {
    let level = DEFAULT.get(&LEVEL).unwrap_or(0) + 1;
    let mut savepoint = Savepoint::begin(conn, level)?;
    let (output, changes) = {
        let _level = DEFAULT.enter_with(
            Checkpoint::new()
                .with_value(&LEVEL, level)
                .with_value(&CHANGES, RefCell::default()),
        );
        let output = f(conn)?;
        // This level's buffer is the nearest until the level is left.
        let changes = DEFAULT.with(&CHANGES, |changes| {
            changes.expect("the level's own buffer").take()
        });
        (output, changes)
    };
    // Merged only once the savepoint is released, so that a failed release
    // leaves the enclosing level as it was.
    savepoint.release()?;
    // Back in the enclosing level: its buffer is the nearest again.
    DEFAULT.with(&CHANGES, |outer| {
        outer
            .expect("`begin` opened the request's buffer")
            .borrow_mut()
            .extend(changes);
    });
    Ok(output)
}

/// The SQL side of one savepoint; rolled back unless released, so an error
/// or a panic in between leaves the database as it was.
struct Savepoint<'c> {
    conn: &'c Connection,
    level: u32,
    done: bool,
}

impl<'c> Savepoint<'c> {
    fn begin(conn: &'c Connection, level: u32) -> rusqlite::Result<Self> {
        conn.execute_batch(&format!("SAVEPOINT level_{level}"))?;
        Ok(Self {
            conn,
            level,
            done: false,
        })
    }

    fn release(&mut self) -> rusqlite::Result<()> {
        let released = self
            .conn
            .execute_batch(&format!("RELEASE level_{}", self.level));
        // A failed release still needs the rollback of `Drop`.
        self.done = released.is_ok();
        released
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let sql = format!("ROLLBACK TO level_{0}; RELEASE level_{0}", self.level);
        // A failure here leaves nothing better to do: the connection
        // reports it on its next use.
        let _ = self.conn.execute_batch(&sql);
    }
}

fn write_revision(conn: &Connection, changes: &[Delta]) -> rusqlite::Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let actor = DEFAULT.get(&ACTOR).unwrap_or_else(|| "system".to_owned());
    let description = DEFAULT.get(&REVISION).map_or_else(
        || "outside any request".to_owned(),
        |r| r.description.clone(),
    );
    let created_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64);
    conn.execute(
        "INSERT INTO revisions (actor, description, created_at_ms) VALUES (?1, ?2, ?3)",
        params![actor, description, created_at_ms],
    )?;
    let revision = conn.last_insert_rowid();
    let mut insert = conn.prepare_cached(
        "INSERT INTO deltas (revision_id, entity, entity_id, field, old_value, new_value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for delta in changes {
        insert.execute(params![
            revision,
            delta.entity,
            delta.entity_id,
            delta.field,
            delta.old.to_string(),
            delta.new.to_string(),
        ])?;
    }
    Ok(())
}

/// Creates the tables of revisions and deltas.
///
/// # Errors
///
/// The database's.
pub fn create_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS revisions (
             id INTEGER PRIMARY KEY,
             actor TEXT NOT NULL,
             description TEXT NOT NULL,
             created_at_ms INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS deltas (
             id INTEGER PRIMARY KEY,
             revision_id INTEGER NOT NULL REFERENCES revisions (id),
             entity TEXT NOT NULL,
             entity_id INTEGER NOT NULL,
             field TEXT NOT NULL,
             old_value TEXT NOT NULL,
             new_value TEXT NOT NULL
         );
         CREATE INDEX IF NOT EXISTS deltas_by_entity ON deltas (entity, entity_id);",
    )
}

/// A revision as stored, with its deltas.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredRevision {
    /// The revision's id.
    pub id: i64,
    /// Who made it.
    pub actor: String,
    /// What the request was doing.
    pub description: String,
    /// When it was committed, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Every delta of the revision, in the order recorded.
    pub deltas: Vec<StoredDelta>,
}

/// A delta as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredDelta {
    /// The kind of entity.
    pub entity: String,
    /// Its id.
    pub entity_id: i64,
    /// The field that changed.
    pub field: String,
    /// The value before.
    pub old: Value,
    /// The value after.
    pub new: Value,
}

/// The revisions that touched an entity, oldest first, each with all of
/// its deltas (a transfer's revision shows both accounts).
///
/// # Errors
///
/// The database's.
pub fn revisions_of(
    conn: &Connection,
    entity: &str,
    entity_id: i64,
) -> rusqlite::Result<Vec<StoredRevision>> {
    let mut revisions = conn.prepare_cached(
        "SELECT id, actor, description, created_at_ms FROM revisions
         WHERE id IN (SELECT revision_id FROM deltas WHERE entity = ?1 AND entity_id = ?2)
         ORDER BY id",
    )?;
    let mut deltas = conn.prepare_cached(
        "SELECT entity, entity_id, field, old_value, new_value FROM deltas
         WHERE revision_id = ?1 ORDER BY id",
    )?;
    let rows = revisions.query_map(params![entity, entity_id], |row| {
        Ok(StoredRevision {
            id: row.get(0)?,
            actor: row.get(1)?,
            description: row.get(2)?,
            created_at_ms: row.get(3)?,
            deltas: Vec::new(),
        })
    })?;
    let mut out = Vec::new();
    for revision in rows {
        let mut revision = revision?;
        revision.deltas = deltas
            .query_map(params![revision.id], |row| {
                let json = |i| -> rusqlite::Result<Value> {
                    let text: String = row.get(i)?;
                    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
                };
                Ok(StoredDelta {
                    entity: row.get(0)?,
                    entity_id: row.get(1)?,
                    field: row.get(2)?,
                    old: json(3)?,
                    new: json(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        out.push(revision);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        create_schema(&conn).unwrap();
        conn
    }

    fn fields(conn: &Connection) -> Vec<(String, String)> {
        let mut stmt = conn
            .prepare("SELECT field, new_value FROM deltas ORDER BY id")
            .unwrap();
        stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn savepoints_keep_or_discard_exactly_their_own_deltas() {
        let conn = db();
        DEFAULT.sync_scope(open_revision("alice".into(), "test".into()), || {
            begin(&conn).unwrap();
            transaction(&conn, |tx| {
                record("account", 1, "outer", json!(0), json!(1));
                transaction(tx, |_| {
                    record("account", 1, "kept", json!(0), json!(1));
                    Ok::<_, rusqlite::Error>(())
                })?;
                let rolled_back: Result<(), rusqlite::Error> = transaction(tx, |sp| {
                    record("account", 1, "discarded", json!(0), json!(1));
                    transaction(sp, |_| {
                        record("account", 1, "discarded_too", json!(0), json!(1));
                        Ok::<_, rusqlite::Error>(())
                    })?;
                    Err(rusqlite::Error::InvalidQuery)
                });
                assert!(rolled_back.is_err());
                untracked(|| record("account", 1, "untracked", json!(0), json!(1)));
                record("account", 1, "unchanged", json!(5), json!(5));
                Ok::<_, rusqlite::Error>(())
            })
            .unwrap();
            finish(&conn, true).unwrap();
        });
        let recorded: Vec<String> = fields(&conn).into_iter().map(|(field, _)| field).collect();
        assert_eq!(recorded, ["outer", "kept"]);
        let actor: String = conn
            .query_row("SELECT actor FROM revisions", [], |row| row.get(0))
            .unwrap();
        assert_eq!(actor, "alice");
    }

    #[test]
    fn a_request_that_does_not_commit_records_nothing() {
        let conn = db();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        DEFAULT.sync_scope(open_revision("carol".into(), "test".into()), || {
            begin(&conn).unwrap();
            transaction(&conn, |tx| {
                tx.execute("INSERT INTO t (x) VALUES (1)", [])?;
                record("account", 3, "balance", json!(1), json!(2));
                Ok::<_, rusqlite::Error>(())
            })
            .unwrap();
            finish(&conn, false).unwrap();
        });
        assert!(fields(&conn).is_empty());
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 0, "the change went with the revision");
    }

    #[test]
    fn a_failed_outer_transaction_records_nothing() {
        let conn = db();
        DEFAULT.sync_scope(open_revision("bob".into(), "test".into()), || {
            begin(&conn).unwrap();
            let failed: Result<(), rusqlite::Error> = transaction(&conn, |_| {
                record("account", 2, "balance", json!(1), json!(2));
                Err(rusqlite::Error::InvalidQuery)
            });
            assert!(failed.is_err());
            assert_eq!(DEFAULT.depth(), 1, "the level's checkpoint was left");
            finish(&conn, true).unwrap();
        });
        assert!(fields(&conn).is_empty());
        let revisions: i64 = conn
            .query_row("SELECT count(*) FROM revisions", [], |row| row.get(0))
            .unwrap();
        assert_eq!(revisions, 0);
    }
}
