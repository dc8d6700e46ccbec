//! The incidents of a [`RedisStore`]: alerts recorded and deduplicated,
//! lifecycle moves and claims, each one Lua script.

use super::{micros, reply, rerr, scripts, RedisStore, Reply, COMPONENT};
use crate::codec::{self, status_name, Site};
use crate::error::{StoreError, StoreResult};
use async_trait::async_trait;
use chrono::Utc;
use infraai_core::*;
use redis::AsyncCommands;
use std::collections::HashMap;

impl RedisStore {
    /// Records one alert: one script, the lifecycle's tables in it.
    async fn record_one(&self, alert: &Alert) -> Result<AlertIngest> {
        const OP: &str = "record_alert";
        alert.validate()?;
        let now = Utc::now();
        let new_id = IncidentId::new().to_string();
        let args = [
            alert.fingerprint.clone(),
            codec::name(COMPONENT, OP, &alert.state)?,
            codec::json(COMPONENT, OP, "alert", alert)?,
            codec::time(now),
            new_id,
            micros(now).to_string(),
            serde_json::to_value(alert.started_at)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        ];
        let raw = self
            .run_script(
                &scripts::RECORD_ALERT,
                &args,
                OP,
                Some(format!("fingerprint {}", alert.fingerprint)),
            )
            .await?;
        let r = reply(raw, OP)?;
        let outcome = match r.code.as_str() {
            "opened" => IngestOutcome::Opened,
            "repeated" => IngestOutcome::Repeated,
            "resolved" => IngestOutcome::Resolved,
            "noted" => IngestOutcome::Noted,
            other => {
                return Err(StoreError::Corrupt {
                    component: COMPONENT,
                    op: OP,
                    what: format!("fingerprint {}", alert.fingerprint),
                    detail: format!("{other}: {}", r.first()),
                }
                .into())
            }
        };
        let incident = if r.rest.is_empty() {
            None
        } else {
            Some(r.incident(OP, &format!("of fingerprint {}", alert.fingerprint))?)
        };
        Ok(AlertIngest { outcome, incident })
    }
}

impl Reply {
    fn incident(self, op: &'static str, id: &str) -> StoreResult<Incident> {
        decode_incident(self.rest, op, id)
    }
}

fn decode_incident(flat: Vec<Vec<u8>>, op: &'static str, id: &str) -> StoreResult<Incident> {
    let what = format!("incident {id}");
    let site = Site::new(COMPONENT, op, &what);
    if !flat.len().is_multiple_of(2) {
        return Err(site.corrupt("hash", "odd number of hash elements"));
    }
    let mut fields = HashMap::new();
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let k = String::from_utf8(k).map_err(|e| site.corrupt("hash", e))?;
        let v = String::from_utf8(v).map_err(|e| site.corrupt(&k, e))?;
        fields.insert(k, v);
    }
    let get = |f: &str| -> StoreResult<&String> {
        fields.get(f).ok_or_else(|| site.corrupt(f, "missing"))
    };
    Ok(Incident {
        id: site.id("id", get("id")?)?,
        fingerprint: get("fingerprint")?.clone(),
        status: site.name("status", get("status")?)?,
        alert: site.json("alert", get("alert")?)?,
        occurrences: get("occurrences")?
            .parse()
            .map_err(|e| site.corrupt("occurrences", e))?,
        decision: fields
            .get("decision")
            .map(|d| site.json("decision", d))
            .transpose()?,
        guardrail_notes: site.json("guardrail_notes", get("guardrail_notes")?)?,
        deployment_id: fields
            .get("deployment_id")
            .map(|d| site.id("deployment_id", d))
            .transpose()?,
        note: fields.get("note").cloned(),
        created_at: site.time("created_at", get("created_at")?)?,
        updated_at: site.time("updated_at", get("updated_at")?)?,
    })
}

