//! A shared [`MetadataStore`] on a Redis server.
//!
//! * **Atomicity:** every change that touches more than one key, or checks
//!   before it writes (deduplication, lifecycle moves, claims, the kill-switch,
//!   append-only audit), is one Lua script, which Redis runs atomically. The
//!   lifecycle's tables are rendered from core's constants
//!   ([`infraai_core::lifecycle`]) into the scripts, so there is one source
//!   of truth.
//! * **Keys** are `{prefix}:…` (default prefix `infraai`): `incident:{id}`
//!   (hash), `incidents` (sorted set by creation time), `status:{status}`
//!   (sets), `open:{fingerprint}` (the open incident of a fingerprint),
//!   `kill_switch` (hash), `run:{id}`, `runs`, `deployment:{id}`,
//!   `deployments`, `approvals:{incident}`, `actions:{incident}`,
//!   `actions_by_resource:{resource}`, `audit`, `audit:incident:{id}`,
//!   `audit:run:{id}`, `audit:ids`, `action:ids`, `cursors` (hash),
//!   `job:{key}` (hash), `jobs` (sorted set by when each job may be
//!   taken) and `settings` (hash: key → `{"version": n, "value": …}`).
//!   The scripts derive key names
//!   from the prefix, so use a single Redis primary (not Redis Cluster).
//! * **Durability** is the server's: a write returns `Ok` once Redis has
//!   applied it. It survives a restart of Redis only with persistence on; for
//!   the same guarantee as the SQLite store run Redis with `appendonly yes` and
//!   `appendfsync always` (with `everysec`, up to about a second of
//!   acknowledged writes can be lost in an OS crash or power loss).
//! * **Scale:** listing incidents, runs and deployments reads every member of
//!   the index and filters in the client; fine for thousands, not millions.
//! * The connection URL may carry a password: it is held as a
//!   [`Secret`] and only the host and port are ever logged.

mod scripts;
mod settings;

use crate::codec::{self, status_name, Site};
use crate::error::{StoreError, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use infraai_core::*;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use std::collections::HashMap;
use std::time::Duration;

const COMPONENT: &str = "redis";

/// How to connect a [`RedisStore`].
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port/db` (or `rediss://` with TLS support
    /// compiled into the `redis` crate). Never logged.
    pub url: Secret,
    /// Prefix of every key, so several agents can share one server.
    pub prefix: String,
    /// Timeout of one connection attempt.
    pub connection_timeout: Duration,
    /// Timeout of one command.
    pub response_timeout: Duration,
}

impl RedisConfig {
    /// Defaults: prefix `infraai`, 5 s connection and response timeouts.
    pub fn new(url: Secret) -> Self {
        Self {
            url,
            prefix: "infraai".into(),
            connection_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
        }
    }

    /// Sets the key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// The Redis [`MetadataStore`]. Cheap to clone (one multiplexed, automatically
/// reconnecting connection is shared). See the [module docs](self).
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
}

fn rerr(op: &'static str, id: Option<String>) -> impl FnOnce(redis::RedisError) -> StoreError {
    move |source| StoreError::Redis { op, id, source }
}

fn micros(t: DateTime<Utc>) -> f64 {
    // Exact for any date before the year 2255 (2^53 µs).
    t.timestamp_micros() as f64
}

