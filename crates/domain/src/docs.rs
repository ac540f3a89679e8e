//! Generated documentation: the catalogue table and the state diagrams of the crate
//! README. `tests/readme.rs` fails when the README's generated sections differ from these
//! and rewrites them with `UPDATE_SCHEMAS=1`.

use crate::entities::{mermaid, BookingStatus, DisputeStatus, PaymentStatus, ProviderStatus};
use crate::events::CATALOGUE;
use serde_json::Value;

fn short_type(schema: &Value) -> String {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let names: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
        if names.len() > 6 {
            return "ISO 4217 code".to_owned();
        }
        return names.join(" \\| ");
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("number") if schema.get("exclusiveMinimum") == Some(&Value::Bool(true)) => {
            "amount > 0".to_owned()
        }
        Some("number") => "amount ≥ 0".to_owned(),
        Some("boolean") => "boolean".to_owned(),
        Some("string") if schema.get("format").and_then(Value::as_str) == Some("date-time") => {
            "date-time".to_owned()
        }
        Some("string") => match schema.get("pattern").and_then(Value::as_str) {
            Some(p) if p.starts_with("^arn:") => "execution ARN".to_owned(),
            Some(p) if p.starts_with("^[A-Za-z0-9") => "id".to_owned(),
            Some(p) if p.starts_with('^') && p.contains('_') && !p.starts_with("^[^") => {
                let prefix: String = p
                    .trim_start_matches('^')
                    .chars()
                    .take_while(|c| *c != '[')
                    .collect();
                format!("{prefix}… id")
            }
            Some(p) if p.starts_with("^[^") => "execution name".to_owned(),
            _ => format!(
                "text ≤ {}",
                schema.get("maxLength").and_then(Value::as_u64).unwrap_or(0)
            ),
        },
        _ => "any JSON".to_owned(),
    }
}

/// The catalogue as a Markdown table: source, detail-type, fields (`?` = optional),
/// leaving out `timestamp` and `correlationId`, which every detail has.
pub fn catalogue_table() -> String {
    let mut out = String::from("| source | detail-type | detail fields (besides `timestamp`, `correlationId`; `?` = optional) |\n|---|---|---|\n");
    for entry in CATALOGUE {
        let schema = entry.detail_schema();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut fields = Vec::new();
        if let Some(props) = schema["properties"].as_object() {
            for (name, s) in props {
                if name == "timestamp" || name == "correlationId" {
                    continue;
                }
                let opt = if required.contains(&name.as_str()) {
                    ""
                } else {
                    "?"
                };
                fields.push(format!("`{name}{opt}` {}", short_type(s)));
            }
        }
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            entry.source,
            entry.detail_type,
            fields.join(", ")
        ));
    }
    out
}

/// The generated README sections: `(marker, content)`.
pub fn readme_sections() -> Vec<(&'static str, String)> {
    let diagram = |m: String| format!("```mermaid\n{m}```\n");
    vec![
        ("catalogue", catalogue_table()),
        ("booking-states", diagram(mermaid::<BookingStatus>())),
        ("payment-states", diagram(mermaid::<PaymentStatus>())),
        ("dispute-states", diagram(mermaid::<DisputeStatus>())),
        ("provider-states", diagram(mermaid::<ProviderStatus>())),
    ]
}

/// `text` with each `<!-- generated:NAME -->…<!-- end:NAME -->` section replaced by its
/// content; `Err(name)` when a section's markers are missing.
pub fn fill_sections(text: &str, sections: &[(&str, String)]) -> Result<String, String> {
    let mut out = text.to_owned();
    for (name, content) in sections {
        let start = format!("<!-- generated:{name} -->\n");
        let end = format!("<!-- end:{name} -->");
        let s = out.find(&start).ok_or_else(|| name.to_string())? + start.len();
        let e = out[s..].find(&end).ok_or_else(|| name.to_string())? + s;
        out.replace_range(s..e, content);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_a_row_per_detail_type() {
        let t = catalogue_table();
        assert_eq!(t.lines().count(), 2 + CATALOGUE.len());
        assert!(t.contains("| marketplace.booking | Booking Cancelled | `bookingId` id, `cancelledBy` CUSTOMER \\| PROVIDER \\| SYSTEM"));
        assert!(t.contains("`paymentIntentId` pi_… id"));
        assert!(t.contains("`notes?` text ≤ 5000"));
    }

    #[test]
    fn sections_are_replaced_between_markers() {
        let text = "a\n<!-- generated:x -->\nold\n<!-- end:x -->\nb\n";
        let out = fill_sections(text, &[("x", "new\n".to_owned())]).unwrap();
        assert_eq!(out, "a\n<!-- generated:x -->\nnew\n<!-- end:x -->\nb\n");
        assert_eq!(
            fill_sections(text, &[("y", String::new())]),
            Err("y".to_owned())
        );
    }

    #[test]
    fn diagrams_list_every_transition() {
        let d = mermaid::<BookingStatus>();
        assert!(d.contains("[*] --> PENDING_PAYMENT"));
        assert!(d.contains("CONFIRMED --> COMPLETED"));
        assert!(d.contains("EXPIRED --> [*]"));
        assert!(!d.contains("PENDING_PAYMENT --> [*]"));
    }
}
