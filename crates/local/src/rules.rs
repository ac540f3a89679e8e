//! `infra/rules.json`: the bus rules, their targets, retry policies and dead-letter queues.
//!
//! The CDK app makes EventBridge rules from this file; the local bus loads the very same
//! file. Loading validates everything EventBridge would refuse, naming the rule: an
//! invalid pattern (with EventBridge's reason text), an unknown target type or function,
//! an input transformer with an undefined placeholder, a retry policy out of range, a
//! dead-letter queue that is not declared.

use event_patterns::transform::InputTransformer;
use event_patterns::{Pattern, RuleSet};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

/// The rules file compiled into the binary (the repository's `infra/rules.json`).
pub const EMBEDDED_RULES: &str = include_str!("../../../infra/rules.json");

/// Functions a rule may target (the handler libraries under `functions/`).
pub const KNOWN_FUNCTIONS: &[&str] = &[
    "workflow-orchestrator",
    "notification-handler",
    "payout-manager",
    "dispute-handler",
    "booking-manager",
    "stripe-webhook",
];

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Not JSON, or not the expected shape.
    #[error("rules file: {0}")]
    Format(String),
    /// A rule is invalid.
    #[error("rules file: rule '{rule}': {message}")]
    Rule {
        /// The rule's name.
        rule: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileDoc {
    format_version: Option<u64>,
    event_bus: FileBus,
    #[serde(default)]
    dead_letter_queues: Vec<FileDlq>,
    rules: Vec<FileRule>,
}

#[derive(Deserialize)]
struct FileBus {
    name: String,
}

#[derive(Deserialize)]
struct FileDlq {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileRule {
    name: String,
    #[serde(default)]
    event_bus: Option<String>,
    #[serde(default)]
    state: Option<String>,
    pattern: Value,
    #[serde(default)]
    targets: Vec<Value>,
}

/// A target's retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0..=185).
    pub maximum_retry_attempts: u32,
    /// Age after which an event is no longer retried (60..=86400 s).
    pub maximum_event_age_seconds: u64,
}

/// One target of a rule.
#[derive(Debug, Clone)]
pub struct Target {
    /// Target id (unique within its rule).
    pub id: String,
    /// The function invoked.
    pub function: String,
    /// Input transformer, when the target has one.
    pub transformer: Option<InputTransformer>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// The dead-letter queue.
    pub dead_letter_queue: String,
}

/// One enabled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Rule name.
    pub name: String,
    /// The bus it is on (`default` for AWS service events).
    pub event_bus: String,
    /// Targets.
    pub targets: Vec<Target>,
}

/// The validated rule set: a compiled matcher plus the rules' targets.
#[derive(Debug)]
pub struct Rules {
    /// The marketplace bus name.
    pub bus_name: String,
    /// Enabled rules by name.
    pub rules: HashMap<String, Rule>,
    /// Compiled patterns of the enabled rules.
    pub matcher: RuleSet,
    /// Names of the disabled rules (kept for listing).
    pub disabled: Vec<String>,
}

fn rule_err(rule: &str, message: impl Into<String>) -> RulesError {
    RulesError::Rule {
        rule: rule.to_string(),
        message: message.into(),
    }
}

