//! The embedded durable store: one SQLite file (WAL) under the data directory.
//!
//! Every table the local runtime needs lives here: the event archive and its pending
//! deliveries, dead letters, executions with their serialised state, task outcomes and
//! task tokens, domain records, idempotency records, the notification outbox and a small
//! key/value table (API key, signing key, virtual clock). The schema is versioned: each
//! migration runs once, in a transaction, and `schema_version` records the last one.
//!
//! Durability: `journal_mode=WAL` with `synchronous=NORMAL`. A committed transaction
//! survives the process being killed (kill -9) at any moment; only a power loss can drop
//! the last transactions before a checkpoint.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory could not be created.
    #[error("store: cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was written by a newer version of the program.
    #[error("store: the database schema version {found} is newer than this program's {supported}")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Latest version known here.
        supported: i64,
    },
    /// The COMMIT of a group of writes failed: none of them was stored.
    #[error("store: commit failed: {0}")]
    Commit(String),
    /// A stored value could not be decoded.
    #[error("store: corrupt value in {table}: {message}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// What was wrong.
        message: String,
    },
}

/// The migrations, in order. Index + 1 is the schema version each one produces.
pub const MIGRATIONS: &[&str] = &[
    // 1: the event bus.
    "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        detail_type TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        ingested_ms INTEGER NOT NULL,
        body TEXT NOT NULL,
        replay_name TEXT
     );
     CREATE INDEX events_time ON events(time_ms);
     CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_seq INTEGER NOT NULL REFERENCES events(seq),
        rule TEXT NOT NULL,
        target TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_ms INTEGER NOT NULL,
        last_error TEXT,
        status TEXT NOT NULL DEFAULT 'pending',
        replay_name TEXT
     );
     CREATE INDEX deliveries_due ON deliveries(status, next_ms);
     CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id INTEGER NOT NULL,
        queue TEXT NOT NULL,
        rule TEXT NOT NULL,
        target TEXT NOT NULL,
        event_id TEXT NOT NULL,
        event_seq INTEGER NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        failed_ms INTEGER NOT NULL,
        redriven_ms INTEGER
     );",
    // 2: the workflow host.
    "CREATE TABLE executions (
        arn TEXT PRIMARY KEY,
        state_machine TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        input TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        stop_ms INTEGER,
        correlation_id TEXT,
        state TEXT NOT NULL,
        checkpoint INTEGER NOT NULL DEFAULT 0,
        wake_ms INTEGER,
        UNIQUE(state_machine, name)
     );
     CREATE INDEX executions_status ON executions(status, wake_ms);
     CREATE TABLE execution_tasks (
        arn TEXT NOT NULL,
        checkpoint INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        state_name TEXT NOT NULL,
        outcome TEXT NOT NULL,
        PRIMARY KEY (arn, checkpoint, seq)
     );
     CREATE TABLE task_tokens (
        token TEXT PRIMARY KEY,
        arn TEXT NOT NULL,
        state_name TEXT NOT NULL,
        created_ms INTEGER NOT NULL
     );",
    // 3: handler state (ports adapters) and the notification outbox.
    "CREATE TABLE records (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        body TEXT NOT NULL,
        k1 TEXT,
        k2 TEXT,
        PRIMARY KEY (kind, id)
     );
     CREATE INDEX records_k1 ON records(kind, k1);
     CREATE INDEX records_k2 ON records(kind, k2);
     CREATE TABLE slots (
        provider_id TEXT NOT NULL,
        slot_ms INTEGER NOT NULL,
        booking_id TEXT NOT NULL,
        PRIMARY KEY (provider_id, slot_ms)
     );
     CREATE TABLE ledger (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        provider_id TEXT NOT NULL,
        currency TEXT NOT NULL,
        pending INTEGER NOT NULL,
        available INTEGER NOT NULL,
        paid_out INTEGER NOT NULL,
        body TEXT NOT NULL
     );
     CREATE INDEX ledger_provider ON ledger(provider_id);
     CREATE TABLE user_groups (
        group_name TEXT NOT NULL,
        user_id TEXT NOT NULL,
        PRIMARY KEY (group_name, user_id)
     );
     CREATE TABLE idempotency (
        key TEXT PRIMARY KEY,
        body TEXT NOT NULL
     );
     CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        recipients TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        template TEXT NOT NULL,
        correlation_id TEXT,
        created_ms INTEGER NOT NULL
     );",
    // 4: the workflow host keeps an execution's journal and history as rows appended run
    // after run (`layout` 2) instead of rewriting one serialised state (`layout` 1, rows
    // written before this version, still read).
    MIGRATION_EXECUTION_ROWS,
];

