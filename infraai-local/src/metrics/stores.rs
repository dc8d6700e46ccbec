//! Metrics read from the local databases and caches themselves.

use crate::profiles::REDIS_MEMORY;
use infraai_core::{Error, Result};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);

fn backend(op: &'static str, e: impl std::fmt::Display) -> Error {
    Error::backend("local", op, true, e.to_string())
}

/// Client connections in use / `max_connections`, from `pg_stat_activity`
/// (this reading's own connection included). A server refusing the reading
/// because every slot is taken is at 1.
pub(super) async fn postgres_connections(url: &str) -> Result<f64> {
    let connect = tokio_postgres::connect(url, tokio_postgres::NoTls);
    let (client, connection) = match tokio::time::timeout(TIMEOUT, connect).await {
        Err(_) => return Err(backend("postgres connections", "connect timed out")),
        Ok(Err(e)) if e.code() == Some(&tokio_postgres::error::SqlState::TOO_MANY_CONNECTIONS) => {
            return Ok(1.0)
        }
        Ok(Err(e)) => return Err(backend("postgres connections", e)),
        Ok(Ok(c)) => c,
    };
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::float8, current_setting('max_connections')::float8",
            &[],
        )
        .await
        .map_err(|e| backend("postgres connections", e))?;
    let (used, max): (f64, f64) = (row.get(0), row.get(1));
    Ok(if max > 0.0 { used / max } else { 1.0 })
}

/// Redis `used_memory` / `maxmemory` ([`REDIS_MEMORY`]) or
/// `connected_clients` / `maxclients`, from `INFO` and `CONFIG GET`.
pub(super) async fn redis_utilization(url: &str, metric: &str) -> Result<f64> {
    let op = "redis info";
    let client = redis::Client::open(url).map_err(|e| backend(op, e))?;
    let read = async {
        let mut c = client.get_multiplexed_async_connection().await?;
        let (field, limit) = if metric == REDIS_MEMORY {
            ("used_memory", "maxmemory")
        } else {
            ("connected_clients", "maxclients")
        };
        let info: String = redis::cmd("INFO").arg("all").query_async(&mut c).await?;
        let config: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(limit)
            .query_async(&mut c)
            .await?;
        redis::RedisResult::Ok((
            info_field(&info, field),
            config.get(1).and_then(|v| v.parse::<f64>().ok()),
        ))
    };
    let (used, max) = tokio::time::timeout(TIMEOUT, read)
        .await
        .map_err(|_| backend(op, "timed out"))?
        .map_err(|e| backend(op, e))?;
    match (used, max) {
        (Some(used), Some(max)) if max > 0.0 => Ok(used / max),
        _ => Err(Error::not_found(format!("{metric} in the cache's INFO"))),
    }
}

/// A numeric field of Redis `INFO` text (`name:value` lines).
fn info_field(info: &str, name: &str) -> Option<f64> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_info_fields() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n# Clients\r\nconnected_clients:7\r\n";
        assert_eq!(super::info_field(info, "used_memory"), Some(1048576.0));
        assert_eq!(super::info_field(info, "connected_clients"), Some(7.0));
        assert_eq!(super::info_field(info, "maxmemory"), None);
    }
}
