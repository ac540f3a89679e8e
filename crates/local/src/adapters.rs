//! Adapters of the `ports` traits on the local runtime: repositories, idempotency records
//! and the notification outbox on SQLite; the event publisher on the local bus; the
//! workflow client on the local workflow host. They pass `marketplace_ports::contract`.
//!
//! Records are JSON documents in `records(kind, id, version, body, k1, k2)` (k1/k2 are the
//! secondary keys a repository queries by); every write that can race is a conditional
//! statement inside one transaction, as on DynamoDB.

use crate::bus::{Bus, PutEntry};
use crate::rowcache::{Row, RowCache};
use crate::store::Store;
use crate::workflows::{parse_execution_arn, WorkflowError as HostError, Workflows};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_domain::entities::Service;
use marketplace_domain::{Currency, ExecutionStatus, PutEventsEntry, WorkflowType};
use marketplace_ports::error::{NotifyError, PublishError, StoreError, WorkflowError};
use marketplace_ports::events::{EventPublisher, PutEventsResultEntry, MAX_ENTRIES_PER_CALL};
use marketplace_ports::idempotency_store::{
    IdempotencyPutError, IdempotencyRecord, IdempotencyStatus, IdempotencyStore,
};
use marketplace_ports::notify::{EmailMessage, Notifier};
use marketplace_ports::store::*;
use marketplace_ports::workflow::*;
use rusqlite::{params, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// A message of the notification outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxMessage {
    /// The idempotency key it was sent under (one message per key).
    pub key: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Template name.
    pub template: String,
    /// The business flow.
    pub correlation_id: Option<String>,
    /// When it was written, on the runtime's clock (RFC 3339).
    pub created_at: String,
}

/// The SQLite repositories, idempotency store and outbox of one data directory.
#[derive(Debug, Clone)]
pub struct SqlitePorts {
    store: Arc<Store>,
    /// Stamps the outbox's messages.
    clock: Arc<crate::clock::RuntimeClock>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

fn corrupt(entity: &'static str, id: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        entity,
        id: id.to_string(),
        reason: e.to_string(),
    }
}

impl SqlitePorts {
    /// Adapters over a store.
    pub fn new(store: Arc<Store>) -> Self {
        Self::with_clock(store, Arc::new(crate::clock::RuntimeClock::Real))
    }

    /// Adapters over a store, stamping the outbox with `clock` (the runtime's, which may be
    /// virtual).
    pub fn with_clock(store: Arc<Store>, clock: Arc<crate::clock::RuntimeClock>) -> Self {
        SqlitePorts { store, clock }
    }

    fn get<T: DeserializeOwned>(
        &self,
        entity: &'static str,
        id: &str,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        let row = match self.store.rows().get(entity, id) {
            Some(row) => row,
            None => self.row(
                &self.store.lock(),
                entity,
                id,
                "SELECT version, body FROM records WHERE kind = ?1 AND id = ?2",
                params![entity, id],
            )?,
        };
        // Parsed after the store is unlocked.
        match row {
            Row::Absent => Ok(None),
            Row::Present { version, body } => Ok(Some(Versioned {
                value: serde_json::from_str(&body).map_err(|e| corrupt(entity, id, e))?,
                version: version as u64,
            })),
        }
    }

