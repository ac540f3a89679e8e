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

use parking_lot::{Condvar, MutexGuard};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    // 5: a journal or history row now holds a run's worth of entries (a JSON array, often
    // several KiB): kept in rowid tables, whose rows may overflow cheaply, with the
    // (arn, idx) key as their index (a WITHOUT ROWID table stores whole rows in its key's
    // b-tree, which suits small rows only).
    "CREATE TABLE execution_journal_v5 (
        arn TEXT NOT NULL,
        idx INTEGER NOT NULL,
        entry TEXT NOT NULL,
        PRIMARY KEY (arn, idx)
     );
     INSERT INTO execution_journal_v5 (arn, idx, entry) SELECT arn, idx, entry FROM execution_journal;
     DROP TABLE execution_journal;
     ALTER TABLE execution_journal_v5 RENAME TO execution_journal;
     CREATE TABLE execution_history_v5 (
        arn TEXT NOT NULL,
        idx INTEGER NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (arn, idx)
     );
     INSERT INTO execution_history_v5 (arn, idx, event) SELECT arn, idx, event FROM execution_history;
     DROP TABLE execution_history;
     ALTER TABLE execution_history_v5 RENAME TO execution_history;",
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
///
/// # Durability: group commit behind barriers
///
/// All reads and writes go through one connection, so the database sees one total order
/// of writes. [`Store::tx`] runs its closure in a savepoint of the *open group
/// transaction* and returns as soon as its writes are in it; the group is committed by
/// [`Store::sync`], after [`FLUSH_DELAY`] by a background flusher, when it holds
/// [`MAX_GROUP`] writes, and when the store is dropped. A kill -9 therefore loses at most
/// a *suffix* of the writes — the state is exactly that of an earlier instant — and
/// nothing that was acknowledged to anybody outside the process: every edge that
/// acknowledges (an HTTP response, the end of a CLI command, the runtime's shutdown) calls
/// [`Store::sync`] first. Inside the process, whatever reads a write (a handler, the bus,
/// the workflow host) writes its own effects later in the same order, so a crash drops
/// those effects with their cause and the work is redone on restart (handlers are
/// idempotent; executions resume from their last committed state).
///
/// A write that its owner soon makes obsolete may be *held back* ([`Store::hold`]): it
/// costs nothing when the owner withdraws it first, and is executed just before the next
/// COMMIT otherwise, so no commit lacks it (the workflow host's task-outcome log).
///
/// A COMMIT that fails (disk full, I/O error) loses writes the process already built on:
/// the store then refuses every further write and every barrier with the error, so no
/// response claims anything after it; a restart recovers from the committed state.
pub struct Store {
    inner: Arc<Inner>,
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Inner {
    conn: parking_lot::Mutex<Shared>,
    /// Wakes the flusher: a group was opened, or the store is closing.
    flush_cv: Condvar,
    /// A group transaction is open (readable without the lock).
    dirty: AtomicBool,
    /// A COMMIT failed (readable without the lock).
    failed: AtomicBool,
    path: PathBuf,
    /// Hot keyed rows as the connection would read them (see [`crate::rowcache`]).
    rows: crate::rowcache::RowCache,
    /// Writes held back until the next commit (see [`Store::hold`]). Locked after `conn`
    /// when both are needed, never before.
    held: parking_lot::Mutex<Held>,
}

/// A write held back until the next commit.
type HeldWrite = Box<dyn FnOnce(&Connection) -> rusqlite::Result<()> + Send>;

/// The held writes ([`Store::hold`]).
#[derive(Default)]
struct Held {
    /// Writes not executed yet, by owner, in the order they were held.
    writes: HashMap<String, Vec<HeldWrite>>,
    /// Owners some of whose held writes were executed since they last withdrew.
    executed: HashSet<String>,
}

impl Held {
    /// Takes the writes to execute now (all owners', or one owner's) and records their
    /// owners as executed — in the same critical section, so that a withdrawal sees
    /// either the writes still held or the mark.
    fn take(&mut self, owner: Option<&str>) -> Vec<HeldWrite> {
        let taken: Vec<(String, Vec<HeldWrite>)> = match owner {
            Some(o) => self.writes.remove_entry(o).into_iter().collect(),
            None => self.writes.drain().collect(),
        };
        let mut out = Vec::new();
        for (o, ws) in taken {
            out.extend(ws);
            self.executed.insert(o);
        }
        out
    }
}

/// The connection and the group transaction it may have open.
struct Shared {
    conn: Connection,
    /// When the open group transaction began (`None`: no transaction is open).
    opened: Option<Instant>,
    /// Writes in the open group.
    writes: usize,
    /// Commits made (groups), for the statistics.
    commits: u64,
    /// The error of a failed COMMIT: the store refuses writes from then on.
    failed: Option<String>,
    closing: bool,
}

/// How long writes may wait in the open group before the flusher commits them. Nothing
/// outside the process waits for it (every acknowledgement is a barrier); it bounds how
/// much internal work a kill -9 makes the restarted process redo. Bigger groups share their
/// pages: alternating `bench bookings` runs measured 10 % to 17 % more lifecycles/s and
/// 4 % to 12 % less CPU at 40 ms than at 10 ms.
pub const FLUSH_DELAY: Duration = Duration::from_millis(40);

/// How long a thread spins for the connection's lock before it waits the usual way (25 µs
/// and 50 µs measured alike; 100 µs and 6 µs less well).
const SPIN: Duration = Duration::from_micros(25);

/// The page size of a new database file.
pub const PAGE_SIZE: i64 = 16_384;

/// Commits between two checkpoints of the WAL.
const CHECKPOINT_EVERY: u64 = 32;

/// Writes after which a group is committed at once.
pub const MAX_GROUP: usize = 5_000;

/// The locked connection ([`Store::lock`]). Reads see every write made so far, committed
/// or still in the open group; a statement executed here joins the open group.
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
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
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
        // For a new file only (an existing one keeps the size it was created with). Every
        // page a commit changed is one write of the WAL (two system calls), and a booking
        // lifecycle writes about 50 KiB, most of it appended: alternating `bench bookings`
        // runs measured about +20 % lifecycles/s and -15 % CPU with 16 KiB pages against
        // 4 KiB (32 KiB: a little less, 64 KiB: much less).
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // 8 MiB of page cache: the hot pages are the tails of the append-mostly tables and
        // the upper index levels. 32 MiB only made the process bigger (fresh memory is
        // zeroed by the kernel): alternating runs measured +5 % lifecycles/s with 8 MiB,
        // and less with 4 MiB.
        conn.pragma_update(None, "cache_size", -8_192)?;
        // Checkpoints run on the flusher's own connection, off the writers' lock (below);
        // without that connection the writer checkpoints itself as SQLite does by default.
        let checkpointer = Connection::open(path).ok();
        let auto = if checkpointer.is_some() { 0 } else { 4_096 };
        conn.pragma_update(None, "wal_autocheckpoint", auto)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // Every hot statement stays prepared (the handlers' adapters, the bus, the host).
        conn.set_prepared_statement_cache_capacity(256);
        let inner = Arc::new(Inner {
            conn: parking_lot::Mutex::new(Shared {
                conn,
                opened: None,
                writes: 0,
                commits: 0,
                failed: None,
                closing: false,
            }),
            flush_cv: Condvar::new(),
            dirty: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            path: path.to_path_buf(),
            rows: Default::default(),
            held: Default::default(),
        });
        let store = Store {
            inner: inner.clone(),
            flusher: Mutex::new(None),
        };
        store.migrate(target)?;
        let handle = std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || inner.run_flusher(checkpointer))
            .map_err(|e| StoreError::Commit(format!("cannot start the flusher thread: {e}")))?;
        *store.flusher.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The row cache: change it only with the connection locked (inside a write closure
    /// or while holding [`Store::lock`]), see [`crate::rowcache`].
    pub fn rows(&self) -> &crate::rowcache::RowCache {
        &self.inner.rows
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

    /// Locks the connection for reads and single statements. What is read includes writes
    /// not yet committed (see the type's documentation). A poisoned lock is recovered:
    /// SQLite keeps its own consistency.
    pub fn lock(&self) -> Conn<'_> {
        Conn(self.inner.shared())
    }

    /// The barrier: commits every write made so far. Call it before acknowledging anything
    /// outside the process. Fails when this or an earlier COMMIT failed.
    pub fn sync(&self) -> Result<(), StoreError> {
        if !self.inner.dirty.load(Ordering::Acquire) {
            let g = self.inner.shared();
            return match &g.failed {
                Some(e) => Err(StoreError::Commit(e.clone())),
                None => Ok(()),
            };
        }
        let mut g = self.inner.shared();
        if g.opened.is_some() {
            self.inner.commit(&mut g);
        }
        match &g.failed {
            Some(e) => Err(StoreError::Commit(e.clone())),
            None => Ok(()),
        }
    }

    /// Whether writes are waiting for their commit.
    pub fn dirty(&self) -> bool {
        self.inner.dirty.load(Ordering::Acquire)
    }

    /// False once a COMMIT failed: the store refuses writes until the process restarts.
    pub fn healthy(&self) -> bool {
        !self.inner.failed.load(Ordering::Acquire)
    }

    /// Number of group commits made since the store was opened.
    pub fn commits(&self) -> u64 {
        self.inner.shared().commits
    }

    /// Runs `f` as one atomic unit of writes: all of them or (when `f` fails) none.
    ///
    /// The writes join the open group transaction in their own savepoint and are
    /// committed with the group (see the type's documentation): call [`Store::sync`] before
    /// telling anybody outside the process that they happened.
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
        self.write_in(true, f, map)
    }

    /// [`Store::write`] without the savepoint, for a closure that fails, if at all, before
    /// it changes anything: one statement (atomic by itself), or reads and checks followed
    /// by the writes. A savepoint copies every page the closure touches first; on the hot
    /// paths (idempotency records, task outcomes, conditional puts) that was about a sixth
    /// of a booking lifecycle's CPU. Should such a closure fail after changing the
    /// database anyway (only an I/O error can make it), its changes cannot be undone alone:
    /// the whole open group is rolled back and the store fails (see [`Store`]).
    pub fn write_unguarded<T, E>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
        map: impl Fn(StoreError) -> E,
    ) -> Result<T, E> {
        self.write_in(false, f, map)
    }

    /// Holds `write` back until the next commit, which executes it just before its COMMIT
    /// — unless `owner` withdraws it first ([`Store::withdraw`]). For rows that only matter
    /// should a commit come before their owner's next write makes them obsolete: the
    /// workflow host's task-outcome log, which the run's own save clears. Such a row costs
    /// neither the connection's lock nor a statement when the save comes first, and a
    /// commit never lacks it, so a crash finds exactly what it would have found had it been
    /// written at once. Opens a group when none is open, so that a commit comes within
    /// [`FLUSH_DELAY`]. A write that fails at the commit fails the commit (see [`Store`]).
    pub fn hold(
        &self,
        owner: &str,
        write: impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
    ) -> Result<(), StoreError> {
        self.push_held(owner, Box::new(write));
        // (A commit between the push and this check executes the write; none after it
        // would, so a group is opened.)
        if !self.inner.dirty.load(Ordering::Acquire) {
            let mut g = self.inner.shared();
            if let Some(e) = &g.failed {
                return Err(StoreError::Commit(e.clone()));
            }
            if g.opened.is_none() && !g.closing {
                g.conn.execute_batch("BEGIN IMMEDIATE")?;
                g.opened = Some(Instant::now());
                self.inner.dirty.store(true, Ordering::Release);
                self.inner.flush_cv.notify_one();
            }
        }
        Ok(())
    }

    fn push_held(&self, owner: &str, write: HeldWrite) {
        let mut h = self.inner.held.lock();
        match h.writes.get_mut(owner) {
            Some(ws) => ws.push(write),
            None => {
                h.writes.insert(owner.to_string(), vec![write]);
            }
        }
    }

    /// Withdraws `owner`'s held writes. True when some of its held writes were executed
    /// since its last withdrawal (by a commit, or [`Store::write_held`]): their rows are in
    /// the database and the caller must remove them itself.
    pub fn withdraw(&self, owner: &str) -> bool {
        let mut h = self.inner.held.lock();
        h.writes.remove(owner);
        h.executed.remove(owner)
    }

    /// Executes `owner`'s held writes now, in the open group (before reading what they
    /// write).
    pub fn write_held(&self, owner: &str) -> Result<(), StoreError> {
        self.write_unguarded(
            |c| {
                let writes = self.inner.held.lock().take(Some(owner));
                for w in writes {
                    w(c)?;
                }
                Ok(())
            },
            |e| e,
        )
    }

    /// [`Store::write_unguarded`] for closures failing with the store's own errors.
    pub fn tx_unguarded<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        self.write_in(false, f, E::from)
    }

    fn write_in<T, E>(
        &self,
        guarded: bool,
        f: impl FnOnce(&Connection) -> Result<T, E>,
        map: impl Fn(StoreError) -> E,
    ) -> Result<T, E> {
        let mut g = self.inner.shared();
        if let Some(e) = &g.failed {
            return Err(map(StoreError::Commit(e.clone())));
        }
        if g.opened.is_none() {
            g.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| map(e.into()))?;
            g.opened = Some(Instant::now());
            self.inner.dirty.store(true, Ordering::Release);
            self.inner.flush_cv.notify_one();
        }
        let run = |sql: &str| -> rusqlite::Result<()> {
            g.conn.prepare_cached(sql)?.execute([]).map(|_| ())
        };
        let cache_before = self.inner.rows.changes();
        // `end` says whether the closure's writes are settled (kept, or undone alone).
        let (out, end) = if guarded {
            run("SAVEPOINT w").map_err(|e| map(e.into()))?;
            let out = f(&g.conn);
            let end = match &out {
                Ok(_) => run("RELEASE w"),
                Err(_) => run("ROLLBACK TO w").and_then(|()| run("RELEASE w")),
            }
            .map_err(|e| e.to_string());
            (out, end)
        } else {
            let before = g.conn.total_changes();
            let out = f(&g.conn);
            let end = if out.is_err() && g.conn.total_changes() != before {
                Err("a write failed after changing the database".to_string())
            } else {
                Ok(())
            };
            (out, end)
        };
        // Rows the closure put in the cache may have been rolled back with it.
        if (out.is_err() || end.is_err()) && self.inner.rows.changes() != cache_before {
            self.inner.rows.clear();
        }
        if let Err(e) = end {
            // The writes cannot be undone alone: the whole group is abandoned, and with it
            // writes already acknowledged inside the process.
            let _ = g.conn.execute_batch("ROLLBACK");
            self.inner.rows.clear();
            g.opened = None;
            g.writes = 0;
            self.inner.dirty.store(false, Ordering::Release);
            g.failed = Some(format!("a group transaction was abandoned: {e}"));
            self.inner.failed.store(true, Ordering::Release);
            return match out {
                Err(inner) => Err(inner),
                Ok(_) => Err(map(StoreError::Commit(e))),
            };
        }
        if out.is_ok() {
            g.writes += 1;
            if g.writes >= MAX_GROUP {
                self.inner.commit(&mut g);
            }
        }
        out
    }

    /// Reads a key of the kv table.
    pub fn kv_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let c = self.lock();
        let mut st = c.prepare_cached("SELECT value FROM kv WHERE key = ?1")?;
        Ok(st.query_row([key], |r| r.get(0)).optional()?)
    }

    /// Writes a key of the kv table.
    pub fn kv_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.tx_unguarded(|c| -> Result<usize, StoreError> {
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
        if let Some(v) = self.kv_get(key)? {
            return Ok(v);
        }
        let v = make();
        self.tx(|c| -> Result<usize, StoreError> {
            Ok(c.execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2)",
                params![key, v],
            )?)
        })?;
        // Keys made here (API key, signing key) are handed out at once: commit them.
        self.sync()?;
        Ok(v)
    }
}

