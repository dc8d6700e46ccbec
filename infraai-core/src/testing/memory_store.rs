//! An in-memory [`MetadataStore`]: every operation runs under one mutex, so
//! every transition is trivially atomic. For tests and examples; nothing
//! survives the process.

use crate::domain::*;
use crate::lifecycle::{self, IngestStep};
use crate::traits::*;
use crate::{DeploymentId, Error, IncidentId, Result, RunId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
struct State {
    runs: HashMap<RunId, Run>,
    deployments: HashMap<DeploymentId, Deployment>,
    incidents: HashMap<IncidentId, Incident>,
    approvals: Vec<ApprovalRecord>,
    actions: Vec<ActionOutcome>,
    audit: Vec<AuditRecord>,
    kill_switch: Option<KillSwitch>,
    cursors: HashMap<String, i64>,
    settings: std::collections::BTreeMap<String, Setting>,
    jobs: HashMap<String, Job>,
    /// Injected transient failures left, per operation.
    faults: HashMap<&'static str, u32>,
}

/// The in-memory store.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `times` calls of `operation` (`transition` or
    /// `set_kill_switch`) fail with a retryable backend error, as a flaky
    /// database would; for tests of retry paths.
    pub fn fail_next(&self, operation: &'static str, times: u32) {
        self.with(|s| s.faults.insert(operation, times));
    }

    fn fault(&self, operation: &'static str) -> Result<()> {
        let injected = self.with(|s| match s.faults.get_mut(operation) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        });
        if injected {
            Err(Error::backend(
                "memory",
                operation,
                true,
                "injected transient failure",
            ))
        } else {
            Ok(())
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

fn newest_first<T: Clone, K: Ord>(mut v: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    v.sort_by_key(|x| std::cmp::Reverse(key(x)));
    v
}

fn take(job: &mut Job, owner: &str, until: DateTime<Utc>) -> Job {
    job.owner = Some(owner.to_owned());
    job.lease_until = Some(until);
    job.claims += 1;
    job.clone()
}

fn incident_mut(state: &mut State, id: IncidentId) -> Result<&mut Incident> {
    state
        .incidents
        .get_mut(&id)
        .ok_or_else(|| Error::not_found(format!("incident {id}")))
}

impl StoreBackend for MemoryStore {
    fn name(&self) -> &str {
        "memory"
    }
}

#[async_trait]
impl RunStore for MemoryStore {
    async fn put_run(&self, run: &Run) -> Result<()> {
        self.with(|s| s.runs.insert(run.id, run.clone()));
        Ok(())
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>> {
        Ok(self.with(|s| s.runs.get(&id).cloned()))
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<Run>> {
        let runs = self.with(|s| {
            s.runs
                .values()
                .filter(|r| query.matches(r))
                .cloned()
                .collect()
        });
        Ok(newest_first(runs, |r: &Run| (r.created_at, r.id))
            .into_iter()
            .take(query.limit.unwrap_or(usize::MAX))
            .collect())
    }

    async fn put_deployment(&self, deployment: &Deployment) -> Result<()> {
        self.with(|s| {
            s.deployments
                .insert(deployment.deployment_id, deployment.clone())
        });
        Ok(())
    }

    async fn get_deployment(&self, id: DeploymentId) -> Result<Option<Deployment>> {
        Ok(self.with(|s| s.deployments.get(&id).cloned()))
    }

    async fn list_deployments(&self) -> Result<Vec<Deployment>> {
        let all = self.with(|s| s.deployments.values().cloned().collect());
        Ok(newest_first(all, |d: &Deployment| d.created_at))
    }

    async fn find_deployment_by_resource(&self, resource: &str) -> Result<Option<Deployment>> {
        Ok(self
            .list_deployments()
            .await?
            .into_iter()
            .find(|d| d.resource_map.contains_key(resource)))
    }
}

#[async_trait]
impl IncidentStore for MemoryStore {
    async fn record_alerts(&self, batch: Vec<AlertRecord>) -> Result<Vec<AlertIngest>> {
        record_then_audit(self, batch, |alert| async move {
            Ok(self.with(|s| ingest(s, &alert)))
        })
        .await
    }

    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>> {
        Ok(self.with(|s| s.incidents.get(&id).cloned()))
    }

    async fn list_incidents(&self, query: &IncidentQuery) -> Result<Vec<Incident>> {
        let all: Vec<Incident> = self.with(|s| {
            s.incidents
                .values()
                .filter(|i| query.matches(i))
                .cloned()
                .collect()
        });
        Ok(newest_first(all, |i| (i.created_at, i.id))
            .into_iter()
            .take(query.limit.unwrap_or(usize::MAX))
            .collect())
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
        self.with(|s| {
            let i = incident_mut(s, id)?;
            lifecycle::decide(id, i.status, i.decision.is_some(), replaces, to)?;
            i.decision = Some(decision.clone());
            i.guardrail_notes = guardrail_notes.to_vec();
            i.status = to;
            i.updated_at = Utc::now();
            Ok(i.clone())
        })
    }

    async fn transition(&self, change: Transition<'_>) -> Result<Incident> {
        let Transition {
            id,
            from,
            to,
            note,
            approval,
        } = change;
        self.fault("transition")?;
        self.with(|s| {
            let i = incident_mut(s, id)?;
            lifecycle::transition(id, i.status, from, to)?;
            i.status = to;
            if let Some(n) = note {
                i.note = Some(n.to_string());
            }
            i.updated_at = Utc::now();
            let moved = i.clone();
            s.approvals.extend(approval.cloned());
            Ok(moved)
        })
    }

    async fn claim_execution(&self, id: IncidentId) -> Result<Claim> {
        self.with(|s| {
            let engaged = s.kill_switch.as_ref().is_some_and(|k| k.engaged);
            let i = incident_mut(s, id)?;
            let step = lifecycle::claim(i.status, engaged);
            if let Some(to) = step.to() {
                i.status = to;
                i.updated_at = Utc::now();
            }
            Ok(Claim::of(step, i.clone()))
        })
    }

    async fn kill_switch(&self) -> Result<KillSwitch> {
        Ok(self.with(|s| s.kill_switch.clone().unwrap_or_else(KillSwitch::released)))
    }

    async fn set_kill_switch(&self, request: KillSwitchRequest<'_>) -> Result<KillSwitchChange> {
        let KillSwitchRequest {
            engaged,
            actor,
            reason,
        } = request;
        self.fault("set_kill_switch")?;
        Ok(self.with(|s| {
            let now = Utc::now();
            let state = KillSwitch {
                engaged,
                set_by: Some(actor.to_string()),
                reason: reason.map(str::to_string),
                set_at: Some(now),
            };
            s.kill_switch = Some(state.clone());
            let mut affected = Vec::new();
            if let Some((from, to)) = lifecycle::kill_switch_moves(engaged) {
                for i in s
                    .incidents
                    .values_mut()
                    .filter(|i| from.contains(&i.status))
                {
                    i.status = to;
                    i.updated_at = now;
                    affected.push(i.id);
                }
            }
            affected.sort();
            KillSwitchChange { state, affected }
        }))
    }
}

#[async_trait]
impl HistoryStore for MemoryStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        self.with(|s| {
            if s.audit.iter().any(|r| r.id == record.id) {
                return Err(Error::conflict(
                    format!("audit record {}", record.id),
                    "already stored; the audit log is append-only",
                ));
            }
            s.audit.push(record.clone());
            Ok(())
        })
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        Ok(self.with(|s| {
            let matching: Vec<AuditRecord> = s
                .audit
                .iter()
                .filter(|r| query.incident_id.is_none_or(|id| r.incident_id == Some(id)))
                .filter(|r| query.run_id.is_none_or(|id| r.run_id == Some(id)))
                .cloned()
                .collect();
            query.page(matching)
        }))
    }

    async fn record_approval(&self, approval: &ApprovalRecord) -> Result<()> {
        self.with(|s| s.approvals.push(approval.clone()));
        Ok(())
    }

    async fn list_approvals(&self, id: IncidentId) -> Result<Vec<ApprovalRecord>> {
        Ok(self.with(|s| {
            s.approvals
                .iter()
                .filter(|a| a.incident_id == id)
                .cloned()
                .collect()
        }))
    }

    async fn record_action(&self, outcome: &ActionOutcome) -> Result<()> {
        self.with(|s| s.actions.push(outcome.clone()));
        Ok(())
    }

    async fn list_actions(&self, id: IncidentId) -> Result<Vec<ActionOutcome>> {
        Ok(self.with(|s| {
            s.actions
                .iter()
                .filter(|a| a.incident_id == id)
                .cloned()
                .collect()
        }))
    }

    async fn count_actions_since(&self, resource: &str, since: DateTime<Utc>) -> Result<u64> {
        Ok(self.with(|s| {
            s.actions
                .iter()
                .filter(|a| a.resource == resource && a.started_at >= since)
                .count() as u64
        }))
    }
}

#[async_trait]
impl LeaseStore for MemoryStore {
    async fn claim_job(&self, key: &str, lease: Lease<'_>) -> Result<Option<Job>> {
        let (owner, now, until) = (lease.owner, lease.now, lease.until());
        Ok(self.with(|s| {
            let job = s.jobs.entry(key.to_owned()).or_insert_with(|| Job {
                key: key.to_owned(),
                owner: None,
                lease_until: None,
                claims: 0,
            });
            job.is_free(now).then(|| take(job, owner, until))
        }))
    }

    async fn claim_abandoned_jobs(&self, lease: Lease<'_>, limit: usize) -> Result<Vec<Job>> {
        let (owner, now, until) = (lease.owner, lease.now, lease.until());
        Ok(self.with(|s| {
            let mut free: Vec<&mut Job> = s.jobs.values_mut().filter(|j| j.is_free(now)).collect();
            free.sort_by_key(|j| j.lease_until);
            free.into_iter()
                .take(limit)
                .map(|j| take(j, owner, until))
                .collect()
        }))
    }

    async fn renew_job(&self, key: &str, lease: Lease<'_>) -> Result<bool> {
        Ok(self.with(|s| match s.jobs.get_mut(key) {
            Some(j) if j.owner.as_deref() == Some(lease.owner) => {
                j.lease_until = Some(lease.until());
                true
            }
            _ => false,
        }))
    }

    async fn release_job(&self, release: Release<'_>) -> Result<bool> {
        let Release {
            key,
            owner,
            finished,
        } = release;
        Ok(self.with(|s| match s.jobs.get_mut(key) {
            Some(j) if j.owner.as_deref() == Some(owner) => {
                if finished {
                    s.jobs.remove(key);
                } else {
                    j.owner = None;
                    j.lease_until = None;
                }
                true
            }
            _ => false,
        }))
    }

    async fn get_cursor(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.with(|s| s.cursors.get(name).copied()))
    }

    async fn set_cursor(&self, name: &str, value: i64) -> Result<()> {
        self.with(|s| s.cursors.insert(name.to_string(), value));
        Ok(())
    }
}

#[async_trait]
impl SettingStore for MemoryStore {
    async fn get_setting(&self, key: &str) -> Result<Option<Setting>> {
        Ok(self.with(|s| s.settings.get(key).cloned()))
    }

    async fn list_settings(&self, prefix: &str) -> Result<Vec<Setting>> {
        Ok(self.with(|s| {
            (s.settings.range(prefix.to_string()..))
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v.clone())
                .collect()
        }))
    }

    async fn put_setting(
        &self,
        key: &str,
        value: &serde_json::Value,
        expected: u64,
    ) -> Result<u64> {
        self.with(|s| {
            let current = s.settings.get(key).map_or(0, |v| v.version);
            if current != expected {
                return Err(Error::conflict(
                    format!("setting {key}"),
                    format!("version {current}, not {expected}"),
                ));
            }
            let setting = Setting {
                key: key.to_string(),
                value: value.clone(),
                version: expected + 1,
            };
            s.settings.insert(key.to_string(), setting);
            Ok(expected + 1)
        })
    }

    async fn delete_setting(&self, key: &str) -> Result<bool> {
        Ok(self.with(|s| s.settings.remove(key).is_some()))
    }
}