/// Maps a refusal of a script: `refused` carries the stored status, and
/// `check` — the lifecycle's rule the script applied — says why.
fn refusal(
    r: &Reply,
    op: &'static str,
    id: IncidentId,
    check: impl FnOnce(IncidentStatus) -> std::result::Result<(), lifecycle::Refusal>,
) -> StoreError {
    let corrupt = |what: String, detail: String| StoreError::Corrupt {
        component: COMPONENT,
        op,
        what,
        detail,
    };
    match r.code.as_str() {
        "notfound" => StoreError::NotFound {
            what: format!("incident {id}"),
        },
        "refused" => {
            let what = format!("incident {id}");
            let site = Site::new(COMPONENT, op, &what);
            match site.name("status", &r.first()).map(check) {
                Ok(Err(refusal)) => refusal.into(),
                Ok(Ok(())) => corrupt(what, "the script refused what the lifecycle allows".into()),
                Err(e) => e,
            }
        }
        "corrupt" => corrupt(format!("incident {id} field status"), r.first()),
        other => corrupt(
            format!("incident {id}"),
            format!("unexpected script reply {other:?}: {}", r.first()),
        ),
    }
}

/// `,a,b,` for membership tests in Lua.
fn status_list(statuses: impl IntoIterator<Item = IncidentStatus>) -> String {
    let mut s = String::from(",");
    for st in statuses {
        s.push_str(status_name(st));
        s.push(',');
    }
    s
}

#[async_trait]
impl IncidentStore for RedisStore {
    async fn record_alerts(&self, batch: Vec<AlertRecord>) -> Result<Vec<AlertIngest>> {
        record_then_audit(
            self,
            batch,
            |alert| async move { self.record_one(&alert).await },
        )
        .await
    }

    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>> {
        const OP: &str = "get_incident";
        let flat: Vec<Vec<u8>> = redis::cmd("HGETALL")
            .arg(self.key(&["incident", &id.to_string()]))
            .query_async(&mut self.conn())
            .await
            .map_err(rerr(OP, Some(format!("incident {id}"))))?;
        if flat.is_empty() {
            return Ok(None);
        }
        Ok(Some(decode_incident(flat, OP, &id.to_string())?))
    }

