//! Seeds a large store for `bench/api-at-scale.sh`: N incidents (default
//! 100,000) with their decisions, approvals and actions, and M audit
//! records (default 1,000,000), in a SQLite file or a PostgreSQL database.
//!
//! ```sh
//! cargo run --release -p infraai-store --features postgres --example seed_store -- \
//!     <sqlite file | postgres://user@host:port/db> [--incidents N] [--audit M] \
//!     [--ids-dir DIR] [--seed S]
//! ```
//!
//! The store is opened once through its public API (`SqliteStore::open_path`,
//! `PostgresStore::connect`), which creates the schema (migrations), and
//! read back through it at the end (counts, pages, views of sampled
//! incidents), so a row this program wrote wrong fails the seed. The rows in
//! between are written with plain SQL, not through the store's write
//! methods: those commit one record per call (PostgreSQL: one transaction
//! and one WAL flush per audit record; SQLite: one writer job per record,
//! grouped up to 512 per `fsync`), which cannot write 1.1 million rows in a
//! minute. The SQL below therefore depends on the schema:
//!
//! * SQLite schema versions 7-9 (`PRAGMA user_version`), PostgreSQL schema
//!   versions 4-6 (`schema_migrations`), whose tables take the same rows (8
//!   and 5 add `decisions.action_type`, a generated column the database
//!   fills in; 9 and 6 change an index): another version is refused, and this
//!   file must then be updated (see `infraai-store/src/*/migrations`).
//! * Columns as `infraai-store/src/sql/records.rs` writes them: timestamps as
//!   fixed-width RFC 3339 UTC text with nanoseconds, enums as their serde
//!   names, `*_json` columns as serde_json text of the domain types.
//!
//! Every incident follows a path the lifecycle allows (checked against
//! `infraai_core::lifecycle::can_move` at start), ending in a realistic mix:
//! about half resolved, 14 % escalated, 18 % ignored, 5 % expired, 5 %
//! unresolved, 4 % rejected and 4 % pending (a few thousand of 100,000).
//! Pending incidents are spread over the whole 30-day history (escalated
//! incidents given a new proposal in the last 20 minutes, so the server's
//! approval expiry leaves them pending for the next half hour or more):
//! a page of `status=pending` therefore walks about 25 incidents per match.
//! Audit records follow each incident's steps (alert, decision, guardrails,
//! approval request, human command, action, feedback, …); the rest up to M
//! are LLM calls and repeated alerts on random incidents, and about 3 % have
//! no incident. They are written in time order, so `seq` follows `at`.
//!
//! With `--ids-dir DIR` it writes `DIR/pending.txt` (every pending incident,
//! shuffled) and `DIR/incidents.txt` (up to 20,000 random incidents of any
//! status), one id per line. The last line printed is
//! `SEED seconds=… incidents=… pending=… audit=…`.
//!
//! PostgreSQL: the session writes with `synchronous_commit = off`, and the
//! tables are `VACUUM ANALYZE`d at the end (what autovacuum would do soon
//! after such a load, in the middle of a benchmark otherwise). SQLite: the
//! load runs with `synchronous = OFF` and is checkpointed at the end; no
//! `ANALYZE` (the store never runs one).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use infraai_core::*;
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Schema versions whose tables this seed writes (see the module docs).
const SQLITE_SCHEMA: std::ops::RangeInclusive<i64> = 7..=9;
const POSTGRES_SCHEMA: std::ops::RangeInclusive<i64> = 4..=6;
/// Rows per INSERT statement (PostgreSQL) and per commit (SQLite).
const BATCH: usize = 5_000;
/// History the incidents are spread over.
const HISTORY_DAYS: i64 = 30;

// ------------------------------------------------------------------ arguments

struct Args {
    target: String,
    incidents: usize,
    audit: usize,
    ids_dir: Option<PathBuf>,
    seed: u64,
    api_probe: usize,
}

fn args() -> Result<Args, BoxError> {
    let mut a = Args {
        target: String::new(),
        incidents: 100_000,
        audit: 1_000_000,
        ids_dir: None,
        seed: 42,
        api_probe: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--incidents" => a.incidents = value("--incidents")?.parse()?,
            "--audit" => a.audit = value("--audit")?.parse()?,
            "--ids-dir" => a.ids_dir = Some(value("--ids-dir")?.into()),
            "--seed" => a.seed = value("--seed")?.parse()?,
            "--api-probe" => a.api_probe = value("--api-probe")?.parse()?,
            "-h" | "--help" => {
                println!(
                    "seed_store <sqlite file | postgres://…> [--incidents N] [--audit M] \
                     [--ids-dir DIR] [--seed S]\n\
                     seed_store <scratch store> --api-probe N: times N append_audit calls \
                     (64 at once) through the store's API"
                );
                std::process::exit(0);
            }
            t if a.target.is_empty() && !t.starts_with("--") => a.target = t.to_owned(),
            other => return Err(format!("unexpected argument {other:?}").into()),
        }
    }
    if a.target.is_empty() {
        return Err("give a SQLite file or a postgres:// URL".into());
    }
    if a.incidents == 0 {
        return Err("--incidents must be at least 1".into());
    }
    Ok(a)
}

