//! DynamoDB repositories and the idempotency store.
//!
//! Item layout (every table keyed as in `infra/lib/tables.ts`): the key attributes and
//! the GSI attributes at the top level (absent, never NULL, when the record has no
//! value, so the item stays out of a sparse index), `version` (a number, incremented by
//! every write: the condition of every update) and `record`, the whole port record as a
//! map (serde_dynamo).
//!
//! - Slot reservation: one `TransactWriteItems` of the booking (`attribute_not_exists`)
//!   and one item per 15-minute slot in the slots table (`attribute_not_exists`). Every
//!   slot item carries `expiresAt` (the table's TTL): the slot's end plus
//!   [`SLOT_EXPIRY_MARGIN_DAYS`], a backstop that removes claims of past slots (nothing can
//!   book a past slot, so this never frees a slot anyone can still take).
//! - Bookings of more than 99 slots (DynamoDB takes at most 100 actions per transaction):
//!   the claims are written in chunks first, each claim conditional on being free or
//!   already this booking's, and the last transaction writes the booking with the last
//!   chunk. A chunk that meets another booking's claim (or any failure before the
//!   booking is written) deletes the claims this call wrote (compensation, conditional on
//!   still being ours) and fails as the single transaction would. A booking therefore
//!   exists only with all its claims; a crash between chunks leaves claims without a
//!   booking, which a retry of the same booking takes over and `expiresAt` removes at the
//!   latest after the slots' end. Releasing the slots of such a booking deletes the first
//!   99 claims with the booking update and the rest in chunks after it.
//! - One open dispute per booking: the dispute and a lock item `OPEN#<bookingId>` in the
//!   disputes table, written in one transaction; closing the dispute deletes the lock.
//! - Ledger de-duplication: a marker item `EVENT#<eventId>` and the entry
//!   `ENTRY#<at>#<eventId>` in one transaction; the marker's condition refuses a redelivery.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Delete, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use marketplace_domain::entities::Service;
use marketplace_domain::Currency;
use marketplace_ports::idempotency_store::{
    IdempotencyPutError, IdempotencyRecord, IdempotencyStatus, IdempotencyStore,
};
use marketplace_ports::store::*;
use marketplace_ports::StoreError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

use crate::settings::TableNames;

type Item = HashMap<String, AttributeValue>;

/// Most actions DynamoDB takes in one `TransactWriteItems`.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// Days after a slot's end at which DynamoDB's TTL may delete its claim (`expiresAt`).
pub const SLOT_EXPIRY_MARGIN_DAYS: i64 = 7;
/// Most slots one booking may claim: 14 days of quarter hours.
pub const MAX_SLOTS_PER_BOOKING: usize = 14 * 24 * 4;

/// The `expiresAt` (epoch seconds) of the claim of the slot starting at `slot`.
pub fn slot_expires_at(slot: DateTime<Utc>) -> i64 {
    (slot
        + chrono::Duration::minutes(SLOT_MINUTES)
        + chrono::Duration::days(SLOT_EXPIRY_MARGIN_DAYS))
    .timestamp()
}
/// Most result pages one query reads before giving up (bounded loops).
const MAX_PAGES: usize = 1_000;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Fixed-width RFC 3339 (microseconds, `Z`): sorts lexicographically in time order.
pub fn sort_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn unavailable<E, R>(operation: &str, e: &SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().unwrap_or("Unknown");
    let message = e
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| e.to_string());
    StoreError::Unavailable(format!("DynamoDB {operation}: {code}: {message}"))
}

fn is_condition_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

fn to_av<T: Serialize>(
    entity: &'static str,
    id: &str,
    value: &T,
) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(value).map_err(|e| StoreError::Corrupt {
        entity,
        id: id.to_owned(),
        reason: format!("cannot be written as a DynamoDB item: {e}"),
    })
}

fn from_item<T: DeserializeOwned>(
    entity: &'static str,
    key: &str,
    item: &Item,
) -> Result<T, StoreError> {
    let id = item
        .get(key)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default();
    let record = item.get("record").ok_or_else(|| StoreError::Corrupt {
        entity,
        id: id.clone(),
        reason: "attribute record is missing".into(),
    })?;
    serde_dynamo::from_attribute_value(record.clone()).map_err(|e| StoreError::Corrupt {
        entity,
        id,
        reason: format!("attribute record: {e}"),
    })
}

fn version_of(entity: &'static str, id: &str, item: &Item) -> Result<u64, StoreError> {
    item.get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Corrupt {
            entity,
            id: id.to_owned(),
            reason: "attribute version is missing or not a whole number".into(),
        })
}

fn versioned<T: DeserializeOwned>(
    entity: &'static str,
    key: &str,
    item: &Item,
) -> Result<Versioned<T>, StoreError> {
    let value = from_item(entity, key, item)?;
    let id = item
        .get(key)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default();
    Ok(Versioned {
        value,
        version: version_of(entity, &id, item)?,
    })
}

