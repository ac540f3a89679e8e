//! JSONata expressions evaluated over `serde_json::Value`.