// ------------------------------------------------------------------ randomness

/// xorshift64*: deterministic for a seed, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// ------------------------------------------------------------------ the plan

/// How an incident went, from `new` to where it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// Escalated, then given a proposal recently: waiting for a human.
    Pending,
    ApprovedResolved,
    AutoResolved,
    EscalatedResolved,
    Escalated,
    Ignored,
    Rejected,
    Expired,
    Unresolved,
}

/// Paths and their weights (per thousand).
const PATHS: [(Path, u64); 9] = [
    (Path::Pending, 40),
    (Path::ApprovedResolved, 300),
    (Path::AutoResolved, 100),
    (Path::EscalatedResolved, 100),
    (Path::Escalated, 140),
    (Path::Ignored, 180),
    (Path::Rejected, 40),
    (Path::Expired, 50),
    (Path::Unresolved, 50),
];

impl Path {
    fn statuses(self) -> &'static [IncidentStatus] {
        use IncidentStatus::*;
        match self {
            Path::Pending => &[New, Escalated, Pending],
            Path::ApprovedResolved => &[New, Pending, Approved, Executing, Executed, Resolved],
            Path::AutoResolved => &[New, Auto, Executing, Executed, Resolved],
            Path::EscalatedResolved => &[New, Escalated, Resolved],
            Path::Escalated => &[New, Escalated],
            Path::Ignored => &[New, Ignored],
            Path::Rejected => &[New, Pending, Rejected],
            Path::Expired => &[New, Pending, Expired],
            Path::Unresolved => &[New, Pending, Approved, Executing, Executed, Unresolved],
        }
    }
    fn status(self) -> IncidentStatus {
        *self.statuses().last().expect("a path has statuses")
    }
    /// Where its (current) decision routed it.
    fn routed_to(self) -> IncidentStatus {
        match self {
            Path::Pending => IncidentStatus::Pending,
            _ => self.statuses()[1],
        }
    }
    fn has(self, s: IncidentStatus) -> bool {
        self.statuses().contains(&s)
    }
    /// A human's answer: approved (`true`) or rejected.
    fn approval(self) -> Option<bool> {
        match self {
            Path::ApprovedResolved | Path::Unresolved => Some(true),
            Path::Rejected => Some(false),
            _ => None,
        }
    }
    fn pick(rng: &mut Rng) -> Path {
        let mut r = rng.below(1000);
        for (p, w) in PATHS {
            if r < w {
                return p;
            }
            r -= w;
        }
        Path::Ignored
    }
}

/// What the seed decides about one incident; rows are made from it.
struct Planned {
    id: IncidentId,
    path: Path,
    fingerprint: String,
    resource: String,
    policy: usize,
    severity: Severity,
    action: Action,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    occurrences: u64,
}

const POLICIES: [(&str, &str, f64); 4] = [
    ("High CPU", "cpu_utilization", 0.8),
    ("High memory", "memory_utilization", 0.9),
    ("Disk almost full", "disk_utilization", 0.85),
    ("Error rate", "http_5xx_ratio", 0.05),
];

fn plan(n: usize, rng: &mut Rng, now: DateTime<Utc>) -> Vec<Planned> {
    let start = now - Duration::days(HISTORY_DAYS);
    // The newest incident is two hours old: anything younger would still be
    // in the server's hands (decisions, re-checks).
    let span_ns = (Duration::days(HISTORY_DAYS) - Duration::hours(2))
        .num_nanoseconds()
        .unwrap_or(i64::MAX);
    let step = (span_ns / n as i64).max(1);
    let resources = (n / 20).max(10);
    let mut open_fingerprints = HashSet::new();
    (0..n)
        .map(|i| {
            let path = Path::pick(rng);
            let created =
                start + Duration::nanoseconds(i as i64 * step + rng.below(step as u64) as i64);
            let policy = rng.below(POLICIES.len() as u64) as usize;
            let r = rng.below(resources as u64);
            let resource = format!("web-{r}");
            // The same alert fires again and again over a month; at most one
            // incident of a fingerprint is open (the partial unique index).
            let mut fingerprint = format!(
                "{:016x}",
                (r << 8 | policy as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            );
            if !path.status().is_closed() && !open_fingerprints.insert(fingerprint.clone()) {
                fingerprint = format!("{fingerprint}-{i}");
                open_fingerprints.insert(fingerprint.clone());
            }
            let action = match path {
                Path::Escalated | Path::EscalatedResolved => Action::Escalate {},
                Path::Ignored => Action::Ignore {},
                _ if rng.below(3) == 0 => Action::ScaleOut {
                    instances: 2 + rng.below(4) as u32,
                },
                _ => Action::Restart {},
            };
            let severity = *rng.pick(&[
                Severity::Info,
                Severity::Warning,
                Severity::Warning,
                Severity::Critical,
            ]);
            let lasted = Duration::seconds(120 + rng.below(6 * 3600) as i64);
            let updated = match path {
                // A proposal in the last 20 minutes: still pending.
                Path::Pending => now - Duration::seconds(rng.below(20 * 60) as i64),
                Path::Expired => created + Duration::hours(1),
                _ => (created + lasted).min(now - Duration::hours(1)),
            };
            let id = IncidentId(v7(created, rng));
            Planned {
                id,
                path,
                fingerprint,
                resource,
                policy,
                severity,
                action,
                created,
                updated,
                occurrences: 1
                    + rng.below(4)
                    + if rng.below(50) == 0 {
                        rng.below(200)
                    } else {
                        0
                    },
            }
        })
        .collect()
}

/// A UUID v7 of time `t` (so ids sort like the seeded history).
fn v7(t: DateTime<Utc>, rng: &mut Rng) -> uuid::Uuid {
    let ms = t.timestamp_millis().max(0) as u64;
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6..14].copy_from_slice(&rng.next().to_be_bytes());
    b[14..].copy_from_slice(&rng.next().to_be_bytes()[..2]);
    uuid::Builder::from_bytes(b)
        .with_version(uuid::Version::SortRand)
        .with_variant(uuid::Variant::RFC4122)
        .into_uuid()
}

