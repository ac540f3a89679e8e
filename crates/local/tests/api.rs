//! End-to-end: the GraphQL API's introspection and explorer page, the admin API's own
//! credential, and the AppSync-shaped errors of bad requests, against `marketplace serve`.

mod common;

use common::{mint, Server, TempDir, BIN};
use serde_json::{json, Value};
use std::process::Command;

/// The introspection query inlined in the served script (a JSON string literal).
fn script_introspection_query(script: &str) -> String {
    let start = script
        .find("const INTROSPECTION_QUERY = ")
        .expect("the script defines INTROSPECTION_QUERY")
        + "const INTROSPECTION_QUERY = ".len();
    let mut de = serde_json::Deserializer::from_str(&script[start..]).into_iter::<Value>();
    match de.next() {
        Some(Ok(Value::String(q))) => q,
        other => panic!("INTROSPECTION_QUERY is not a JSON string: {other:?}"),
    }
}

#[test]
fn the_explorer_page_is_served_and_its_introspection_query_works() {
    let dir = TempDir::new("explorer");
    let s = Server::start(dir.path(), &[]);
    let page = s.anon().get("/").expect("page");
    assert_eq!(page.status, 200);
    for part in [
        "<script src=\"/explorer.js\">",
        "href=\"/explorer.css\"",
        "id=\"query\"",
        "id=\"variables\"",
        "id=\"headers\"",
        "id=\"api-key\"",
        "id=\"token\"",
        "id=\"run\"",
        "id=\"result\"",
        "id=\"docs\"",
        "id=\"history\"",
    ] {
        assert!(page.body.contains(part), "{part} missing from the page");
    }
    // Nothing from elsewhere: no absolute URL is loaded by the page or the script.
    let script = s.anon().get("/explorer.js").expect("script");
    assert_eq!(script.status, 200);
    let css = s.anon().get("/explorer.css").expect("css");
    assert_eq!(css.status, 200);
    for body in [&page.body, &script.body, &css.body] {
        assert!(!body.contains("http://") && !body.contains("https://"));
        assert!(!body.contains("/*INTROSPECTION_QUERY*/"));
    }
    for needle in [
        "fetch('/graphql'",
        "localStorage",
        "x-api-key",
        "authorization",
    ] {
        assert!(
            script.body.contains(needle),
            "{needle} missing from the script"
        );
    }
    // The query the page sends for its documentation explorer.
    let query = script_introspection_query(&script.body);
    assert!(query.contains("__schema"));
    let body = json!({"query": query, "operationName": "IntrospectionQuery"});
    let r = s.anon().post("/graphql", &body).expect("anonymous");
    assert_eq!(
        r.status, 401,
        "introspection needs a credential like any request"
    );
    let user = mint(dir.path(), "cus_1", "");
    for client in [s.client(), s.with_token(&user)] {
        let r = client.post("/graphql", &body).expect("introspection");
        assert_eq!(r.status, 200);
        let v = r.json();
        assert!(v.get("errors").is_none(), "{v}");
        let schema = &v["data"]["__schema"];
        assert_eq!(schema["queryType"]["name"], "Query");
        assert_eq!(schema["mutationType"]["name"], "Mutation");
        let types = schema["types"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = types.iter().filter_map(|t| t["name"].as_str()).collect();
        for n in [
            "Query",
            "Mutation",
            "WorkflowType",
            "AWSJSON",
            "AWSDateTime",
            "__Schema",
        ] {
            assert!(names.contains(&n), "{n} missing: {names:?}");
        }
        let mutation = types
            .iter()
            .find(|t| t["name"] == "Mutation")
            .expect("Mutation");
        let fields: Vec<&str> = mutation["fields"]
            .as_array()
            .map(|f| f.iter().filter_map(|x| x["name"].as_str()).collect())
            .unwrap_or_default();
        for f in [
            "startWorkflow",
            "stopWorkflow",
            "publishEvent",
            "resolveDispute",
        ] {
            assert!(fields.contains(&f), "{f} missing: {fields:?}");
        }
        let directives: Vec<&str> = schema["directives"]
            .as_array()
            .map(|d| d.iter().filter_map(|x| x["name"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            directives.contains(&"aws_cognito_user_pools"),
            "{directives:?}"
        );
    }
    let page_headers = raw_headers(&s.url, "/");
    assert!(
        page_headers.contains("content-security-policy: default-src 'none'"),
        "{page_headers}"
    );
    assert!(
        page_headers.contains("content-type: text/html"),
        "{page_headers}"
    );
}

/// The response head of a GET, lower-cased.
fn raw_headers(url: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let host = url.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(host).expect("connect");
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    text.split("\r\n\r\n").next().unwrap_or("").to_string()
}

#[test]
fn the_admin_api_needs_the_admin_credential_not_the_api_key() {
    let dir = TempDir::new("admin");
    let s = Server::start(dir.path(), &[]);
    assert!(s.admin_key.starts_with("mka-"), "{}", s.admin_key);
    assert_ne!(s.admin_key, s.api_key);
    let status = |c: marketplace_local::client::Client| {
        let r = c.get("/admin/stats").expect("stats");
        (r.status, r.json()["errorType"].clone(), r.json())
    };
    // The API key opens GraphQL, not the admin API.
    let (code, kind, body) = status(s.client());
    assert_eq!(
        (code, kind),
        (403, json!("AccessDeniedException")),
        "{body}"
    );
    assert!(body["message"]
        .as_str()
        .unwrap_or("")
        .contains("the API key opens the GraphQL API only"));
    assert_eq!(
        s.client()
            .post(
                "/admin/token/mint",
                &json!({"sub": "me", "groups": ["admin"]})
            )
            .expect("mint")
            .status,
        403,
        "the API key cannot mint itself an admin token"
    );
    let (code, kind, _) = status(s.anon());
    assert_eq!((code, kind), (401, json!("UnauthorizedException")));
    let (code, _, _) = status(s.anon().with_header("x-admin-key", &s.api_key));
    assert_eq!(code, 401);
    let customer = mint(dir.path(), "cus_1", "customers");
    let (code, kind, body) = status(s.with_token(&customer));
    assert_eq!(
        (code, kind),
        (403, json!("AccessDeniedException")),
        "{body}"
    );
    // Accepted: the admin key, or a token of the admin group.
    assert_eq!(status(s.admin()).0, 200);
    let admin = mint(dir.path(), "ops", "admin");
    assert_eq!(status(s.with_token(&admin)).0, 200);
    // The admin key does not open GraphQL.
    let r = s
        .admin()
        .graphql("{ listWorkflowExecutions { success } }", json!({}))
        .expect("graphql");
    assert_eq!(r.status, 401);

    // The key is kept in the data directory, for its owner only.
    let file = dir.path().join("admin.key");
    let kept = std::fs::read_to_string(&file).expect("admin.key");
    assert_eq!(kept.trim(), s.admin_key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let server_json = std::fs::read_to_string(dir.path().join("server.json")).expect("server.json");
    assert!(
        !server_json.contains(&s.admin_key),
        "server.json holds no admin key"
    );

    // The CLI: the admin key from the flag, the data directory, or an admin token.
    let cli = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .args(["--url", &s.url])
            .output()
            .expect("cli")
    };
    let o = cli(&[
        "dlq",
        "list",
        "--api-key",
        &s.api_key,
        "--data-dir",
        "/nonexistent",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("AccessDeniedException"), "{err}");
    let o = cli(&["dlq", "list", "--admin-key", &s.admin_key]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d = dir.path().to_string_lossy().to_string();
    let o = cli(&["dlq", "list", "--data-dir", &d]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cli(&[
        "clock",
        "now",
        "--token",
        &admin,
        "--data-dir",
        "/nonexistent",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cli(&[
        "clock",
        "now",
        "--token",
        &customer,
        "--data-dir",
        "/nonexistent",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not in the 'admin' group"));

    // A restart keeps the key.
    let key = s.admin_key.clone();
    drop(s);
    let s = Server::start(dir.path(), &[]);
    assert_eq!(s.admin_key, key);
    assert_eq!(status(s.admin()).0, 200);
}

#[test]
fn a_fixed_admin_key_must_be_long_enough() {
    let dir = TempDir::new("adminflag");
    let o = Command::new(BIN)
        .args(["serve", "--port", "0", "--admin-key", "short", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("serve");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--admin-key: must be at least 16"));
    let s = Server::start(dir.path(), &["--admin-key", "a-long-enough-admin-key"]);
    assert_eq!(s.admin_key, "a-long-enough-admin-key");
    assert_eq!(s.admin().get("/admin/stats").expect("stats").status, 200);
}