/// The codes of a cancelled transaction's reasons, in action order (empty when the
/// endpoint gave none).
fn cancellation_codes(reasons: &[CancellationReason]) -> Vec<Option<String>> {
    reasons
        .iter()
        .map(|r| r.code().map(str::to_owned))
        .collect()
}

/// The repositories on DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
}

enum TxOutcome {
    Written,
    /// Cancelled: the codes per action (may be empty).
    Cancelled(Vec<Option<String>>, String),
}

impl DynamoStore {
    /// A store over `tables`.
    pub fn new(client: Client, tables: TableNames) -> Self {
        Self { client, tables }
    }

    async fn get_item(&self, table: &str, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &e))?;
        Ok(out.item)
    }

    async fn get_by_id<T: DeserializeOwned>(
        &self,
        entity: &'static str,
        table: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        match self
            .get_item(table, HashMap::from([(key.to_owned(), s(id))]))
            .await?
        {
            Some(item) => Ok(Some(versioned(entity, key, &item)?)),
            None => Ok(None),
        }
    }

    /// A put conditional on absence (`expected` None) or on the stored version.
    fn versioned_put(
        &self,
        table: &str,
        key: &str,
        mut item: Item,
        expected: Option<u64>,
    ) -> Result<(Put, u64), StoreError> {
        let version = expected.map_or(1, |v| v + 1);
        item.insert("version".into(), n(version));
        let mut put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .expression_attribute_names("#k", key);
        put = match expected {
            None => put.condition_expression("attribute_not_exists(#k)"),
            Some(v) => put
                .condition_expression("attribute_exists(#k) AND version = :v")
                .expression_attribute_values(":v", n(v)),
        };
        let put = put
            .build()
            .map_err(|e| StoreError::Unavailable(format!("DynamoDB Put: {e}")))?;
        Ok((put, version))
    }

    /// Runs a single versioned put; a failed condition becomes `ConditionFailed`, or
    /// `NotFound` when an update finds no item.
    async fn put_single(
        &self,
        entity: &'static str,
        table: &str,
        key: &str,
        id: &str,
        item: Item,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let (put, version) = self.versioned_put(table, key, item, expected)?;
        let result = self
            .client
            .put_item()
            .table_name(put.table_name())
            .set_item(Some(put.item().clone()))
            .set_condition_expression(put.condition_expression().map(str::to_owned))
            .set_expression_attribute_names(put.expression_attribute_names().cloned())
            .set_expression_attribute_values(put.expression_attribute_values().cloned())
            .send()
            .await;
        match result {
            Ok(_) => Ok(version),
            Err(e) if is_condition_failed(&e) => {
                self.condition_error(entity, table, key, id, expected).await
            }
            Err(e) => Err(unavailable("PutItem", &e)),
        }
    }

    async fn condition_error(
        &self,
        entity: &'static str,
        table: &str,
        key: &str,
        id: &str,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        match expected {
            None => Err(StoreError::ConditionFailed {
                entity,
                id: id.to_owned(),
                reason: "it already exists".into(),
            }),
            Some(v) => {
                if self
                    .get_item(table, HashMap::from([(key.to_owned(), s(id))]))
                    .await?
                    .is_none()
                {
                    Err(StoreError::NotFound {
                        entity,
                        id: id.to_owned(),
                    })
                } else {
                    Err(StoreError::ConditionFailed {
                        entity,
                        id: id.to_owned(),
                        reason: format!("the stored version is no longer {v}"),
                    })
                }
            }
        }
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<TxOutcome, StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(TxOutcome::Written),
            Err(e) => {
                let text = e.message().map(str::to_owned).unwrap_or_default();
                match e.as_service_error() {
                    Some(se) if se.is_transaction_canceled_exception() => {
                        let codes = match se {
                            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => cancellation_codes(c.cancellation_reasons()),
                            _ => Vec::new(),
                        };
                        Ok(TxOutcome::Cancelled(codes, text))
                    }
                    _ => Err(unavailable("TransactWriteItems", &e)),
                }
            }
        }
    }

    /// Every `(entity, id attribute)` record whose `key` equals `value` on the GSI
    /// `index` of `table`, in index order (`forward`) or reverse.
    async fn query_index<T: DeserializeOwned>(
        &self,
        table: &str,
        (index, key, value): (&str, &str, &str),
        (entity, id_attr): (&'static str, &str),
        forward: bool,
    ) -> Result<Vec<T>, StoreError> {
        let condition = format!("{key} = :v");
        let items = self
            .query_all(
                table,
                Some(index),
                &condition,
                &[],
                vec![(":v", s(value))],
                forward,
            )
            .await?;
        items
            .iter()
            .map(|i| from_item(entity, id_attr, i))
            .collect()
    }

    async fn query_all(
        &self,
        table: &str,
        index: Option<&str>,
        key_condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
        forward: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        for _ in 0..MAX_PAGES {
            let mut q = self
                .client
                .query()
                .table_name(table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(key_condition)
                .scan_index_forward(forward)
                .set_exclusive_start_key(start.take());
            for (k, v) in names {
                q = q.expression_attribute_names(*k, *v);
            }
            for (k, v) in &values {
                q = q.expression_attribute_values(*k, v.clone());
            }
            let page = q.send().await.map_err(|e| unavailable("Query", &e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
        Err(StoreError::Unavailable(format!(
            "DynamoDB Query on {table}: more than {MAX_PAGES} pages"
        )))
    }

    fn booking_item(&self, record: &BookingRecord) -> Result<Item, StoreError> {
        let id = record.booking.id().to_string();
        Ok(HashMap::from([
            ("bookingId".into(), s(&id)),
            (
                "customerId".into(),
                s(record.booking.customer_id().to_string()),
            ),
            (
                "providerId".into(),
                s(record.booking.provider_id().to_string()),
            ),
            (
                "startDateTime".into(),
                s(sort_time(record.booking.start_date_time())),
            ),
            ("status".into(), s(record.booking.status().to_string())),
            ("record".into(), to_av("booking", &id, record)?),
        ]))
    }

    fn slot_key(provider: &str, slot: DateTime<Utc>) -> Item {
        HashMap::from([
            ("providerId".into(), s(provider)),
            ("slotStart".into(), s(sort_time(slot))),
        ])
    }

    fn booking_slots(record: &BookingRecord) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let slots = slot_starts(
            record.booking.start_date_time(),
            record.booking.end_date_time(),
        );
        if slots.len() > MAX_SLOTS_PER_BOOKING {
            return Err(StoreError::ConditionFailed {
                entity: "booking",
                id: record.booking.id().to_string(),
                reason: format!(
                    "a reservation claims {} quarter-hour slots; at most {MAX_SLOTS_PER_BOOKING} (14 days)",
                    slots.len()
                ),
            });
        }
        Ok(slots)
    }

    /// The claim of `slot` by booking `id`: free or already this booking's (a retried
    /// chunked reservation takes its own claims over).
    fn slot_claim(&self, provider: &str, id: &str, slot: DateTime<Utc>) -> Result<Put, StoreError> {
        let mut item = Self::slot_key(provider, slot);
        item.insert("bookingId".into(), s(id));
        item.insert("expiresAt".into(), n(slot_expires_at(slot)));
        Put::builder()
            .table_name(&self.tables.slots)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(slotStart) OR bookingId = :b")
            .expression_attribute_values(":b", s(id))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| build_err("Put", e))
    }

    /// Deletes the claims of `slots` still held by booking `id`, at most 100 per
    /// transaction; a claim that is no longer ours is left alone.
    async fn delete_claims(
        &self,
        provider: &str,
        id: &str,
        slots: &[DateTime<Utc>],
    ) -> Result<(), StoreError> {
        for chunk in slots.chunks(MAX_TRANSACTION_ITEMS) {
            let mut actions = Vec::with_capacity(chunk.len());
            for slot in chunk {
                actions.push(
                    TransactWriteItem::builder()
                        .delete(self.claim_delete(provider, id, *slot)?)
                        .build(),
                );
            }
            if let TxOutcome::Cancelled(..) = self.transact(actions).await? {
                // one claim changed hands (or the transaction conflicted): one at a time
                for slot in chunk {
                    let result = self
                        .client
                        .delete_item()
                        .table_name(&self.tables.slots)
                        .set_key(Some(Self::slot_key(provider, *slot)))
                        .condition_expression("bookingId = :b")
                        .expression_attribute_values(":b", s(id))
                        .send()
                        .await;
                    match result {
                        Ok(_) => {}
                        Err(e) if is_condition_failed(&e) => {}
                        Err(e) => return Err(unavailable("DeleteItem", &e)),
                    }
                }
            }
        }
        Ok(())
    }

    fn claim_delete(
        &self,
        provider: &str,
        id: &str,
        slot: DateTime<Utc>,
    ) -> Result<Delete, StoreError> {
        Delete::builder()
            .table_name(&self.tables.slots)
            .set_key(Some(Self::slot_key(provider, slot)))
            .condition_expression("bookingId = :b")
            .expression_attribute_values(":b", s(id))
            .build()
            .map_err(|e| build_err("Delete", e))
    }

    /// What a cancelled reservation transaction means: the booking exists, a slot is
    /// another booking's (`SlotUnavailable`), or a transient failure.
    async fn reservation_refused(
        &self,
        id: String,
        provider: String,
        slots: &[DateTime<Utc>],
        codes: &[Option<String>],
        text: &str,
        booking_action: Option<usize>,
    ) -> StoreError {
        let failed =
            |i: usize| codes.get(i).and_then(|c| c.as_deref()) == Some("ConditionalCheckFailed");
        let booking_exists = match booking_action {
            Some(i) if !codes.is_empty() => failed(i),
            Some(_) => matches!(self.get_booking(&id).await, Ok(Some(_))),
            None => false,
        };
        if booking_exists {
            return StoreError::ConditionFailed {
                entity: "booking",
                id,
                reason: "it already exists".into(),
            };
        }
        let offset = usize::from(booking_action == Some(0));
        let candidates: Vec<DateTime<Utc>> = if codes.is_empty() {
            slots.to_vec()
        } else {
            slots
                .iter()
                .enumerate()
                .filter(|(i, _)| failed(i + offset))
                .map(|(_, s)| *s)
                .collect()
        };
        match self.find_holder(&provider, &candidates, &id).await {
            Ok(Some((slot, holder))) => StoreError::SlotUnavailable {
                provider_id: provider,
                slot_start: sort_time(slot),
                conflicting_booking_id: holder,
            },
            Ok(None) => StoreError::Unavailable(format!(
                "DynamoDB TransactWriteItems cancelled ({text}); retry"
            )),
            Err(e) => e,
        }
    }

    /// A reservation of more than 99 slots: the claims in chunks, then the booking with
    /// the last chunk; any failure before the booking is written deletes what this call
    /// claimed.
    async fn reserve_in_chunks(
        &self,
        record: &BookingRecord,
        slots: &[DateTime<Utc>],
    ) -> Result<u64, StoreError> {
        let id = record.booking.id().to_string();
        let provider = record.booking.provider_id().to_string();
        // the last transaction: the booking and the last 99 claims
        let split = slots.len().saturating_sub(MAX_TRANSACTION_ITEMS - 1);
        let (early, last) = slots.split_at(split);
        let mut claimed: Vec<DateTime<Utc>> = Vec::with_capacity(early.len());
        for chunk in early.chunks(MAX_TRANSACTION_ITEMS) {
            let mut actions = Vec::with_capacity(chunk.len());
            for slot in chunk {
                actions.push(
                    TransactWriteItem::builder()
                        .put(self.slot_claim(&provider, &id, *slot)?)
                        .build(),
                );
            }
            let outcome = match self.transact(actions).await {
                Ok(o) => o,
                Err(e) => {
                    self.delete_claims(&provider, &id, &claimed).await?;
                    return Err(e);
                }
            };
            match outcome {
                TxOutcome::Written => claimed.extend_from_slice(chunk),
                TxOutcome::Cancelled(codes, text) => {
                    self.delete_claims(&provider, &id, &claimed).await?;
                    return Err(self
                        .reservation_refused(id, provider, chunk, &codes, &text, None)
                        .await);
                }
            }
        }
        let (put, version) = self.versioned_put(
            &self.tables.bookings,
            "bookingId",
            self.booking_item(record)?,
            None,
        )?;
        let mut actions = vec![TransactWriteItem::builder().put(put).build()];
        for slot in last {
            actions.push(
                TransactWriteItem::builder()
                    .put(self.slot_claim(&provider, &id, *slot)?)
                    .build(),
            );
        }
        let outcome = match self.transact(actions).await {
            Ok(o) => o,
            Err(e) => {
                self.delete_claims(&provider, &id, &claimed).await?;
                return Err(e);
            }
        };
        match outcome {
            TxOutcome::Written => Ok(version),
            TxOutcome::Cancelled(codes, text) => {
                let refused = self
                    .reservation_refused(id.clone(), provider.clone(), last, &codes, &text, Some(0))
                    .await;
                // the claims belong to the booking that exists: keep them
                if !matches!(refused, StoreError::ConditionFailed { .. }) {
                    self.delete_claims(&provider, &id, &claimed).await?;
                }
                Err(refused)
            }
        }
    }

    /// The first of `slots` held by another booking: (slot, holder).
    async fn find_holder(
        &self,
        provider: &str,
        slots: &[DateTime<Utc>],
        own: &str,
    ) -> Result<Option<(DateTime<Utc>, String)>, StoreError> {
        for slot in slots {
            if let Some(item) = self
                .get_item(&self.tables.slots, Self::slot_key(provider, *slot))
                .await?
            {
                let holder = item
                    .get("bookingId")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                if holder != own {
                    return Ok(Some((*slot, holder)));
                }
            }
        }
        Ok(None)
    }

    fn dispute_item(record: &DisputeRecord) -> Result<Item, StoreError> {
        let id = record.dispute.id().to_string();
        let json = serde_json::to_value(record).unwrap_or(Value::Null);
        let created = json
            .pointer("/dispute/createdAt")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(record.resolution_deadline - chrono::Duration::days(7));
        Ok(HashMap::from([
            ("disputeId".into(), s(&id)),
            ("bookingId".into(), s(&record.booking_id)),
            ("customerId".into(), s(&record.customer_id)),
            ("providerId".into(), s(&record.provider_id)),
            ("status".into(), s(record.dispute.status().to_string())),
            ("createdAt".into(), s(sort_time(created))),
            ("record".into(), to_av("dispute", &id, record)?),
        ]))
    }

    fn dispute_lock_key(booking_id: &str) -> Item {
        HashMap::from([("disputeId".into(), s(format!("OPEN#{booking_id}")))])
    }
}

fn build_err(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("DynamoDB {what}: {e}"))
}

#[async_trait]
impl ServiceRepository for DynamoStore {
    async fn get_service(&self, id: &str) -> Result<Option<Service>, StoreError> {
        Ok(self
            .get_by_id::<Service>("service", &self.tables.services, "serviceId", id)
            .await?
            .map(|v| v.value))
    }

    async fn put_service(&self, service: &Service) -> Result<(), StoreError> {
        let id = service.id.to_string();
        let item = HashMap::from([
            ("serviceId".into(), s(&id)),
            ("providerId".into(), s(service.provider_id.to_string())),
            ("version".into(), n(1)),
            ("record".into(), to_av("service", &id, service)?),
        ]);
        self.client
            .put_item()
            .table_name(&self.tables.services)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable("PutItem", &e))?;
        Ok(())
    }

    async fn list_services_by_provider(
        &self,
        provider_id: &str,
    ) -> Result<Vec<Service>, StoreError> {
        self.query_index(
            &self.tables.services,
            ("byProvider", "providerId", provider_id),
            ("service", "serviceId"),
            true,
        )
        .await
    }
}