/// Migration 4 (workflow host): journal and history rows, the state layout, and an index
/// for the task tokens of an execution.
pub const MIGRATION_EXECUTION_ROWS: &str = "
    ALTER TABLE executions ADD COLUMN layout INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE execution_journal (
        arn TEXT NOT NULL,
        idx INTEGER NOT NULL,
        entry TEXT NOT NULL,
        PRIMARY KEY (arn, idx)
    ) WITHOUT ROWID;
    CREATE TABLE execution_history (
        arn TEXT NOT NULL,
        idx INTEGER NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (arn, idx)
    ) WITHOUT ROWID;
    CREATE INDEX task_tokens_arn ON task_tokens(arn);";

/// The schema version this program writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// The SQLite database of one data directory.
pub struct Store {
    conn: Mutex<Shared>,
    /// Writers that called [`Store::tx`] and have not yet run their closure.
    queued: AtomicUsize,
    /// Progress of the group commits.
    commits: Mutex<Commits>,
    committed_cv: Condvar,
    path: PathBuf,
}

/// The connection and the group transaction it may have open.
struct Shared {
    conn: Connection,
    /// A transaction is open holding writes of [`Store::tx`] calls not yet committed.
    open: bool,
    /// Number of the last [`Store::tx`] whose writes are in the database (committed or
    /// in the open transaction).
    written: u64,
}

#[derive(Default)]
struct Commits {
    /// Every write numbered up to this one is committed.
    committed: u64,
    /// Every write numbered up to this one (and after `committed` at that time) was
    /// rolled back because its group's COMMIT failed, with the error.
    failed: u64,
    error: Option<String>,
}

/// The locked connection ([`Store::lock`]): no group transaction is open while it is held.
pub struct Conn<'a>(MutexGuard<'a, Shared>);

impl std::ops::Deref for Conn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0.conn
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0.conn
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// The file name of the database inside the data directory.
pub const DB_FILE: &str = "marketplace.db";

impl Store {
    /// Opens (creating when needed) `DIR/marketplace.db` and migrates it to the latest version.
    pub fn open_dir(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        Self::open_file(&dir.join(DB_FILE), latest_version())
    }

