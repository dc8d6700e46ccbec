//! What the two SQL stores share, written once: each record's statements,
//! parameters and decoding ([`records`]; jobs, cursors, settings and the
//! kill-switch in [`coordination`]), and here what runs them on either
//! client: statement parameters ([`Param`]; statements number them `$1`,
//! `$2`, … in order of appearance, which SQLite binds alike) and rows read by
//! column ([`SqlRow`], [`Cols`]). A value of another SQL type (or NULL where
//! none may be) and a value that does not parse are [`StoreError::Corrupt`]
//! naming the record and the column.

mod coordination;
mod records;

pub(crate) use coordination::*;
pub(crate) use records::*;

use crate::codec::Site;
use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use std::borrow::Cow;

/// A column value both SQL clients read.
pub(crate) trait Value: Sized {
    /// Column `i` of a SQLite row.
    #[cfg(feature = "sqlite")]
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self>;
    /// Column `i` of a PostgreSQL row.
    #[cfg(feature = "postgres")]
    fn postgres(r: &tokio_postgres::Row, i: usize) -> Result<Self, tokio_postgres::Error>;
}

macro_rules! values {
    ($($t:ty),*) => {$(
        impl Value for $t {
            #[cfg(feature = "sqlite")]
            fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
                r.get(i)
            }
            #[cfg(feature = "postgres")]
            fn postgres(r: &tokio_postgres::Row, i: usize) -> Result<Self, tokio_postgres::Error> {
                r.try_get(i)
            }
        }
    )*};
}
values!(String, Option<String>, Option<f64>, i64, i32, bool);

/// A row of a SQL store.
pub(crate) trait SqlRow {
    /// The store, for error messages.
    const COMPONENT: &'static str;
    /// Column `i`, or why it cannot be read as `T`.
    fn value<T: Value>(&self, i: usize) -> Result<T, String>;
    /// The name of column `i`.
    fn column(&self, i: usize) -> &str;
}

#[cfg(feature = "sqlite")]
impl SqlRow for rusqlite::Row<'_> {
    const COMPONENT: &'static str = "sqlite";
    fn value<T: Value>(&self, i: usize) -> Result<T, String> {
        T::sqlite(self, i).map_err(|e| e.to_string())
    }
    fn column(&self, i: usize) -> &str {
        self.as_ref().column_name(i).unwrap_or("?")
    }
}

#[cfg(feature = "postgres")]
impl SqlRow for tokio_postgres::Row {
    const COMPONENT: &'static str = "postgres";
    fn value<T: Value>(&self, i: usize) -> Result<T, String> {
        T::postgres(self, i).map_err(|e| e.to_string())
    }
    fn column(&self, i: usize) -> &str {
        self.columns().get(i).map_or("?", |c| c.name())
    }
}

/// A row being decoded into the record `what` (e.g. `incident 0190…`); each
/// column is named in errors by its name.
pub(crate) struct Cols<'a, R> {
    row: &'a R,
    op: &'static str,
    what: String,
}

impl<'a, R: SqlRow> Cols<'a, R> {
    pub fn new(row: &'a R, op: &'static str, what: String) -> Self {
        Cols { row, op, what }
    }

    /// The row of a `kind` record whose id is column 0 (`{kind} {id}` in
    /// errors), and that id.
    pub fn keyed(row: &'a R, op: &'static str, kind: &str) -> StoreResult<(Self, String)> {
        let id: String = Cols::new(row, op, kind.to_owned()).get(0)?;
        Ok((Cols::new(row, op, format!("{kind} {id}")), id))
    }

    pub fn site(&self) -> Site<'_> {
        Site::new(R::COMPONENT, self.op, &self.what)
    }

    pub fn corrupt(&self, i: usize, detail: impl std::fmt::Display) -> StoreError {
        self.site().corrupt(self.row.column(i), detail)
    }

    pub fn get<T: Value>(&self, i: usize) -> StoreResult<T> {
        self.row.value(i).map_err(|e| self.corrupt(i, e))
    }

    /// A JSON column.
    pub fn json<T: DeserializeOwned>(&self, i: usize) -> StoreResult<T> {
        self.site()
            .json(self.row.column(i), &self.get::<String>(i)?)
    }

    /// An enum stored as its serde name.
    pub fn name<T: DeserializeOwned>(&self, i: usize) -> StoreResult<T> {
        self.site()
            .name(self.row.column(i), &self.get::<String>(i)?)
    }

    pub fn time(&self, i: usize) -> StoreResult<DateTime<Utc>> {
        self.site()
            .time(self.row.column(i), &self.get::<String>(i)?)
    }

    pub fn id<T: std::str::FromStr>(&self, i: usize) -> StoreResult<T>
    where
        T::Err: std::fmt::Display,
    {
        self.site().id(self.row.column(i), &self.get::<String>(i)?)
    }

    fn opt<T>(
        &self,
        i: usize,
        f: impl FnOnce(&str, &str) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let text: Option<String> = self.get(i)?;
        text.map(|t| f(self.row.column(i), &t)).transpose()
    }

    pub fn opt_json<T: DeserializeOwned>(&self, i: usize) -> StoreResult<Option<T>> {
        self.opt(i, |c, t| self.site().json(c, t))
    }

    pub fn opt_time(&self, i: usize) -> StoreResult<Option<DateTime<Utc>>> {
        self.opt(i, |c, t| self.site().time(c, t))
    }

    pub fn opt_id<T: std::str::FromStr>(&self, i: usize) -> StoreResult<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        self.opt(i, |c, t| self.site().id(c, t))
    }
}