impl RedisStore {
    /// Connects (failing when the server cannot be reached within the
    /// connection timeout) and checks the server answers `PING`.
    pub async fn connect(config: RedisConfig) -> StoreResult<Self> {
        let client = redis::Client::open(config.url.expose()).map_err(|e| StoreError::Invalid {
            what: "redis url".into(),
            // The parse error does not echo the URL; the kind is enough.
            detail: format!("{:?}: {}", e.kind(), e.category()),
        })?;
        let addr = client.get_connection_info().addr.to_string();
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(config.connection_timeout)
            .set_response_timeout(config.response_timeout)
            // Reconnect attempts: 2, at most 1 s apart. (The crate's default
            // factor with backon's 1 s base would wait up to a minute.)
            .set_number_of_retries(2)
            .set_factor(2)
            .set_max_delay(1000);
        let mut conn = ConnectionManager::new_with_config(client, manager_config)
            .await
            .map_err(rerr("connect", Some(addr.clone())))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(rerr("connect", Some(addr.clone())))?;
        tracing::info!(addr = %addr, prefix = %config.prefix, "redis store connected");
        Ok(Self {
            conn,
            prefix: config.prefix,
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    /// Every JSON record of an incident's list (approvals, actions), oldest first.
    async fn incident_list<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        list: &str,
        id: IncidentId,
    ) -> Result<Vec<T>> {
        let what = format!("{list} of incident {id}");
        let raws: Vec<String> = self
            .conn()
            .lrange(self.key(&[list, &id.to_string()]), 0, -1)
            .await
            .map_err(rerr(op, Some(what.clone())))?;
        let site = Site::new(COMPONENT, op, &what);
        Ok(raws
            .iter()
            .map(|r| site.json("json", r))
            .collect::<StoreResult<_>>()?)
    }

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

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The JSON document `{item}:{id}`.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        item: &str,
        id: &str,
        op: &'static str,
    ) -> Result<Option<T>> {
        let what = format!("{item} {id}");
        let raw: Option<String> = self
            .conn()
            .get(self.key(&[item, id]))
            .await
            .map_err(rerr(op, Some(what.clone())))?;
        let site = Site::new(COMPONENT, op, &what);
        Ok(raw.map(|r| site.json("json", &r)).transpose()?)
    }

    /// Every document of an item's sorted index (`{item}s`), newest first.
    async fn list_index<T: serde::de::DeserializeOwned>(
        &self,
        item: &str,
        op: &'static str,
    ) -> Result<Vec<T>> {
        let mut conn = self.conn();
        let ids: Vec<String> = conn
            .zrevrange(self.key(&[&format!("{item}s")]), 0, -1)
            .await
            .map_err(rerr(op, None))?;
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let keys: Vec<String> = ids.iter().map(|id| self.key(&[item, id])).collect();
        let raws: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(rerr(op, None))?;
        let decode = |(id, raw): (&String, String)| {
            let what = format!("{item} {id}");
            Site::new(COMPONENT, op, &what).json("json", &raw)
        };
        let docs = ids
            .iter()
            .zip(raws)
            .filter_map(|(id, raw)| raw.map(|r| (id, r)));
        Ok(docs.map(decode).collect::<StoreResult<_>>()?)
    }

    /// Stores the document `{item}:{id}` and indexes it by creation time.
    async fn put_indexed<T: serde::Serialize>(
        &self,
        item: &str,
        id: String,
        created: DateTime<Utc>,
        value: &T,
        op: &'static str,
    ) -> Result<()> {
        let json = codec::json(COMPONENT, op, "document", value)?;
        let () = redis::pipe()
            .atomic()
            .set(self.key(&[item, &id]), json)
            .ignore()
            .zadd(self.key(&[&format!("{item}s")]), &id, micros(created))
            .ignore()
            .query_async(&mut self.conn())
            .await
            .map_err(rerr(op, Some(format!("{item} {id}"))))?;
        Ok(())
    }

    async fn run_script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        args: &[String],
        op: &'static str,
        id: Option<String>,
    ) -> StoreResult<T> {
        let mut inv = script.prepare_invoke();
        inv.arg(&self.prefix);
        for a in args {
            inv.arg(a);
        }
        inv.invoke_async(&mut self.conn())
            .await
            .map_err(rerr(op, id))
    }
}

/// Jobs from a job script's flat `key, owner, lease_until, claims` reply.
fn jobs(raw: Vec<Vec<u8>>, op: &'static str) -> StoreResult<Vec<Job>> {
    let text: Vec<String> = raw
        .into_iter()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect();
    text.chunks(4)
        .map(|c| {
            let what = format!("job {}", c[0]);
            let site = Site::new(COMPONENT, op, &what);
            let [key, owner, until, claims] = c else {
                return Err(
                    site.corrupt("reply", "not a key, owner, lease_until, claims quadruple")
                );
            };
            let until: i64 = site.id("lease_until", until)?;
            Ok(Job {
                key: key.clone(),
                owner: Some(owner.clone()),
                lease_until: Some(
                    DateTime::from_timestamp_millis(until)
                        .ok_or_else(|| site.corrupt("lease_until", until))?,
                ),
                claims: site.id("claims", claims)?,
            })
        })
        .collect()
}

/// A script's reply: its code and the rest (an incident hash, or a status).
struct Reply {
    code: String,
    rest: Vec<Vec<u8>>,
}

fn reply(raw: Vec<Vec<u8>>, op: &'static str) -> StoreResult<Reply> {
    let mut it = raw.into_iter();
    let code = it
        .next()
        .and_then(|c| String::from_utf8(c).ok())
        .ok_or_else(|| StoreError::Corrupt {
            component: COMPONENT,
            op,
            what: "script reply".into(),
            detail: "missing reply code".into(),
        })?;
    Ok(Reply {
        code,
        rest: it.collect(),
    })
}