#[async_trait]
impl ProviderRepository for DynamoStore {
    async fn get_provider(
        &self,
        id: &str,
    ) -> Result<Option<Versioned<ProviderRecord>>, StoreError> {
        self.get_by_id("provider", &self.tables.providers, "providerId", id)
            .await
    }

    async fn put_provider(
        &self,
        record: &ProviderRecord,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let id = record.provider.id().to_string();
        let mut item = HashMap::from([
            ("providerId".into(), s(&id)),
            ("status".into(), s(record.provider.status().to_string())),
            ("record".into(), to_av("provider", &id, record)?),
        ]);
        if let Some(acct) = record.provider.stripe_account_id() {
            item.insert("stripeAccountId".into(), s(acct.as_str()));
        }
        self.put_single(
            "provider",
            &self.tables.providers,
            "providerId",
            &id,
            item,
            expected_version,
        )
        .await
    }

    async fn find_provider_by_account(
        &self,
        stripe_account_id: &str,
    ) -> Result<Option<Versioned<ProviderRecord>>, StoreError> {
        let items = self
            .query_all(
                &self.tables.providers,
                Some("byStripeAccount"),
                "stripeAccountId = :a",
                &[],
                vec![(":a", s(stripe_account_id))],
                true,
            )
            .await?;
        // the index is eventually consistent: read the item itself for the version
        match items
            .first()
            .and_then(|i| i.get("providerId"))
            .and_then(|v| v.as_s().ok())
        {
            Some(id) => self.get_provider(id).await,
            None => Ok(None),
        }
    }
}