// ------------------------------------------------------------------ rows

#[derive(Clone, Copy)]
enum Ty {
    Text,
    Real,
    Int,
    Bool,
}

enum Val {
    T(Option<String>),
    R(Option<f64>),
    I(i64),
    B(bool),
}

fn t(s: impl Into<String>) -> Val {
    Val::T(Some(s.into()))
}

struct Table {
    name: &'static str,
    cols: &'static [(&'static str, Ty)],
}

use Ty::*;

const INCIDENTS: Table = Table {
    name: "incidents",
    cols: &[
        ("id", Text),
        ("fingerprint", Text),
        ("status", Text),
        ("source", Text),
        ("policy_name", Text),
        ("resource", Text),
        ("resource_type", Text),
        ("cloud", Text),
        ("metric", Text),
        ("value", Real),
        ("threshold", Real),
        ("severity", Text),
        ("alert_state", Text),
        ("started_at", Text),
        ("labels_json", Text),
        ("raw_json", Text),
        ("occurrences", Int),
        ("decision_json", Text),
        ("guardrail_notes_json", Text),
        ("deployment_id", Text),
        ("note", Text),
        ("created_at", Text),
        ("updated_at", Text),
    ],
};

const DECISIONS: Table = Table {
    name: "decisions",
    cols: &[
        ("incident_id", Text),
        ("decision_json", Text),
        ("guardrail_notes_json", Text),
        ("routed_to", Text),
        ("decided_at", Text),
    ],
};

const APPROVALS: Table = Table {
    name: "approvals",
    cols: &[
        ("incident_id", Text),
        ("approved", Bool),
        ("actor_channel", Text),
        ("actor_id", Text),
        ("actor_json", Text),
        ("effective", Bool),
        ("at", Text),
    ],
};

const ACTIONS: Table = Table {
    name: "actions",
    cols: &[
        ("id", Text),
        ("incident_id", Text),
        ("resource", Text),
        ("action_json", Text),
        ("success", Bool),
        ("summary", Text),
        ("details_json", Text),
        ("started_at", Text),
        ("finished_at", Text),
    ],
};

const AUDIT: Table = Table {
    name: "audit",
    cols: &[
        ("id", Text),
        ("at", Text),
        ("step", Text),
        ("incident_id", Text),
        ("run_id", Text),
        ("actor", Text),
        ("input_json", Text),
        ("reasoning", Text),
        ("confidence", Real),
        ("outcome", Text),
        ("replica", Text),
    ],
};

/// As the store writes timestamps (`codec::time`).
fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// An enum's serde name (`codec::name`).
fn name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => panic!("not a unit enum: {other:?}"),
    }
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("serializable")
}

fn decision(p: &Planned) -> OpsDecision {
    let (what, _, _) = POLICIES[p.policy];
    OpsDecision {
        severity: p.severity,
        recommended_action: p.action.clone(),
        requires_approval: p.path.routed_to() != IncidentStatus::Auto,
        confidence: 0.55 + 0.4 * ((p.id.0.as_u128() % 1000) as f64 / 1000.0),
        reasoning: format!(
            "{what} on {} has stayed above its threshold for several minutes; the runbook's \
             first step for this policy is {}.",
            p.resource,
            p.action.describe()
        ),
        risk: if matches!(p.action, Action::Restart {}) {
            Risk::Medium
        } else {
            Risk::Low
        },
        precedent: None,
    }
}

