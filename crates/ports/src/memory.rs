//! In-memory adapters of every port, with the same semantics the SQLite and DynamoDB
//! adapters must have (conditional writes, slot overlap, idempotency, PutEvents partial
//! failure, Step Functions' name and token rules). Used by unit tests and checked by the
//! [`crate::contract`] suite. The payment gateway's in-memory adapter is
//! [`crate::stripe_sim::SimulatedStripe`].

use crate::clock::Clock;
use crate::error::{NotifyError, PublishError, StoreError, WorkflowError};
use crate::events::{EventPublisher, PutEventsResultEntry, MAX_ENTRIES_PER_CALL};
use crate::idempotency_store::{
    IdempotencyPutError, IdempotencyRecord, IdempotencyStatus, IdempotencyStore,
};
use crate::notify::{EmailMessage, Notifier};
use crate::store::*;
use crate::workflow::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_domain::entities::Service;
use marketplace_domain::{
    Currency, ExecutionArn, ExecutionName, ExecutionStatus, PutEventsEntry, WorkflowType,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct StoreState {
    services: BTreeMap<String, Service>,
    providers: BTreeMap<String, Versioned<ProviderRecord>>,
    bookings: BTreeMap<String, Versioned<BookingRecord>>,
    /// (provider, slot start) → booking id
    slots: BTreeMap<(String, DateTime<Utc>), String>,
    payments: BTreeMap<String, Versioned<PaymentRecord>>,
    disputes: BTreeMap<String, Versioned<DisputeRecord>>,
    ledger: BTreeMap<String, LedgerEntry>,
    ledger_order: Vec<String>,
    users: BTreeMap<String, UserContact>,
    groups: BTreeMap<String, Vec<String>>,
    unavailable: bool,
}

/// All repositories in memory (one struct implements every repository trait).
#[derive(Default, Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<StoreState>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every call fail with [`StoreError::Unavailable`] (or work again).
    pub fn set_unavailable(&self, unavailable: bool) {
        lock(&self.state).unavailable = unavailable;
    }

    /// Adds or replaces a user's contact, and puts them into `groups`.
    pub fn put_user(&self, contact: UserContact, groups: &[&str]) {
        let mut s = lock(&self.state);
        for g in groups {
            let members = s.groups.entry((*g).to_owned()).or_default();
            if !members.contains(&contact.user_id) {
                members.push(contact.user_id.clone());
            }
        }
        s.users.insert(contact.user_id.clone(), contact);
    }

    /// The provider ids holding slot claims, with the slot and booking (tests).
    pub fn slot_claims(&self) -> Vec<(String, DateTime<Utc>, String)> {
        lock(&self.state)
            .slots
            .iter()
            .map(|((p, t), b)| (p.clone(), *t, b.clone()))
            .collect()
    }

    fn guard(&self) -> Result<MutexGuard<'_, StoreState>, StoreError> {
        let s = lock(&self.state);
        if s.unavailable {
            return Err(StoreError::Unavailable(
                "memory store set unavailable".into(),
            ));
        }
        Ok(s)
    }
}

fn check_version<T>(
    entity: &'static str,
    id: &str,
    current: Option<&Versioned<T>>,
    expected: Option<u64>,
) -> Result<u64, StoreError> {
    match (current, expected) {
        (None, None) => Ok(1),
        (Some(_), None) => Err(StoreError::ConditionFailed {
            entity,
            id: id.to_owned(),
            reason: "item already exists".into(),
        }),
        (None, Some(_)) => Err(StoreError::NotFound {
            entity,
            id: id.to_owned(),
        }),
        (Some(c), Some(v)) if c.version == v => Ok(v + 1),
        (Some(c), Some(v)) => Err(StoreError::ConditionFailed {
            entity,
            id: id.to_owned(),
            reason: format!("version is {}, expected {v}", c.version),
        }),
    }
}