/// Records an alert: the lifecycle decides, this applies.
fn ingest(s: &mut State, alert: &Alert) -> AlertIngest {
    let of_fingerprint = |i: &&Incident| i.fingerprint == alert.fingerprint;
    let open = s
        .incidents
        .values()
        .filter(of_fingerprint)
        .filter(|i| !i.status.is_closed())
        .max_by_key(|i| i.created_at)
        .map(|i| i.id);
    let (step, id) = match open {
        Some(id) => (
            lifecycle::ingest_open(alert.state, s.incidents[&id].status),
            Some(id),
        ),
        None => {
            let last = s
                .incidents
                .values()
                .filter(of_fingerprint)
                .max_by_key(|i| i.created_at);
            let latest = last.map(|i| (i.status, i.alert.started_at));
            (lifecycle::ingest_closed(alert, latest), last.map(|i| i.id))
        }
    };
    let now = Utc::now();
    let incident = match (step, id.and_then(|id| s.incidents.get_mut(&id))) {
        (IngestStep::Open, _) => {
            let i = Incident::open(alert.clone());
            s.incidents.insert(i.id, i.clone());
            Some(i)
        }
        (IngestStep::Skip, _) | (_, None) => None,
        (IngestStep::Note, Some(i)) => Some(i.clone()),
        (IngestStep::Repeat | IngestStep::Resolve, Some(i)) => {
            i.alert = alert.clone();
            i.updated_at = now;
            if step == IngestStep::Repeat {
                i.occurrences += 1;
            } else {
                i.status = IncidentStatus::Resolved;
                i.note = Some(lifecycle::CLEARED_NOTE.into());
            }
            Some(i.clone())
        }
    };
    AlertIngest {
        outcome: step.outcome(),
        incident,
    }
}