    /// Opens a database file and migrates it up to `target` (tests use older targets).
    pub fn open_file(path: &Path, target: i64) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "cache_size", -32_768)?;
        conn.pragma_update(None, "wal_autocheckpoint", 16_384)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let store = Store {
            conn: Mutex::new(Shared {
                conn,
                open: false,
                written: 0,
            }),
            queued: AtomicUsize::new(0),
            commits: Mutex::new(Commits::default()),
            committed_cv: Condvar::new(),
            path: path.to_path_buf(),
        };
        store.migrate(target)?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current schema version.
    pub fn version(&self) -> Result<i64, StoreError> {
        let c = self.lock();
        Ok(schema_version(&c)?)
    }

    fn migrate(&self, target: i64) -> Result<(), StoreError> {
        let mut c = self.lock();
        c.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
        let found = schema_version(&c)?;
        if found > latest_version() {
            return Err(StoreError::TooNew {
                found,
                supported: latest_version(),
            });
        }
        for v in found..target.min(latest_version()) {
            let tx = c.transaction()?;
            tx.execute_batch(MIGRATIONS[v as usize])?;
            tx.execute("DELETE FROM schema_version", [])?;
            tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [v + 1])?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Locks the connection for reads and single statements (each its own transaction).
    /// Writes of [`Store::tx`] calls still waiting for their group's commit are committed
    /// first, so what is read here is durable. A poisoned lock is recovered: SQLite keeps
    /// its own consistency.
    pub fn lock(&self) -> Conn<'_> {
        let mut g = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if g.open {
            self.commit(&mut g);
        }
        Conn(g)
    }

    /// Commits the open group transaction and wakes the writers waiting for it.
    fn commit(&self, g: &mut Shared) {
        let r = g.conn.execute_batch("COMMIT");
        if r.is_err() {
            let _ = g.conn.execute_batch("ROLLBACK");
        }
        g.open = false;
        let mut c = self.commits.lock().unwrap_or_else(|p| p.into_inner());
        match r {
            Ok(()) => c.committed = g.written,
            Err(e) => {
                c.failed = g.written;
                c.error = Some(e.to_string());
            }
        }
        drop(c);
        self.committed_cv.notify_all();
    }

    /// Runs `f` as one atomic unit of writes, returning once they are committed.
    ///
    /// Group commit: concurrent callers share one SQLite transaction. Each `f` runs in its
    /// own savepoint of the open transaction (an error rolls back only its own writes);
    /// the last caller of a burst (no other writer queued behind it) commits for all of
    /// them, and every caller returns only after the COMMIT that holds its writes — so
    /// nothing is acknowledged before it is durable, and a kill -9 loses no acknowledged
    /// write.
    pub fn tx<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        self.write(f, E::from)
    }

    /// [`Store::tx`] with a mapping of the store's own errors into the caller's.
    pub fn write<T, E>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
        map: impl Fn(StoreError) -> E,
    ) -> Result<T, E> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut g = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if !g.open {
            g.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| map(e.into()))?;
            g.open = true;
        }
        if let Err(e) = g.conn.execute_batch("SAVEPOINT w") {
            if self.queued.load(Ordering::SeqCst) == 0 {
                self.commit(&mut g);
            }
            return Err(map(e.into()));
        }
        let out = f(&g.conn);
        let end = match &out {
            Ok(_) => g.conn.execute_batch("RELEASE w"),
            Err(_) => g.conn.execute_batch("ROLLBACK TO w; RELEASE w"),
        };
        if let Err(e) = end {
            // The savepoint cannot be closed: abandon the whole group transaction.
            let _ = g.conn.execute_batch("ROLLBACK");
            g.open = false;
            let mut c = self.commits.lock().unwrap_or_else(|p| p.into_inner());
            c.failed = g.written;
            c.error = Some(e.to_string());
            drop(c);
            self.committed_cv.notify_all();
            return Err(map(e.into()));
        }
        if out.is_ok() {
            g.written += 1;
        }
        let mine = g.written;
        // The last writer of a burst commits for the whole group (also when its own
        // closure failed: the others' writes are in the open transaction).
        if self.queued.load(Ordering::SeqCst) == 0 {
            self.commit(&mut g);
        }
        drop(g);
        let out = out?;
        // Wait for the commit that holds this write (made by a writer queued behind it,
        // or by the next reader).
        let mut c = self.commits.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if c.committed >= mine {
                return Ok(out);
            }
            if c.failed >= mine {
                let msg = c.error.clone().unwrap_or_default();
                return Err(map(StoreError::Commit(msg)));
            }
            let (next, timeout) = self
                .committed_cv
                .wait_timeout(c, std::time::Duration::from_millis(20))
                .unwrap_or_else(|p| p.into_inner());
            c = next;
            if timeout.timed_out() {
                // Nobody committed the group (its last writer left early): commit it here.
                drop(c);
                let mut g = self.conn.lock().unwrap_or_else(|p| p.into_inner());
                if g.open {
                    self.commit(&mut g);
                }
                drop(g);
                c = self.commits.lock().unwrap_or_else(|p| p.into_inner());
            }
        }
    }

    /// Reads a key of the kv table.
    pub fn kv_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let c = self.lock();
        let mut st = c.prepare_cached("SELECT value FROM kv WHERE key = ?1")?;
        Ok(st.query_row([key], |r| r.get(0)).optional()?)
    }

    /// Writes a key of the kv table.
    pub fn kv_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.tx(|c| -> Result<usize, StoreError> {
            Ok(c.prepare_cached(
                "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])?)
        })?;
        Ok(())
    }

    /// Reads `key`, or stores and returns `make()` when absent (first start of a data dir).
    pub fn kv_get_or_init(
        &self,
        key: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        let c = self.lock();
        if let Some(v) = c
            .query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
            .optional()?
        {
            return Ok(v);
        }
        let v = make();
        c.execute(
            "INSERT INTO kv (key, value) VALUES (?1, ?2)",
            params![key, v],
        )?;
        Ok(v)
    }
}