    fn list<T: DeserializeOwned>(
        &self,
        entity: &'static str,
        column: &str,
        key: &str,
    ) -> Result<Vec<T>, StoreError> {
        let sql =
            format!("SELECT id, body FROM records WHERE kind = ?1 AND {column} = ?2 ORDER BY id");
        let rows: Vec<(String, String)> = {
            let c = self.store.lock();
            let mut st = c.prepare_cached(&sql).map_err(unavailable)?;
            let rows = st
                .query_map(params![entity, key], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(unavailable)?;
            rows.collect::<Result<_, _>>().map_err(unavailable)?
        };
        rows.iter()
            .map(|(id, body)| serde_json::from_str(body).map_err(|e| corrupt(entity, id, e)))
            .collect()
    }

    /// Conditional put inside `tx`: create when `expected` is None, else update at that version.
    /// `body` is the record's JSON ([`Self::body`]), made before the store is locked.
    /// The caller puts the written row in the row cache once nothing of its closure can
    /// fail any more ([`Self::cache_put`]).
    #[allow(clippy::too_many_arguments)]
    fn put_tx(
        rows: &RowCache,
        tx: &rusqlite::Connection,
        entity: &'static str,
        id: &str,
        body: &str,
        expected: Option<u64>,
        k1: Option<&str>,
        k2: Option<&str>,
    ) -> Result<u64, StoreError> {
        let current: Option<i64> = match rows.get(entity, id) {
            Some(Row::Absent) => None,
            Some(Row::Present { version, .. }) => Some(version),
            None => tx
                .prepare_cached("SELECT version FROM records WHERE kind = ?1 AND id = ?2")
                .and_then(|mut st| st.query_row(params![entity, id], |r| r.get(0)))
                .optional()
                .map_err(unavailable)?,
        };
        let version = match (current, expected) {
            (None, None) => 1,
            (Some(_), None) => {
                return Err(StoreError::ConditionFailed {
                    entity,
                    id: id.to_string(),
                    reason: "item already exists".into(),
                })
            }
            (None, Some(_)) => {
                return Err(StoreError::NotFound {
                    entity,
                    id: id.to_string(),
                })
            }
            (Some(c), Some(v)) if c as u64 == v => v + 1,
            (Some(c), Some(v)) => {
                return Err(StoreError::ConditionFailed {
                    entity,
                    id: id.to_string(),
                    reason: format!("version is {c}, expected {v}"),
                })
            }
        };
        tx.prepare_cached(
            "INSERT INTO records (kind, id, version, body, k1, k2) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(kind, id) DO UPDATE SET version = excluded.version, body = excluded.body,
               k1 = excluded.k1, k2 = excluded.k2",
        )
        .and_then(|mut st| st.execute(params![entity, id, version as i64, body, k1, k2]))
        .map_err(unavailable)?;
        Ok(version)
    }

    /// Puts a row written by [`Self::put_tx`] in the row cache (connection still locked).
    fn cache_put(rows: &RowCache, entity: &'static str, id: &str, version: u64, body: &str) {
        rows.set(
            entity,
            id,
            Row::Present {
                version: version as i64,
                body: Arc::from(body),
            },
        );
    }

    /// A record's stored JSON.
    fn body<T: Serialize>(entity: &'static str, id: &str, value: &T) -> Result<String, StoreError> {
        serde_json::to_string(value).map_err(|e| corrupt(entity, id, e))
    }

    fn put<T: Serialize>(
        &self,
        entity: &'static str,
        id: &str,
        value: &T,
        expected: Option<u64>,
        k1: Option<&str>,
        k2: Option<&str>,
    ) -> Result<u64, StoreError> {
        let body = Self::body(entity, id, value)?;
        // put_tx checks before its one write.
        let rows = self.store.rows();
        self.store.write_unguarded(
            |tx| {
                let v = Self::put_tx(rows, tx, entity, id, &body, expected, k1, k2)?;
                Self::cache_put(rows, entity, id, v, &body);
                Ok(v)
            },
            unavailable,
        )
    }

    /// Adds or replaces a user's contact and group memberships (local user directory).
    pub fn put_user(&self, contact: &UserContact, groups: &[&str]) -> Result<(), StoreError> {
        self.store.write(
            |tx| {
                let body = serde_json::to_string(contact)
                    .map_err(|e| corrupt("user", &contact.user_id, e))?;
                tx.prepare_cached(
                    "INSERT INTO records (kind, id, version, body) VALUES ('user', ?1, 1, ?2)
             ON CONFLICT(kind, id) DO UPDATE SET version = version + 1, body = excluded.body",
                )
                .and_then(|mut st| st.execute(params![contact.user_id, body]))
                .map_err(unavailable)?;
                // (Versioned by SQL: the cache no longer knows the row.)
                self.store.rows().forget("user", &contact.user_id);
                for g in groups {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO user_groups (group_name, user_id) VALUES (?1, ?2)",
                    )
                    .and_then(|mut st| st.execute(params![g, contact.user_id]))
                    .map_err(unavailable)?;
                }
                Ok(())
            },
            unavailable,
        )
    }

    /// The messages in the outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxMessage>, StoreError> {
        let c = self.store.lock();
        let mut st = c
            .prepare(
                "SELECT recipients, subject, template, correlation_id, key, created_ms FROM outbox ORDER BY id",
            )
            .map_err(unavailable)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(unavailable)?;
        let mut out = Vec::new();
        for row in rows {
            let (to, subject, template, corr, key, created_ms) = row.map_err(unavailable)?;
            out.push(OutboxMessage {
                key,
                to: serde_json::from_str(&to).unwrap_or_default(),
                subject,
                template,
                correlation_id: corr,
                created_at: crate::util::rfc3339_ms(crate::util::from_ms(created_ms)),
            });
        }
        Ok(out)
    }
}

#[async_trait]
impl ServiceRepository for SqlitePorts {
    async fn get_service(&self, id: &str) -> Result<Option<Service>, StoreError> {
        Ok(self.get::<Service>("service", id)?.map(|v| v.value))
    }
    async fn put_service(&self, service: &Service) -> Result<(), StoreError> {
        let id = service.id.to_string();
        let current = self.get::<Service>("service", &id)?.map(|v| v.version);
        self.put(
            "service",
            &id,
            service,
            current,
            Some(service.provider_id.as_str()),
            None,
        )?;
        Ok(())
    }
    async fn list_services_by_provider(
        &self,
        provider_id: &str,
    ) -> Result<Vec<Service>, StoreError> {
        self.list("service", "k1", provider_id)
    }
}

