//! The store's row cache: the last written (or read) body and version of hot keyed rows —
//! domain records and idempotency records — so that a read needs neither the store's lock
//! nor a statement.
//!
//! Rules that keep it equal to what the connection would read:
//! - it is changed only while the store's connection is locked, right after the statement
//!   that changed the row (or read it), so it follows the one order of writes;
//! - a write closure that fails after changing it has its changes undone by a savepoint
//!   rollback (or the whole group by a failure): the store then forgets everything
//!   ([`RowCache::clear`]), see `Store::write_in`;
//! - a failed COMMIT fails the store, which forgets everything too.
//!
//! It is bounded: past [`CAPACITY`] rows the oldest inserted row is forgotten per insertion.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Rows kept at most.
pub const CAPACITY: usize = 50_000;

/// What the cache knows of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// The row does not exist.
    Absent,
    /// The row's version (0 where the table has none) and its JSON body.
    Present {
        /// The stored version.
        version: i64,
        /// The stored body.
        body: Arc<str>,
    },
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct RowCache {
    rows: Mutex<Tables>,
    /// Changes made since the store was opened: `Store::write_in` compares it around a
    /// closure to know whether a rolled-back closure changed the cache.
    changes: AtomicU64,
}

/// The rows per table, and the order they were inserted in (for forgetting the oldest).
#[derive(Debug, Default)]
struct Tables {
    tables: HashMap<&'static str, HashMap<Box<str>, Row>>,
    order: VecDeque<(&'static str, Box<str>)>,
}

impl Tables {
    fn len(&self) -> usize {
        self.tables.values().map(HashMap::len).sum()
    }
}

impl RowCache {
    fn map(&self) -> MutexGuard<'_, Tables> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is known of `table`'s row `key`, if anything.
    pub fn get(&self, table: &'static str, key: &str) -> Option<Row> {
        self.map().tables.get(table)?.get(key).cloned()
    }

    /// Records `row` as the current state of `table`'s row `key`. Call it only with the
    /// store's connection locked, after the statement that wrote or read that state.
    pub fn set(&self, table: &'static str, key: &str, row: Row) {
        let mut m = self.map();
        let m = &mut *m;
        let t = m.tables.entry(table).or_default();
        if let Some(slot) = t.get_mut(key) {
            *slot = row;
        } else {
            t.insert(Box::from(key), row);
            m.order.push_back((table, Box::from(key)));
            // (A key forgotten or cleared may still be queued: the queue is never shorter
            // than the rows held, and trimming it past them forgets nothing more.)
            while m.order.len() > CAPACITY {
                if let Some((t, k)) = m.order.pop_front() {
                    if let Some(rows) = m.tables.get_mut(t) {
                        rows.remove(&k);
                    }
                }
            }
        }
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// Forgets `table`'s row `key` (its state is unknown, e.g. written by plain SQL).
    pub fn forget(&self, table: &'static str, key: &str) {
        if let Some(t) = self.map().tables.get_mut(table) {
            t.remove(key);
        }
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mut m = self.map();
        m.tables.clear();
        m.order.clear();
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// The change counter (see the field).
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_forget_and_clear() {
        let c = RowCache::default();
        assert_eq!(c.get("records", "a"), None);
        c.set("records", "a", Row::Absent);
        assert_eq!(c.get("records", "a"), Some(Row::Absent));
        let row = Row::Present {
            version: 2,
            body: Arc::from("{}"),
        };
        c.set("records", "a", row.clone());
        assert_eq!(c.get("records", "a"), Some(row));
        // Same key in another table is another row.
        assert_eq!(c.get("idempotency", "a"), None);
        let before = c.changes();
        c.forget("records", "a");
        assert_eq!(c.get("records", "a"), None);
        assert!(c.changes() > before);
        c.set("records", "b", Row::Absent);
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn it_stays_bounded() {
        let c = RowCache::default();
        for i in 0..CAPACITY + 10 {
            c.set("records", &i.to_string(), Row::Absent);
        }
        assert_eq!(c.len(), CAPACITY);
        // The oldest rows went first; the newest is kept.
        assert_eq!(c.get("records", "9"), None);
        assert_eq!(c.get("records", "10"), Some(Row::Absent));
        assert_eq!(
            c.get("records", &(CAPACITY + 9).to_string()),
            Some(Row::Absent)
        );
        // Updating a row does not queue it again.
        for _ in 0..10 {
            c.set("records", "10", Row::Absent);
        }
        assert_eq!(c.len(), CAPACITY);
        assert_eq!(c.get("records", "11"), Some(Row::Absent));
    }
}