fn schema_version(c: &Connection) -> rusqlite::Result<i64> {
    Ok(
        c.query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()?
            .unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let mut d = std::env::temp_dir();
        d.push(format!("mkt-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn fresh_database_is_at_latest_version_in_wal_mode() {
        let d = tempdir("fresh");
        let s = Store::open_dir(&d).expect("open");
        assert_eq!(s.version().expect("version"), latest_version());
        let mode: String = s
            .lock()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(mode, "wal");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_older_file_is_migrated_keeping_its_data() {
        let d = tempdir("older");
        std::fs::create_dir_all(&d).expect("dir");
        let file = d.join(DB_FILE);
        {
            let v1 = Store::open_file(&file, 1).expect("open v1");
            assert_eq!(v1.version().expect("v"), 1);
            v1.lock()
                .execute(
                    "INSERT INTO events (id, source, detail_type, time_ms, ingested_ms, body) VALUES ('e1','s','d',1,1,'{}')",
                    [],
                )
                .expect("insert");
            // The tables of later versions do not exist yet.
            assert!(v1.lock().execute("DELETE FROM executions", []).is_err());
        }
        let s = Store::open_dir(&d).expect("migrate");
        assert_eq!(s.version().expect("v"), latest_version());
        let n: i64 = s
            .lock()
            .query_row("SELECT COUNT(*) FROM events WHERE id = 'e1'", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(n, 1);
        s.lock()
            .execute("DELETE FROM executions", [])
            .expect("v2 table");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_newer_file_is_refused() {
        let d = tempdir("newer");
        {
            let s = Store::open_dir(&d).expect("open");
            s.lock()
                .execute("UPDATE schema_version SET version = 99", [])
                .expect("bump");
        }
        let err = Store::open_dir(&d).expect_err("too new");
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn concurrent_writers_share_commits_and_a_failing_one_loses_only_its_own_writes() {
        let d = tempdir("group");
        let s = std::sync::Arc::new(Store::open_dir(&d).expect("open"));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    // Another connection sees only committed data.
                    let other = Connection::open(s.path()).expect("second connection");
                    for i in 0..200 {
                        let r = s.tx(|c| -> Result<(), StoreError> {
                            c.execute(
                                "INSERT INTO kv (key, value) VALUES (?1, 'v')",
                                [format!("k-{t}-{i}")],
                            )?;
                            if i % 10 == 0 {
                                // A writer that fails after writing: its row must vanish.
                                return Err(StoreError::Corrupt {
                                    table: "kv",
                                    message: "refused".into(),
                                });
                            }
                            Ok(())
                        });
                        assert_eq!(r.is_ok(), i % 10 != 0);
                        // Acknowledged means committed: visible to another connection.
                        let seen: i64 = other
                            .query_row(
                                "SELECT COUNT(*) FROM kv WHERE key = ?1",
                                [format!("k-{t}-{i}")],
                                |r| r.get(0),
                            )
                            .expect("read");
                        assert_eq!(seen, i64::from(r.is_ok()), "k-{t}-{i}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer");
        }
        let n: i64 = s
            .lock()
            .query_row("SELECT COUNT(*) FROM kv WHERE key LIKE 'k-%'", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(n, 4 * 180);
        drop(s);
        // Everything acknowledged is in the file (a new connection sees it).
        let again = Store::open_dir(&d).expect("reopen");
        let n: i64 = again
            .lock()
            .query_row("SELECT COUNT(*) FROM kv WHERE key LIKE 'k-%'", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(n, 4 * 180);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn kv_get_or_init_keeps_the_first_value() {
        let d = tempdir("kv");
        let s = Store::open_dir(&d).expect("open");
        assert_eq!(s.kv_get_or_init("k", || "a".into()).expect("a"), "a");
        assert_eq!(s.kv_get_or_init("k", || "b".into()).expect("b"), "a");
        let _ = std::fs::remove_dir_all(&d);
    }
}
