//! Settings ([`SettingStore`]): compare-and-set documents in the hash
//! `settings`, key → `{"version": n, "value": …}`. A write is one script
//! ([`scripts::PUT_SETTING`]) that checks the stored version and sets the
//! document; listing reads the whole hash (settings are few).

use super::reply;
use super::{rerr, scripts, RedisStore, COMPONENT};
use crate::codec::{self, Site};
use crate::error::{StoreError, StoreResult};
use async_trait::async_trait;
use infraai_core::*;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A setting's document as written.
#[derive(Serialize)]
struct Doc<'a> {
    version: u64,
    value: &'a serde_json::Value,
}

/// A setting's document as read back.
#[derive(Deserialize)]
struct Stored {
    version: u64,
    value: serde_json::Value,
}

/// The setting `key` from its stored document.
fn decode(key: String, raw: &str, op: &'static str) -> StoreResult<Setting> {
    let what = format!("setting {key}");
    let Stored { version, value } = Site::new(COMPONENT, op, &what).json("json", raw)?;
    Ok(Setting {
        key,
        value,
        version,
    })
}

#[async_trait]
impl SettingStore for RedisStore {
    async fn get_setting(&self, key: &str) -> Result<Option<Setting>> {
        const OP: &str = "get_setting";
        let raw: Option<String> = self
            .conn()
            .hget(self.key(&["settings"]), key)
            .await
            .map_err(rerr(OP, Some(format!("setting {key}"))))?;
        Ok(raw.map(|r| decode(key.to_owned(), &r, OP)).transpose()?)
    }

    async fn list_settings(&self, prefix: &str) -> Result<Vec<Setting>> {
        const OP: &str = "list_settings";
        // Ordered by key (byte order), as the other stores list them.
        let all: BTreeMap<String, String> = self
            .conn()
            .hgetall(self.key(&["settings"]))
            .await
            .map_err(rerr(OP, Some(format!("settings {prefix}*"))))?;
        Ok(all
            .into_iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, raw)| decode(k, &raw, OP))
            .collect::<StoreResult<_>>()?)
    }

    async fn put_setting(
        &self,
        key: &str,
        value: &serde_json::Value,
        expected: u64,
    ) -> Result<u64> {
        const OP: &str = "put_setting";
        let what = || format!("setting {key}");
        let version = expected.checked_add(1).ok_or_else(|| StoreError::Invalid {
            what: what(),
            detail: format!("version {expected} is out of range"),
        })?;
        let doc = codec::json(COMPONENT, OP, "setting", &Doc { version, value })?;
        let args = [key.to_owned(), expected.to_string(), doc];
        let raw = self
            .run_script(&scripts::PUT_SETTING, &args, OP, Some(what()))
            .await?;
        let r = reply(raw, OP)?;
        let site_what = what();
        let site = Site::new(COMPONENT, OP, &site_what);
        match r.code.as_str() {
            "ok" => Ok(version),
            "conflict" => {
                let current = site.id("version", &r.first())?;
                Err(StoreError::setting_conflict(key, current, expected).into())
            }
            "corrupt" => Err(site.corrupt("json", r.first()).into()),
            other => Err(StoreError::Corrupt {
                component: COMPONENT,
                op: OP,
                what: what(),
                detail: format!("unexpected script reply {other:?}: {}", r.first()),
            }
            .into()),
        }
    }

    async fn delete_setting(&self, key: &str) -> Result<bool> {
        let n: i64 = self
            .conn()
            .hdel(self.key(&["settings"]), key)
            .await
            .map_err(rerr("delete_setting", Some(format!("setting {key}"))))?;
        Ok(n == 1)
    }
}