#[async_trait]
impl ServiceRepository for MemoryStore {
    async fn get_service(&self, id: &str) -> Result<Option<Service>, StoreError> {
        Ok(self.guard()?.services.get(id).cloned())
    }
    async fn put_service(&self, service: &Service) -> Result<(), StoreError> {
        self.guard()?
            .services
            .insert(service.id.to_string(), service.clone());
        Ok(())
    }
    async fn list_services_by_provider(
        &self,
        provider_id: &str,
    ) -> Result<Vec<Service>, StoreError> {
        Ok(self
            .guard()?
            .services
            .values()
            .filter(|s| s.provider_id.as_str() == provider_id)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl ProviderRepository for MemoryStore {
    async fn get_provider(
        &self,
        id: &str,
    ) -> Result<Option<Versioned<ProviderRecord>>, StoreError> {
        Ok(self.guard()?.providers.get(id).cloned())
    }
    async fn put_provider(
        &self,
        record: &ProviderRecord,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let mut s = self.guard()?;
        let id = record.provider.id().to_string();
        let version = check_version("provider", &id, s.providers.get(&id), expected_version)?;
        s.providers.insert(
            id,
            Versioned {
                value: record.clone(),
                version,
            },
        );
        Ok(version)
    }
    async fn find_provider_by_account(
        &self,
        stripe_account_id: &str,
    ) -> Result<Option<Versioned<ProviderRecord>>, StoreError> {
        Ok(self
            .guard()?
            .providers
            .values()
            .find(|p| {
                p.value.provider.stripe_account_id().map(|a| a.as_str()) == Some(stripe_account_id)
            })
            .cloned())
    }
}

#[async_trait]
impl BookingRepository for MemoryStore {
    async fn get_booking(&self, id: &str) -> Result<Option<Versioned<BookingRecord>>, StoreError> {
        Ok(self.guard()?.bookings.get(id).cloned())
    }

    async fn reserve_booking(&self, record: &BookingRecord) -> Result<u64, StoreError> {
        let mut s = self.guard()?;
        let id = record.booking.id().to_string();
        if s.bookings.contains_key(&id) {
            return Err(StoreError::ConditionFailed {
                entity: "booking",
                id,
                reason: "item already exists".into(),
            });
        }
        let provider = record.booking.provider_id().to_string();
        let slots = slot_starts(
            record.booking.start_date_time(),
            record.booking.end_date_time(),
        );
        for t in &slots {
            if let Some(holder) = s.slots.get(&(provider.clone(), *t)) {
                return Err(StoreError::SlotUnavailable {
                    provider_id: provider,
                    slot_start: marketplace_domain::wire::format_time(t),
                    conflicting_booking_id: holder.clone(),
                });
            }
        }
        for t in slots {
            s.slots.insert((provider.clone(), t), id.clone());
        }
        s.bookings.insert(
            id,
            Versioned {
                value: record.clone(),
                version: 1,
            },
        );
        Ok(1)
    }

    async fn update_booking(
        &self,
        record: &BookingRecord,
        expected_version: u64,
        release_slot: bool,
    ) -> Result<u64, StoreError> {
        let mut s = self.guard()?;
        let id = record.booking.id().to_string();
        let version = check_version("booking", &id, s.bookings.get(&id), Some(expected_version))?;
        if release_slot {
            let provider = record.booking.provider_id().to_string();
            s.slots.retain(|(p, _), b| !(p == &provider && b == &id));
        }
        s.bookings.insert(
            id,
            Versioned {
                value: record.clone(),
                version,
            },
        );
        Ok(version)
    }

    async fn list_bookings_by_customer(
        &self,
        customer_id: &str,
    ) -> Result<Vec<BookingRecord>, StoreError> {
        let mut v: Vec<BookingRecord> = self
            .guard()?
            .bookings
            .values()
            .filter(|b| b.value.booking.customer_id().as_str() == customer_id)
            .map(|b| b.value.clone())
            .collect();
        v.sort_by(|a, b| {
            b.booking
                .start_date_time()
                .cmp(&a.booking.start_date_time())
        });
        Ok(v)
    }

    async fn list_bookings_by_provider(
        &self,
        provider_id: &str,
    ) -> Result<Vec<BookingRecord>, StoreError> {
        let mut v: Vec<BookingRecord> = self
            .guard()?
            .bookings
            .values()
            .filter(|b| b.value.booking.provider_id().as_str() == provider_id)
            .map(|b| b.value.clone())
            .collect();
        v.sort_by(|a, b| {
            b.booking
                .start_date_time()
                .cmp(&a.booking.start_date_time())
        });
        Ok(v)
    }
}

#[async_trait]
impl PaymentRepository for MemoryStore {
    async fn get_payment(&self, id: &str) -> Result<Option<Versioned<PaymentRecord>>, StoreError> {
        Ok(self.guard()?.payments.get(id).cloned())
    }
    async fn put_payment(
        &self,
        record: &PaymentRecord,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let mut s = self.guard()?;
        let version = check_version(
            "payment",
            &record.id,
            s.payments.get(&record.id),
            expected_version,
        )?;
        s.payments.insert(
            record.id.clone(),
            Versioned {
                value: record.clone(),
                version,
            },
        );
        Ok(version)
    }
    async fn list_payments_by_booking(
        &self,
        booking_id: &str,
    ) -> Result<Vec<PaymentRecord>, StoreError> {
        let mut v: Vec<PaymentRecord> = self
            .guard()?
            .payments
            .values()
            .filter(|p| p.value.booking_id.as_deref() == Some(booking_id))
            .map(|p| p.value.clone())
            .collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(v)
    }
}

#[async_trait]
impl DisputeRepository for MemoryStore {
    async fn get_dispute(&self, id: &str) -> Result<Option<Versioned<DisputeRecord>>, StoreError> {
        Ok(self.guard()?.disputes.get(id).cloned())
    }
    async fn create_dispute(&self, record: &DisputeRecord) -> Result<u64, StoreError> {
        let mut s = self.guard()?;
        let id = record.dispute.id().to_string();
        check_version("dispute", &id, s.disputes.get(&id), None)?;
        if let Some(open) = s
            .disputes
            .values()
            .find(|d| d.value.booking_id == record.booking_id && d.value.open)
        {
            return Err(StoreError::ConditionFailed {
                entity: "dispute",
                id,
                reason: format!(
                    "booking {} already has the open dispute {}",
                    record.booking_id,
                    open.value.dispute.id()
                ),
            });
        }
        s.disputes.insert(
            id,
            Versioned {
                value: record.clone(),
                version: 1,
            },
        );
        Ok(1)
    }
    async fn update_dispute(
        &self,
        record: &DisputeRecord,
        expected_version: u64,
    ) -> Result<u64, StoreError> {
        let mut s = self.guard()?;
        let id = record.dispute.id().to_string();
        let version = check_version("dispute", &id, s.disputes.get(&id), Some(expected_version))?;
        s.disputes.insert(
            id,
            Versioned {
                value: record.clone(),
                version,
            },
        );
        Ok(version)
    }
    async fn list_disputes_by_booking(
        &self,
        booking_id: &str,
    ) -> Result<Vec<DisputeRecord>, StoreError> {
        let mut v: Vec<DisputeRecord> = self
            .guard()?
            .disputes
            .values()
            .filter(|d| d.value.booking_id == booking_id)
            .map(|d| d.value.clone())
            .collect();
        v.sort_by_key(|d| d.review_deadline);
        Ok(v)
    }
}

#[async_trait]
impl LedgerRepository for MemoryStore {
    async fn append_entry(&self, entry: &LedgerEntry) -> Result<bool, StoreError> {
        let mut s = self.guard()?;
        if s.ledger.contains_key(&entry.event_id) {
            return Ok(false);
        }
        s.ledger.insert(entry.event_id.clone(), entry.clone());
        s.ledger_order.push(entry.event_id.clone());
        Ok(true)
    }
    async fn balance(
        &self,
        provider_id: &str,
        currency: Currency,
    ) -> Result<LedgerBalance, StoreError> {
        let s = self.guard()?;
        let mut b = LedgerBalance::default();
        for e in s.ledger.values() {
            if e.provider_id == provider_id && e.currency == currency {
                b.pending += e.pending_delta;
                b.available += e.available_delta;
                b.paid_out += e.paid_out_delta;
            }
        }
        Ok(b)
    }
    async fn list_entries(&self, provider_id: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        let s = self.guard()?;
        Ok(s.ledger_order
            .iter()
            .filter_map(|id| s.ledger.get(id))
            .filter(|e| e.provider_id == provider_id)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl UserDirectory for MemoryStore {
    async fn get_user(&self, user_id: &str) -> Result<Option<UserContact>, StoreError> {
        Ok(self.guard()?.users.get(user_id).cloned())
    }
    async fn group_members(&self, group: &str) -> Result<Vec<UserContact>, StoreError> {
        let s = self.guard()?;
        Ok(s.groups
            .get(group)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| s.users.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// Idempotency records in memory.
#[derive(Default, Clone)]
pub struct MemoryIdempotencyStore {
    records: Arc<Mutex<HashMap<String, IdempotencyRecord>>>,
}

impl MemoryIdempotencyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn put_in_progress(
        &self,
        record: &IdempotencyRecord,
        now_ms: i64,
    ) -> Result<(), IdempotencyPutError> {
        let mut m = lock(&self.records);
        if let Some(existing) = m.get(&record.id) {
            if existing.blocks(now_ms) {
                return Err(IdempotencyPutError::AlreadyExists(Box::new(
                    existing.clone(),
                )));
            }
        }
        m.insert(record.id.clone(), record.clone());
        Ok(())
    }
    async fn complete(
        &self,
        id: &str,
        response: &Value,
        expiration: i64,
    ) -> Result<(), StoreError> {
        let mut m = lock(&self.records);
        let r = m.get_mut(id).ok_or_else(|| StoreError::NotFound {
            entity: "idempotency record",
            id: id.to_owned(),
        })?;
        r.status = IdempotencyStatus::Completed;
        r.response = Some(response.clone());
        r.expiration = expiration;
        Ok(())
    }
    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        lock(&self.records).remove(id);
        Ok(())
    }
    async fn get(&self, id: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(lock(&self.records).get(id).cloned())
    }
}

/// An event as the memory bus accepted it.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedEvent {
    /// The id it got.
    pub event_id: String,
    /// The entry.
    pub entry: PutEventsEntry,
}

impl PublishedEvent {
    /// The detail parsed as JSON.
    pub fn detail(&self) -> Value {
        serde_json::from_str(&self.entry.detail).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct BusState {
    published: Vec<PublishedEvent>,
    /// failures to inject: per upcoming entry, an error code
    fail_next: VecDeque<String>,
    next_id: u64,
}

/// An event bus that records what it accepts; entries can be made to fail (partial
/// failure) with [`MemoryEventPublisher::fail_next_entries`].
#[derive(Default, Clone)]
pub struct MemoryEventPublisher {
    state: Arc<Mutex<BusState>>,
}

impl MemoryEventPublisher {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }
    /// The next `n` entries fail with `code` (e.g. `InternalFailure`).
    pub fn fail_next_entries(&self, n: usize, code: &str) {
        let mut s = lock(&self.state);
        for _ in 0..n {
            s.fail_next.push_back(code.to_owned());
        }
    }
    /// Everything accepted, in order.
    pub fn published(&self) -> Vec<PublishedEvent> {
        lock(&self.state).published.clone()
    }
    /// The detail types accepted, in order.
    pub fn detail_types(&self) -> Vec<String> {
        lock(&self.state)
            .published
            .iter()
            .map(|e| e.entry.detail_type.clone())
            .collect()
    }
    /// The accepted events of `detail_type`.
    pub fn of_type(&self, detail_type: &str) -> Vec<PublishedEvent> {
        lock(&self.state)
            .published
            .iter()
            .filter(|e| e.entry.detail_type == detail_type)
            .cloned()
            .collect()
    }
}

#[async_trait]
impl EventPublisher for MemoryEventPublisher {
    async fn put_events(
        &self,
        entries: &[PutEventsEntry],
    ) -> Result<Vec<PutEventsResultEntry>, PublishError> {
        if entries.is_empty() || entries.len() > MAX_ENTRIES_PER_CALL {
            return Err(PublishError::Invalid(format!(
                "Entries must have 1 to {MAX_ENTRIES_PER_CALL} items (got {})",
                entries.len()
            )));
        }
        let mut s = lock(&self.state);
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if let Some(code) = s.fail_next.pop_front() {
                out.push(PutEventsResultEntry::failed(code, "injected failure"));
                continue;
            }
            if let Err(err) = e.validate() {
                out.push(PutEventsResultEntry::failed(
                    "MalformedDetail",
                    err.to_string(),
                ));
                continue;
            }
            s.next_id += 1;
            let id = format!("evt-{:08}", s.next_id);
            s.published.push(PublishedEvent {
                event_id: id.clone(),
                entry: e.clone(),
            });
            out.push(PutEventsResultEntry::ok(id));
        }
        Ok(out)
    }
}

/// What a waiting task received.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    /// SendTaskSuccess with this output.
    Success(Value),
    /// SendTaskFailure with error and cause.
    Failure {
        /// The error name.
        error: String,
        /// The cause.
        cause: String,
    },
}

struct MemExecution {
    desc: ExecutionDescription,
    history: Vec<HistoryEvent>,
}

#[derive(Default)]
struct WfState {
    executions: BTreeMap<String, MemExecution>,
    order: Vec<String>,
    tasks: HashMap<String, (String, Option<TaskOutcome>)>,
    heartbeats: HashMap<String, u32>,
    unavailable: bool,
}

/// A Step Functions stand-in: executions that stay RUNNING until a test finishes them,
/// task tokens a test registers, and a record of every callback.
#[derive(Clone)]
pub struct MemoryWorkflowClient {
    state: Arc<Mutex<WfState>>,
    clock: Arc<dyn Clock>,
    region: String,
    account: String,
}

impl MemoryWorkflowClient {
    /// A client for `us-east-1` / `123456789012` on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Arc::default(),
            clock,
            region: "us-east-1".into(),
            account: "123456789012".into(),
        }
    }

    /// Makes every call fail with `Unavailable` (or work again).
    pub fn set_unavailable(&self, unavailable: bool) {
        lock(&self.state).unavailable = unavailable;
    }

    /// Registers a task token a waiting task of `execution_arn` holds.
    pub fn register_task(&self, token: &str, execution_arn: &str) {
        lock(&self.state)
            .tasks
            .insert(token.to_owned(), (execution_arn.to_owned(), None));
    }

    /// What the task of `token` received.
    pub fn task_outcome(&self, token: &str) -> Option<TaskOutcome> {
        lock(&self.state).tasks.get(token).and_then(|t| t.1.clone())
    }

    /// Heartbeats sent for `token`.
    pub fn heartbeats(&self, token: &str) -> u32 {
        lock(&self.state)
            .heartbeats
            .get(token)
            .copied()
            .unwrap_or(0)
    }

    /// Ends an execution with `status` (and output/error), as the engine would.
    pub fn finish_execution(
        &self,
        arn: &str,
        status: ExecutionStatus,
        output: Option<Value>,
        error: Option<(&str, &str)>,
    ) -> bool {
        let now = self.clock.now();
        let mut s = lock(&self.state);
        match s.executions.get_mut(arn) {
            Some(e) => {
                e.desc.status = status;
                e.desc.stop_date = Some(now);
                e.desc.output = output.map(|o| o.to_string());
                if let Some((err, cause)) = error {
                    e.desc.error = Some(err.to_owned());
                    e.desc.cause = Some(cause.to_owned());
                }
                let id = e.history.len() as i64 + 1;
                e.history.push(HistoryEvent {
                    id,
                    previous_event_id: Some(id - 1),
                    event_type: format!(
                        "Execution{}",
                        match status {
                            ExecutionStatus::Succeeded => "Succeeded",
                            ExecutionStatus::Failed => "Failed",
                            ExecutionStatus::TimedOut => "TimedOut",
                            ExecutionStatus::Aborted => "Aborted",
                            _ => "Started",
                        }
                    ),
                    timestamp: now,
                    details: None,
                });
                true
            }
            None => false,
        }
    }

    fn guard(&self) -> Result<MutexGuard<'_, WfState>, WorkflowError> {
        let s = lock(&self.state);
        if s.unavailable {
            return Err(WorkflowError::Unavailable(
                "memory workflow client set unavailable".into(),
            ));
        }
        Ok(s)
    }

    fn token_outcome(&self, token: &str, outcome: TaskOutcome) -> Result<(), WorkflowError> {
        if token.is_empty() || token.len() > 1024 {
            return Err(WorkflowError::InvalidToken(
                "task token must be 1 to 1024 characters".into(),
            ));
        }
        let mut s = self.guard()?;
        let (arn, done) = match s.tasks.get(token) {
            None => {
                return Err(WorkflowError::TaskDoesNotExist(
                    "Task Token does not exist".into(),
                ))
            }
            Some((arn, done)) => (arn.clone(), done.is_some()),
        };
        if done {
            return Err(WorkflowError::TaskTimedOut(
                "Task Timed Out: already completed".into(),
            ));
        }
        if let Some(e) = s.executions.get(&arn) {
            if e.desc.status.is_terminal() {
                return Err(WorkflowError::TaskTimedOut(
                    "Task Timed Out: execution ended".into(),
                ));
            }
        }
        if let Some(t) = s.tasks.get_mut(token) {
            t.1 = Some(outcome);
        }
        Ok(())
    }
}

#[async_trait]
impl WorkflowClient for MemoryWorkflowClient {
    fn state_machine_arn(&self, workflow_type: WorkflowType) -> String {
        format!(
            "arn:aws:states:{}:{}:stateMachine:{}",
            self.region,
            self.account,
            workflow_type.state_machine_name()
        )
    }

    async fn start_execution(
        &self,
        workflow_type: WorkflowType,
        name: &str,
        input: &str,
    ) -> Result<StartedExecution, WorkflowError> {
        let exec_name = ExecutionName::new(name)
            .map_err(|e| WorkflowError::InvalidName(format!("name {e}")))?;
        if serde_json::from_str::<Value>(input).is_err() || input.len() > 256 * 1024 {
            return Err(WorkflowError::InvalidExecutionInput(
                "input must be valid JSON of at most 256 KiB".into(),
            ));
        }
        let arn = ExecutionArn::build(
            "aws",
            &self.region,
            &self.account,
            workflow_type.state_machine_name(),
            &exec_name,
        )
        .map_err(|e| WorkflowError::InvalidName(e.to_string()))?;
        let now = self.clock.now();
        let mut s = self.guard()?;
        if let Some(existing) = s.executions.get(arn.as_str()) {
            if existing.desc.status == ExecutionStatus::Running
                && existing.desc.input.as_deref() == Some(input)
            {
                return Ok(StartedExecution {
                    execution_arn: arn.as_str().to_owned(),
                    start_date: existing.desc.start_date,
                });
            }
            return Err(WorkflowError::ExecutionAlreadyExists(format!(
                "Execution Already Exists: '{arn}'"
            )));
        }
        let desc = ExecutionDescription {
            execution_arn: arn.as_str().to_owned(),
            state_machine_arn: self.state_machine_arn(workflow_type),
            name: name.to_owned(),
            status: ExecutionStatus::Running,
            workflow_type: Some(workflow_type),
            input: Some(input.to_owned()),
            output: None,
            start_date: now,
            stop_date: None,
            error: None,
            cause: None,
        };
        let history = vec![HistoryEvent {
            id: 1,
            previous_event_id: Some(0),
            event_type: "ExecutionStarted".into(),
            timestamp: now,
            details: Some(serde_json::json!({"executionStartedEventDetails": {"input": input}})),
        }];
        s.executions
            .insert(arn.as_str().to_owned(), MemExecution { desc, history });
        s.order.push(arn.as_str().to_owned());
        Ok(StartedExecution {
            execution_arn: arn.as_str().to_owned(),
            start_date: now,
        })
    }

    async fn describe_execution(
        &self,
        execution_arn: &str,
    ) -> Result<ExecutionDescription, WorkflowError> {
        ExecutionArn::new(execution_arn)
            .map_err(|e| WorkflowError::InvalidArn(format!("executionArn {e}")))?;
        self.guard()?
            .executions
            .get(execution_arn)
            .map(|e| e.desc.clone())
            .ok_or_else(|| {
                WorkflowError::ExecutionDoesNotExist(format!(
                    "Execution Does Not Exist: '{execution_arn}'"
                ))
            })
    }

    async fn stop_execution(
        &self,
        execution_arn: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<DateTime<Utc>, WorkflowError> {
        ExecutionArn::new(execution_arn)
            .map_err(|e| WorkflowError::InvalidArn(format!("executionArn {e}")))?;
        let now = self.clock.now();
        let mut s = self.guard()?;
        let e = s.executions.get_mut(execution_arn).ok_or_else(|| {
            WorkflowError::ExecutionDoesNotExist(format!(
                "Execution Does Not Exist: '{execution_arn}'"
            ))
        })?;
        if e.desc.status.is_terminal() {
            return Ok(e.desc.stop_date.unwrap_or(now));
        }
        e.desc.status = ExecutionStatus::Aborted;
        e.desc.stop_date = Some(now);
        e.desc.error = error.map(str::to_owned);
        e.desc.cause = cause.map(str::to_owned);
        let id = e.history.len() as i64 + 1;
        e.history.push(HistoryEvent {
            id,
            previous_event_id: Some(id - 1),
            event_type: "ExecutionAborted".into(),
            timestamp: now,
            details: Some(serde_json::json!({"executionAbortedEventDetails": {"error": error, "cause": cause}})),
        });
        Ok(now)
    }

    async fn send_task_success(&self, task_token: &str, output: &str) -> Result<(), WorkflowError> {
        let value: Value = serde_json::from_str(output)
            .map_err(|e| WorkflowError::InvalidOutput(format!("output is not JSON: {e}")))?;
        self.token_outcome(task_token, TaskOutcome::Success(value))
    }

    async fn send_task_failure(
        &self,
        task_token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), WorkflowError> {
        self.token_outcome(
            task_token,
            TaskOutcome::Failure {
                error: error.to_owned(),
                cause: cause.to_owned(),
            },
        )
    }

    async fn send_task_heartbeat(&self, task_token: &str) -> Result<(), WorkflowError> {
        let mut s = self.guard()?;
        match s.tasks.get(task_token) {
            None => Err(WorkflowError::TaskDoesNotExist(
                "Task Token does not exist".into(),
            )),
            Some((_, Some(_))) => Err(WorkflowError::TaskTimedOut("Task Timed Out".into())),
            Some(_) => {
                *s.heartbeats.entry(task_token.to_owned()).or_default() += 1;
                Ok(())
            }
        }
    }

    async fn get_execution_history(
        &self,
        execution_arn: &str,
        max_results: u32,
        next_token: Option<&str>,
        reverse_order: bool,
    ) -> Result<HistoryPage, WorkflowError> {
        let s = self.guard()?;
        let e = s.executions.get(execution_arn).ok_or_else(|| {
            WorkflowError::ExecutionDoesNotExist(format!(
                "Execution Does Not Exist: '{execution_arn}'"
            ))
        })?;
        let mut events = e.history.clone();
        if reverse_order {
            events.reverse();
        }
        let (page, next) = paginate(events, max_results, next_token)?;
        Ok(HistoryPage {
            events: page,
            next_token: next,
        })
    }

    async fn list_executions(
        &self,
        request: &ListExecutionsRequest,
    ) -> Result<ExecutionPage, WorkflowError> {
        let s = self.guard()?;
        let mut all: Vec<ExecutionSummary> = s
            .order
            .iter()
            .rev()
            .filter_map(|arn| s.executions.get(arn))
            .filter(|e| {
                request.workflow_type.is_none() || e.desc.workflow_type == request.workflow_type
            })
            .filter(|e| request.status.is_none_or(|st| e.desc.status == st))
            .map(|e| ExecutionSummary {
                execution_arn: e.desc.execution_arn.clone(),
                state_machine_arn: e.desc.state_machine_arn.clone(),
                name: e.desc.name.clone(),
                status: e.desc.status,
                workflow_type: e.desc.workflow_type,
                start_date: e.desc.start_date,
                stop_date: e.desc.stop_date,
            })
            .collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.start_date));
        let (page, next) = paginate(all, request.max_results, request.next_token.as_deref())?;
        Ok(ExecutionPage {
            executions: page,
            next_token: next,
        })
    }
}

/// Offset pagination with opaque `o:<offset>` tokens (shared by memory adapters).
pub fn paginate<T>(
    items: Vec<T>,
    max_results: u32,
    next_token: Option<&str>,
) -> Result<(Vec<T>, Option<String>), WorkflowError> {
    let limit = if max_results == 0 {
        100
    } else {
        max_results.min(1000)
    } as usize;
    let offset = match next_token {
        None => 0,
        Some(t) => t
            .strip_prefix("o:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| WorkflowError::InvalidToken(format!("nextToken {t:?} is not valid")))?,
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(limit).collect();
    let next = (offset + page.len() < total).then(|| format!("o:{}", offset + page.len()));
    Ok((page, next))
}

/// An outbox of e-mails; can be made to fail.
#[derive(Default, Clone)]
pub struct MemoryNotifier {
    sent: Arc<Mutex<Vec<EmailMessage>>>,
    fail: Arc<Mutex<Option<NotifyError>>>,
}

impl MemoryNotifier {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }
    /// Everything sent.
    pub fn sent(&self) -> Vec<EmailMessage> {
        lock(&self.sent).clone()
    }
    /// Makes every send fail with `error` (None: work again).
    pub fn set_failure(&self, error: Option<NotifyError>) {
        *lock(&self.fail) = error;
    }
}

#[async_trait]
impl Notifier for MemoryNotifier {
    async fn send_email(&self, message: &EmailMessage) -> Result<String, NotifyError> {
        if let Some(e) = lock(&self.fail).clone() {
            return Err(e);
        }
        if message.to.is_empty() {
            return Err(NotifyError::Rejected("message has no recipient".into()));
        }
        let mut sent = lock(&self.sent);
        sent.push(message.clone());
        Ok(format!("msg-{:08}", sent.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::contract;
    use crate::events::publish_all;

    #[tokio::test]
    async fn memory_store_passes_the_contract_suite() {
        let store = MemoryStore::new();
        contract::service_repository(&store, "c1").await;
        contract::provider_repository(&store, "c1").await;
        contract::booking_repository(&store, "c1").await;
        contract::payment_repository(&store, "c1").await;
        contract::dispute_repository(&store, "c1").await;
        contract::ledger_repository(&store, "c1").await;
        // and again in another namespace of the same store
        contract::booking_repository(&store, "c2").await;
        for (id, groups) in [("c1-u1", vec!["c1-g"]), ("c1-u2", vec![])] {
            store.put_user(
                UserContact {
                    user_id: id.into(),
                    email: format!("{id}@example.com"),
                    display_name: id.into(),
                },
                &groups,
            );
        }
        contract::user_directory(&store, "c1").await;
    }

    #[tokio::test]
    async fn memory_idempotency_bus_and_workflows_pass_the_contract_suite() {
        contract::idempotency_store(&MemoryIdempotencyStore::new(), "c1").await;
        contract::event_publisher(&MemoryEventPublisher::new()).await;
        let clock = Arc::new(ManualClock::new(crate::fixtures::t0()));
        contract::workflow_client(&MemoryWorkflowClient::new(clock.clone()), "c1").await;
        contract::payment_gateway(&crate::stripe_sim::SimulatedStripe::new(clock), "c1").await;
        contract::notifier(&MemoryNotifier::new(), "c1").await;
    }

    #[tokio::test]
    async fn unavailable_store_is_transient() {
        let store = MemoryStore::new();
        store.set_unavailable(true);
        let e = store.get_booking("b").await.unwrap_err();
        assert_eq!(
            crate::HasErrorType::error_type(&e),
            crate::ErrorType::TransientError
        );
    }

    #[tokio::test]
    async fn tokens_complete_once() {
        let clock = Arc::new(ManualClock::new(crate::fixtures::t0()));
        let wf = MemoryWorkflowClient::new(clock);
        let s = wf
            .start_execution(WorkflowType::PaymentProcessing, "p1", "{}")
            .await
            .unwrap();
        wf.register_task("tok", &s.execution_arn);
        wf.send_task_heartbeat("tok").await.unwrap();
        wf.send_task_success("tok", r#"{"status":"succeeded"}"#)
            .await
            .unwrap();
        assert!(matches!(
            wf.send_task_failure("tok", "E", "c").await,
            Err(WorkflowError::TaskTimedOut(_))
        ));
        assert_eq!(
            wf.task_outcome("tok"),
            Some(TaskOutcome::Success(
                serde_json::json!({"status":"succeeded"})
            ))
        );
        assert_eq!(wf.heartbeats("tok"), 1);
    }

    #[tokio::test]
    async fn publish_all_retries_only_failed_entries() {
        let bus = MemoryEventPublisher::new();
        let entries: Vec<PutEventsEntry> = (0..12)
            .map(|i| PutEventsEntry {
                source: "marketplace.test".into(),
                detail_type: "T".into(),
                detail: format!(r#"{{"n":{i}}}"#),
                event_bus_name: None,
                resources: vec![],
                time: None,
                trace_header: None,
            })
            .collect();
        bus.fail_next_entries(2, "InternalFailure");
        let ids = publish_all(&bus, &entries, 3).await.unwrap();
        assert_eq!(ids.len(), 12);
        let published = bus.published();
        assert_eq!(published.len(), 12, "each entry accepted exactly once");
        // retried entries land after the rest of their batch
        let order: Vec<String> = published.iter().map(|p| p.entry.detail.clone()).collect();
        assert_eq!(order[8], r#"{"n":0}"#);
        assert_eq!(order[9], r#"{"n":1}"#);
        bus.fail_next_entries(1, "MalformedDetail");
        let err = publish_all(&bus, &entries[..1], 3).await.unwrap_err();
        assert!(matches!(err, PublishError::EntriesFailed { failed: 1, .. }));
    }
}

/// Every port on in-memory adapters, with handles to inspect and steer them.
#[derive(Clone)]
pub struct MemoryPorts {
    /// The repositories.
    pub store: MemoryStore,
    /// Idempotency records.
    pub idempotency: MemoryIdempotencyStore,
    /// The bus.
    pub bus: MemoryEventPublisher,
    /// Step Functions.
    pub workflows: MemoryWorkflowClient,
    /// Stripe.
    pub stripe: crate::stripe_sim::SimulatedStripe,
    /// The outbox.
    pub notifier: MemoryNotifier,
    /// The clock.
    pub clock: Arc<crate::clock::ManualClock>,
    /// The bundle handlers take.
    pub ports: crate::Ports,
}

impl MemoryPorts {
    /// Fresh adapters on a manual clock standing at `now`, with sequential ids.
    pub fn new(now: DateTime<Utc>) -> Self {
        let clock = Arc::new(crate::clock::ManualClock::new(now));
        let store = MemoryStore::new();
        let idempotency = MemoryIdempotencyStore::new();
        let bus = MemoryEventPublisher::new();
        let workflows = MemoryWorkflowClient::new(clock.clone());
        let stripe = crate::stripe_sim::SimulatedStripe::new(clock.clone());
        let notifier = MemoryNotifier::new();
        let ports = crate::Ports {
            services: Arc::new(store.clone()),
            providers: Arc::new(store.clone()),
            bookings: Arc::new(store.clone()),
            payments: Arc::new(store.clone()),
            disputes: Arc::new(store.clone()),
            ledger: Arc::new(store.clone()),
            users: Arc::new(store.clone()),
            idempotency: Arc::new(idempotency.clone()),
            events: Arc::new(bus.clone()),
            workflows: Arc::new(workflows.clone()),
            gateway: Arc::new(stripe.clone()),
            notifier: Arc::new(notifier.clone()),
            clock: clock.clone(),
            ids: Arc::new(crate::clock::SequentialIds::default()),
            pause: Arc::new(crate::clock::NoPause),
        };
        Self {
            store,
            idempotency,
            bus,
            workflows,
            stripe,
            notifier,
            clock,
            ports,
        }
    }

    /// A logger and a metrics collector writing into one in-memory sink.
    pub fn observability(
        &self,
        function: &str,
    ) -> (
        crate::log::Logger,
        crate::metrics::Metrics,
        crate::log::MemorySink,
    ) {
        let sink = crate::log::MemorySink::new();
        let log =
            crate::log::Logger::from_lookup(function, sink.sink(), self.clock.clone(), |_| None);
        let metrics = crate::metrics::Metrics::new(
            "EcosystemMarketplace",
            function,
            sink.sink(),
            self.clock.clone(),
        );
        (log, metrics, sink)
    }
}