impl Reply {
    fn first(&self) -> String {
        self.rest
            .first()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default()
    }

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

impl StoreBackend for RedisStore {
    fn name(&self) -> &str {
        COMPONENT
    }
}

#[async_trait]
impl RunStore for RedisStore {
    async fn put_run(&self, run: &Run) -> Result<()> {
        let id = run.id.to_string();
        self.put_indexed("run", id, run.created_at, run, "put_run")
            .await
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>> {
        self.get_json("run", &id.to_string(), "get_run").await
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<Run>> {
        let mut runs: Vec<Run> = self.list_index("run", "list_runs").await?;
        runs.retain(|r| query.matches(r));
        runs.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
        runs.truncate(query.limit.unwrap_or(usize::MAX));
        Ok(runs)
    }

    async fn put_deployment(&self, d: &Deployment) -> Result<()> {
        let id = d.deployment_id.to_string();
        self.put_indexed("deployment", id, d.created_at, d, "put_deployment")
            .await
    }

    async fn get_deployment(&self, id: DeploymentId) -> Result<Option<Deployment>> {
        self.get_json("deployment", &id.to_string(), "get_deployment")
            .await
    }

    async fn list_deployments(&self) -> Result<Vec<Deployment>> {
        self.list_index("deployment", "list_deployments").await
    }

    async fn find_deployment_by_resource(&self, resource: &str) -> Result<Option<Deployment>> {
        let all: Vec<Deployment> = self
            .list_index("deployment", "find_deployment_by_resource")
            .await?;
        Ok(all
            .into_iter()
            .find(|d| d.resource_map.contains_key(resource)))
    }
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

#[async_trait]
impl LeaseStore for RedisStore {
    async fn claim_job(&self, key: &str, lease: Lease<'_>) -> Result<Option<Job>> {
        let (owner, now) = (lease.owner, lease.now);
        const OP: &str = "claim_job";
        let args = [
            key.to_owned(),
            owner.to_owned(),
            now.timestamp_millis().to_string(),
            lease.until().timestamp_millis().to_string(),
        ];
        let raw = self
            .run_script(&scripts::CLAIM_JOB, &args, OP, Some(format!("job {key}")))
            .await?;
        Ok(jobs(raw, OP)?.pop())
    }

    async fn claim_abandoned_jobs(&self, lease: Lease<'_>, limit: usize) -> Result<Vec<Job>> {
        let (owner, now) = (lease.owner, lease.now);
        const OP: &str = "claim_abandoned_jobs";
        let args = [
            owner.to_owned(),
            now.timestamp_millis().to_string(),
            lease.until().timestamp_millis().to_string(),
            limit.to_string(),
        ];
        let raw = self
            .run_script(&scripts::CLAIM_ABANDONED_JOBS, &args, OP, None)
            .await?;
        Ok(jobs(raw, OP)?)
    }

    async fn renew_job(&self, key: &str, lease: Lease<'_>) -> Result<bool> {
        let owner = lease.owner;
        const OP: &str = "renew_job";
        let args = [
            key.to_owned(),
            owner.to_owned(),
            lease.until().timestamp_millis().to_string(),
        ];
        let renewed: i64 = self
            .run_script(&scripts::RENEW_JOB, &args, OP, Some(format!("job {key}")))
            .await?;
        Ok(renewed == 1)
    }

    async fn release_job(&self, release: Release<'_>) -> Result<bool> {
        let Release {
            key,
            owner,
            finished,
        } = release;
        const OP: &str = "release_job";
        let args = [
            key.to_owned(),
            owner.to_owned(),
            if finished { "1" } else { "0" }.to_owned(),
        ];
        let released: i64 = self
            .run_script(&scripts::RELEASE_JOB, &args, OP, Some(format!("job {key}")))
            .await?;
        Ok(released == 1)
    }

    async fn get_cursor(&self, name: &str) -> Result<Option<i64>> {
        const OP: &str = "get_cursor";
        let v: Option<String> = self
            .conn()
            .hget(self.key(&["cursors"]), name)
            .await
            .map_err(rerr(OP, Some(name.to_owned())))?;
        let what = format!("cursor {name}");
        let site = Site::new(COMPONENT, OP, &what);
        Ok(v.map(|v| v.parse().map_err(|e| site.corrupt("value", e)))
            .transpose()?)
    }

    async fn set_cursor(&self, name: &str, value: i64) -> Result<()> {
        let _: i64 = self
            .conn()
            .hset(self.key(&["cursors"]), name, value)
            .await
            .map_err(rerr("set_cursor", Some(name.to_owned())))?;
        Ok(())
    }
}
