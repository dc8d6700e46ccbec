//! The history of a [`RedisStore`]: append-only audit, approvals and
//! action outcomes.

use super::reply;
use super::{micros, rerr, scripts, RedisStore, COMPONENT};
use crate::codec::{self, Site};
use crate::error::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use infraai_core::*;
use redis::AsyncCommands;

#[async_trait]
impl HistoryStore for RedisStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        const OP: &str = "append_audit";
        let args = [
            record.id.to_string(),
            codec::json(COMPONENT, OP, "audit record", record)?,
            record
                .incident_id
                .map(|i| i.to_string())
                .unwrap_or_default(),
            record.run_id.map(|i| i.to_string()).unwrap_or_default(),
        ];
        let raw = self
            .run_script(
                &scripts::APPEND_AUDIT,
                &args,
                OP,
                Some(record.id.to_string()),
            )
            .await?;
        if reply(raw, OP)?.code == "conflict" {
            return Err(Error::conflict(
                format!("audit record {}", record.id),
                "already stored; the audit log is append-only",
            ));
        }
        Ok(())
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        const OP: &str = "list_audit";
        let (list, both) = match (query.incident_id, query.run_id) {
            (Some(i), r) => (
                self.key(&["audit", "incident", &i.to_string()]),
                r.is_some(),
            ),
            (None, Some(r)) => (self.key(&["audit", "run", &r.to_string()]), false),
            (None, None) => (self.key(&["audit"]), false),
        };
        // With one filter and no cursor the list is exact, so the limit is
        // applied by Redis.
        let start = match (query.limit, both || query.before.is_some()) {
            (Some(l), false) => -(i64::try_from(l).unwrap_or(i64::MAX)),
            _ => 0,
        };
        if query.limit == Some(0) {
            return Ok(vec![]);
        }
        let raws: Vec<String> = self
            .conn()
            .lrange(&list, start as isize, -1)
            .await
            .map_err(rerr(OP, None))?;
        let site = Site::new(COMPONENT, OP, "audit");
        let mut records: Vec<AuditRecord> = raws
            .iter()
            .map(|r| site.json("json", r))
            .collect::<StoreResult<_>>()?;
        records.retain(|r| query.run_id.is_none_or(|id| r.run_id == Some(id)));
        Ok(query.page(records))
    }

    async fn record_approval(&self, approval: &ApprovalRecord) -> Result<()> {
        const OP: &str = "record_approval";
        let id = approval.incident_id.to_string();
        let json = codec::json(COMPONENT, OP, "approval", approval)?;
        let _: i64 = self
            .conn()
            .rpush(self.key(&["approvals", &id]), json)
            .await
            .map_err(rerr(OP, Some(format!("incident {id}"))))?;
        Ok(())
    }

    async fn list_approvals(&self, id: IncidentId) -> Result<Vec<ApprovalRecord>> {
        self.incident_list("list_approvals", "approvals", id).await
    }

    async fn record_action(&self, outcome: &ActionOutcome) -> Result<()> {
        const OP: &str = "record_action";
        let args = [
            outcome.id.to_string(),
            codec::json(COMPONENT, OP, "action", outcome)?,
            outcome.incident_id.to_string(),
            outcome.resource.clone(),
            micros(outcome.started_at).to_string(),
        ];
        let raw = self
            .run_script(
                &scripts::RECORD_ACTION,
                &args,
                OP,
                Some(outcome.id.to_string()),
            )
            .await?;
        if reply(raw, OP)?.code == "conflict" {
            return Err(Error::conflict(
                format!("action {}", outcome.id),
                "already stored",
            ));
        }
        Ok(())
    }

    async fn list_actions(&self, id: IncidentId) -> Result<Vec<ActionOutcome>> {
        self.incident_list("list_actions", "actions", id).await
    }

    async fn count_actions_since(&self, resource: &str, since: DateTime<Utc>) -> Result<u64> {
        let n: u64 = self
            .conn()
            .zcount(
                self.key(&["actions_by_resource", resource]),
                micros(since),
                "+inf",
            )
            .await
            .map_err(rerr("count_actions_since", Some(resource.to_owned())))?;
        Ok(n)
    }
}