fn incident_row(p: &Planned) -> Vec<Val> {
    let (policy, metric, threshold) = POLICIES[p.policy];
    let closed_by_alert = matches!(p.path, Path::EscalatedResolved);
    let state = if closed_by_alert {
        AlertState::Resolved
    } else {
        AlertState::Firing
    };
    let labels: BTreeMap<String, String> = [
        ("alertname".to_string(), policy.replace(' ', "")),
        ("instance".to_string(), p.resource.clone()),
        ("job".to_string(), "node".to_string()),
        ("team".to_string(), format!("team-{}", p.resource.len() % 5)),
    ]
    .into();
    let raw = serde_json::json!({
        "status": name(&state),
        "labels": labels,
        "annotations": {"summary": format!("{policy} on {}", p.resource)},
        "startsAt": time(p.created),
        "fingerprint": p.fingerprint,
    });
    let notes: Vec<String> = match p.path.routed_to() {
        IncidentStatus::Pending => vec!["severity needs a human's approval".into()],
        _ => vec![],
    };
    let note = match p.path {
        Path::EscalatedResolved => Some(lifecycle::CLEARED_NOTE.to_string()),
        Path::Expired => Some("no answer within 3600s".to_string()),
        Path::Rejected => Some("rejected by web:operator".to_string()),
        _ => None,
    };
    vec![
        t(p.id.to_string()),
        t(p.fingerprint.clone()),
        t(name(&p.path.status())),
        t("alertmanager"),
        t(policy),
        t(p.resource.clone()),
        t("local_instance"),
        t("local"),
        t(metric),
        Val::R(Some(threshold * 1.17)),
        Val::R(Some(threshold)),
        t(name(&p.severity)),
        t(name(&state)),
        t(time(p.created)),
        t(json(&labels)),
        t(json(&raw)),
        Val::I(p.occurrences as i64),
        t(json(&decision(p))),
        t(json(&notes)),
        Val::T(None),
        Val::T(note),
        t(time(p.created)),
        t(time(p.updated)),
    ]
}

fn decision_row(p: &Planned) -> Vec<Val> {
    let decided = if p.path == Path::Pending {
        p.updated
    } else {
        p.created + Duration::seconds(2)
    };
    vec![
        t(p.id.to_string()),
        t(json(&decision(p))),
        t(json::<[String]>(&[])),
        t(name(&p.path.routed_to())),
        t(time(decided)),
    ]
}

fn operator() -> Actor {
    let mut a = Actor::new("web", "operator");
    a.name = Some("operator".into());
    a
}

fn approval_row(p: &Planned, approved: bool) -> Vec<Val> {
    let actor = operator();
    vec![
        t(p.id.to_string()),
        Val::B(approved),
        t(actor.channel.clone()),
        t(actor.id.clone()),
        t(json(&actor)),
        Val::B(true),
        t(time(p.created + Duration::seconds(90))),
    ]
}

fn action_row(p: &Planned, rng: &mut Rng) -> Vec<Val> {
    let started = p.created + Duration::seconds(95);
    let success = p.path != Path::Unresolved || rng.below(2) == 0;
    vec![
        t(ActionId(v7(started, rng)).to_string()),
        t(p.id.to_string()),
        t(p.resource.clone()),
        t(json(&p.action)),
        Val::B(success),
        t(format!(
            "{} on {}: {}",
            p.action.describe(),
            p.resource,
            if success { "done" } else { "failed" }
        )),
        t(json(
            &serde_json::json!({"operation": format!("op-{}", rng.below(1 << 40))}),
        )),
        t(time(started)),
        t(time(started + Duration::seconds(20))),
    ]
}

/// One audit record to write: when, about which incident (index into the
/// plan, or none), and what kind.
#[derive(Clone, Copy)]
struct AuditEntry {
    at: i64,
    incident: u32,
    kind: Kind,
}

const NO_INCIDENT: u32 = u32::MAX;

#[derive(Clone, Copy)]
enum Kind {
    Opened,
    Decision,
    Guardrails,
    ApprovalRequested,
    CommandReceived,
    Approved,
    Rejected,
    Action,
    Feedback,
    Cleared,
    Expired,
    Proposal,
    Repeated,
    LlmCall,
    AuthRefused,
}

/// Each incident's own steps, then filler up to `total`, in time order.
fn audit_entries(
    plan: &[Planned],
    total: usize,
    rng: &mut Rng,
    now: DateTime<Utc>,
) -> Vec<AuditEntry> {
    let ns = |t: DateTime<Utc>| t.timestamp_nanos_opt().unwrap_or(0);
    let mut out = Vec::with_capacity(total);
    'incidents: for (i, p) in plan.iter().enumerate() {
        let c = p.created;
        let mut steps = vec![(c, Kind::Opened), (c + Duration::seconds(1), Kind::LlmCall)];
        steps.push((c + Duration::seconds(2), Kind::Decision));
        steps.push((c + Duration::seconds(2), Kind::Guardrails));
        if p.path.routed_to() == IncidentStatus::Pending && p.path != Path::Pending {
            steps.push((c + Duration::seconds(3), Kind::ApprovalRequested));
        }
        if let Some(approved) = p.path.approval() {
            steps.push((c + Duration::seconds(90), Kind::CommandReceived));
            steps.push((
                c + Duration::seconds(90),
                if approved {
                    Kind::Approved
                } else {
                    Kind::Rejected
                },
            ));
        }
        if p.path.has(IncidentStatus::Executing) {
            steps.push((c + Duration::seconds(115), Kind::Action));
            steps.push((c + Duration::seconds(150), Kind::Feedback));
        }
        match p.path {
            Path::EscalatedResolved => steps.push((p.updated, Kind::Cleared)),
            Path::Expired => steps.push((p.updated, Kind::Expired)),
            Path::Pending => {
                steps.push((p.updated, Kind::Proposal));
                steps.push((p.updated, Kind::ApprovalRequested));
            }
            _ => {}
        }
        for (at, kind) in steps {
            if out.len() >= total {
                break 'incidents;
            }
            out.push(AuditEntry {
                at: ns(at),
                incident: i as u32,
                kind,
            });
        }
    }
    let history = ns(now) - ns(plan[0].created);
    while out.len() < total {
        if rng.below(100) < 3 {
            let at = ns(plan[0].created) + rng.below(history.max(1) as u64) as i64;
            let kind = if rng.below(2) == 0 {
                Kind::AuthRefused
            } else {
                Kind::LlmCall
            };
            out.push(AuditEntry {
                at,
                incident: NO_INCIDENT,
                kind,
            });
            continue;
        }
        let i = rng.below(plan.len() as u64) as usize;
        let p = &plan[i];
        let (from, to) = (ns(p.created), ns(p.updated).max(ns(p.created) + 1));
        let at = from + rng.below((to - from) as u64) as i64;
        let kind = if rng.below(3) == 0 {
            Kind::LlmCall
        } else {
            Kind::Repeated
        };
        out.push(AuditEntry {
            at,
            incident: i as u32,
            kind,
        });
    }
    out.sort_by_key(|e| e.at);
    out
}

