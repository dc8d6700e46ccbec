//! Settings ([`SettingStore`]): compare-and-set documents. Each write is one
//! statement whose condition is the check: a concurrent insert of the same
//! key waits for the first and then does nothing, a concurrent update waits
//! for the row lock and re-checks the version on the row's latest version.

use super::{rows, Db, PostgresStore, COMPONENT};
use crate::codec;
use crate::error::StoreError;
use crate::sql;
use async_trait::async_trait;
use chrono::Utc;
use infraai_core::*;
use rows::qerr;
use tokio_postgres::types::ToSql;

#[async_trait]
impl SettingStore for PostgresStore {
    async fn get_setting(&self, key: &str) -> Result<Option<Setting>> {
        const OP: &str = "get_setting";
        let c = self.client(OP).await?;
        let err = qerr(OP, format!("setting {key}"));
        Ok(rows::one(&c, sql::SETTING, &[&key], err, |r| sql::setting(r, OP)).await?)
    }

    async fn list_settings(&self, prefix: &str) -> Result<Vec<Setting>> {
        const OP: &str = "list_settings";
        let c = self.client(OP).await?;
        let err = qerr(OP, format!("settings {prefix}*"));
        Ok(rows::all(&c, sql::SETTINGS, &[&prefix], err, |r| sql::setting(r, OP)).await?)
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
        let now = codec::time(Utc::now());
        let c = self.client(OP).await?;
        let what = || format!("setting {key}");
        let changed = if expected == 0 {
            let p: [&(dyn ToSql + Sync); 3] = [&key, &value, &now];
            c.exec(sql::INSERT_SETTING, &p).await
        } else {
            let p: [&(dyn ToSql + Sync); 5] = [&value, &new, &now, &key, &old];
            c.exec(sql::UPDATE_SETTING, &p).await
        }
        .map_err(qerr(OP, what()))?;
        if changed == 1 {
            return Ok(expected + 1);
        }
        // For the message only: another writer may have moved it since.
        let current = rows::one(&c, sql::SETTING, &[&key], qerr(OP, what()), |r| {
            sql::setting(r, OP)
        })
        .await?;
        let current = current.map_or(0, |s| s.version);
        Err(StoreError::setting_conflict(key, current, expected).into())
    }

    async fn delete_setting(&self, key: &str) -> Result<bool> {
        const OP: &str = "delete_setting";
        let c = self.client(OP).await?;
        let n = c
            .exec(sql::DELETE_SETTING, &[&key])
            .await
            .map_err(qerr(OP, format!("setting {key}")))?;
        Ok(n == 1)
    }
}
