//! The simulated Stripe's state in the data directory's SQLite file: the
//! [`SimStripeStore`] port of `marketplace-ports`, one row per object.
//!
//! The table belongs to this module and is created here (`CREATE TABLE IF NOT EXISTS`),
//! with its own version in the `kv` table, so that it evolves apart from the runtime's
//! numbered migrations: version 1 is `stripe_sim (kind, id, body)` keyed by (kind, id),
//! rows kept in first-insert order (rowid) so that webhook events reload in the order
//! they were emitted.

use crate::store::{Store, StoreError};
use marketplace_ports::stripe_sim::{Kind, SimRecord, SimStoreError, SimStripeStore};
use rusqlite::params;
use std::sync::Arc;

/// The kv key holding this module's schema version.
pub const VERSION_KEY: &str = "stripe_sim_schema_version";
/// The schema version this module writes.
pub const VERSION: i64 = 1;

/// The simulated Stripe's records in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStripeStore {
    store: Arc<Store>,
}

impl SqliteStripeStore {
    /// Opens (creating the table on first use) the simulated Stripe's records of `store`.
    pub fn open(store: Arc<Store>) -> Result<Self, StoreError> {
        let found = store
            .kv_get(VERSION_KEY)?
            .map(|v| {
                v.parse::<i64>().map_err(|_| StoreError::Corrupt {
                    table: "kv",
                    message: format!("{VERSION_KEY}: '{v}' is not a version"),
                })
            })
            .transpose()?
            .unwrap_or(0);
        if found > VERSION {
            return Err(StoreError::TooNew {
                found,
                supported: VERSION,
            });
        }
        if found < VERSION {
            store.tx(|tx| -> Result<(), StoreError> {
                tx.execute_batch(
                    "CREATE TABLE IF NOT EXISTS stripe_sim (
                        kind TEXT NOT NULL,
                        id TEXT NOT NULL,
                        body TEXT NOT NULL,
                        PRIMARY KEY (kind, id)
                     );",
                )?;
                tx.execute(
                    "INSERT INTO kv (key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![VERSION_KEY, VERSION.to_string()],
                )?;
                Ok(())
            })?;
        }
        Ok(Self { store })
    }
}

fn err(e: impl std::fmt::Display) -> SimStoreError {
    SimStoreError(e.to_string())
}

impl SimStripeStore for SqliteStripeStore {
    fn load(&self) -> Result<Vec<SimRecord>, SimStoreError> {
        let c = self.store.lock();
        let mut stmt = c
            .prepare("SELECT kind, id, body FROM stripe_sim ORDER BY rowid")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, id, body) = row.map_err(err)?;
            let kind = Kind::parse(&kind)
                .ok_or_else(|| SimStoreError(format!("stripe_sim: unknown kind '{kind}'")))?;
            let body = serde_json::from_str(&body)
                .map_err(|e| SimStoreError(format!("stripe_sim {} {id}: {e}", kind.as_str())))?;
            out.push(SimRecord { kind, id, body });
        }
        Ok(out)
    }

    fn save(&self, records: &[SimRecord]) -> Result<(), SimStoreError> {
        // Serialised before the store is locked.
        let texts: Vec<String> = records
            .iter()
            .map(|r| crate::util::json_text(&r.body))
            .collect();
        self.store
            // Checks come before the writes, which fail only on I/O: no savepoint.
            .tx_unguarded(|tx| -> Result<(), StoreError> {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO stripe_sim (kind, id, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT(kind, id) DO UPDATE SET body = excluded.body",
                )?;
                for (r, text) in records.iter().zip(&texts) {
                    stmt.execute(params![r.kind.as_str(), r.id, text])?;
                }
                Ok(())
            })
            .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tempdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "mkt-stripe-store-{name}-{}-{}",
            std::process::id(),
            crate::util::random_hex(4)
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn rec(kind: Kind, id: &str, body: serde_json::Value) -> SimRecord {
        SimRecord {
            kind,
            id: id.into(),
            body,
        }
    }

    #[test]
    fn records_round_trip_in_first_insert_order() {
        let d = tempdir("order");
        {
            let s = SqliteStripeStore::open(Arc::new(Store::open_dir(&d).expect("open")))
                .expect("store");
            s.save(&[
                rec(Kind::Webhook, "evt_2", json!({"n": 2})),
                rec(Kind::Webhook, "evt_1", json!({"n": 1})),
            ])
            .expect("save");
            s.save(&[
                rec(Kind::Webhook, "evt_2", json!({"n": 22})),
                rec(Kind::Meta, "seq", json!(7)),
            ])
            .expect("update");
        }
        let store = Arc::new(Store::open_dir(&d).expect("reopen"));
        let s = SqliteStripeStore::open(store.clone()).expect("store");
        let rows = s.load().expect("load");
        assert_eq!(
            rows,
            vec![
                rec(Kind::Webhook, "evt_2", json!({"n": 22})),
                rec(Kind::Webhook, "evt_1", json!({"n": 1})),
                rec(Kind::Meta, "seq", json!(7)),
            ]
        );
        assert_eq!(store.kv_get(VERSION_KEY).expect("kv").as_deref(), Some("1"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_newer_table_version_and_unknown_rows_are_refused() {
        let d = tempdir("newer");
        let store = Arc::new(Store::open_dir(&d).expect("open"));
        let s = SqliteStripeStore::open(store.clone()).expect("store");
        store
            .lock()
            .execute(
                "INSERT INTO stripe_sim (kind, id, body) VALUES ('coupon', 'c1', '{}')",
                [],
            )
            .expect("insert");
        let e = s.load().expect_err("unknown kind");
        assert!(e.to_string().contains("unknown kind 'coupon'"), "{e}");
        store.kv_set(VERSION_KEY, "9").expect("kv");
        assert!(matches!(
            SqliteStripeStore::open(store),
            Err(StoreError::TooNew { found: 9, .. })
        ));
        let _ = std::fs::remove_dir_all(&d);
    }
}
