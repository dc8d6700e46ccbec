//! The coordination records of the SQL stores, once: leased jobs, cursors,
//! settings and the kill-switch.

use super::{Cols, SqlRow};
use crate::error::{StoreError, StoreResult};
use infraai_core::*;

/// Takes a job (`$1`) for an owner (`$2`) until `$3` unless another owner's
/// lease lasts beyond now (`$4`); returns it when taken.
pub(crate) const CLAIM_JOB: &str = "INSERT INTO jobs (key, owner, lease_until, claims) \
     VALUES ($1, $2, $3, 1) ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, \
     lease_until = excluded.lease_until, claims = jobs.claims + 1 \
     WHERE jobs.owner IS NULL OR jobs.lease_until <= $4 \
     RETURNING key, owner, lease_until, claims";

/// Extends the lease of a job (`$2`) held by `$3` until `$1`.
pub(crate) const RENEW_JOB: &str = "UPDATE jobs SET lease_until = $1 WHERE key = $2 AND owner = $3";

/// Releases a job (`$1`) held by `$2`: removed when `finished`, free to take
/// otherwise.
pub(crate) fn release_job(finished: bool) -> &'static str {
    if finished {
        "DELETE FROM jobs WHERE key = $1 AND owner = $2"
    } else {
        "UPDATE jobs SET owner = NULL, lease_until = NULL WHERE key = $1 AND owner = $2"
    }
}

/// A cursor's value.
pub(crate) const CURSOR: &str = "SELECT value FROM cursors WHERE name = $1";

/// Sets a cursor (`$1`) to `$2` at `$3`.
pub(crate) const SET_CURSOR: &str = "INSERT INTO cursors (name, value, updated_at) \
     VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
     updated_at = excluded.updated_at";

/// A setting (`key, value_json, version`) by key.
pub(crate) const SETTING: &str = "SELECT key, value_json, version FROM settings WHERE key = $1";

/// Every setting whose key starts with `$1`, ordered by key (byte order:
/// SQLite's `BINARY` collation, PostgreSQL's `C` on the column). `substr`
/// rather than `LIKE`, whose wildcards a prefix could hold.
pub(crate) const SETTINGS: &str = "SELECT key, value_json, version FROM settings \
     WHERE substr(key, 1, length(CAST($1 AS TEXT))) = CAST($1 AS TEXT) ORDER BY key";

/// Creates a setting (`$1`) at version 1 with the value `$2`, at `$3`,
/// unless it exists: no row changed is a lost compare-and-set.
pub(crate) const INSERT_SETTING: &str = "INSERT INTO settings (key, value_json, version, \
     updated_at) VALUES ($1, $2, 1, $3) ON CONFLICT (key) DO NOTHING";

/// Sets a setting (`$4`) to the value `$1` at version `$2`, at `$3`, when
/// it is still at version `$5`: no row changed is a lost compare-and-set.
pub(crate) const UPDATE_SETTING: &str = "UPDATE settings SET value_json = $1, version = $2, \
     updated_at = $3 WHERE key = $4 AND version = $5";

/// Deletes a setting (`$1`).
pub(crate) const DELETE_SETTING: &str = "DELETE FROM settings WHERE key = $1";

/// A compare-and-set of setting `key` from version `expected`: the stored
/// versions it expects and writes, or why it cannot be stored.
pub(crate) fn setting_versions(key: &str, expected: u64) -> StoreResult<(i64, i64)> {
    i64::try_from(expected)
        .ok()
        .and_then(|e| Some((e, e.checked_add(1)?)))
        .ok_or_else(|| StoreError::Invalid {
            what: format!("setting {key}"),
            detail: format!("version {expected} is out of range"),
        })
}

/// A setting row ([`SETTING`], [`SETTINGS`]).
pub(crate) fn setting<R: SqlRow>(r: &R, op: &'static str) -> StoreResult<Setting> {
    let (c, key) = Cols::keyed(r, op, "setting")?;
    Ok(Setting {
        value: c.json(1)?,
        version: u64::try_from(c.get::<i64>(2)?).map_err(|e| c.corrupt(2, e))?,
        key,
    })
}

/// Sets the kill-switch: engaged (`$1`), by (`$2`), why (`$3`), when (`$4`).
pub(crate) const SET_KILL_SWITCH: &str = "INSERT INTO kill_switch (id, engaged, set_by, \
     reason, set_at) VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET \
     engaged = excluded.engaged, set_by = excluded.set_by, reason = excluded.reason, \
     set_at = excluded.set_at";

/// A `jobs` row (`key, owner, lease_until, claims`).
pub(crate) fn job<R: SqlRow>(r: &R, op: &'static str) -> StoreResult<Job> {
    let (c, key) = Cols::keyed(r, op, "job")?;
    Ok(Job {
        owner: c.get(1)?,
        lease_until: c.opt_time(2)?,
        claims: u32::try_from(c.get::<i32>(3)?).map_err(|e| c.corrupt(3, e))?,
        key,
    })
}

/// The kill-switch row (`engaged, set_by, reason, set_at`).
pub(crate) const KILL_SWITCH: &str =
    "SELECT engaged, set_by, reason, set_at FROM kill_switch WHERE id = 1";

/// The kill-switch row ([`KILL_SWITCH`]).
pub(crate) fn kill_switch<R: SqlRow>(r: &R, op: &'static str) -> StoreResult<KillSwitch> {
    let c = Cols::new(r, op, "kill_switch".into());
    Ok(KillSwitch {
        engaged: c.get(0)?,
        set_by: c.get(1)?,
        reason: c.get(2)?,
        set_at: c.opt_time(3)?,
    })
}
