//! Settings ([`SettingStore`]): compare-and-set documents. Writes go through
//! the writer thread, so the check and the write are one statement of its
//! transaction (the conflict's version is read in that transaction too).

use super::{rows, SqliteStore, COMPONENT};
use crate::codec;
use crate::error::StoreError;
use crate::sql;
use async_trait::async_trait;
use chrono::Utc;
use infraai_core::*;
use rows::rerr;
use rusqlite::params;

#[async_trait]
impl SettingStore for SqliteStore {
    async fn get_setting(&self, key: &str) -> Result<Option<Setting>> {
        const OP: &str = "get_setting";
        let key = key.to_owned();
        self.read(OP, move |c| {
            let err = rerr(OP, format!("setting {key}"));
            rows::one(c, sql::SETTING, [&key], err, |r| sql::setting(r, OP))
        })
        .await
    }

    async fn list_settings(&self, prefix: &str) -> Result<Vec<Setting>> {
        const OP: &str = "list_settings";
        let prefix = prefix.to_owned();
        self.read(OP, move |c| {
            let err = rerr(OP, format!("settings {prefix}*"));
            rows::all(c, sql::SETTINGS, [&prefix], err, |r| sql::setting(r, OP))
        })
        .await
    }

    async fn put_setting(
        &self,
        key: &str,
        value: &serde_json::Value,
        expected: u64,
    ) -> Result<u64> {
        const OP: &str = "put_setting";
        let (old, new) = sql::setting_versions(key, expected)?;
        let value = codec::json(COMPONENT, OP, "setting", value)?;
        let key = key.to_owned();
        self.write(OP, move |c| {
            let now = codec::time(Utc::now());
            let what = || format!("setting {key}");
            let changed = if expected == 0 {
                let p = params![key, value, now];
                rows::exec(c, sql::INSERT_SETTING, p, rerr(OP, what))?
            } else {
                let p = params![value, new, now, key, old];
                rows::exec(c, sql::UPDATE_SETTING, p, rerr(OP, what))?
            };
            if changed == 1 {
                return Ok(expected + 1);
            }
            let current = rows::one(c, sql::SETTING, [&key], rerr(OP, what), |r| {
                sql::setting(r, OP)
            })?;
            let current = current.map_or(0, |s| s.version);
            Err(StoreError::setting_conflict(&key, current, expected))
        })
        .await
    }

    async fn delete_setting(&self, key: &str) -> Result<bool> {
        const OP: &str = "delete_setting";
        let key = key.to_owned();
        self.write(OP, move |c| {
            let err = rerr(OP, format!("setting {key}"));
            Ok(rows::exec(c, sql::DELETE_SETTING, [&key], err)? == 1)
        })
        .await
    }
}