fn audit_row(e: &AuditEntry, plan: &[Planned], rng: &mut Rng) -> Vec<Val> {
    let at = DateTime::<Utc>::from_timestamp_nanos(e.at);
    let p = plan.get(e.incident as usize);
    let id = AuditId(v7(at, rng));
    let mut r = match e.kind {
        Kind::Opened | Kind::Repeated | Kind::Cleared => {
            let outcome = match e.kind {
                Kind::Opened => "opened",
                Kind::Cleared => "resolved",
                _ => "repeated",
            };
            AuditRecord::agent(AuditStep::AlertReceived, outcome).input(serde_json::json!({
                "source": "alertmanager",
                "fingerprint": p.map(|p| p.fingerprint.as_str()),
                "value": p.map(|p| POLICIES[p.policy].2 * 1.17),
            }))
        }
        Kind::Decision => {
            let d = decision(p.expect("an incident"));
            AuditRecord::agent(AuditStep::Decision, d.recommended_action.describe())
                .input(serde_json::json!({"policy": "rules", "decision": d}))
                .reasoning(d.reasoning.clone(), Some(d.confidence))
        }
        Kind::Guardrails => {
            let p = p.expect("an incident");
            AuditRecord::agent(
                AuditStep::Guardrails,
                format!("routed to {}", p.path.statuses()[1]),
            )
            .input(serde_json::json!({"notes": []}))
        }
        Kind::ApprovalRequested => AuditRecord::agent(AuditStep::ApprovalRequested, "sent via web")
            .input(serde_json::json!({"preview": null})),
        Kind::CommandReceived => AuditRecord::agent(AuditStep::HumanCommand, "received")
            .by("web:operator")
            .input(serde_json::json!({"approve": {"incident_id": p.map(|p| p.id)}})),
        Kind::Approved => {
            AuditRecord::agent(AuditStep::HumanCommand, "approved").by("web:operator")
        }
        Kind::Rejected => {
            AuditRecord::agent(AuditStep::HumanCommand, "rejected").by("web:operator")
        }
        Kind::Action => {
            let p = p.expect("an incident");
            AuditRecord::agent(AuditStep::Action, format!("{}: done", p.action.describe()))
                .input(serde_json::json!({"action": p.action, "resource": p.resource}))
        }
        Kind::Feedback => {
            let ok = p.is_some_and(|p| p.path != Path::Unresolved);
            AuditRecord::agent(
                AuditStep::Feedback,
                if ok { "resolved" } else { "unresolved" },
            )
            .input(serde_json::json!({"value": 0.42}))
        }
        Kind::Expired => {
            AuditRecord::agent(AuditStep::Escalation, "expired: no answer within 3600s")
        }
        Kind::Proposal => AuditRecord::agent(AuditStep::Decision, "proposal")
            .by("mcp:assistant")
            .input(serde_json::json!({"proposed": p.map(|p| &p.action)})),
        Kind::LlmCall => AuditRecord::agent(AuditStep::LlmCall, "ok").input(serde_json::json!({
            "model": "gemini-2.5-flash",
            "prompt_version": "ops-decision/3",
            "prompt_tokens": 900 + rng.below(600),
            "completion_tokens": 120 + rng.below(200),
            "latency_ms": 400 + rng.below(1500),
        })),
        Kind::AuthRefused => {
            AuditRecord::agent(AuditStep::AuthRefused, "refused: bad webhook token")
                .input(serde_json::json!({"route": "/ops/webhook", "peer": "10.0.0.7"}))
        }
    };
    r.id = id;
    r.at = at;
    if let Some(p) = p {
        r = r.incident(p.id);
    }
    vec![
        t(r.id.to_string()),
        t(time(r.at)),
        t(name(&r.step)),
        Val::T(r.incident_id.map(|i| i.to_string())),
        Val::T(r.run_id.map(|i| i.to_string())),
        t(r.actor.clone()),
        t(json(&r.input)),
        Val::T(r.reasoning.clone()),
        Val::R(r.confidence),
        t(r.outcome.clone()),
        Val::T(r.replica.clone()),
    ]
}

