//! The ports' contract suite against the AWS adapters, pointed at moto in server mode on
//! 127.0.0.1 (installed with pip when missing, started per test, killed on drop — also
//! when a test panics). Tables, bus, state machines and the user pool are created with
//! the SDK under the CDK app's names and key schema.
//!
//! Not covered, because moto does not implement it (checked against moto 5.2):
//! - SendTaskSuccess/Failure/Heartbeat: moto accepts any token and does nothing, so the
//!   contract's stale-token step (`contract::workflow_client_task_tokens`) cannot run
//!   here; the workflow test below runs `contract::workflow_client_executions` (mapping of
//!   the task-token error codes is unit-tested in `sfn.rs`).
//! - Execution of the state machines (moto keeps executions RUNNING until stopped).

use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use chrono::{DateTime, Utc};
use marketplace_aws::cognito::CognitoDirectory;
use marketplace_aws::dynamodb::{
    slot_expires_at, DynamoIdempotencyStore, DynamoStore, SLOT_EXPIRY_MARGIN_DAYS,
};
use marketplace_aws::eventbridge::EventBridgePublisher;
use marketplace_aws::ses::SesNotifier;
use marketplace_aws::settings::TableNames;
use marketplace_aws::sfn::StepFunctionsClient;
use marketplace_domain::{ExecutionStatus, WorkflowType};
use marketplace_ports::workflow::{ListExecutionsRequest, WorkflowClient};
use marketplace_ports::{contract, fixtures, BookingRecord, BookingRepository, StoreError};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

/// A moto server child process, killed when dropped.
struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_installed() -> bool {
    Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn http(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

impl Moto {
    fn start() -> Moto {
        if !moto_installed() {
            let status = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "moto[server]"])
                .status()
                .expect("python3 runs pip");
            assert!(status.success(), "installing moto[server] with pip failed");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let mut moto = Moto { child, addr };
        // bounded wait until it answers (at most 60 s, checking every 100 ms)
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http(addr, "GET", "/moto-api/data.json") {
                if r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200") {
                    break;
                }
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn reset(&self) {
        let r = http(self.addr, "POST", "/moto-api/reset").expect("reset");
        assert!(
            r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"),
            "reset: {r}"
        );
    }

    async fn config(&self) -> SdkConfig {
        marketplace_aws::sdk_config_loader()
            .endpoint_url(format!("http://{}", self.addr))
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "moto-test",
            ))
            .load()
            .await
    }
}

fn tables() -> TableNames {
    TableNames {
        bookings: "ecosystem-marketplace-bookings".into(),
        slots: "ecosystem-marketplace-slots".into(),
        services: "ecosystem-marketplace-services".into(),
        providers: "ecosystem-marketplace-providers".into(),
        payments: "ecosystem-marketplace-payments".into(),
        ledger: "ecosystem-marketplace-ledger".into(),
        disputes: "ecosystem-marketplace-disputes".into(),
        idempotency: "ecosystem-marketplace-idempotency".into(),
    }
}

fn key(name: &str, kt: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kt)
        .build()
        .expect("key")
}

/// Creates a table as `infra/lib/tables.ts` does: string keys, GSIs projecting all.
async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    pk: &str,
    sk: Option<&str>,
    indexes: &[(&str, &str, Option<&str>)],
) {
    let mut attrs: Vec<&str> = vec![pk];
    attrs.extend(sk);
    for (_, p, s) in indexes {
        attrs.push(p);
        attrs.extend(s);
    }
    attrs.sort_unstable();
    attrs.dedup();
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(pk, KeyType::Hash));
    if let Some(sk) = sk {
        req = req.key_schema(key(sk, KeyType::Range));
    }
    for a in attrs {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(a)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        );
    }
    for (index, p, s) in indexes {
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(*index)
            .key_schema(key(p, KeyType::Hash))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            );
        if let Some(s) = s {
            gsi = gsi.key_schema(key(s, KeyType::Range));
        }
        req = req.global_secondary_indexes(gsi.build().expect("gsi"));
    }
    req.send().await.expect("create table");
}

