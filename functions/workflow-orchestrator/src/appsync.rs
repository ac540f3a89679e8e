//! AppSync direct Lambda resolver events, and the caller's identity read into our own
//! type (Cognito user pools with `sub`, claims and groups; IAM; OIDC; Lambda
//! authorizers; API key when the identity is null).

use marketplace_ports::HandlerError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `info` of a resolver event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// The field resolved (`startWorkflow`, ...).
    pub field_name: String,
    /// `Query` or `Mutation`.
    #[serde(default)]
    pub parent_type_name: String,
    /// The operation's variables.
    #[serde(default)]
    pub variables: Value,
    /// The fields selected.
    #[serde(default)]
    pub selection_set_list: Vec<String>,
}

/// `request` of a resolver event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The HTTP headers of the GraphQL request.
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// The custom domain, if any.
    #[serde(default)]
    pub domain_name: Option<String>,
}

/// One AppSync direct Lambda resolver event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolverEvent {
    /// The field's arguments.
    #[serde(default)]
    pub arguments: Value,
    /// The caller (null for API keys).
    #[serde(default)]
    pub identity: Option<Value>,
    /// The parent object.
    #[serde(default)]
    pub source: Option<Value>,
    /// The request.
    #[serde(default)]
    pub request: Option<Request>,
    /// What is resolved.
    pub info: Info,
    /// The pipeline stash.
    #[serde(default)]
    pub stash: Option<Value>,
}

impl ResolverEvent {
    /// Reads a resolver event, naming the field at fault.
    pub fn parse(v: &Value) -> Result<Self, HandlerError> {
        serde_json::from_value(v.clone()).map_err(|e| {
            HandlerError::validation("event", format!("is not an AppSync resolver event: {e}"))
        })
    }

    /// A request header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.as_ref().and_then(|r| {
            r.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str())
        })
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// An API key (no identity): a trusted client such as the front end.
    ApiKey,
    /// IAM credentials: a service or an operator.
    Iam {
        /// `userArn`.
        user_arn: Option<String>,
        /// `accountId`.
        account_id: Option<String>,
    },
    /// A Cognito user-pool user.
    Cognito {
        /// `sub`: the user id (customers and providers use it as their id).
        sub: String,
        /// `username`.
        username: Option<String>,
        /// `cognito:groups`.
        groups: Vec<String>,
        /// All claims.
        claims: Map<String, Value>,
    },
    /// An OpenID Connect user.
    Oidc {
        /// `sub`.
        sub: String,
        /// All claims.
        claims: Map<String, Value>,
    },
    /// A Lambda authorizer's resolver context.
    Lambda {
        /// `resolverContext`.
        context: Map<String, Value>,
    },
}

/// The group whose members are administrators.
pub const ADMIN_GROUP: &str = "admin";

