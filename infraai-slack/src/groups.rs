//! Membership of the approver user groups (`usergroups.users.list`), cached.

use crate::client::WebClient;
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;
use tokio::sync::Mutex;
use tracing::warn;

/// Each configured group's members, fetched at most once per `group_ttl`.
pub(crate) struct GroupCache {
    client: WebClient,
    members: Mutex<HashMap<String, (Instant, BTreeSet<String>)>>,
}

impl GroupCache {
    pub fn new(client: WebClient) -> Self {
        Self {
            client,
            members: Mutex::default(),
        }
    }

    /// The configured approver groups `user` is a member of. A group whose
    /// members cannot be read counts as not containing the user (fails
    /// closed), and is asked again next time.
    pub async fn groups_of(&self, user: &str) -> Vec<String> {
        let config = self.client.config();
        let mut found = Vec::new();
        // One lookup at a time: presses arriving together share one fetch.
        let mut members = self.members.lock().await;
        for group in &config.approver_groups {
            let fresh = members
                .get(group)
                .filter(|(at, _)| at.elapsed() < config.group_ttl);
            let contains = match fresh {
                Some((_, users)) => users.contains(user),
                None => match self.fetch(group).await {
                    Some(users) => {
                        let contains = users.contains(user);
                        members.insert(group.clone(), (Instant::now(), users));
                        contains
                    }
                    None => false,
                },
            };
            if contains {
                found.push(group.clone());
            }
        }
        found
    }

    async fn fetch(&self, group: &str) -> Option<BTreeSet<String>> {
        match self
            .client
            .get("usergroups.users.list", &[("usergroup", group)])
            .await
        {
            Ok(answer) => Some(
                answer["users"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect(),
            ),
            Err(e) => {
                warn!(group, error = %e, "cannot read a Slack approver group; its members are refused");
                None
            }
        }
    }
}
