//! The README's catalogue table and state diagrams are generated from the code; this
//! fails when they drift and rewrites them with `UPDATE_SCHEMAS=1`.

use marketplace_domain::docs::{fill_sections, readme_sections};
use std::path::PathBuf;

#[test]
fn readme_generated_sections_match_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = std::fs::read_to_string(&path).expect("crates/domain/README.md");
    let filled = fill_sections(&text, &readme_sections())
        .unwrap_or_else(|name| panic!("README.md lacks the markers of section {name}"));
    if std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v != "0") {
        std::fs::write(&path, &filled).expect("write README.md");
        return;
    }
    assert!(
        filled == text,
        "crates/domain/README.md is out of date; regenerate with: UPDATE_SCHEMAS=1 cargo test -p marketplace-domain"
    );
}
