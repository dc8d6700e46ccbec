//! A shared [`MetadataStore`] on a PostgreSQL server, for several replicas of
//! the agent on one database.
//!
//! * **Atomicity:** every check-and-set is one transaction (READ COMMITTED)
//!   that locks what it checks: lifecycle moves and decisions lock the
//!   incident row (`SELECT … FOR UPDATE`) before reading its status; a claim
//!   locks the kill-switch row `FOR SHARE` and then the incident, so engaging
//!   STOP AUTONOMY (which locks the switch row for update, then moves the
//!   incidents) and claiming are serialized — a claim either commits before
//!   the switch or sees it engaged. Every transaction takes its locks in the
//!   order kill-switch → incident, so they cannot deadlock each other.
//! * **Deduplication** by fingerprint takes a transaction-scoped advisory lock
//!   on the fingerprint (`pg_advisory_xact_lock`), so concurrent alerts with
//!   one fingerprint — on any replica — are recorded one after the other; a
//!   partial unique index on the open fingerprint backs it up. A batch of
//!   alerts (a webhook's) is one transaction, up to 256 alerts each, that
//!   takes all its fingerprints' locks first, in the order of their lock
//!   keys, so two batches with the same fingerprints in other orders
//!   (Alertmanager HA peers) cannot deadlock.
//! * **Audit** records are append-only: triggers refuse `UPDATE`, `DELETE`
//!   and `TRUNCATE` on the table, whoever issues them.
//! * **Durability** is the server's: a write returns `Ok` after its `COMMIT`
//!   returned, which with PostgreSQL's defaults (`synchronous_commit = on`,
//!   `fsync = on`) means it is in the server's WAL on disk.
//! * **Schema:** versioned migrations are compiled into the binary and applied
//!   at open in one transaction under an advisory lock, so replicas that open
//!   one database at once migrate it once; a database from a newer build is
//!   refused ([`StoreError::SchemaTooNew`]).
//! * **Connections:** a small pool (deadpool-postgres); every connection sets
//!   `application_name` (default `infraai`; the server uses
//!   `infraai-{replica id}`), so `pg_stat_activity` shows which replica holds
//!   which lock.
//! * **Secrets:** the connection URL is a [`Secret`]; only the user, host,
//!   port and database are ever logged ([`PostgresStore::describe`]), and no
//!   error carries the URL.
//! * **TLS:** with `sslmode=require` in the URL, connections use TLS
//!   (rustls) and the server certificate is verified against the webpki
//!   roots plus [`PostgresConfig::ca_file`], with the URL's host as the name
//!   to match (stricter than libpq's `require`, which only encrypts). Without
//!   it (`disable`, or the default `prefer`) connections are plain TCP (or a
//!   Unix socket): use those on loopback or a private network only.
//!
//! Errors: a refused or lost connection, a server shutting down, a
//! serialization failure or a deadlock are retryable
//! ([`infraai_core::Error::is_retryable`]); stored data that cannot be read
//! back is [`StoreError::Corrupt`].

mod rows;
mod schema;
mod settings;
mod tls;

use crate::codec;
use crate::error::{StoreError, StoreResult};
use crate::sql::{self, Cols};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use infraai_core::*;
use rows::qerr;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

const COMPONENT: &str = "postgres";