// ------------------------------------------------------------------ writing

enum Db {
    #[cfg(feature = "sqlite")]
    Sqlite(rusqlite::Connection),
    #[cfg(feature = "postgres")]
    Postgres(tokio_postgres::Client),
}

impl Db {
    async fn insert(&mut self, table: &Table, rows: Vec<Vec<Val>>) -> Result<(), BoxError> {
        if rows.is_empty() {
            return Ok(());
        }
        let cols: Vec<&str> = table.cols.iter().map(|c| c.0).collect();
        match self {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(c) => {
                let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    table.name,
                    cols.join(", "),
                    marks.join(", ")
                );
                let tx = c.transaction()?;
                {
                    let mut stmt = tx.prepare_cached(&sql)?;
                    for row in &rows {
                        let params: Vec<&dyn rusqlite::ToSql> = row
                            .iter()
                            .map(|v| -> &dyn rusqlite::ToSql {
                                match v {
                                    Val::T(x) => x,
                                    Val::R(x) => x,
                                    Val::I(x) => x,
                                    Val::B(x) => x,
                                }
                            })
                            .collect();
                        stmt.execute(params.as_slice())?;
                    }
                }
                tx.commit()?;
            }
            #[cfg(feature = "postgres")]
            Db::Postgres(c) => {
                // One statement per batch: every column as an array, unnested.
                let mut texts: Vec<Vec<Option<String>>> = Vec::new();
                let mut reals: Vec<Vec<Option<f64>>> = Vec::new();
                let mut ints: Vec<Vec<i64>> = Vec::new();
                let mut bools: Vec<Vec<bool>> = Vec::new();
                let mut slot = Vec::new();
                for (i, (_, ty)) in table.cols.iter().enumerate() {
                    let (kind, pos) = match ty {
                        Text => {
                            texts.push(Vec::with_capacity(rows.len()));
                            (0, texts.len() - 1)
                        }
                        Real => {
                            reals.push(Vec::with_capacity(rows.len()));
                            (1, reals.len() - 1)
                        }
                        Int => {
                            ints.push(Vec::with_capacity(rows.len()));
                            (2, ints.len() - 1)
                        }
                        Bool => {
                            bools.push(Vec::with_capacity(rows.len()));
                            (3, bools.len() - 1)
                        }
                    };
                    slot.push((i, kind, pos));
                }
                for row in rows {
                    for (v, &(_, _, pos)) in row.into_iter().zip(&slot) {
                        match v {
                            Val::T(x) => texts[pos].push(x),
                            Val::R(x) => reals[pos].push(x),
                            Val::I(x) => ints[pos].push(x),
                            Val::B(x) => bools[pos].push(x),
                        }
                    }
                }
                let casts: Vec<String> = slot
                    .iter()
                    .map(|&(i, kind, _)| {
                        let ty = ["text[]", "float8[]", "int8[]", "bool[]"][kind];
                        format!("${}::{ty}", i + 1)
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO {} ({}) SELECT * FROM unnest({})",
                    table.name,
                    cols.join(", "),
                    casts.join(", ")
                );
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = slot
                    .iter()
                    .map(
                        |&(_, kind, pos)| -> &(dyn tokio_postgres::types::ToSql + Sync) {
                            match kind {
                                0 => &texts[pos],
                                1 => &reals[pos],
                                2 => &ints[pos],
                                _ => &bools[pos],
                            }
                        },
                    )
                    .collect();
                c.execute(sql.as_str(), &params).await?;
            }
        }
        Ok(())
    }
}

/// Rows of one table, flushed every [`BATCH`].
struct Buffer<'a> {
    table: &'a Table,
    rows: Vec<Vec<Val>>,
    written: usize,
}

impl<'a> Buffer<'a> {
    fn new(table: &'a Table) -> Self {
        Buffer {
            table,
            rows: Vec::with_capacity(BATCH),
            written: 0,
        }
    }
    async fn push(&mut self, db: &mut Db, row: Vec<Val>) -> Result<(), BoxError> {
        self.rows.push(row);
        if self.rows.len() >= BATCH {
            self.flush(db).await?;
        }
        Ok(())
    }
    async fn flush(&mut self, db: &mut Db) -> Result<(), BoxError> {
        self.written += self.rows.len();
        let rows = std::mem::replace(&mut self.rows, Vec::with_capacity(BATCH));
        db.insert(self.table, rows).await
    }
}

// ------------------------------------------------------------------ the stores

enum Target {
    #[cfg(feature = "sqlite")]
    Sqlite(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(String),
}

fn target(s: &str) -> Result<Target, BoxError> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(Target::Postgres(s.to_owned()));
        #[cfg(not(feature = "postgres"))]
        return Err("built without the `postgres` feature (add --features postgres)".into());
    }
    #[cfg(feature = "sqlite")]
    return Ok(Target::Sqlite(s.into()));
    #[cfg(not(feature = "sqlite"))]
    Err("built without the `sqlite` feature".into())
}