#[async_trait]
impl BookingRepository for DynamoStore {
    async fn get_booking(&self, id: &str) -> Result<Option<Versioned<BookingRecord>>, StoreError> {
        self.get_by_id("booking", &self.tables.bookings, "bookingId", id)
            .await
    }

    async fn reserve_booking(&self, record: &BookingRecord) -> Result<u64, StoreError> {
        let id = record.booking.id().to_string();
        let provider = record.booking.provider_id().to_string();
        let slots = Self::booking_slots(record)?;
        if slots.len() + 1 > MAX_TRANSACTION_ITEMS {
            return self.reserve_in_chunks(record, &slots).await;
        }
        let (put, version) = self.versioned_put(
            &self.tables.bookings,
            "bookingId",
            self.booking_item(record)?,
            None,
        )?;
        let mut actions = vec![TransactWriteItem::builder().put(put).build()];
        for slot in &slots {
            let mut item = Self::slot_key(&provider, *slot);
            item.insert("bookingId".into(), s(&id));
            item.insert("expiresAt".into(), n(slot_expires_at(*slot)));
            let put = Put::builder()
                .table_name(&self.tables.slots)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(slotStart)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(|e| build_err("Put", e))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        match self.transact(actions).await? {
            TxOutcome::Written => Ok(version),
            TxOutcome::Cancelled(codes, text) => Err(self
                .reservation_refused(id, provider, &slots, &codes, &text, Some(0))
                .await),
        }
    }

    async fn update_booking(
        &self,
        record: &BookingRecord,
        expected_version: u64,
        release_slot: bool,
    ) -> Result<u64, StoreError> {
        let id = record.booking.id().to_string();
        if !release_slot {
            return self
                .put_single(
                    "booking",
                    &self.tables.bookings,
                    "bookingId",
                    &id,
                    self.booking_item(record)?,
                    Some(expected_version),
                )
                .await;
        }
        let provider = record.booking.provider_id().to_string();
        let slots = Self::booking_slots(record)?;
        // bounded: a slot changing hands between the read and the write cancels the
        // transaction; read again, at most three times
        for _ in 0..3 {
            let mut held = Vec::new();
            for slot in &slots {
                if let Some(item) = self
                    .get_item(&self.tables.slots, Self::slot_key(&provider, *slot))
                    .await?
                {
                    if item.get("bookingId").and_then(|v| v.as_s().ok()) == Some(&id) {
                        held.push(*slot);
                    }
                }
            }
            let (put, version) = self.versioned_put(
                &self.tables.bookings,
                "bookingId",
                self.booking_item(record)?,
                Some(expected_version),
            )?;
            // the booking with up to 99 deletes; a longer booking's other claims after it
            let (now, later) = held.split_at(held.len().min(MAX_TRANSACTION_ITEMS - 1));
            let mut actions = vec![TransactWriteItem::builder().put(put).build()];
            for slot in now {
                actions.push(
                    TransactWriteItem::builder()
                        .delete(self.claim_delete(&provider, &id, *slot)?)
                        .build(),
                );
            }
            match self.transact(actions).await? {
                TxOutcome::Written => {
                    self.delete_claims(&provider, &id, later).await?;
                    return Ok(version);
                }
                TxOutcome::Cancelled(codes, _) => {
                    let booking_failed = codes.is_empty()
                        || codes.first().and_then(|c| c.as_deref())
                            == Some("ConditionalCheckFailed");
                    if booking_failed {
                        let current = self.get_booking(&id).await?;
                        match current {
                            None => {
                                return Err(StoreError::NotFound {
                                    entity: "booking",
                                    id,
                                })
                            }
                            Some(c) if c.version != expected_version => {
                                return Err(StoreError::ConditionFailed {
                                    entity: "booking",
                                    id,
                                    reason: format!(
                                        "the stored version is no longer {expected_version}"
                                    ),
                                })
                            }
                            Some(_) => continue,
                        }
                    }
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "releasing the slots of booking {id}: the slots kept changing; retry"
        )))
    }

    async fn list_bookings_by_customer(
        &self,
        customer_id: &str,
    ) -> Result<Vec<BookingRecord>, StoreError> {
        self.query_index(
            &self.tables.bookings,
            ("byCustomer", "customerId", customer_id),
            ("booking", "bookingId"),
            false,
        )
        .await
    }

    async fn list_bookings_by_provider(
        &self,
        provider_id: &str,
    ) -> Result<Vec<BookingRecord>, StoreError> {
        self.query_index(
            &self.tables.bookings,
            ("byProvider", "providerId", provider_id),
            ("booking", "bookingId"),
            false,
        )
        .await
    }
}

#[async_trait]
impl PaymentRepository for DynamoStore {
    async fn get_payment(&self, id: &str) -> Result<Option<Versioned<PaymentRecord>>, StoreError> {
        self.get_by_id("payment", &self.tables.payments, "paymentId", id)
            .await
    }