impl Inner {
    /// Locks the connection. A lock that is taken is first waited for by spinning, for at
    /// most [`SPIN`]: most holders run one statement and let go within microseconds, while
    /// parking_lot's own wait yields the processor at once (about 34,000 `sched_yield`
    /// context switches per 1,000 booking lifecycles) and then sleeps. Alternating `bench
    /// bookings` runs: 951 → 1,201 lifecycles/s with a spin (-14 % CPU, about 2,000
    /// context switches instead of 43,000); `bench workflows` 13.3K → 18-19K executions/s.
    fn shared(&self) -> MutexGuard<'_, Shared> {
        if let Some(g) = self.conn.try_lock() {
            return g;
        }
        let start = Instant::now();
        loop {
            for _ in 0..32 {
                std::hint::spin_loop();
            }
            if let Some(g) = self.conn.try_lock() {
                return g;
            }
            if start.elapsed() > SPIN {
                return self.conn.lock();
            }
        }
    }

    /// Commits the open group transaction. A failed COMMIT rolls the group back and
    /// fails the store (see [`Store`]).
    fn commit(&self, g: &mut Shared) {
        let held = self.held.lock().take(None);
        let done = held
            .into_iter()
            .try_for_each(|w| w(&g.conn))
            .and_then(|()| g.conn.execute_batch("COMMIT"));
        if let Err(e) = done {
            let _ = g.conn.execute_batch("ROLLBACK");
            self.rows.clear();
            g.failed = Some(format!("commit failed: {e}"));
            self.failed.store(true, Ordering::Release);
        }
        g.opened = None;
        g.writes = 0;
        g.commits += 1;
        self.dirty.store(false, Ordering::Release);
    }

    /// The flusher: commits a group once it is [`FLUSH_DELAY`] old; sleeps while none is
    /// open. Every [`CHECKPOINT_EVERY`] commits it copies the WAL into the database on its
    /// own connection (a passive checkpoint: writers go on meanwhile).
    fn run_flusher(&self, checkpointer: Option<Connection>) {
        let mut checkpointed = 0;
        let mut g = self.shared();
        loop {
            if g.closing {
                return;
            }
            if let Some(c) = &checkpointer {
                if g.commits >= checkpointed + CHECKPOINT_EVERY {
                    checkpointed = g.commits;
                    drop(g);
                    let _ = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    g = self.shared();
                    continue;
                }
            }
            g = match g.opened {
                None => {
                    self.flush_cv.wait(&mut g);
                    g
                }
                Some(t) => {
                    let age = t.elapsed();
                    if age >= FLUSH_DELAY {
                        self.commit(&mut g);
                        g
                    } else {
                        self.flush_cv.wait_for(&mut g, FLUSH_DELAY - age);
                        g
                    }
                }
            };
        }
    }
}

