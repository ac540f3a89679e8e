//! The `ports` contract suite against the local adapters: SQLite repositories, idempotency
//! store and outbox; the bus publisher; the workflow client on the workflow host.

mod common;

use common::TempDir;
use marketplace_local::adapters::{BusPublisher, HostWorkflowClient, SqlitePorts};
use marketplace_local::bus::Bus;
use marketplace_local::clock::RuntimeClock;
use marketplace_local::functions::Functions;
use marketplace_local::metrics::Metrics;
use marketplace_local::rules::Rules;
use marketplace_local::store::Store;
use marketplace_local::workflows::{substitute, Machine, Workflows};
use marketplace_ports::contract;
use marketplace_ports::notify::{EmailMessage, Notifier};
use std::sync::Arc;

fn ports(dir: &TempDir) -> SqlitePorts {
    SqlitePorts::new(Arc::new(Store::open_dir(dir.path()).expect("store")))
}

#[tokio::test]
async fn sqlite_repositories_pass_the_contract() {
    let dir = TempDir::new("contract-repos");
    let p = ports(&dir);
    contract::service_repository(&p, "c1").await;
    contract::provider_repository(&p, "c1").await;
    contract::booking_repository(&p, "c1").await;
    contract::payment_repository(&p, "c1").await;
    contract::dispute_repository(&p, "c1").await;
    contract::ledger_repository(&p, "c1").await;
    contract::idempotency_store(&p, "c1").await;
    // Again in the same (now non-empty) file, as after a restart.
    let p = ports(&dir);
    contract::booking_repository(&p, "c2").await;
    contract::dispute_repository(&p, "c2").await;
}

#[tokio::test]
async fn the_outbox_keeps_one_message_per_idempotency_key() {
    let dir = TempDir::new("contract-outbox");
    let p = ports(&dir);
    let m = EmailMessage {
        to: vec!["a@example.com".into()],
        subject: "Booking confirmed".into(),
        text_body: "Hi".into(),
        html_body: None,
        idempotency_key: "evt-1:a".into(),
        template: "booking-confirmed".into(),
        correlation_id: Some("corr-1".into()),
    };
    let id1 = p.send_email(&m).await.expect("send");
    let id2 = p.send_email(&m).await.expect("send again");
    assert_eq!(id1, id2);
    assert_eq!(p.outbox().expect("outbox").len(), 1);
    let mut none = m.clone();
    none.to.clear();
    none.idempotency_key = "k2".into();
    assert!(p.send_email(&none).await.is_err());
}

#[tokio::test]
async fn bus_publisher_and_workflow_client_pass_the_contract() {
    let dir = TempDir::new("contract-wf");
    let store = Arc::new(Store::open_dir(dir.path()).expect("store"));
    let clock =
        Arc::new(RuntimeClock::virtual_from(store.clone(), chrono::Utc::now()).expect("clock"));
    let metrics = Arc::new(Metrics::default());
    let functions = Arc::new(Functions::default());
    let rules = Rules::parse(marketplace_local::rules::EMBEDDED_RULES).expect("rules");
    let bus = Arc::new(Bus::new(
        store.clone(),
        Arc::new(rules),
        clock.clone(),
        metrics.clone(),
        functions.clone(),
    ));
    contract::event_publisher(&BusPublisher::new(bus.clone())).await;
    // The four workflows as machines that wait (so a started execution stays RUNNING).
    let text = substitute(
        "t",
        &common::timer_machine().to_string(),
        "ecosystem-marketplace-events",
    )
    .expect("subst");
    let machines = marketplace_local::workflows::EMBEDDED
        .iter()
        .map(|(_, name, wt, _)| Machine {
            name: (*name).to_string(),
            workflow_type: (*wt).to_string(),
            definition: asl::parse_definition_text(&text).expect("definition"),
        })
        .collect();
    let host = Arc::new(Workflows::new(
        store, clock, metrics, functions, bus, machines,
    ));
    contract::workflow_client(&HostWorkflowClient::new(host), "c1").await;
}