    async fn list_incidents(&self, query: &IncidentQuery) -> Result<Vec<Incident>> {
        const OP: &str = "list_incidents";
        let mut conn = self.conn();
        let ids: Vec<String> = if query.statuses.is_empty() {
            conn.zrange(self.key(&["incidents"]), 0, -1)
                .await
                .map_err(rerr(OP, None))?
        } else {
            let keys: Vec<String> = query
                .statuses
                .iter()
                .map(|s| self.key(&["status", status_name(*s)]))
                .collect();
            redis::cmd("SUNION")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .map_err(rerr(OP, None))?
        };
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGETALL").arg(self.key(&["incident", id]));
        }
        let hashes: Vec<Vec<Vec<u8>>> = if ids.is_empty() {
            vec![]
        } else {
            pipe.query_async(&mut conn).await.map_err(rerr(OP, None))?
        };
        let mut out = Vec::new();
        for (id, flat) in ids.iter().zip(hashes) {
            if flat.is_empty() {
                continue;
            }
            let i = decode_incident(flat, OP, id)?;
            if query.matches(&i) {
                out.push(i);
            }
        }
        out.sort_by_key(|i| std::cmp::Reverse((i.created_at, i.id)));
        out.truncate(query.limit.unwrap_or(usize::MAX));
        Ok(out)
    }

    async fn incident_counts(&self) -> Result<IncidentCounts> {
        count_by_listing(self).await
    }

    async fn record_decision(&self, record: DecisionRecord<'_>) -> Result<Incident> {
        let DecisionRecord {
            id,
            decision,
            guardrail_notes,
            to,
            replaces,
        } = record;
        const OP: &str = "record_decision";
        let args = [
            id.to_string(),
            codec::json(COMPONENT, OP, "decision", decision)?,
            codec::json(COMPONENT, OP, "guardrail notes", guardrail_notes)?,
            status_name(to).to_owned(),
            codec::time(Utc::now()),
            status_list(replaces.iter().copied()),
        ];
        let raw = self
            .run_script(&scripts::RECORD_DECISION, &args, OP, Some(id.to_string()))
            .await?;
        let r = reply(raw, OP)?;
        if r.code != "ok" {
            return Err(refusal(&r, OP, id, |status| {
                let decided = r.rest.get(1).is_some_and(|d| d.as_slice() == b"1");
                lifecycle::decide(id, status, decided, replaces, to)
            })
            .into());
        }
        Ok(r.incident(OP, &id.to_string())?)
    }

    async fn transition(&self, change: Transition<'_>) -> Result<Incident> {
        let Transition {
            id,
            from,
            to,
            note,
            approval,
        } = change;
        const OP: &str = "transition";
        let args = [
            id.to_string(),
            status_name(to).to_owned(),
            codec::time(Utc::now()),
            status_list(from.iter().copied()),
            if note.is_some() { "1" } else { "0" }.to_owned(),
            note.unwrap_or_default().to_owned(),
        ];
        let raw = self
            .run_script(&scripts::TRANSITION, &args, OP, Some(id.to_string()))
            .await?;
        let r = reply(raw, OP)?;
        if r.code != "ok" {
            return Err(refusal(&r, OP, id, |status| {
                lifecycle::transition(id, status, from, to)
            })
            .into());
        }
        // Not in the move's script: written right after it.
        if let Some(a) = approval {
            self.record_approval(a).await?;
        }
        Ok(r.incident(OP, &id.to_string())?)
    }

    async fn claim_execution(&self, id: IncidentId) -> Result<Claim> {
        const OP: &str = "claim_execution";
        let args = [id.to_string(), codec::time(Utc::now())];
        let raw = self
            .run_script(&scripts::CLAIM, &args, OP, Some(id.to_string()))
            .await?;
        let r = reply(raw, OP)?;
        let wrap: fn(Incident) -> Claim = match r.code.as_str() {
            "claimed" => Claim::Claimed,
            "blocked" => Claim::Blocked,
            "notclaimable" => Claim::NotClaimable,
            _ => return Err(refusal(&r, OP, id, |_| Ok(())).into()),
        };
        Ok(wrap(r.incident(OP, &id.to_string())?))
    }

    async fn kill_switch(&self) -> Result<KillSwitch> {
        const OP: &str = "kill_switch";
        let h: HashMap<String, String> = self
            .conn()
            .hgetall(self.key(&["kill_switch"]))
            .await
            .map_err(rerr(OP, None))?;
        if h.is_empty() {
            return Ok(KillSwitch::released());
        }
        let site = Site::new(COMPONENT, OP, "kill_switch");
        Ok(KillSwitch {
            engaged: match h.get("engaged").map(String::as_str) {
                Some("1") => true,
                Some("0") => false,
                other => return Err(site.corrupt("engaged", format!("{other:?}")).into()),
            },
            set_by: h.get("set_by").cloned(),
            reason: h.get("reason").cloned(),
            set_at: h
                .get("set_at")
                .map(|t| site.time("set_at", t))
                .transpose()?,
        })
    }

    async fn set_kill_switch(&self, request: KillSwitchRequest<'_>) -> Result<KillSwitchChange> {
        let KillSwitchRequest {
            engaged,
            actor,
            reason,
        } = request;
        const OP: &str = "set_kill_switch";
        let now = Utc::now();
        // Engaging moves nothing: no `to`, no `from`.
        let moves = lifecycle::kill_switch_moves(engaged);
        let mut args = vec![
            if engaged { "1" } else { "0" }.to_owned(),
            actor.to_owned(),
            codec::time(now),
            if reason.is_some() { "1" } else { "0" }.to_owned(),
            reason.unwrap_or_default().to_owned(),
            moves.map_or("", |(_, to)| status_name(to)).to_owned(),
        ];
        let from = moves.map_or(&[][..], |(from, _)| from);
        args.extend(from.iter().map(|s| status_name(*s).to_owned()));
        let raw: Vec<Vec<u8>> = self
            .run_script(&scripts::SET_KILL_SWITCH, &args, OP, None)
            .await?;
        let site = Site::new(COMPONENT, OP, "incidents");
        let mut affected = raw
            .iter()
            .map(|id| site.id::<IncidentId>("id", &String::from_utf8_lossy(id)))
            .collect::<StoreResult<Vec<_>>>()?;
        affected.sort();
        tracing::info!(engaged, affected = affected.len(), "kill-switch set");
        Ok(KillSwitchChange {
            state: KillSwitch {
                engaged,
                set_by: Some(actor.to_owned()),
                reason: reason.map(str::to_owned),
                set_at: Some(now),
            },
            affected,
        })
    }
}