impl Rules {
    /// Parses and validates a rules document.
    pub fn parse(text: &str) -> Result<Rules, RulesError> {
        let doc: FileDoc = serde_json::from_str(text)
            .map_err(|e| RulesError::Format(format!("not a valid rules document: {e}")))?;
        if let Some(v) = doc.format_version {
            if v != 1 {
                return Err(RulesError::Format(format!(
                    "formatVersion {v} is not supported (expected 1)"
                )));
            }
        }
        let dlqs: Vec<&str> = doc
            .dead_letter_queues
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        let mut rules = HashMap::new();
        let mut matcher = RuleSet::new();
        let mut disabled = Vec::new();
        for r in &doc.rules {
            if r.name.is_empty() || r.name.len() > 64 {
                return Err(rule_err(&r.name, "name must be 1 to 64 characters long"));
            }
            if rules.contains_key(&r.name) || disabled.contains(&r.name) {
                return Err(rule_err(&r.name, "a rule with this name is defined twice"));
            }
            let pattern = Pattern::from_value(&r.pattern)
                .map_err(|e| rule_err(&r.name, format!("pattern: {e}")))?;
            let mut targets = Vec::new();
            for t in &r.targets {
                targets.push(parse_target(&r.name, t, &dlqs)?);
            }
            if targets.is_empty() {
                return Err(rule_err(&r.name, "a rule needs at least one target"));
            }
            let state = r.state.as_deref().unwrap_or("ENABLED");
            match state {
                "ENABLED" => {}
                "DISABLED" => {
                    disabled.push(r.name.clone());
                    continue;
                }
                other => {
                    return Err(rule_err(
                        &r.name,
                        format!("state '{other}' is not ENABLED or DISABLED"),
                    ))
                }
            }
            matcher.add(r.name.clone(), pattern);
            rules.insert(
                r.name.clone(),
                Rule {
                    name: r.name.clone(),
                    event_bus: r
                        .event_bus
                        .clone()
                        .unwrap_or_else(|| doc.event_bus.name.clone()),
                    targets,
                },
            );
        }
        Ok(Rules {
            bus_name: doc.event_bus.name,
            rules,
            matcher,
            disabled,
        })
    }
}