impl Drop for Store {
    /// Commits what is still open and stops the flusher.
    fn drop(&mut self) {
        {
            let mut g = self.inner.shared();
            if g.opened.is_some() {
                self.inner.commit(&mut g);
            }
            g.closing = true;
        }
        self.inner.flush_cv.notify_all();
        if let Some(h) = self
            .flusher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = h.join();
        }
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
        let page: i64 = s
            .lock()
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(page, PAGE_SIZE);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_file_created_with_smaller_pages_keeps_them() {
        let d = tempdir("small-pages");
        std::fs::create_dir_all(&d).expect("dir");
        {
            let c = Connection::open(d.join(DB_FILE)).expect("open");
            c.pragma_update(None, "page_size", 4096).expect("page size");
            c.execute_batch("CREATE TABLE early (x INTEGER)")
                .expect("create");
        }
        let s = Store::open_dir(&d).expect("open");
        assert_eq!(s.version().expect("version"), latest_version());
        let page: i64 = s
            .lock()
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(page, 4096);
        s.kv_set("k", "v").expect("write");
        s.sync().expect("sync");
        assert_eq!(s.kv_get("k").expect("read").as_deref(), Some("v"));
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

    fn count(c: &Connection, like: &str) -> i64 {
        c.query_row("SELECT COUNT(*) FROM kv WHERE key LIKE ?1", [like], |r| {
            r.get(0)
        })
        .expect("count")
    }

    #[test]
    fn concurrent_writers_share_groups_and_a_failing_one_loses_only_its_own_writes() {
        let d = tempdir("group");
        let s = std::sync::Arc::new(Store::open_dir(&d).expect("open"));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let other = Connection::open(s.path()).expect("second connection");
                    for i in 0..200 {
                        let key = format!("k-{t}-{i}");
                        let r = s.tx(|c| -> Result<(), StoreError> {
                            c.execute("INSERT INTO kv (key, value) VALUES (?1, 'v')", [&key])?;
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
                        // The writer's own reads see it at once.
                        assert_eq!(count(&s.lock(), &key), i64::from(r.is_ok()), "{key}");
                        if i % 50 == 1 {
                            // After the barrier, so does every other connection.
                            s.sync().expect("sync");
                            assert_eq!(count(&other, &key), 1, "{key}");
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer");
        }
        assert_eq!(count(&s.lock(), "k-%"), 4 * 180);
        // Far fewer commits than writes.
        assert!(s.commits() < 4 * 180, "{} commits", s.commits());
        drop(s);
        // Dropping the store committed the rest: a new connection sees every write.
        let again = Store::open_dir(&d).expect("reopen");
        assert_eq!(count(&again.lock(), "k-%"), 4 * 180);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_unguarded_write_failing_before_any_change_leaves_the_group_alone() {
        let d = tempdir("unguarded-ok");
        let s = Store::open_dir(&d).expect("open");
        s.kv_set("kept", "v").expect("write");
        let r = s.tx_unguarded(|c| -> Result<(), StoreError> {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM kv", [], |r| r.get(0))?;
            Err(StoreError::Corrupt {
                table: "kv",
                message: format!("refused after reading {n} rows"),
            })
        });
        assert!(r.is_err());
        assert!(s.healthy());
        s.sync().expect("sync");
        assert_eq!(count(&s.lock(), "kept"), 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_row_cache_forgets_what_a_rolled_back_write_put_in_it() {
        use crate::rowcache::Row;
        let d = tempdir("rowcache-rollback");
        let s = Store::open_dir(&d).expect("open");
        let kept = Row::Present {
            version: 1,
            body: Arc::from("{}"),
        };
        s.tx(|_| -> Result<(), StoreError> {
            s.rows().set("records", "kept", kept.clone());
            Ok(())
        })
        .expect("write");
        assert_eq!(s.rows().get("records", "kept"), Some(kept));
        // A guarded write that changed the cache and then failed: its savepoint is rolled
        // back, so the cache may hold rows that no longer exist; it is emptied.
        let r = s.tx(|_| -> Result<(), StoreError> {
            s.rows().set("records", "gone", Row::Absent);
            Err(StoreError::Corrupt {
                table: "records",
                message: "refused".into(),
            })
        });
        assert!(r.is_err());
        assert!(s.healthy());
        assert!(s.rows().is_empty());
        // A failing write that left the cache alone leaves it alone.
        s.tx(|_| -> Result<(), StoreError> {
            s.rows().set("records", "kept", Row::Absent);
            Ok(())
        })
        .expect("write");
        let r = s.tx(|_| -> Result<(), StoreError> {
            Err(StoreError::Corrupt {
                table: "records",
                message: "refused".into(),
            })
        });
        assert!(r.is_err());
        assert_eq!(s.rows().get("records", "kept"), Some(Row::Absent));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_unguarded_write_failing_after_a_change_fails_the_store_and_rolls_the_group_back() {
        let d = tempdir("unguarded-bad");
        let s = Store::open_dir(&d).expect("open");
        s.kv_set("committed", "v").expect("write");
        s.sync().expect("sync");
        let commits = s.commits();
        s.kv_set("in-the-group", "v").expect("write");
        let r = s.tx_unguarded(|c| -> Result<(), StoreError> {
            c.execute("INSERT INTO kv (key, value) VALUES ('half', 'v')", [])?;
            Err(StoreError::Corrupt {
                table: "kv",
                message: "failed after writing".into(),
            })
        });
        assert!(r.is_err());
        // Nothing of the group stays, and nothing more is accepted or acknowledged.
        assert!(!s.healthy());
        assert_eq!(count(&s.lock(), "half"), 0);
        if s.commits() == commits {
            // (Unless the flusher committed it in between.)
            assert_eq!(count(&s.lock(), "in-the-group"), 0);
        }
        assert_eq!(count(&s.lock(), "committed"), 1);
        assert!(matches!(s.kv_set("later", "v"), Err(StoreError::Commit(_))));
        assert!(matches!(s.sync(), Err(StoreError::Commit(_))));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_flusher_commits_an_open_group_without_a_barrier() {
        let d = tempdir("flusher");
        let s = Store::open_dir(&d).expect("open");
        s.kv_set("late", "v").expect("write");
        let other = Connection::open(s.path()).expect("second connection");
        let deadline = Instant::now() + Duration::from_secs(5);
        while count(&other, "late") == 0 {
            assert!(Instant::now() < deadline, "never committed");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(!s.dirty());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_full_group_is_committed_at_once() {
        let d = tempdir("full");
        let s = Store::open_dir(&d).expect("open");
        let before = s.commits();
        // The flusher may commit meanwhile too; a full group must commit regardless.
        for i in 0..MAX_GROUP {
            s.kv_set(&format!("f-{i}"), "v").expect("write");
        }
        assert!(s.commits() > before);
        s.sync().expect("sync");
        assert!(!s.dirty());
        let other = Connection::open(s.path()).expect("second connection");
        assert_eq!(count(&other, "f-%"), MAX_GROUP as i64);
        let _ = std::fs::remove_dir_all(&d);
    }

    fn held_kv(key: &'static str) -> impl FnOnce(&Connection) -> rusqlite::Result<()> + Send {
        move |c| {
            c.execute("INSERT INTO kv (key, value) VALUES (?1, 'held')", [key])
                .map(|_| ())
        }
    }

    #[test]
    fn a_held_write_reaches_the_next_commit_unless_its_owner_withdraws_it_first() {
        let d = tempdir("held");
        let s = Store::open_dir(&d).expect("open");
        let other = Connection::open(s.path()).expect("second connection");
        // Withdrawn before any commit: never executed, and nothing to undo.
        s.hold("a", held_kv("held-a1")).expect("hold");
        assert!(s.dirty(), "holding opens a group so that a commit comes");
        assert_eq!(count(&s.lock(), "held-a1"), 0, "not executed yet");
        assert!(!s.withdraw("a"));
        s.sync().expect("sync");
        assert_eq!(count(&other, "held-a1"), 0);
        // A barrier before the withdrawal: executed in that commit; the withdrawal says so.
        s.hold("a", held_kv("held-a2")).expect("hold");
        s.hold("b", held_kv("held-b1")).expect("hold");
        s.sync().expect("sync");
        assert_eq!(count(&other, "held-a2"), 1);
        assert_eq!(count(&other, "held-b1"), 1);
        assert!(s.withdraw("a"));
        assert!(!s.withdraw("a"), "told once");
        // The flusher's commit executes held writes as well.
        s.hold("c", held_kv("held-c1")).expect("hold");
        let deadline = Instant::now() + Duration::from_secs(5);
        while count(&other, "held-c1") == 0 {
            assert!(Instant::now() < deadline, "never committed");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(s.withdraw("c"));
        // Executed on demand (before reading them), and then known as executed.
        s.hold("d", held_kv("held-d1")).expect("hold");
        s.hold("e", held_kv("held-e1")).expect("hold");
        s.write_held("d").expect("write held");
        assert_eq!(count(&s.lock(), "held-d1"), 1);
        assert_eq!(count(&s.lock(), "held-e1"), 0, "another owner's stay held");
        assert!(s.withdraw("d"));
        assert!(!s.withdraw("e"));
        s.sync().expect("sync");
        assert_eq!(count(&other, "held-e1"), 0);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_held_write_failing_at_the_commit_fails_the_store() {
        let d = tempdir("held-bad");
        let s = Store::open_dir(&d).expect("open");
        s.kv_set("before", "v").expect("write");
        s.hold("a", |c| {
            c.execute("INSERT INTO no_such_table VALUES (1)", [])
                .map(|_| ())
        })
        .expect("hold");
        assert!(matches!(s.sync(), Err(StoreError::Commit(_))));
        assert!(!s.healthy());
        let other = Connection::open(s.path()).expect("second connection");
        assert_eq!(count(&other, "before"), 0, "the group was rolled back");
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