/// A statement parameter, bound alike by both SQL clients, so that each
/// record's columns are listed once (statements number their parameters
/// `$1`, `$2`, … in order of appearance, which both read alike).
pub(crate) enum Param<'a> {
    Text(Option<Cow<'a, str>>),
    Real(Option<f64>),
    Int(i64),
    Bool(bool),
}

impl Param<'_> {
    /// The same value, owning its text.
    #[cfg(feature = "sqlite")]
    pub(crate) fn into_owned(self) -> Param<'static> {
        match self {
            Param::Text(t) => Param::Text(t.map(|t| Cow::Owned(t.into_owned()))),
            Param::Real(v) => Param::Real(v),
            Param::Int(v) => Param::Int(v),
            Param::Bool(v) => Param::Bool(v),
        }
    }
}

macro_rules! param_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {$(
        impl<'a> From<$t> for Param<'a> {
            fn from($v: $t) -> Self {
                $e
            }
        }
    )*};
}

param_from!(
    &'a str => |s| Param::Text(Some(Cow::Borrowed(s))),
    &'a String => |s| Param::Text(Some(Cow::Borrowed(s))),
    String => |s| Param::Text(Some(Cow::Owned(s))),
    Option<&'a str> => |s| Param::Text(s.map(Cow::Borrowed)),
    Option<String> => |s| Param::Text(s.map(Cow::Owned)),
    Option<f64> => |v| Param::Real(v),
    i64 => |v| Param::Int(v),
    bool => |v| Param::Bool(v),
);

#[cfg(feature = "sqlite")]
impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Param::Text(v) => v.to_sql(),
            Param::Real(v) => v.to_sql(),
            Param::Int(v) => v.to_sql(),
            Param::Bool(v) => v.to_sql(),
        }
    }
}

/// `params` as PostgreSQL parameters.
#[cfg(feature = "postgres")]
pub(crate) fn pg<'p>(
    params: &'p [Param<'_>],
) -> Vec<&'p (dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| -> &(dyn tokio_postgres::types::ToSql + Sync) {
            match p {
                Param::Text(v) => v,
                Param::Real(v) => v,
                Param::Int(v) => v,
                Param::Bool(v) => v,
            }
        })
        .collect()
}

/// The statement listing the incidents `q` asks for, newest first, and its
/// parameters. Only the filters `q` sets appear, each a plain comparison, so
/// either planner walks one index in order and stops at the page's end:
/// `incidents_by_status (status, created_at, id)` for one status (a status
/// matching nothing costs nothing), `incidents_by_resource` for a resource,
/// `incidents_by_created` for none. A generic `$1 IS NULL OR status = …`
/// hides every index, and a rare status then walks the whole table.
pub(crate) fn list_incidents(
    component: &'static str,
    q: &infraai_core::IncidentQuery,
) -> StoreResult<(String, Vec<Param<'static>>)> {
    let mut params: Vec<Param<'static>> = Vec::new();
    let mut next = |p: Param<'static>| {
        params.push(p);
        format!("${}", params.len())
    };
    let mut filters = Vec::new();
    if let Some(resource) = &q.resource {
        filters.push(format!("resource = {}", next(resource.clone().into())));
    }
    let statuses: Vec<String> = (q.statuses.iter())
        .map(|s| next(crate::codec::status_name(*s).into()))
        .collect();
    match statuses.as_slice() {
        [] => {}
        [one] => filters.push(format!("status = {one}")),
        many => filters.push(format!("status IN ({})", many.join(", "))),
    }
    if let Some(severity) = &q.severity {
        let name = crate::codec::name(component, "list_incidents", severity)?;
        filters.push(format!("severity = {}", next(name.into())));
    }
    if let (Some(at), Some(id)) = crate::codec::page_after(q.after) {
        let (at, id) = (next(at.into()), next(id.into()));
        filters.push(format!("(created_at, id) < ({at}, {id})"));
    }
    let limit = q
        .limit
        .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let limit = next(limit.into());
    let filters = if filters.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", filters.join(" AND "))
    };
    let sql = format!("{INCIDENT_COLS}{filters} ORDER BY created_at DESC, id DESC LIMIT {limit}");
    Ok((sql, params))
}
