//! The checked-in schemas under `schemas/` must be exactly what the types generate.
//!
//! Regenerate them after changing a detail type:
//!
//! ```sh
//! UPDATE_SCHEMAS=1 cargo test -p marketplace-domain --test schemas
//! ```

use marketplace_domain::schema::{event_schemas, render};
use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

#[test]
fn checked_in_schemas_match_the_types() {
    let dir = schemas_dir();
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v != "0");
    let generated = event_schemas();
    let wanted: BTreeSet<String> = generated.iter().map(|(n, _)| n.clone()).collect();

    if update {
        fs::create_dir_all(&dir).expect("create schemas/");
        for entry in fs::read_dir(&dir).expect("read schemas/").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") && !wanted.contains(&name) {
                fs::remove_file(entry.path()).expect("remove stale schema");
            }
        }
        for (name, schema) in &generated {
            fs::write(dir.join(name), render(schema)).expect("write schema");
        }
    }

    let mut problems = Vec::new();
    for (name, schema) in &generated {
        match fs::read_to_string(dir.join(name)) {
            Ok(text) if text == render(schema) => {}
            Ok(_) => problems.push(format!("schemas/{name} differs from the type")),
            Err(_) => problems.push(format!("schemas/{name} is missing")),
        }
    }
    for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !wanted.contains(&name) {
            problems.push(format!("schemas/{name} belongs to no detail type"));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nregenerate with: UPDATE_SCHEMAS=1 cargo test -p marketplace-domain --test schemas",
        problems.join("\n")
    );
}

#[test]
fn schema_files_follow_the_naming_the_cdk_app_reads() {
    let names: Vec<String> = event_schemas().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"marketplace.booking@BookingCreated.json".to_owned()));
    assert!(names.contains(&"marketplace.payment@PaymentIntentCreated.json".to_owned()));
    assert!(names.contains(&"marketplace.workflow@WorkflowTimedOut.json".to_owned()));
    assert!(names.iter().all(|n| !n.contains(' ')));
    assert_eq!(names.len(), 24);
}
