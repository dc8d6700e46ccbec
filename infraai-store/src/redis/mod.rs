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

mod history;
mod incidents;
mod scripts;
mod settings;

use crate::codec::{self, Site};
use crate::error::{StoreError, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use infraai_core::*;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
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
pub(super) struct Reply {
    pub(super) code: String,
    pub(super) rest: Vec<Vec<u8>>,
}

pub(super) fn reply(raw: Vec<Vec<u8>>, op: &'static str) -> StoreResult<Reply> {
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
    pub(super) fn first(&self) -> String {
        self.rest
            .first()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default()
    }
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