/// Creates the schema through the store and checks it is the one this file writes.
async fn prepare(target: &Target) -> Result<Db, BoxError> {
    match target {
        #[cfg(feature = "sqlite")]
        Target::Sqlite(path) => {
            if path.exists() {
                let c = rusqlite::Connection::open(path)?;
                let n: i64 = c
                    .query_row("SELECT COUNT(*) FROM incidents", [], |r| r.get(0))
                    .unwrap_or(0);
                if n > 0 {
                    return Err(format!(
                        "{} already holds {n} incidents; seed a new file",
                        path.display()
                    )
                    .into());
                }
            }
            infraai_store::SqliteStore::open_path(path)
                .await?
                .close()
                .await?;
            let c = rusqlite::Connection::open(path)?;
            let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if !SQLITE_SCHEMA.contains(&version) {
                return Err(format!(
                    "the SQLite schema is version {version}; this seed writes versions {SQLITE_SCHEMA:?}: update infraai-store/examples/seed_store.rs"
                )
                .into());
            }
            c.execute_batch(
                "PRAGMA foreign_keys = ON; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144; \
                 PRAGMA temp_store = MEMORY;",
            )?;
            Ok(Db::Sqlite(c))
        }
        #[cfg(feature = "postgres")]
        Target::Postgres(url) => {
            let config = infraai_store::PostgresConfig::new(Secret::new(url.clone()));
            let store = infraai_store::PostgresStore::connect(config).await?;
            drop(store);
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    eprintln!("postgres connection: {e}");
                }
            });
            let version: i64 = client
                .query_one(
                    "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
                    &[],
                )
                .await?
                .get(0);
            if !POSTGRES_SCHEMA.contains(&version) {
                return Err(format!(
                    "the PostgreSQL schema is version {version}; this seed writes versions {POSTGRES_SCHEMA:?}: update infraai-store/examples/seed_store.rs"
                )
                .into());
            }
            let n: i64 = client
                .query_one("SELECT COUNT(*) FROM incidents", &[])
                .await?
                .get(0);
            if n > 0 {
                return Err(
                    format!("the database already holds {n} incidents; seed a new one").into(),
                );
            }
            client.batch_execute("SET synchronous_commit = off").await?;
            Ok(Db::Postgres(client))
        }
    }
}

async fn finish(db: Db) -> Result<(), BoxError> {
    match db {
        #[cfg(feature = "sqlite")]
        Db::Sqlite(c) => {
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            c.close().map_err(|(_, e)| e)?;
        }
        #[cfg(feature = "postgres")]
        Db::Postgres(c) => {
            // One statement each: VACUUM cannot run in the implicit
            // transaction of a multi-statement query.
            c.batch_execute("VACUUM ANALYZE incidents, decisions, approvals, actions, audit")
                .await?;
            c.batch_execute("CHECKPOINT").await?;
        }
    }
    Ok(())
}

async fn open_store(target: &Target) -> Result<std::sync::Arc<dyn MetadataStore>, BoxError> {
    Ok(match target {
        #[cfg(feature = "sqlite")]
        Target::Sqlite(path) => {
            std::sync::Arc::new(infraai_store::SqliteStore::open_path(path).await?)
        }
        #[cfg(feature = "postgres")]
        Target::Postgres(url) => {
            let config = infraai_store::PostgresConfig::new(Secret::new(url.clone()));
            std::sync::Arc::new(infraai_store::PostgresStore::connect(config).await?)
        }
    })
}

/// Reads the seeded store back through its public API.
async fn verify(
    store: &dyn MetadataStore,
    plan: &[Planned],
    audit: usize,
    rng: &mut Rng,
) -> Result<(), BoxError> {
    let counts = store.incident_counts().await?;
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for p in plan {
        *expected.entry(name(&p.path.status())).or_default() += 1;
    }
    let got: BTreeMap<String, u64> = counts
        .by_status
        .iter()
        .map(|(s, n)| (name(s), *n))
        .collect();
    if got != expected {
        return Err(format!("incident counts {got:?}, expected {expected:?}").into());
    }
    let decided: u64 = counts.by_action.values().sum();
    if decided != plan.len() as u64 {
        return Err(format!("{decided} decisions counted, expected {}", plan.len()).into());
    }
    let page = store
        .list_incidents(&IncidentQuery {
            statuses: vec![IncidentStatus::Pending],
            limit: Some(50),
            ..Default::default()
        })
        .await?;
    let pending = plan.iter().filter(|p| p.path == Path::Pending).count();
    if page.len() != pending.min(50) || page.iter().any(|i| i.status != IncidentStatus::Pending) {
        return Err(format!("a page of pending incidents has {} incidents", page.len()).into());
    }
    for _ in 0..200 {
        let p = &plan[rng.below(plan.len() as u64) as usize];
        let i = store
            .get_incident(p.id)
            .await?
            .ok_or("a seeded incident is missing")?;
        if i.status != p.path.status() || i.decision.is_none() {
            return Err(format!("incident {} reads back as {}", p.id, i.status).into());
        }
        let approvals = store.list_approvals(p.id).await?;
        let actions = store.list_actions(p.id).await?;
        if approvals.len() != usize::from(p.path.approval().is_some())
            || actions.len() != usize::from(p.path.has(IncidentStatus::Executing))
        {
            return Err(format!(
                "incident {} has {} approvals, {} actions",
                p.id,
                approvals.len(),
                actions.len()
            )
            .into());
        }
        let q = AuditQuery {
            incident_id: Some(p.id),
            limit: Some(201),
            ..Default::default()
        };
        let records = store.list_audit(&q).await?;
        if audit >= plan.len() * 8 && records.is_empty() {
            return Err(format!("incident {} has no audit record", p.id).into());
        }
    }
    Ok(())
}