async fn create_tables(client: &aws_sdk_dynamodb::Client) {
    let t = tables();
    create_table(
        client,
        &t.bookings,
        "bookingId",
        None,
        &[
            ("byCustomer", "customerId", Some("startDateTime")),
            ("byProvider", "providerId", Some("startDateTime")),
        ],
    )
    .await;
    create_table(client, &t.slots, "providerId", Some("slotStart"), &[]).await;
    create_table(
        client,
        &t.services,
        "serviceId",
        None,
        &[("byProvider", "providerId", Some("serviceId"))],
    )
    .await;
    create_table(
        client,
        &t.providers,
        "providerId",
        None,
        &[("byStripeAccount", "stripeAccountId", None)],
    )
    .await;
    create_table(
        client,
        &t.payments,
        "paymentId",
        None,
        &[
            ("byBooking", "bookingId", Some("createdAt")),
            ("byProvider", "providerId", Some("createdAt")),
        ],
    )
    .await;
    create_table(client, &t.ledger, "providerId", Some("entryId"), &[]).await;
    create_table(
        client,
        &t.disputes,
        "disputeId",
        None,
        &[
            ("byBooking", "bookingId", Some("createdAt")),
            ("byCustomer", "customerId", Some("createdAt")),
            ("byProvider", "providerId", Some("createdAt")),
            ("byStatus", "status", Some("createdAt")),
        ],
    )
    .await;
    create_table(client, &t.idempotency, "id", None, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_repositories_pass_the_contract() {
    let moto = Moto::start();
    let config = moto.config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let store = DynamoStore::new(client.clone(), tables());

    create_tables(&client).await;
    contract::service_repository(&store, "svc").await;
    contract::provider_repository(&store, "prv").await;
    contract::booking_repository(&store, "bk").await;

    // the suites are independent: start the next ones from an empty endpoint
    moto.reset();
    create_tables(&client).await;
    contract::payment_repository(&store, "pay").await;
    contract::dispute_repository(&store, "dsp").await;
    contract::ledger_repository(&store, "led").await;

    moto.reset();
    create_tables(&client).await;
    let idempotency = DynamoIdempotencyStore::new(client, tables().idempotency);
    contract::idempotency_store(&idempotency, "idem").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventbridge_publisher_passes_the_contract() {
    let moto = Moto::start();
    let config = moto.config().await;
    let client = aws_sdk_eventbridge::Client::new(&config);
    client
        .create_event_bus()
        .name("ecosystem-marketplace-events")
        .send()
        .await
        .expect("create bus");
    let publisher = EventBridgePublisher::new(client, "ecosystem-marketplace-events");
    contract::event_publisher(&publisher).await;
}

async fn create_state_machines(client: &aws_sdk_sfn::Client) -> BTreeMap<WorkflowType, String> {
    let mut arns = BTreeMap::new();
    for wf in WorkflowType::ALL {
        let out = client
            .create_state_machine()
            .name(wf.state_machine_name())
            .role_arn(format!(
                "arn:aws:iam::{ACCOUNT}:role/{}",
                wf.state_machine_name()
            ))
            .definition(
                r#"{"StartAt":"Wait","States":{"Wait":{"Type":"Wait","Seconds":3600,"End":true}}}"#,
            )
            .send()
            .await
            .expect("create state machine");
        arns.insert(*wf, out.state_machine_arn);
    }
    arns
}

/// `contract::workflow_client` except its task-token step (SendTaskSuccess with an
/// unknown token), which moto does not implement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_functions_client_passes_the_contract_except_task_tokens() {
    let moto = Moto::start();
    let config = moto.config().await;
    let sdk = aws_sdk_sfn::Client::new(&config);
    let client = StepFunctionsClient::new(sdk.clone(), create_state_machines(&sdk).await);
    let arn = contract::workflow_client_executions(&client, "wf").await;
    // without a workflow type: every machine, page by page
    let mut seen = Vec::new();
    let mut token = None;
    for _ in 0..10 {
        let page = client
            .list_executions(&ListExecutionsRequest {
                workflow_type: None,
                status: None,
                max_results: 10,
                next_token: token.take(),
            })
            .await
            .expect("list all");
        seen.extend(page.executions.into_iter().map(|e| e.execution_arn));
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, vec![arn.clone()]);
    // stopping a finished execution is a no-op returning its stop date
    client
        .stop_execution(&arn, None, None)
        .await
        .expect("stop again");
    let d = client.describe_execution(&arn).await.expect("describe");
    assert_eq!(d.status, ExecutionStatus::Aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ses_notifier_passes_the_contract() {
    let moto = Moto::start();
    let config = moto.config().await;
    let client = aws_sdk_sesv2::Client::new(&config);
    client
        .create_email_identity()
        .email_identity("marketplace.example.com")
        .send()
        .await
        .expect("verify the sender domain");
    let notifier = SesNotifier::new(client, "no-reply@marketplace.example.com");
    contract::notifier(&notifier, "mail").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cognito_directory_passes_the_contract() {
    use aws_sdk_cognitoidentityprovider::types::AttributeType;
    let moto = Moto::start();
    let config = moto.config().await;
    let client = aws_sdk_cognitoidentityprovider::Client::new(&config);
    let pool = client
        .create_user_pool()
        .pool_name("ecosystem-marketplace-users")
        .send()
        .await
        .expect("pool")
        .user_pool
        .and_then(|p| p.id)
        .expect("pool id");
    let ns = "usr";
    for u in ["u1", "u2"] {
        client
            .admin_create_user()
            .user_pool_id(&pool)
            .username(format!("{ns}-{u}"))
            .user_attributes(
                AttributeType::builder()
                    .name("email")
                    .value(format!("{u}@example.com"))
                    .build()
                    .expect("attr"),
            )
            .user_attributes(
                AttributeType::builder()
                    .name("name")
                    .value(format!("User {u}"))
                    .build()
                    .expect("attr"),
            )
            .send()
            .await
            .expect("create user");
    }
    for g in ["g", "empty"] {
        client
            .create_group()
            .user_pool_id(&pool)
            .group_name(format!("{ns}-{g}"))
            .send()
            .await
            .expect("group");
    }
    client
        .admin_add_user_to_group()
        .user_pool_id(&pool)
        .username(format!("{ns}-u1"))
        .group_name(format!("{ns}-g"))
        .send()
        .await
        .expect("add to group");
    let directory = CognitoDirectory::new(client, pool);
    contract::user_directory(&directory, ns).await;
}

/// The claims of `provider` in the slots table: (slotStart, bookingId, expiresAt).
async fn claims(
    client: &aws_sdk_dynamodb::Client,
    provider: &str,
) -> Vec<(String, String, Option<i64>)> {
    let out = client
        .query()
        .table_name(tables().slots)
        .key_condition_expression("providerId = :p")
        .expression_attribute_values(":p", AttributeValue::S(provider.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("query slots");
    assert!(
        out.last_evaluated_key.is_none(),
        "one page is enough for a test"
    );
    out.items
        .unwrap_or_default()
        .iter()
        .map(|i| {
            let text = |k: &str| {
                i.get(k)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            let expires = i
                .get("expiresAt")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok());
            (text("slotStart"), text("bookingId"), expires)
        })
        .collect()
}

/// A booking of `provider` over `[start, start + minutes)` (longer than any service: as
/// a `Booking Created` event may describe it).
fn booking_over(id: &str, provider: &str, start: DateTime<Utc>, minutes: i64) -> BookingRecord {
    let svc = fixtures::service("svc_long", provider);
    let mut v = serde_json::to_value(fixtures::booking_record(id, &svc, "cus_long", start))
        .expect("record JSON");
    v["booking"]["endDateTime"] = serde_json::json!(marketplace_domain::wire::format_time(
        &(start + chrono::Duration::minutes(minutes))
    ));
    serde_json::from_value(v).expect("record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_claims_expire_and_long_bookings_reserve_in_chunks() {
    let moto = Moto::start();
    let config = moto.config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let store = DynamoStore::new(client.clone(), tables());
    create_tables(&client).await;
    let day = fixtures::t0() + chrono::Duration::days(2);

    // an ordinary booking: 4 claims, each with its TTL backstop (slot end + 7 days)
    let short = booking_over("bk_short", "prv_ttl", day, 60);
    assert_eq!(store.reserve_booking(&short).await, Ok(1));
    let c = claims(&client, "prv_ttl").await;
    assert_eq!(c.len(), 4);
    let first_end = day + chrono::Duration::minutes(15);
    assert_eq!(
        c[0].2,
        Some((first_end + chrono::Duration::days(SLOT_EXPIRY_MARGIN_DAYS)).timestamp())
    );
    assert_eq!(c[0].2, Some(slot_expires_at(day)));

    // 30 hours = 120 claims: more than one transaction holds
    let long = booking_over("bk_long", "prv_long", day, 30 * 60);
    assert_eq!(store.reserve_booking(&long).await, Ok(1));
    let c = claims(&client, "prv_long").await;
    assert_eq!(c.len(), 120);
    assert!(c.iter().all(|(_, b, e)| b == "bk_long" && e.is_some()));
    // a retried reservation of the same booking changes nothing
    assert!(matches!(
        store.reserve_booking(&long).await,
        Err(StoreError::ConditionFailed { .. })
    ));
    assert_eq!(claims(&client, "prv_long").await.len(), 120);

    // another long booking whose last hour overlaps: its first chunk is written, the last
    // transaction meets bk_long's claims, and the first chunk is deleted again
    let before = booking_over(
        "bk_before",
        "prv_long",
        day - chrono::Duration::hours(29),
        30 * 60,
    );
    match store.reserve_booking(&before).await {
        Err(StoreError::SlotUnavailable {
            conflicting_booking_id,
            ..
        }) => assert_eq!(conflicting_booking_id, "bk_long"),
        other => panic!("expected SlotUnavailable, got {other:?}"),
    }
    let c = claims(&client, "prv_long").await;
    assert!(
        c.iter().all(|(_, b, _)| b == "bk_long"),
        "no claim of the refused booking is left behind"
    );
    assert_eq!(c.len(), 120);
    assert_eq!(store.get_booking("bk_before").await, Ok(None));

    // releasing the long booking deletes all 120 claims (99 with the update, 21 after)
    let mut released = long.clone();
    released.slot_released = true;
    assert_eq!(store.update_booking(&released, 1, true).await, Ok(2));
    assert!(claims(&client, "prv_long").await.is_empty());
    // and the refused booking now fits
    assert_eq!(store.reserve_booking(&before).await, Ok(1));
    assert_eq!(claims(&client, "prv_long").await.len(), 120);
}