    async fn put_payment(
        &self,
        record: &PaymentRecord,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let mut item = HashMap::from([
            ("paymentId".into(), s(&record.id)),
            ("createdAt".into(), s(sort_time(record.created_at))),
            ("status".into(), s(&record.status)),
            ("record".into(), to_av("payment", &record.id, record)?),
        ]);
        if let Some(b) = &record.booking_id {
            item.insert("bookingId".into(), s(b));
        }
        if let Some(p) = &record.provider_id {
            item.insert("providerId".into(), s(p));
        }
        self.put_single(
            "payment",
            &self.tables.payments,
            "paymentId",
            &record.id,
            item,
            expected_version,
        )
        .await
    }

    async fn list_payments_by_booking(
        &self,
        booking_id: &str,
    ) -> Result<Vec<PaymentRecord>, StoreError> {
        self.query_index(
            &self.tables.payments,
            ("byBooking", "bookingId", booking_id),
            ("payment", "paymentId"),
            true,
        )
        .await
    }
}

#[async_trait]
impl DisputeRepository for DynamoStore {
    async fn get_dispute(&self, id: &str) -> Result<Option<Versioned<DisputeRecord>>, StoreError> {
        self.get_by_id("dispute", &self.tables.disputes, "disputeId", id)
            .await
    }