fn write_ids(dir: &std::path::Path, plan: &[Planned], rng: &mut Rng) -> Result<(), BoxError> {
    std::fs::create_dir_all(dir)?;
    let shuffle = |ids: &mut Vec<IncidentId>, rng: &mut Rng| {
        for i in (1..ids.len()).rev() {
            ids.swap(i, rng.below(i as u64 + 1) as usize);
        }
    };
    let mut pending: Vec<IncidentId> = plan
        .iter()
        .filter(|p| p.path == Path::Pending)
        .map(|p| p.id)
        .collect();
    shuffle(&mut pending, rng);
    let mut all: Vec<IncidentId> = plan.iter().map(|p| p.id).collect();
    shuffle(&mut all, rng);
    all.truncate(20_000);
    for (file, ids) in [("pending.txt", pending), ("incidents.txt", all)] {
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(file))?);
        for id in ids {
            writeln!(f, "{id}")?;
        }
        f.flush()?;
    }
    Ok(())
}

/// How fast the store's own write path appends audit records: N calls of
/// `append_audit`, 64 in flight (the SQLite writer groups them; PostgreSQL
/// commits each).
async fn api_probe(target: &Target, n: usize) -> Result<(), BoxError> {
    let store = open_store(target).await?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        if tasks.len() >= 64 {
            tasks.join_next().await.expect("a task")??;
        }
        let store = store.clone();
        tasks.spawn(async move {
            let r =
                AuditRecord::agent(AuditStep::LlmCall, "ok").input(serde_json::json!({"probe": i}));
            store.append_audit(&r).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "API-PROBE append_audit calls={n} seconds={secs:.2} per_second={:.0} (1,000,000 would take {:.0} s)",
        n as f64 / secs,
        1e6 * secs / n as f64
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let args = args()?;
    // Every path is one the lifecycle allows.
    for (p, _) in PATHS {
        for w in p.statuses().windows(2) {
            assert!(
                lifecycle::can_move(w[0], w[1]),
                "{p:?}: {:?} → {:?}",
                w[0],
                w[1]
            );
        }
    }
    let started = Instant::now();
    let target = target(&args.target)?;
    if args.api_probe > 0 {
        return api_probe(&target, args.api_probe).await;
    }
    let mut rng = Rng::new(args.seed);
    let now = Utc::now();
    let plan = plan(args.incidents, &mut rng, now);
    let mut db = prepare(&target).await?;

    let (mut incidents, mut decisions) = (Buffer::new(&INCIDENTS), Buffer::new(&DECISIONS));
    let (mut approvals, mut actions) = (Buffer::new(&APPROVALS), Buffer::new(&ACTIONS));
    for p in &plan {
        incidents.push(&mut db, incident_row(p)).await?;
    }
    incidents.flush(&mut db).await?;
    for p in &plan {
        decisions.push(&mut db, decision_row(p)).await?;
        if let Some(approved) = p.path.approval() {
            approvals.push(&mut db, approval_row(p, approved)).await?;
        }
        if p.path.has(IncidentStatus::Executing) {
            actions.push(&mut db, action_row(p, &mut rng)).await?;
        }
    }
    for b in [&mut decisions, &mut approvals, &mut actions] {
        b.flush(&mut db).await?;
    }
    let rows_at = started.elapsed();
    let entries = audit_entries(&plan, args.audit, &mut rng, now);
    let mut audit = Buffer::new(&AUDIT);
    for e in &entries {
        audit.push(&mut db, audit_row(e, &plan, &mut rng)).await?;
    }
    audit.flush(&mut db).await?;
    drop(entries);
    let audit_at = started.elapsed();
    finish(db).await?;
    let written = started.elapsed();

    let store = open_store(&target).await?;
    verify(store.as_ref(), &plan, args.audit, &mut rng).await?;
    drop(store);
    if let Some(dir) = &args.ids_dir {
        write_ids(dir, &plan, &mut rng)?;
    }
    let total = started.elapsed();
    let pending = plan.iter().filter(|p| p.path == Path::Pending).count();
    eprintln!(
        "incidents, decisions, approvals ({}), actions ({}): {:.1} s; audit: {:.1} s; \
         checkpoint/analyze: {:.1} s; verify through the store API: {:.1} s",
        approvals.written,
        actions.written,
        rows_at.as_secs_f64(),
        (audit_at - rows_at).as_secs_f64(),
        (written - audit_at).as_secs_f64(),
        (total - written).as_secs_f64(),
    );
    println!(
        "SEED seconds={:.1} incidents={} pending={} audit={} approvals={} actions={}",
        total.as_secs_f64(),
        plan.len(),
        pending,
        audit.written,
        approvals.written,
        actions.written
    );
    Ok(())
}