/// How to connect a [`PostgresStore`].
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database[?options]` (or a
    /// `key=value` connection string). Never logged.
    pub url: Secret,
    /// Most connections the pool opens.
    pub max_connections: usize,
    /// Timeout of one connection attempt (unless the URL sets
    /// `connect_timeout`).
    pub connect_timeout: Duration,
    /// Longest a call waits for a free pooled connection.
    pub acquire_timeout: Duration,
    /// `application_name` of every connection (unless the URL sets one).
    pub application_name: String,
    /// PEM file of CA certificates trusted for `sslmode=require` (a private
    /// CA, a cloud provider's database CA) besides the webpki roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl PostgresConfig {
    /// Defaults: 16 connections, 5 s connection timeout, 10 s acquire
    /// timeout, application name `infraai`.
    pub fn new(url: Secret) -> Self {
        Self {
            url,
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(10),
            application_name: "infraai".into(),
            ca_file: None,
        }
    }

    /// Sets the application name (e.g. `infraai-{replica id}`).
    pub fn with_application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }
}

/// The PostgreSQL [`MetadataStore`]. Cheap to clone (the pool is shared).
/// See the [module docs](self).
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    describe: String,
    tls: bool,
}

/// Maps a client error of an operation.
pub(crate) fn pg(op: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |source| StoreError::Postgres {
        op,
        id: None,
        source,
    }
}

/// Whether a client error may go away on retry: a connection that could not
/// be made or was lost (I/O errors, SQLSTATE class 08), a server that is
/// starting, shutting down or out of connections, a serialization failure
/// or a deadlock.
pub(crate) fn is_transient(e: &tokio_postgres::Error) -> bool {
    if let Some(code) = e.code() {
        let c = code.code();
        return c.starts_with("08")
            || [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
                SqlState::LOCK_NOT_AVAILABLE,
            ]
            .contains(code);
    }
    if e.is_closed() {
        return true;
    }
    // Connection refused/reset, timeouts: an I/O error in the source chain
    // (but not a TLS failure such as an untrusted certificate, which rustls
    // reports as invalid data: retrying cannot fix it).
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return !matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
            );
        }
        source = s.source();
    }
    // tokio-postgres reports a connect timeout without a source.
    e.to_string().contains("timeout")
}

/// Runs statements through the connection's prepared-statement cache.
#[async_trait]
pub(crate) trait Db: Send + Sync {
    /// All rows of a statement.
    async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error>;
    /// Executes a statement; the number of rows it changed.
    async fn exec(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error>;
}

#[async_trait]
impl<C: deadpool_postgres::GenericClient + Send> Db for C {
    async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query(&statement, params).await
    }

    async fn exec(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.execute(&statement, params).await
    }
}

/// `user@host:port/database` of a parsed configuration (no password).
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            let port = config
                .get_ports()
                .get(i)
                .or_else(|| config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    format!(
        "{}@{}/{}",
        config.get_user().unwrap_or("?"),
        hosts.join(","),
        config.get_dbname().unwrap_or("?")
    )
}

impl PostgresStore {
    /// Connects (failing when the server cannot be reached within the
    /// connection timeout: a retryable error) and applies pending migrations.
    pub async fn connect(config: PostgresConfig) -> StoreResult<Self> {
        let mut pg_config = tokio_postgres::Config::from_str(config.url.expose()).map_err(|e| {
            StoreError::Invalid {
                what: "postgres url".into(),
                // tokio-postgres names the bad option, never its value.
                detail: format!("{e}"),
            }
        })?;
        // `require`: TLS, verified. Anything else: plain (`prefer` would try
        // TLS and fall back to plain text, which protects nothing).
        let tls = match pg_config.get_ssl_mode() {
            SslMode::Require => Some(tls::RustlsConnect::new(config.ca_file.as_deref()).map_err(
                |detail| StoreError::Invalid {
                    what: "postgres TLS".into(),
                    detail,
                },
            )?),
            _ => {
                pg_config.ssl_mode(SslMode::Disable);
                None
            }
        };
        if pg_config.get_connect_timeout().is_none() {
            pg_config.connect_timeout(config.connect_timeout);
        }
        if pg_config.get_application_name().is_none() {
            pg_config.application_name(&config.application_name);
        }
        let describe = describe(&pg_config);
        let tls_on = tls.is_some();
        // Fast recycling: a pooled connection is reused unless it is closed;
        // a lost connection fails its call (retryable) and is dropped.
        let manager_config = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls {
            Some(tls) => Manager::from_config(pg_config, tls, manager_config()),
            None => Manager::from_config(pg_config, NoTls, manager_config()),
        };
        let pool = Pool::builder(manager)
            .max_size(config.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.acquire_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| StoreError::Task {
                component: COMPONENT,
                op: "connect",
                detail: e.to_string(),
            })?;
        let store = Self {
            pool,
            describe,
            tls: tls_on,
        };
        let mut client = store.client("connect").await?;
        let before = schema::migrate(&mut client).await?;
        drop(client);
        tracing::info!(
            server = %store.describe,
            schema_version = schema::LATEST,
            migrated_from = before,
            tls = tls_on,
            "postgres store connected"
        );
        Ok(store)
    }

    /// `user@host:port/database` of the server (never the password), for
    /// banners and logs.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Whether connections use TLS (`sslmode=require`, certificate verified).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// Checks that the server answers (`SELECT 1` on a pooled connection).
    pub async fn ping(&self) -> StoreResult<()> {
        let client = self.client("ping").await?;
        client.rows("SELECT 1", &[]).await.map_err(pg("ping"))?;
        Ok(())
    }

    /// A pooled connection. Pool timeouts are retryable; a connection that
    /// cannot be made is the client's error (retryable when transient).
    async fn client(&self, op: &'static str) -> StoreResult<deadpool_postgres::Object> {
        use deadpool_postgres::PoolError;
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(source) => StoreError::Postgres {
                op,
                id: Some(self.describe.clone()),
                source,
            },
            other => StoreError::Task {
                component: COMPONENT,
                op,
                detail: format!("no connection to {}: {other}", self.describe),
            },
        })
    }
}

/// Runs `$body` (an async block body using `$tx: &dyn Db`) in one
/// transaction of a pooled connection and commits it; an error rolls it back
/// (the transaction is dropped without commit). Evaluates to `StoreResult<T>`.
macro_rules! in_tx {
    ($store:expr, $op:expr, |$tx:ident| $body:block) => {{
        let mut client = $store.client($op).await?;
        let tx = client.transaction().await.map_err(pg($op))?;
        let result: StoreResult<_> = {
            let $tx: &dyn Db = &tx;
            async move $body.await
        };
        match result {
            Ok(value) => tx.commit().await.map(|()| value).map_err(pg($op)),
            Err(e) => Err(e),
        }
    }};
}

mod incidents;

impl StoreBackend for PostgresStore {
    fn name(&self) -> &str {
        COMPONENT
    }
}

#[async_trait]
impl RunStore for PostgresStore {
    async fn put_run(&self, run: &Run) -> Result<()> {
        Ok(in_tx!(self, "put_run", |tx| {
            rows::put_run(tx, run).await
        })?)
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>> {
        let c = self.client("get_run").await?;
        Ok(rows::get_run(&c, id).await?)
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<Run>> {
        let c = self.client("list_runs").await?;
        Ok(rows::list_runs(&c, query).await?)
    }

    async fn put_deployment(&self, deployment: &Deployment) -> Result<()> {
        Ok(in_tx!(self, "put_deployment", |tx| {
            rows::put_deployment(tx, deployment).await
        })?)
    }

    async fn get_deployment(&self, id: DeploymentId) -> Result<Option<Deployment>> {
        let c = self.client("get_deployment").await?;
        Ok(rows::get_deployment(&c, id).await?)
    }

    async fn list_deployments(&self) -> Result<Vec<Deployment>> {
        let c = self.client("list_deployments").await?;
        Ok(rows::list_deployments(&c).await?)
    }

    async fn find_deployment_by_resource(&self, resource: &str) -> Result<Option<Deployment>> {
        let c = self.client("find_deployment_by_resource").await?;
        Ok(rows::find_deployment_by_resource(&c, resource).await?)
    }
}

#[async_trait]
impl HistoryStore for PostgresStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        let c = self.client("append_audit").await?;
        Ok(rows::insert_audit(&c, record).await?)
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let c = self.client("list_audit").await?;
        Ok(rows::list_audit(&c, query).await?)
    }

    async fn record_approval(&self, approval: &ApprovalRecord) -> Result<()> {
        let c = self.client("record_approval").await?;
        Ok(rows::insert_approval(&c, approval).await?)
    }

    async fn list_approvals(&self, id: IncidentId) -> Result<Vec<ApprovalRecord>> {
        let c = self.client("list_approvals").await?;
        Ok(rows::list_approvals(&c, id).await?)
    }

    async fn record_action(&self, outcome: &ActionOutcome) -> Result<()> {
        let c = self.client("record_action").await?;
        Ok(rows::insert_action(&c, outcome).await?)
    }

    async fn list_actions(&self, id: IncidentId) -> Result<Vec<ActionOutcome>> {
        let c = self.client("list_actions").await?;
        Ok(rows::list_actions(&c, id).await?)
    }

    async fn count_actions_since(&self, resource: &str, since: DateTime<Utc>) -> Result<u64> {
        let c = self.client("count_actions_since").await?;
        Ok(rows::count_actions_since(&c, resource, since).await?)
    }
}

#[async_trait]
impl LeaseStore for PostgresStore {
    async fn claim_job(&self, key: &str, lease: Lease<'_>) -> Result<Option<Job>> {
        const OP: &str = "claim_job";
        let (now, until) = (codec::time(lease.now), codec::time(lease.until()));
        let c = self.client(OP).await?;
        // ON CONFLICT DO UPDATE locks the row and checks the lease on its
        // latest version: of two replicas racing, one takes the job.
        let p: [&(dyn ToSql + Sync); 4] = [&key, &lease.owner, &until, &now];
        let err = qerr(OP, format!("job {key}"));
        Ok(rows::one(&c, sql::CLAIM_JOB, &p, err, |r| sql::job(r, OP)).await?)
    }

    async fn claim_abandoned_jobs(&self, lease: Lease<'_>, limit: usize) -> Result<Vec<Job>> {
        const OP: &str = "claim_abandoned_jobs";
        let (now, until) = (codec::time(lease.now), codec::time(lease.until()));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let c = self.client(OP).await?;
        // SKIP LOCKED: concurrent scans take disjoint jobs; a row another
        // scan just took is re-checked on its new version and left alone.
        let update = "UPDATE jobs SET owner = $1, lease_until = $2, claims = claims + 1 \
             WHERE key IN (SELECT key FROM jobs WHERE owner IS NULL OR lease_until <= $3 \
             ORDER BY lease_until NULLS FIRST LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING key, owner, lease_until, claims";
        let p: [&(dyn ToSql + Sync); 4] = [&lease.owner, &until, &now, &limit];
        Ok(rows::all(&c, update, &p, qerr(OP, "jobs"), |r| sql::job(r, OP)).await?)
    }

    async fn renew_job(&self, key: &str, lease: Lease<'_>) -> Result<bool> {
        const OP: &str = "renew_job";
        let until = codec::time(lease.until());
        let c = self.client(OP).await?;
        let n = c
            .exec(sql::RENEW_JOB, &[&until, &key, &lease.owner])
            .await
            .map_err(qerr(OP, format!("job {key}")))?;
        Ok(n == 1)
    }

    async fn release_job(&self, release: Release<'_>) -> Result<bool> {
        const OP: &str = "release_job";
        let Release { key, owner, .. } = release;
        let c = self.client(OP).await?;
        let n = c
            .exec(sql::release_job(release.finished), &[&key, &owner])
            .await
            .map_err(qerr(OP, format!("job {key}")))?;
        Ok(n == 1)
    }

    async fn get_cursor(&self, name: &str) -> Result<Option<i64>> {
        const OP: &str = "get_cursor";
        let c = self.client(OP).await?;
        let cursor = |r: &Row| Cols::new(r, OP, format!("cursor {name}")).get(0);
        let err = qerr(OP, format!("cursor {name}"));
        Ok(rows::one(&c, sql::CURSOR, &[&name], err, cursor).await?)
    }

    async fn set_cursor(&self, name: &str, value: i64) -> Result<()> {
        const OP: &str = "set_cursor";
        let c = self.client(OP).await?;
        c.exec(sql::SET_CURSOR, &[&name, &value, &codec::time(Utc::now())])
            .await
            .map_err(qerr(OP, format!("cursor {name}")))?;
        Ok(())
    }
}