    async fn create_dispute(&self, record: &DisputeRecord) -> Result<u64, StoreError> {
        let id = record.dispute.id().to_string();
        let (put, version) = self.versioned_put(
            &self.tables.disputes,
            "disputeId",
            Self::dispute_item(record)?,
            None,
        )?;
        let mut actions = vec![TransactWriteItem::builder().put(put).build()];
        if record.open {
            let mut lock = Self::dispute_lock_key(&record.booking_id);
            lock.insert("holder".into(), s(&id));
            let put = Put::builder()
                .table_name(&self.tables.disputes)
                .set_item(Some(lock))
                .condition_expression("attribute_not_exists(disputeId)")
                .build()
                .map_err(|e| build_err("Put", e))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        match self.transact(actions).await? {
            TxOutcome::Written => Ok(version),
            TxOutcome::Cancelled(..) => {
                let reason = if self.get_dispute(&id).await?.is_some() {
                    "it already exists".to_owned()
                } else {
                    format!("booking {} has another open dispute", record.booking_id)
                };
                Err(StoreError::ConditionFailed {
                    entity: "dispute",
                    id,
                    reason,
                })
            }
        }
    }

    async fn update_dispute(
        &self,
        record: &DisputeRecord,
        expected_version: u64,
    ) -> Result<u64, StoreError> {
        let id = record.dispute.id().to_string();
        let lock_key = Self::dispute_lock_key(&record.booking_id);
        let lock = self
            .get_item(&self.tables.disputes, lock_key.clone())
            .await?;
        let holder = lock
            .as_ref()
            .and_then(|l| l.get("holder"))
            .and_then(|v| v.as_s().ok())
            .cloned();
        let (put, version) = self.versioned_put(
            &self.tables.disputes,
            "disputeId",
            Self::dispute_item(record)?,
            Some(expected_version),
        )?;
        let mut actions = vec![TransactWriteItem::builder().put(put).build()];
        if !record.open && holder.as_deref() == Some(id.as_str()) {
            let del = Delete::builder()
                .table_name(&self.tables.disputes)
                .set_key(Some(lock_key))
                .condition_expression("holder = :h")
                .expression_attribute_values(":h", s(&id))
                .build()
                .map_err(|e| build_err("Delete", e))?;
            actions.push(TransactWriteItem::builder().delete(del).build());
        } else if record.open && holder.is_none() {
            let mut item = lock_key;
            item.insert("holder".into(), s(&id));
            let put = Put::builder()
                .table_name(&self.tables.disputes)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(disputeId)")
                .build()
                .map_err(|e| build_err("Put", e))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        } else if record.open && holder.as_deref() != Some(id.as_str()) {
            return Err(StoreError::ConditionFailed {
                entity: "dispute",
                id,
                reason: format!("booking {} has another open dispute", record.booking_id),
            });
        }
        match self.transact(actions).await? {
            TxOutcome::Written => Ok(version),
            TxOutcome::Cancelled(..) => match self.get_dispute(&id).await? {
                None => Err(StoreError::NotFound { entity: "dispute", id }),
                Some(_) => Err(StoreError::ConditionFailed {
                    entity: "dispute",
                    id,
                    reason: format!("the stored version is no longer {expected_version}, or the booking's open-dispute lock changed"),
                }),
            },
        }
    }

    async fn list_disputes_by_booking(
        &self,
        booking_id: &str,
    ) -> Result<Vec<DisputeRecord>, StoreError> {
        self.query_index(
            &self.tables.disputes,
            ("byBooking", "bookingId", booking_id),
            ("dispute", "disputeId"),
            true,
        )
        .await
    }
}

#[async_trait]
impl LedgerRepository for DynamoStore {
    async fn append_entry(&self, entry: &LedgerEntry) -> Result<bool, StoreError> {
        let marker = HashMap::from([
            ("providerId".into(), s(&entry.provider_id)),
            ("entryId".into(), s(format!("EVENT#{}", entry.event_id))),
        ]);
        let item = HashMap::from([
            ("providerId".into(), s(&entry.provider_id)),
            (
                "entryId".into(),
                s(format!("ENTRY#{}#{}", sort_time(entry.at), entry.event_id)),
            ),
            ("currency".into(), s(entry.currency.to_string())),
            (
                "record".into(),
                to_av("ledger entry", &entry.event_id, entry)?,
            ),
        ]);
        let put = |item: Item| {
            Put::builder()
                .table_name(&self.tables.ledger)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(entryId)")
                .build()
                .map_err(|e| build_err("Put", e))
        };
        let actions = vec![
            TransactWriteItem::builder().put(put(marker)?).build(),
            TransactWriteItem::builder().put(put(item)?).build(),
        ];
        match self.transact(actions).await? {
            TxOutcome::Written => Ok(true),
            TxOutcome::Cancelled(..) => Ok(false),
        }
    }