#[async_trait]
impl ProviderRepository for SqlitePorts {
    async fn get_provider(
        &self,
        id: &str,
    ) -> Result<Option<Versioned<ProviderRecord>>, StoreError> {
        self.get("provider", id)
    }
    async fn put_provider(
        &self,
        record: &ProviderRecord,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let id = record.provider.id().to_string();
        let account = record
            .provider
            .stripe_account_id()
            .map(|a| a.as_str().to_string());
        self.put(
            "provider",
            &id,
            record,
            expected_version,
            account.as_deref(),
            None,
        )
    }
    async fn find_provider_by_account(
        &self,
        stripe_account_id: &str,
    ) -> Result<Option<Versioned<ProviderRecord>>, StoreError> {
        let id: Option<String> = {
            let c = self.store.lock();
            c.prepare_cached(
                "SELECT id FROM records WHERE kind = 'provider' AND k1 = ?1 ORDER BY id LIMIT 1",
            )
            .and_then(|mut st| st.query_row([stripe_account_id], |r| r.get(0)))
            .optional()
            .map_err(unavailable)?
        };
        match id {
            Some(id) => self.get("provider", &id),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl BookingRepository for SqlitePorts {
    async fn get_booking(&self, id: &str) -> Result<Option<Versioned<BookingRecord>>, StoreError> {
        self.get("booking", id)
    }

    async fn reserve_booking(&self, record: &BookingRecord) -> Result<u64, StoreError> {
        let id = record.booking.id().to_string();
        let provider = record.booking.provider_id().to_string();
        let customer = record.booking.customer_id().to_string();
        let slots = slot_starts(
            record.booking.start_date_time(),
            record.booking.end_date_time(),
        );
        let body = Self::body("booking", &id, record)?;
        let rows = self.store.rows();
        self.store.write(
            |tx| {
                let v = Self::put_tx(
                    rows,
                    tx,
                    "booking",
                    &id,
                    &body,
                    None,
                    Some(&customer),
                    Some(&provider),
                )?;
                for t in &slots {
                    let taken = tx
                        .prepare_cached(
                            "INSERT INTO slots (provider_id, slot_ms, booking_id) VALUES (?1, ?2, ?3)
                             ON CONFLICT(provider_id, slot_ms) DO NOTHING",
                        )
                        .and_then(|mut st| st.execute(params![provider, t.timestamp_millis(), id]))
                        .map_err(unavailable)?;
                    if taken == 0 {
                        let holder: String = tx
                            .prepare_cached(
                                "SELECT booking_id FROM slots WHERE provider_id = ?1 AND slot_ms = ?2",
                            )
                            .and_then(|mut st| {
                                st.query_row(params![provider, t.timestamp_millis()], |r| r.get(0))
                            })
                            .map_err(unavailable)?;
                        // Dropping the transaction rolls the booking back.
                        return Err(StoreError::SlotUnavailable {
                            provider_id: provider,
                            slot_start: marketplace_domain::wire::format_time(t),
                            conflicting_booking_id: holder,
                        });
                    }
                }
                Self::cache_put(rows, "booking", &id, v, &body);
                Ok(v)
            },
            unavailable,
        )
    }

    async fn update_booking(
        &self,
        record: &BookingRecord,
        expected_version: u64,
        release_slot: bool,
    ) -> Result<u64, StoreError> {
        let id = record.booking.id().to_string();
        let provider = record.booking.provider_id().to_string();
        let customer = record.booking.customer_id().to_string();
        let body = Self::body("booking", &id, record)?;
        // Checks come before the writes, which fail only on I/O: no savepoint.
        let rows = self.store.rows();
        self.store.write_unguarded(
            |tx| {
                let v = Self::put_tx(
                    rows,
                    tx,
                    "booking",
                    &id,
                    &body,
                    Some(expected_version),
                    Some(&customer),
                    Some(&provider),
                )?;
                if release_slot {
                    tx.prepare_cached(
                        "DELETE FROM slots WHERE provider_id = ?1 AND booking_id = ?2",
                    )
                    .and_then(|mut st| st.execute(params![provider, id]))
                    .map_err(unavailable)?;
                }
                Self::cache_put(rows, "booking", &id, v, &body);
                Ok(v)
            },
            unavailable,
        )
    }

    async fn list_bookings_by_customer(
        &self,
        customer_id: &str,
    ) -> Result<Vec<BookingRecord>, StoreError> {
        let mut v: Vec<BookingRecord> = self.list("booking", "k1", customer_id)?;
        v.sort_by_key(|b| std::cmp::Reverse(b.booking.start_date_time()));
        Ok(v)
    }

    async fn list_bookings_by_provider(
        &self,
        provider_id: &str,
    ) -> Result<Vec<BookingRecord>, StoreError> {
        let mut v: Vec<BookingRecord> = self.list("booking", "k2", provider_id)?;
        v.sort_by_key(|b| std::cmp::Reverse(b.booking.start_date_time()));
        Ok(v)
    }
}

#[async_trait]
impl PaymentRepository for SqlitePorts {
    async fn get_payment(&self, id: &str) -> Result<Option<Versioned<PaymentRecord>>, StoreError> {
        self.get("payment", id)
    }
    async fn put_payment(
        &self,
        record: &PaymentRecord,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.put(
            "payment",
            &record.id,
            record,
            expected_version,
            record.booking_id.as_deref(),
            None,
        )
    }
    async fn list_payments_by_booking(
        &self,
        booking_id: &str,
    ) -> Result<Vec<PaymentRecord>, StoreError> {
        let mut v: Vec<PaymentRecord> = self.list("payment", "k1", booking_id)?;
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(v)
    }
}

#[async_trait]
impl DisputeRepository for SqlitePorts {
    async fn get_dispute(&self, id: &str) -> Result<Option<Versioned<DisputeRecord>>, StoreError> {
        self.get("dispute", id)
    }
    async fn create_dispute(&self, record: &DisputeRecord) -> Result<u64, StoreError> {
        let id = record.dispute.id().to_string();
        let body = Self::body("dispute", &id, record)?;
        let rows = self.store.rows();
        self.store.write(
            |tx| {
                let open: Vec<String> = {
                    let mut st = tx
                .prepare_cached(
                    "SELECT id FROM records WHERE kind = 'dispute' AND k1 = ?1 AND k2 = 'open'",
                )
                .map_err(unavailable)?;
                    let rows = st
                        .query_map([&record.booking_id], |r| r.get::<_, String>(0))
                        .map_err(unavailable)?;
                    rows.collect::<Result<_, _>>().map_err(unavailable)?
                };
                let v = Self::put_tx(
                    rows,
                    tx,
                    "dispute",
                    &id,
                    &body,
                    None,
                    Some(&record.booking_id),
                    Some(if record.open { "open" } else { "closed" }),
                )?;
                if let Some(other) = open.first() {
                    return Err(StoreError::ConditionFailed {
                        entity: "dispute",
                        id,
                        reason: format!(
                            "booking {} already has the open dispute {other}",
                            record.booking_id
                        ),
                    });
                }
                Self::cache_put(rows, "dispute", &id, v, &body);
                Ok(v)
            },
            unavailable,
        )
    }
    async fn update_dispute(
        &self,
        record: &DisputeRecord,
        expected_version: u64,
    ) -> Result<u64, StoreError> {
        let id = record.dispute.id().to_string();
        self.put(
            "dispute",
            &id,
            record,
            Some(expected_version),
            Some(&record.booking_id),
            Some(if record.open { "open" } else { "closed" }),
        )
    }
    async fn list_disputes_by_booking(
        &self,
        booking_id: &str,
    ) -> Result<Vec<DisputeRecord>, StoreError> {
        let mut v: Vec<DisputeRecord> = self.list("dispute", "k1", booking_id)?;
        v.sort_by_key(|d| d.review_deadline);
        Ok(v)
    }
}

#[async_trait]
impl LedgerRepository for SqlitePorts {
    async fn append_entry(&self, entry: &LedgerEntry) -> Result<bool, StoreError> {
        let body = serde_json::to_string(entry)
            .map_err(|e| corrupt("ledger entry", &entry.event_id, e))?;
        // Checks come before the writes, which fail only on I/O: no savepoint.
        let n = self.store.write_unguarded(|c| c
            .prepare_cached("INSERT OR IGNORE INTO ledger (event_id, provider_id, currency, pending, available, paid_out, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)").and_then(|mut st| st.execute(params![
                    entry.event_id,
                    entry.provider_id,
                    entry.currency.code(),
                    entry.pending_delta,
                    entry.available_delta,
                    entry.paid_out_delta,
                    body
                ])).map_err(unavailable), unavailable)?;
        Ok(n == 1)
    }
    async fn balance(
        &self,
        provider_id: &str,
        currency: Currency,
    ) -> Result<LedgerBalance, StoreError> {
        let c = self.store.lock();
        c.prepare_cached("SELECT COALESCE(SUM(pending), 0), COALESCE(SUM(available), 0), COALESCE(SUM(paid_out), 0)
             FROM ledger WHERE provider_id = ?1 AND currency = ?2").and_then(|mut st| st.query_row(params![provider_id, currency.code()],
            |r| {
                Ok(LedgerBalance {
                    pending: r.get(0)?,
                    available: r.get(1)?,
                    paid_out: r.get(2)?,
                })
            }))
        .map_err(unavailable)
    }
    async fn list_entries(&self, provider_id: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        let c = self.store.lock();
        let mut st = c
            .prepare_cached("SELECT event_id, body FROM ledger WHERE provider_id = ?1 ORDER BY seq")
            .map_err(unavailable)?;
        let rows = st
            .query_map([provider_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(unavailable)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, body) = row.map_err(unavailable)?;
            out.push(serde_json::from_str(&body).map_err(|e| corrupt("ledger entry", &id, e))?);
        }
        Ok(out)
    }
}

#[async_trait]
impl UserDirectory for SqlitePorts {
    async fn get_user(&self, user_id: &str) -> Result<Option<UserContact>, StoreError> {
        Ok(self.get::<UserContact>("user", user_id)?.map(|v| v.value))
    }
    async fn group_members(&self, group: &str) -> Result<Vec<UserContact>, StoreError> {
        let ids: Vec<String> = {
            let c = self.store.lock();
            let mut st = c
                .prepare_cached(
                    "SELECT user_id FROM user_groups WHERE group_name = ?1 ORDER BY user_id",
                )
                .map_err(unavailable)?;
            let rows = st.query_map([group], |r| r.get(0)).map_err(unavailable)?;
            rows.collect::<Result<_, _>>().map_err(unavailable)?
        };
        let mut out = Vec::new();
        for id in ids {
            if let Some(u) = self.get::<UserContact>("user", &id)? {
                out.push(u.value);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl IdempotencyStore for SqlitePorts {
    async fn put_in_progress(
        &self,
        record: &IdempotencyRecord,
        now_ms: i64,
    ) -> Result<(), IdempotencyPutError> {
        let body = serde_json::to_string(record)
            .map_err(|e| corrupt("idempotency record", &record.id, e))?;
        let rows = self.store.rows();
        // Checks come before the writes, which fail only on I/O: no savepoint.
        self.store.write_unguarded(
            |tx| {
                let set = |rows: &RowCache| {
                    rows.set(
                        IDEMPOTENCY,
                        &record.id,
                        Row::Present {
                            version: 0,
                            body: Arc::from(body.as_str()),
                        },
                    )
                };
                // A key not known to exist is inserted first (one statement when new).
                if !matches!(rows.get(IDEMPOTENCY, &record.id), Some(Row::Present { .. })) {
                    let n = tx
                        .prepare_cached(
                            "INSERT INTO idempotency (key, body) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
                        )
                        .and_then(|mut st| st.execute(params![record.id, body]))
                        .map_err(unavailable)?;
                    if n == 1 {
                        set(rows);
                        return Ok(());
                    }
                }
                if let Row::Present { body: e, .. } = self.idempotency_row(tx, &record.id)? {
                    let e: IdempotencyRecord = serde_json::from_str(&e)
                        .map_err(|err| corrupt("idempotency record", &record.id, err))?;
                    if e.blocks(now_ms) {
                        return Err(IdempotencyPutError::AlreadyExists(Box::new(e)));
                    }
                }
                tx.prepare_cached("INSERT INTO idempotency (key, body) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET body = excluded.body")
                    .and_then(|mut st| st.execute(params![record.id, body]))
                    .map_err(unavailable)?;
                set(rows);
                Ok(())
            },
            |e| unavailable(e).into(),
        )
    }
    async fn complete(
        &self,
        id: &str,
        response: &Value,
        expiration: i64,
    ) -> Result<(), StoreError> {
        let rows = self.store.rows();
        // The new body is made from the known row outside the lock; the write checks that
        // the row is still that one (else it is made again under the lock).
        let known = match rows.get(IDEMPOTENCY, id) {
            Some(Row::Present { body, .. }) => Some(body),
            _ => None,
        };
        let completed = |e: &str| -> Result<String, StoreError> {
            let mut r: IdempotencyRecord =
                serde_json::from_str(e).map_err(|err| corrupt("idempotency record", id, err))?;
            r.status = IdempotencyStatus::Completed;
            r.response = Some(response.clone());
            r.expiration = expiration;
            serde_json::to_string(&r).map_err(|err| corrupt("idempotency record", id, err))
        };
        let made = known
            .as_ref()
            .map(|k| completed(k).map(|b| (k.clone(), b)))
            .transpose()?;
        // Checks come before the writes, which fail only on I/O: no savepoint.
        self.store.write_unguarded(
            |tx| {
                let Row::Present { body: current, .. } = self.idempotency_row(tx, id)? else {
                    return Err(StoreError::NotFound {
                        entity: "idempotency record",
                        id: id.to_string(),
                    });
                };
                let body = match made {
                    Some((from, body)) if Arc::ptr_eq(&from, &current) => body,
                    _ => completed(&current)?,
                };
                tx.prepare_cached("UPDATE idempotency SET body = ?2 WHERE key = ?1")
                    .and_then(|mut st| st.execute(params![id, body]))
                    .map_err(unavailable)?;
                rows.set(
                    IDEMPOTENCY,
                    id,
                    Row::Present {
                        version: 0,
                        body: Arc::from(body),
                    },
                );
                Ok(())
            },
            unavailable,
        )
    }
    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        let rows = self.store.rows();
        // Checks come before the writes, which fail only on I/O: no savepoint.
        self.store.write_unguarded(
            |c| {
                c.prepare_cached("DELETE FROM idempotency WHERE key = ?1")
                    .and_then(|mut st| st.execute([id]))
                    .map_err(unavailable)?;
                rows.set(IDEMPOTENCY, id, Row::Absent);
                Ok(())
            },
            unavailable,
        )
    }
    async fn get(&self, id: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row = match self.store.rows().get(IDEMPOTENCY, id) {
            Some(row) => row,
            None => {
                let c = self.store.lock();
                self.idempotency_row(&c, id)?
            }
        };
        match row {
            Row::Absent => Ok(None),
            Row::Present { body, .. } => serde_json::from_str(&body)
                .map(Some)
                .map_err(|e| corrupt("idempotency record", id, e)),
        }
    }
}

/// The row cache's name of the idempotency table.
const IDEMPOTENCY: &str = "idempotency";

impl SqlitePorts {
    /// A row as the locked connection `c` reads it: from the row cache, else read with `sql`
    /// (selecting its version and body) and cached while `c` is still locked.
    fn row(
        &self,
        c: &rusqlite::Connection,
        table: &'static str,
        key: &str,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<Row, StoreError> {
        let rows = self.store.rows();
        if let Some(row) = rows.get(table, key) {
            return Ok(row);
        }
        let row = c
            .prepare_cached(sql)
            .and_then(|mut st| {
                st.query_row(p, |r| {
                    Ok(Row::Present {
                        version: r.get(0)?,
                        body: Arc::from(r.get_ref(1)?.as_str()?),
                    })
                })
            })
            .optional()
            .map_err(unavailable)?
            .unwrap_or(Row::Absent);
        rows.set(table, key, row.clone());
        Ok(row)
    }

    /// An idempotency row as the locked connection `c` reads it (see [`Self::row`]).
    fn idempotency_row(&self, c: &rusqlite::Connection, id: &str) -> Result<Row, StoreError> {
        self.row(
            c,
            IDEMPOTENCY,
            id,
            "SELECT 0, body FROM idempotency WHERE key = ?1",
            [id],
        )
    }
}

#[async_trait]
impl Notifier for SqlitePorts {
    /// Writes the message to the outbox once per idempotency key; returns its outbox id.
    async fn send_email(&self, message: &EmailMessage) -> Result<String, NotifyError> {
        if message.to.is_empty() {
            return Err(NotifyError::Rejected(
                "to: at least one recipient is required".into(),
            ));
        }
        let to =
            serde_json::to_string(&message.to).map_err(|e| NotifyError::Rejected(e.to_string()))?;
        // Checks come before the writes, which fail only on I/O: no savepoint.
        let id: i64 = self.store.write_unguarded(|c| -> Result<i64, NotifyError> {
            let run = || -> rusqlite::Result<i64> {
                let n = c
                    .prepare_cached(
                        "INSERT OR IGNORE INTO outbox (key, recipients, subject, body, template, correlation_id, created_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )
                    .and_then(|mut st| {
                        st.execute(params![
                            message.idempotency_key,
                            to,
                            message.subject,
                            message.text_body,
                            message.template,
                            message.correlation_id,
                            self.clock.now_ms()
                        ])
                    })?;
                if n == 1 {
                    return Ok(c.last_insert_rowid());
                }
                // Sent before under this key: its id.
                c.prepare_cached("SELECT id FROM outbox WHERE key = ?1")
                    .and_then(|mut st| st.query_row([&message.idempotency_key], |r| r.get(0)))
            };
            run().map_err(|e| NotifyError::Unavailable(e.to_string()))
        }, |e| NotifyError::Unavailable(e.to_string()))?;
        Ok(format!("outbox-{id}"))
    }
}

/// The event publisher port on the local bus.
#[derive(Debug, Clone)]
pub struct BusPublisher {
    bus: Arc<Bus>,
}

impl BusPublisher {
    /// A publisher on `bus`.
    pub fn new(bus: Arc<Bus>) -> Self {
        BusPublisher { bus }
    }
}

#[async_trait]
impl EventPublisher for BusPublisher {
    async fn put_events(
        &self,
        entries: &[PutEventsEntry],
    ) -> Result<Vec<PutEventsResultEntry>, PublishError> {
        if entries.is_empty() || entries.len() > MAX_ENTRIES_PER_CALL {
            return Err(PublishError::Invalid(format!(
                "entries: between 1 and {MAX_ENTRIES_PER_CALL} entries are allowed (got {})",
                entries.len()
            )));
        }
        let put: Vec<PutEntry> = entries
            .iter()
            .map(|e| PutEntry {
                source: Some(e.source.clone()),
                detail_type: Some(e.detail_type.clone()),
                detail: Some(e.detail.clone()),
                resources: e.resources.clone(),
                time: e.time.map(crate::util::rfc3339_secs),
                event_bus_name: e.event_bus_name.clone(),
                trace_header: None,
            })
            .collect();
        let out = self.bus.put_events(&put).map_err(|e| match e {
            crate::bus::BusError::Store(s) => PublishError::Unavailable(s.to_string()),
            other => PublishError::Invalid(other.to_string()),
        })?;
        Ok(out
            .entries
            .into_iter()
            .map(|r| PutEventsResultEntry {
                event_id: r.event_id,
                error_code: r.error_code,
                error_message: r.error_message,
            })
            .collect())
    }
}

/// The workflow client port on the local workflow host.
#[derive(Debug, Clone)]
pub struct HostWorkflowClient {
    host: Arc<Workflows>,
}

impl HostWorkflowClient {
    /// A client of `host`.
    pub fn new(host: Arc<Workflows>) -> Self {
        HostWorkflowClient { host }
    }
}

fn map_host(e: HostError) -> WorkflowError {
    match e {
        HostError::ExecutionDoesNotExist(a) => WorkflowError::ExecutionDoesNotExist(a),
        HostError::ExecutionAlreadyExists(a) => WorkflowError::ExecutionAlreadyExists(a),
        HostError::StateMachineDoesNotExist(a) => WorkflowError::StateMachineDoesNotExist(a),
        HostError::TaskDoesNotExist(t) => WorkflowError::TaskDoesNotExist(t),
        HostError::InvalidArgument(m) if m.starts_with("Invalid Name") => {
            WorkflowError::InvalidName(m)
        }
        HostError::InvalidArgument(m) if m.starts_with("input") => {
            WorkflowError::InvalidExecutionInput(m)
        }
        HostError::InvalidArgument(m) => WorkflowError::InvalidToken(m),
        other => WorkflowError::Unavailable(other.to_string()),
    }
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn status_of(s: &str) -> ExecutionStatus {
    serde_json::from_value(Value::String(s.to_string())).unwrap_or(ExecutionStatus::Running)
}

impl HostWorkflowClient {
    fn check_arn(arn: &str) -> Result<(), WorkflowError> {
        parse_execution_arn(arn)
            .map(|_| ())
            .ok_or_else(|| WorkflowError::InvalidArn(format!("'{arn}' is not an execution ARN")))
    }
}

#[async_trait]
impl WorkflowClient for HostWorkflowClient {
    fn state_machine_arn(&self, workflow_type: WorkflowType) -> String {
        format!(
            "arn:aws:states:{}:{}:stateMachine:{}",
            crate::REGION,
            crate::ACCOUNT,
            workflow_type.state_machine_name()
        )
    }

    async fn start_execution(
        &self,
        workflow_type: WorkflowType,
        name: &str,
        input: &str,
    ) -> Result<StartedExecution, WorkflowError> {
        let input: Value = serde_json::from_str(input).map_err(|e| {
            WorkflowError::InvalidExecutionInput(format!("input: not valid JSON: {e}"))
        })?;
        let s = self
            .host
            .start(workflow_type.state_machine_name(), Some(name), input, None)
            .map_err(map_host)?;
        Ok(StartedExecution {
            execution_arn: s.execution_arn,
            start_date: parse_time(&s.start_date),
        })
    }

    async fn describe_execution(
        &self,
        execution_arn: &str,
    ) -> Result<ExecutionDescription, WorkflowError> {
        Self::check_arn(execution_arn)?;
        let d = self.host.describe(execution_arn).map_err(map_host)?;
        Ok(ExecutionDescription {
            execution_arn: d.execution_arn,
            state_machine_arn: d.state_machine_arn,
            name: d.name,
            status: status_of(&d.status),
            workflow_type: WorkflowType::from_state_machine_name(&d.state_machine),
            input: Some(d.input.to_string()),
            output: d.output.map(|o| o.to_string()),
            start_date: parse_time(&d.start_date),
            stop_date: d.stop_date.as_deref().map(parse_time),
            error: d.error,
            cause: d.cause,
        })
    }

    async fn stop_execution(
        &self,
        execution_arn: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<DateTime<Utc>, WorkflowError> {
        Self::check_arn(execution_arn)?;
        let d = self
            .host
            .stop(
                execution_arn,
                error.map(str::to_string),
                cause.map(str::to_string),
            )
            .map_err(map_host)?;
        Ok(d.stop_date.as_deref().map(parse_time).unwrap_or_default())
    }

    async fn send_task_success(&self, task_token: &str, output: &str) -> Result<(), WorkflowError> {
        let output: Value = serde_json::from_str(output)
            .map_err(|e| WorkflowError::InvalidOutput(format!("output: not valid JSON: {e}")))?;
        self.host
            .send_task_success(task_token, output)
            .map_err(map_host)
    }

    async fn send_task_failure(
        &self,
        task_token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), WorkflowError> {
        self.host
            .send_task_failure(task_token, Some(error.to_string()), Some(cause.to_string()))
            .map_err(map_host)
    }

    async fn send_task_heartbeat(&self, task_token: &str) -> Result<(), WorkflowError> {
        self.host.send_task_heartbeat(task_token).map_err(map_host)
    }

    async fn get_execution_history(
        &self,
        execution_arn: &str,
        max_results: u32,
        next_token: Option<&str>,
        reverse_order: bool,
    ) -> Result<HistoryPage, WorkflowError> {
        Self::check_arn(execution_arn)?;
        let mut h = self.host.history(execution_arn).map_err(map_host)?;
        if reverse_order {
            h.reverse();
        }
        let offset = match next_token {
            None => 0,
            Some(t) => t.parse::<usize>().map_err(|_| {
                WorkflowError::InvalidToken(format!("nextToken '{t}' is not valid"))
            })?,
        };
        let limit = (max_results.clamp(1, 1000)) as usize;
        let total = h.len();
        let events = h
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|e| HistoryEvent {
                id: e["id"].as_i64().unwrap_or(0),
                previous_event_id: e["previousEventId"].as_i64(),
                event_type: e["type"].as_str().unwrap_or_default().to_string(),
                timestamp: parse_time(e["timestamp"].as_str().unwrap_or_default()),
                details: e.as_object().and_then(|o| {
                    o.iter()
                        .find(|(k, _)| k.ends_with("EventDetails"))
                        .map(|(_, v)| v.clone())
                }),
            })
            .collect();
        Ok(HistoryPage {
            events,
            next_token: (offset + limit < total).then(|| (offset + limit).to_string()),
        })
    }

    async fn list_executions(
        &self,
        request: &ListExecutionsRequest,
    ) -> Result<ExecutionPage, WorkflowError> {
        let offset = match &request.next_token {
            None => 0,
            Some(t) => t.parse::<usize>().map_err(|_| {
                WorkflowError::InvalidToken(format!("nextToken '{t}' is not valid"))
            })?,
        };
        let limit = request.max_results.clamp(1, 1000) as usize;
        let status = request.status.map(|s| {
            serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        });
        let mut rows = self
            .host
            .list(
                request.workflow_type.map(|w| w.state_machine_name()),
                status.as_deref(),
                limit + 1,
                offset,
            )
            .map_err(map_host)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        Ok(ExecutionPage {
            executions: rows
                .into_iter()
                .map(|r| ExecutionSummary {
                    state_machine_arn: format!(
                        "arn:aws:states:{}:{}:stateMachine:{}",
                        crate::REGION,
                        crate::ACCOUNT,
                        r.state_machine
                    ),
                    workflow_type: WorkflowType::from_state_machine_name(&r.state_machine),
                    execution_arn: r.execution_arn,
                    name: r.name,
                    status: status_of(&r.status),
                    start_date: parse_time(&r.start_date),
                    stop_date: r.stop_date.as_deref().map(parse_time),
                })
                .collect(),
            next_token: more.then(|| (offset + limit).to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(id: &str, status: &str) -> PaymentRecord {
        PaymentRecord {
            status: status.into(),
            ..marketplace_ports::fixtures::payment_record(id, "bk_1")
        }
    }

    #[test]
    fn cached_rows_are_what_the_database_holds() {
        use crate::handlers::block_on;
        let dir = std::env::temp_dir().join(format!(
            "mkt-rowcache-{}-{}",
            std::process::id(),
            crate::util::random_hex(4)
        ));
        let store = Arc::new(Store::open_dir(&dir).expect("store"));
        let ports = SqlitePorts::new(store.clone());
        let other = SqlitePorts::new(store.clone());
        fn run<T>(f: impl std::future::Future<Output = T>) -> T {
            block_on(f).expect("executor")
        }
        assert!(run(ports.get_payment("pi_1")).expect("read").is_none());
        // Created although the cache had seen it absent.
        assert_eq!(
            run(ports.put_payment(&payment("pi_1", "requires_payment_method"), None))
                .expect("create"),
            1
        );
        // A second create is refused, an update at the right version accepted, a stale one refused.
        assert!(matches!(
            run(other.put_payment(&payment("pi_1", "x"), None)),
            Err(StoreError::ConditionFailed { .. })
        ));
        assert_eq!(
            run(other.put_payment(&payment("pi_1", "succeeded"), Some(1))).expect("update"),
            2
        );
        assert!(matches!(
            run(ports.put_payment(&payment("pi_1", "failed"), Some(1))),
            Err(StoreError::ConditionFailed { .. })
        ));
        let seen = run(ports.get_payment("pi_1"))
            .expect("read")
            .expect("exists");
        assert_eq!((seen.version, seen.value.status.as_str()), (2, "succeeded"));
        // Idempotency records: in progress, completed, deleted.
        let rec = IdempotencyRecord {
            id: "k".into(),
            status: IdempotencyStatus::InProgress,
            expiration: 10_000,
            in_progress_expiration: Some(5_000),
            response: None,
            payload_hash: Some("h".into()),
        };
        run(ports.put_in_progress(&rec, 1_000)).expect("put");
        assert!(matches!(
            run(other.put_in_progress(&rec, 1_000)),
            Err(IdempotencyPutError::AlreadyExists(_))
        ));
        run(other.complete("k", &serde_json::json!({"ok": true}), 20_000)).expect("complete");
        let done = run(IdempotencyStore::get(&ports, "k"))
            .expect("get")
            .expect("exists");
        assert_eq!(done.status, IdempotencyStatus::Completed);
        assert_eq!(done.response, Some(serde_json::json!({"ok": true})));
        // The database says the same as the cache, for a process that starts afresh.
        store.sync().expect("sync");
        drop((ports, other));
        drop(store);
        let store = Arc::new(Store::open_dir(&dir).expect("reopen"));
        assert!(store.rows().is_empty());
        let ports = SqlitePorts::new(store.clone());
        let seen = run(ports.get_payment("pi_1"))
            .expect("read")
            .expect("exists");
        assert_eq!((seen.version, seen.value.status.as_str()), (2, "succeeded"));
        let done = run(IdempotencyStore::get(&ports, "k"))
            .expect("get")
            .expect("exists");
        assert_eq!(done.expiration, 20_000);
        run(IdempotencyStore::delete(&ports, "k")).expect("delete");
        assert!(run(IdempotencyStore::get(&ports, "k"))
            .expect("get")
            .is_none());
        drop(ports);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_outbox_is_stamped_with_the_runtime_clock() {
        let dir = std::env::temp_dir().join(format!(
            "mkt-outbox-{}-{}",
            std::process::id(),
            crate::util::random_hex(4)
        ));
        let store = Arc::new(Store::open_dir(&dir).expect("store"));
        let t0 = chrono::DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z")
            .expect("t0")
            .with_timezone(&Utc);
        let clock =
            Arc::new(crate::clock::RuntimeClock::virtual_from(store.clone(), t0).expect("clock"));
        let ports = SqlitePorts::with_clock(store.clone(), clock.clone());
        let msg = EmailMessage {
            to: vec!["a@example.com".into()],
            subject: "s".into(),
            text_body: "b".into(),
            html_body: None,
            idempotency_key: "k1".into(),
            template: "T".into(),
            correlation_id: None,
        };
        crate::handlers::block_on(ports.send_email(&msg))
            .expect("executor")
            .expect("sent");
        clock.advance(3600).expect("advance");
        let again = EmailMessage {
            idempotency_key: "k2".into(),
            ..msg
        };
        crate::handlers::block_on(ports.send_email(&again))
            .expect("executor")
            .expect("sent");
        let out = ports.outbox().expect("outbox");
        assert_eq!(out[0].created_at, "2030-01-02T03:04:05.000Z");
        assert_eq!(out[1].created_at, "2030-01-02T04:04:05.000Z");
        drop(ports);
        drop(clock);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