fn parse_target(rule: &str, t: &Value, dlqs: &[&str]) -> Result<Target, RulesError> {
    let str_field = |name: &str| -> Result<String, RulesError> {
        t.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| rule_err(rule, format!("target field '{name}' must be a string")))
    };
    let id = str_field("id")?;
    let kind = str_field("type")?;
    if kind != "lambda" {
        return Err(rule_err(
            rule,
            format!("target '{id}': unknown target type '{kind}' (supported: lambda)"),
        ));
    }
    let function = str_field("function")?;
    if !KNOWN_FUNCTIONS.contains(&function.as_str()) {
        return Err(rule_err(
            rule,
            format!(
                "target '{id}': unknown function '{function}' (known: {})",
                KNOWN_FUNCTIONS.join(", ")
            ),
        ));
    }
    let retry = t
        .get("retryPolicy")
        .ok_or_else(|| rule_err(rule, format!("target '{id}': retryPolicy is required")))?;
    let attempts = retry
        .get("maximumRetryAttempts")
        .and_then(Value::as_u64)
        .filter(|n| *n <= 185)
        .ok_or_else(|| {
            rule_err(
                rule,
                format!("target '{id}': retryPolicy.maximumRetryAttempts must be an integer from 0 to 185"),
            )
        })?;
    let age = retry
        .get("maximumEventAgeInSeconds")
        .and_then(Value::as_u64)
        .filter(|n| (60..=86_400).contains(n))
        .ok_or_else(|| {
            rule_err(
                rule,
                format!("target '{id}': retryPolicy.maximumEventAgeInSeconds must be an integer from 60 to 86400"),
            )
        })?;
    let dead_letter_queue = str_field("deadLetterQueue")?;
    if !dlqs.contains(&dead_letter_queue.as_str()) {
        return Err(rule_err(
            rule,
            format!("target '{id}': deadLetterQueue '{dead_letter_queue}' is not declared in deadLetterQueues"),
        ));
    }
    let transformer = match t.get("inputTransformer") {
        None => None,
        Some(it) => {
            let map = it
                .get("inputPathsMap")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    rule_err(
                        rule,
                        format!("target '{id}': inputTransformer.inputPathsMap must be an object"),
                    )
                })?;
            let mut paths = Vec::new();
            for (k, v) in map {
                let p = v.as_str().ok_or_else(|| {
                    rule_err(
                        rule,
                        format!("target '{id}': inputPathsMap.{k} must be a string"),
                    )
                })?;
                paths.push((k.clone(), p.to_string()));
            }
            let template = it
                .get("inputTemplate")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    rule_err(
                        rule,
                        format!("target '{id}': inputTransformer.inputTemplate must be a string"),
                    )
                })?;
            Some(
                InputTransformer::new(&paths, template, &id)
                    .map_err(|e| rule_err(rule, format!("target '{id}': {e}")))?,
            )
        }
    };
    Ok(Target {
        id,
        function,
        transformer,
        retry: RetryPolicy {
            maximum_retry_attempts: attempts as u32,
            maximum_event_age_seconds: age,
        },
        dead_letter_queue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_rules_load() {
        let r = Rules::parse(EMBEDDED_RULES).expect("infra/rules.json is valid");
        assert!(r.rules.len() >= 5);
        assert!(r.rules.contains_key("workflow-auto-trigger"));
        let ev =
            br#"{"source":"marketplace.provider","detail-type":"Provider Registered","detail":{}}"#;
        let names = r.matcher.matches(ev).expect("match");
        assert!(names.contains(&"workflow-auto-trigger"), "{names:?}");
        assert!(!names.contains(&"booking-events-to-notification-handler"));
    }

    fn doc(rule: &str) -> String {
        format!(
            r#"{{"eventBus":{{"name":"b"}},"deadLetterQueues":[{{"name":"q"}}],"rules":[{rule}]}}"#
        )
    }

    const TARGET: &str = r#"{"id":"t","type":"lambda","function":"notification-handler","retryPolicy":{"maximumRetryAttempts":2,"maximumEventAgeInSeconds":60},"deadLetterQueue":"q"}"#;

    #[test]
    fn an_invalid_pattern_names_the_rule_and_the_reason() {
        let text = doc(&format!(
            r#"{{"name":"bad-one","pattern":{{"source":[{{"prefix":5}}]}},"targets":[{TARGET}]}}"#
        ));
        let err = Rules::parse(&text).expect_err("invalid").to_string();
        assert!(err.contains("rule 'bad-one'"), "{err}");
        assert!(err.contains("Event pattern is not valid"), "{err}");
    }

    #[test]
    fn an_unknown_target_type_is_refused() {
        let t = TARGET.replace("\"lambda\"", "\"sqs\"");
        let text = doc(&format!(
            r#"{{"name":"r","pattern":{{"source":["a"]}},"targets":[{t}]}}"#
        ));
        let err = Rules::parse(&text).expect_err("invalid").to_string();
        assert!(err.contains("unknown target type 'sqs'"), "{err}");
    }

    #[test]
    fn an_undeclared_dlq_and_bad_retry_policy_are_refused() {
        let t = TARGET.replace("\"q\"", "\"nope\"");
        let text = doc(&format!(
            r#"{{"name":"r","pattern":{{"source":["a"]}},"targets":[{t}]}}"#
        ));
        assert!(Rules::parse(&text)
            .expect_err("dlq")
            .to_string()
            .contains("deadLetterQueue 'nope'"));
        let t = TARGET.replace(
            "\"maximumEventAgeInSeconds\":60",
            "\"maximumEventAgeInSeconds\":5",
        );
        let text = doc(&format!(
            r#"{{"name":"r","pattern":{{"source":["a"]}},"targets":[{t}]}}"#
        ));
        assert!(Rules::parse(&text)
            .expect_err("age")
            .to_string()
            .contains("maximumEventAgeInSeconds"));
    }

    #[test]
    fn disabled_rules_do_not_match() {
        let text = doc(&format!(
            r#"{{"name":"off","state":"DISABLED","pattern":{{"source":["a"]}},"targets":[{TARGET}]}}"#
        ));
        let r = Rules::parse(&text).expect("valid");
        assert!(r.rules.is_empty());
        assert_eq!(r.disabled, vec!["off".to_string()]);
    }
}