    async fn balance(
        &self,
        provider_id: &str,
        currency: Currency,
    ) -> Result<LedgerBalance, StoreError> {
        let mut b = LedgerBalance::default();
        for e in self.list_entries(provider_id).await? {
            if e.currency == currency {
                b.pending += e.pending_delta;
                b.available += e.available_delta;
                b.paid_out += e.paid_out_delta;
            }
        }
        Ok(b)
    }

    async fn list_entries(&self, provider_id: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        let items = self
            .query_all(
                &self.tables.ledger,
                None,
                "providerId = :p AND begins_with(entryId, :e)",
                &[],
                vec![(":p", s(provider_id)), (":e", s("ENTRY#"))],
                true,
            )
            .await?;
        items
            .iter()
            .map(|i| from_item("ledger entry", "entryId", i))
            .collect()
    }
}

/// Idempotency records in the idempotency table: `id`, `status`, `expiration` (epoch
/// seconds, the table's TTL attribute), `inProgressExpiration` (epoch ms), `response`
/// (JSON text), `payloadHash`.
#[derive(Clone, Debug)]
pub struct DynamoIdempotencyStore {
    client: Client,
    table: String,
}

impl DynamoIdempotencyStore {
    /// A store over `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn item(record: &IdempotencyRecord) -> Item {
        let status = match record.status {
            IdempotencyStatus::InProgress => "IN_PROGRESS",
            IdempotencyStatus::Completed => "COMPLETED",
        };
        let mut item = HashMap::from([
            ("id".into(), s(&record.id)),
            ("status".into(), s(status)),
            ("expiration".into(), n(record.expiration)),
        ]);
        if let Some(t) = record.in_progress_expiration {
            item.insert("inProgressExpiration".into(), n(t));
        }
        if let Some(r) = &record.response {
            item.insert("response".into(), s(r.to_string()));
        }
        if let Some(h) = &record.payload_hash {
            item.insert("payloadHash".into(), s(h));
        }
        item
    }

