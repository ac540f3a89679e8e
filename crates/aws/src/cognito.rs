//! The user directory on the Cognito user pool (`AdminGetUser`, `ListUsersInGroup`).
//! A user's id is the pool's username (the `sub` when the pool signs in by e-mail alias).

use async_trait::async_trait;
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::types::AttributeType;
use aws_sdk_cognitoidentityprovider::Client;
use marketplace_ports::store::{UserContact, UserDirectory};
use marketplace_ports::StoreError;

const MAX_PAGES: usize = 1_000;

/// Contacts from one user pool.
#[derive(Clone, Debug)]
pub struct CognitoDirectory {
    client: Client,
    user_pool_id: String,
}

fn unavailable<E, R>(operation: &str, e: &SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!(
        "Cognito {operation}: {}: {}",
        e.code().unwrap_or("Unknown"),
        e.message()
            .map(str::to_owned)
            .unwrap_or_else(|| e.to_string())
    ))
}

/// A contact from a user's attributes; None without an e-mail address.
fn contact(user_id: &str, attributes: &[AttributeType]) -> Option<UserContact> {
    let get = |name: &str| {
        attributes
            .iter()
            .find(|a| a.name() == name)
            .and_then(|a| a.value())
            .filter(|v| !v.is_empty())
    };
    let email = get("email")?;
    let display_name = get("name")
        .or_else(|| get("preferred_username"))
        .or_else(|| get("given_name"))
        .unwrap_or(email);
    Some(UserContact {
        user_id: user_id.to_owned(),
        email: email.to_owned(),
        display_name: display_name.to_owned(),
    })
}

impl CognitoDirectory {
    /// A directory over `user_pool_id` (`USER_POOL_ID`).
    pub fn new(client: Client, user_pool_id: impl Into<String>) -> Self {
        Self {
            client,
            user_pool_id: user_pool_id.into(),
        }
    }
}

#[async_trait]
impl UserDirectory for CognitoDirectory {
    async fn get_user(&self, user_id: &str) -> Result<Option<UserContact>, StoreError> {
        match self
            .client
            .admin_get_user()
            .user_pool_id(&self.user_pool_id)
            .username(user_id)
            .send()
            .await
        {
            Ok(out) => Ok(contact(user_id, out.user_attributes())),
            Err(e) if e.code() == Some("UserNotFoundException") => Ok(None),
            Err(e) => Err(unavailable("AdminGetUser", &e)),
        }
    }

    async fn group_members(&self, group: &str) -> Result<Vec<UserContact>, StoreError> {
        let mut out = Vec::new();
        let mut token = None;
        for _ in 0..MAX_PAGES {
            let page = match self
                .client
                .list_users_in_group()
                .user_pool_id(&self.user_pool_id)
                .group_name(group)
                .set_next_token(token.take())
                .send()
                .await
            {
                Ok(p) => p,
                Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(Vec::new()),
                Err(e) => return Err(unavailable("ListUsersInGroup", &e)),
            };
            for u in page.users() {
                if let Some(c) = u.username().and_then(|name| contact(name, u.attributes())) {
                    out.push(c);
                }
            }
            match page.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
        Err(StoreError::Unavailable(format!(
            "Cognito ListUsersInGroup {group}: more than {MAX_PAGES} pages"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &str, value: &str) -> AttributeType {
        AttributeType::builder()
            .name(name)
            .value(value)
            .build()
            .expect("attribute")
    }

    #[test]
    fn contacts_need_an_email_and_prefer_the_name() {
        assert_eq!(contact("u", &[attr("name", "Ann")]), None);
        let c = contact("u", &[attr("email", "a@x.test"), attr("name", "Ann")]).expect("contact");
        assert_eq!(
            (c.email.as_str(), c.display_name.as_str()),
            ("a@x.test", "Ann")
        );
        let c = contact("u", &[attr("email", "a@x.test")]).expect("contact");
        assert_eq!(c.display_name, "a@x.test");
    }
}