fn groups_of(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => s
            .split([',', ' '])
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

impl Caller {
    /// Reads AppSync's `identity` (null → API key).
    pub fn from_identity(identity: Option<&Value>) -> Result<Self, HandlerError> {
        let Some(id) = identity.filter(|v| !v.is_null()) else {
            return Ok(Caller::ApiKey);
        };
        let o = id
            .as_object()
            .ok_or_else(|| HandlerError::validation("identity", "must be an object or null"))?;
        let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
        if let Some(ctx) = o.get("resolverContext").and_then(Value::as_object) {
            return Ok(Caller::Lambda {
                context: ctx.clone(),
            });
        }
        if let Some(sub) = s("sub") {
            let claims = o
                .get("claims")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let issuer = s("issuer").unwrap_or_default();
            let is_cognito = o.contains_key("groups")
                || o.contains_key("username")
                || issuer.contains("cognito-idp")
                || claims.contains_key("cognito:groups")
                || claims.contains_key("cognito:username");
            if is_cognito {
                let mut groups = groups_of(o.get("groups"));
                for g in groups_of(claims.get("cognito:groups")) {
                    if !groups.contains(&g) {
                        groups.push(g);
                    }
                }
                return Ok(Caller::Cognito {
                    sub,
                    username: s("username"),
                    groups,
                    claims,
                });
            }
            return Ok(Caller::Oidc { sub, claims });
        }
        if o.contains_key("userArn")
            || o.contains_key("accountId")
            || o.contains_key("cognitoIdentityPoolId")
        {
            return Ok(Caller::Iam {
                user_arn: s("userArn"),
                account_id: s("accountId"),
            });
        }
        Err(HandlerError::validation(
            "identity",
            "is not a Cognito, IAM, OIDC or Lambda identity",
        ))
    }

    /// Administrators: IAM callers and members of the Cognito group `admin`.
    pub fn is_admin(&self) -> bool {
        match self {
            Caller::Iam { .. } => true,
            Caller::Cognito { groups, .. } => groups.iter().any(|g| g == ADMIN_GROUP),
            _ => false,
        }
    }

    /// The signed-in user's id (Cognito/OIDC `sub`), for ownership checks.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Caller::Cognito { sub, .. } | Caller::Oidc { sub, .. } => Some(sub),
            _ => None,
        }
    }

    /// A user (signed in, not an admin): sees and starts only their own workflows.
    pub fn is_end_user(&self) -> bool {
        self.user_id().is_some() && !self.is_admin()
    }

    /// A name for logs and `resolvedBy`.
    pub fn describe(&self) -> String {
        match self {
            Caller::ApiKey => "api-key".into(),
            Caller::Iam { user_arn, .. } => user_arn.clone().unwrap_or_else(|| "iam".into()),
            Caller::Cognito { sub, username, .. } => {
                username.clone().unwrap_or_else(|| sub.clone())
            }
            Caller::Oidc { sub, .. } => sub.clone(),
            Caller::Lambda { .. } => "lambda-authorizer".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identities() {
        assert_eq!(Caller::from_identity(None).unwrap(), Caller::ApiKey);
        assert_eq!(
            Caller::from_identity(Some(&Value::Null)).unwrap(),
            Caller::ApiKey
        );
        let cognito = json!({
            "sub": "cus_1", "issuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_x",
            "username": "ana", "claims": {"sub": "cus_1", "cognito:groups": ["admin"], "email": "a@x.io"},
            "sourceIp": ["1.2.3.4"], "defaultAuthStrategy": "ALLOW", "groups": null
        });
        let c = Caller::from_identity(Some(&cognito)).unwrap();
        assert!(c.is_admin(), "groups come from the claims too");
        assert_eq!(c.user_id(), Some("cus_1"));
        match &c {
            Caller::Cognito {
                claims, username, ..
            } => {
                assert_eq!(claims["email"], "a@x.io");
                assert_eq!(username.as_deref(), Some("ana"));
            }
            other => panic!("{other:?}"),
        }
        let user = json!({"sub": "cus_2", "username": "bo", "claims": {}, "groups": ["customers"]});
        let u = Caller::from_identity(Some(&user)).unwrap();
        assert!(u.is_end_user() && !u.is_admin());
        let iam = json!({"accountId": "123456789012", "userArn": "arn:aws:iam::123456789012:role/ops", "sourceIp": []});
        assert!(Caller::from_identity(Some(&iam)).unwrap().is_admin());
        let oidc =
            json!({"sub": "u", "issuer": "https://login.example.com", "claims": {"sub": "u"}});
        assert!(matches!(
            Caller::from_identity(Some(&oidc)).unwrap(),
            Caller::Oidc { .. }
        ));
        let lambda = json!({"resolverContext": {"tenant": "t"}});
        assert!(matches!(
            Caller::from_identity(Some(&lambda)).unwrap(),
            Caller::Lambda { .. }
        ));
        assert!(Caller::from_identity(Some(&json!({"nothing": 1}))).is_err());
        assert!(Caller::from_identity(Some(&json!("x"))).is_err());
    }

    #[test]
    fn resolver_event_shape() {
        let e = ResolverEvent::parse(&json!({
            "arguments": {"executionArn": "a"}, "identity": null, "source": null,
            "request": {"headers": {"X-Correlation-Id": "c-1"}, "domainName": null},
            "prev": null, "info": {"fieldName": "getWorkflowStatus", "parentTypeName": "Query", "variables": {}, "selectionSetList": ["success"]},
            "stash": {}
        }))
        .unwrap();
        assert_eq!(e.info.field_name, "getWorkflowStatus");
        assert_eq!(e.header("x-correlation-id"), Some("c-1"));
        assert!(ResolverEvent::parse(&json!({"arguments": {}})).is_err());
    }
}