    fn record(item: &Item) -> Result<IdempotencyRecord, StoreError> {
        let id = item
            .get("id")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let corrupt = |reason: &str| StoreError::Corrupt {
            entity: "idempotency record",
            id: id.clone(),
            reason: reason.to_owned(),
        };
        let num = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
        };
        let status = match item
            .get("status")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
        {
            Some("IN_PROGRESS") => IdempotencyStatus::InProgress,
            Some("COMPLETED") => IdempotencyStatus::Completed,
            _ => return Err(corrupt("status must be IN_PROGRESS or COMPLETED")),
        };
        let response = match item.get("response").and_then(|v| v.as_s().ok()) {
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| corrupt(&format!("response is not JSON: {e}")))?,
            ),
            None => None,
        };
        Ok(IdempotencyRecord {
            id: id.clone(),
            status,
            expiration: num("expiration")
                .ok_or_else(|| corrupt("expiration must be a whole number"))?,
            in_progress_expiration: num("inProgressExpiration"),
            response,
            payload_hash: item.get("payloadHash").and_then(|v| v.as_s().ok()).cloned(),
        })
    }
}

#[async_trait]
impl IdempotencyStore for DynamoIdempotencyStore {
    async fn put_in_progress(
        &self,
        record: &IdempotencyRecord,
        now_ms: i64,
    ) -> Result<(), IdempotencyPutError> {
        // bounded: the blocking record may vanish between the failed put and the read
        for _ in 0..3 {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(Self::item(record)))
                .condition_expression(
                    "attribute_not_exists(id) OR expiration <= :now_s OR (#status = :in_progress AND inProgressExpiration <= :now_ms)",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":now_s", n(now_ms.div_euclid(1000)))
                .expression_attribute_values(":now_ms", n(now_ms))
                .expression_attribute_values(":in_progress", s("IN_PROGRESS"))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) if is_condition_failed(&e) => {
                    if let Some(existing) = self.get(&record.id).await? {
                        return Err(IdempotencyPutError::AlreadyExists(Box::new(existing)));
                    }
                }
                Err(e) => return Err(unavailable("PutItem", &e).into()),
            }
        }
        Err(StoreError::Unavailable(format!(
            "idempotency record {} kept changing; retry",
            record.id
        ))
        .into())
    }

    async fn complete(
        &self,
        id: &str,
        response: &Value,
        expiration: i64,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(id))
            .update_expression("SET #status = :completed, #response = :r, expiration = :e REMOVE inProgressExpiration")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#response", "response")
            .expression_attribute_values(":completed", s("COMPLETED"))
            .expression_attribute_values(":r", s(response.to_string()))
            .expression_attribute_values(":e", n(expiration))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Err(StoreError::NotFound {
                entity: "idempotency record",
                id: id.to_owned(),
            }),
            Err(e) => Err(unavailable("UpdateItem", &e)),
        }
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("id", s(id))
            .send()
            .await
            .map_err(|e| unavailable("DeleteItem", &e))?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &e))?;
        out.item.as_ref().map(Self::record).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sort_time_is_fixed_width_and_ordered() {
        let a = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        let b = a + chrono::Duration::microseconds(1);
        assert_eq!(sort_time(a), "2026-03-01T09:00:00.000000Z");
        assert!(sort_time(a) < sort_time(b));
        assert_eq!(sort_time(a).len(), sort_time(b).len());
    }

    #[test]
    fn idempotency_items_round_trip() {
        let rec = IdempotencyRecord {
            id: "fn#k".into(),
            status: IdempotencyStatus::Completed,
            expiration: 1_772_359_200,
            in_progress_expiration: None,
            response: Some(serde_json::json!({"ok": [1, 2]})),
            payload_hash: Some("h".into()),
        };
        let item = DynamoIdempotencyStore::item(&rec);
        assert_eq!(item.get("expiration"), Some(&n(1_772_359_200)));
        assert_eq!(DynamoIdempotencyStore::record(&item), Ok(rec));
        let mut bad = item.clone();
        bad.insert("status".into(), s("DONE"));
        assert!(matches!(
            DynamoIdempotencyStore::record(&bad),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
