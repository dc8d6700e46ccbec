//! The demo service's use of its database and cache: a real query per
//! request, so database load follows HTTP load.

use redis::aio::MultiplexedConnection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

/// What one `/work` request recorded.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Visit {
    /// Rows in `visits` after this one was added (with a database).
    pub visits: Option<i64>,
    /// The Redis `hits` counter after this request (with a cache).
    pub hits: Option<i64>,
}

/// The database and cache named by `DATABASE_URL` and `REDIS_URL`.
pub(crate) struct Stores {
    database: Option<String>,
    redis: Option<redis::Client>,
    redis_connection: Mutex<Option<MultiplexedConnection>>,
    table_ready: AtomicBool,
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS visits (id bigserial PRIMARY KEY, instance text NOT NULL, at timestamptz NOT NULL DEFAULT now())";

impl Stores {
    /// From the environment; a malformed `REDIS_URL` is an error.
    pub fn from_env() -> Result<Self, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let redis = var("REDIS_URL")
            .map(|url| redis::Client::open(url).map_err(|e| format!("REDIS_URL: {e}")))
            .transpose()?;
        Ok(Self {
            database: var("DATABASE_URL"),
            redis,
            redis_connection: Mutex::new(None),
            table_ready: AtomicBool::new(false),
        })
    }

    /// Records a visit by `instance` in the database (holding its connection
    /// `hold` longer) and in the cache, when there are any.
    pub async fn visit(&self, instance: &str, hold: Duration) -> Result<Visit, String> {
        let visits = match &self.database {
            Some(url) => Some(self.visit_database(url, instance, hold).await?),
            None => None,
        };
        let hits = match &self.redis {
            Some(client) => Some(self.hit(client).await?),
            None => None,
        };
        Ok(Visit { visits, hits })
    }

    async fn visit_database(
        &self,
        url: &str,
        instance: &str,
        hold: Duration,
    ) -> Result<i64, String> {
        let db_error = |e: tokio_postgres::Error| format!("database: {e}");
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(db_error)?;
        tokio::spawn(connection);
        if !self.table_ready.load(Ordering::Relaxed) {
            if let Err(e) = client.batch_execute(CREATE).await {
                // Two instances creating the table at once: one loses, the table is there.
                let raced = e.code().is_some_and(|c| {
                    *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                        || *c == tokio_postgres::error::SqlState::DUPLICATE_TABLE
                });
                if !raced {
                    return Err(db_error(e));
                }
            }
            self.table_ready.store(true, Ordering::Relaxed);
        }
        client
            .execute("INSERT INTO visits (instance) VALUES ($1)", &[&instance])
            .await
            .map_err(db_error)?;
        if !hold.is_zero() {
            client
                .execute("SELECT pg_sleep($1)", &[&hold.as_secs_f64()])
                .await
                .map_err(db_error)?;
        }
        let row = client
            .query_one("SELECT count(*) FROM visits", &[])
            .await
            .map_err(db_error)?;
        Ok(row.get(0))
    }

    async fn hit(&self, client: &redis::Client) -> Result<i64, String> {
        let mut connection = {
            let mut cached = self.redis_connection.lock().await;
            match cached.as_ref() {
                Some(c) => c.clone(),
                None => {
                    let c = client
                        .get_multiplexed_async_connection()
                        .await
                        .map_err(|e| format!("cache: {e}"))?;
                    cached.insert(c).clone()
                }
            }
        };
        let hits: redis::RedisResult<i64> = redis::cmd("INCR")
            .arg("hits")
            .query_async(&mut connection)
            .await;
        match hits {
            Ok(n) => Ok(n),
            Err(e) => {
                // The cache may have restarted: connect afresh next time.
                self.redis_connection.lock().await.take();
                Err(format!("cache: {e}"))
            }
        }
    }
}
