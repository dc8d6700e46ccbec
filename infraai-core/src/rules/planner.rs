//! Plans from the goal text with simple, explainable rules.

use super::PlanningCatalog;
use crate::domain::{
    InfraPlan, MachineType, PlannedResource, ResourceKind, ResourceName, StackType,
};
use crate::traits::{PlanRequest, Planner};
use crate::{Error, Result};
use async_trait::async_trait;

/// What the rules read from a goal text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GoalFacts {
    /// Expected users, e.g. 10 000 for "10k users".
    pub users: Option<u64>,
    /// Monthly budget in USD, e.g. 100 for "under $100/month".
    pub budget_usd: Option<f64>,
    /// The stack, when a keyword names it.
    pub stack: Option<StackType>,
    /// Whether the goal asks for a database.
    pub database: bool,
    /// Whether the goal asks for a cache (Redis).
    pub cache: bool,
}

impl GoalFacts {
    /// Reads users, budget, stack, database and cache from free text.
    pub fn parse(goal: &str) -> Self {
        let lower = goal.to_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        let mut facts = GoalFacts::default();
        for (i, w) in words.iter().enumerate() {
            if facts.users.is_none()
                && i > 0
                && (w.starts_with("user") || w.starts_with("visitor") || w.starts_with("customer"))
            {
                // "10k users", "10,000 daily users", "5k concurrent users"
                facts.users = parse_quantity(words[i - 1]).or_else(|| {
                    if i > 1 {
                        parse_quantity(words[i - 2])
                    } else {
                        None
                    }
                });
            }
            if facts.budget_usd.is_none() {
                if let Some(rest) = w.strip_prefix('$') {
                    facts.budget_usd = parse_quantity(rest).map(|v| v as f64);
                } else if i + 1 < words.len()
                    && matches!(
                        words[i + 1].trim_matches(|c: char| !c.is_alphanumeric() && c != '/'),
                        "usd" | "dollars" | "usd/month" | "dollars/month"
                    )
                {
                    facts.budget_usd = parse_quantity(w).map(|v| v as f64);
                }
            }
        }
        let has = |k: &[&str]| {
            k.iter().any(|k| {
                words
                    .iter()
                    .any(|w| w.trim_matches(|c: char| !c.is_alphanumeric()) == *k)
            })
        };
        facts.stack = if has(&["api", "backend", "rest", "graphql", "microservice"]) {
            Some(StackType::BackendApi)
        } else if has(&["worker", "workers", "queue", "batch", "cron", "jobs"]) {
            Some(StackType::Worker)
        } else if has(&["static", "landing", "blog", "docs"]) {
            Some(StackType::StaticSite)
        } else if has(&[
            "web", "webapp", "website", "frontend", "app", "saas", "shop", "store",
        ]) {
            Some(StackType::WebApp)
        } else {
            None
        };
        facts.database = has(&[
            "database",
            "db",
            "postgres",
            "postgresql",
            "mysql",
            "sql",
            "persistence",
        ]);
        facts.cache = has(&["redis", "cache", "caching", "valkey", "memcached"]);
        facts
    }
}

/// "10k" → 10 000, "1.5m" → 1 500 000, "10,000" → 10 000, "100/month" → 100.
fn parse_quantity(token: &str) -> Option<u64> {
    let t = token.trim_start_matches(['~', '(', '$']).replace(',', "");
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, rest) = t.split_at(end);
    let n: f64 = num.parse().ok()?;
    let mult = match rest.chars().next() {
        Some('k') => 1e3,
        Some('m') if !rest.starts_with("mo") => 1e6,
        _ => 1.0,
    };
    let v = n * mult;
    (0.0..1e12).contains(&v).then_some(v as u64)
}

/// The offline planner: sizes compute by expected users, fits the budget
/// where it can (and flags it where it cannot), adds a database when asked,
/// all from a cloud adapter's [`PlanningCatalog`].
#[derive(Clone, Debug)]
pub struct RulePlanner {
    catalog: PlanningCatalog,
    default_region: String,
}

/// (max users, step on the catalog's compute list, autoscaled instance
/// count) — the sizing rule.
const SIZING: &[(u64, usize, u32)] = &[
    (1_000, 1, 1),
    (10_000, 2, 1),
    (50_000, 3, 1),
    (200_000, 4, 2),
    (u64::MAX, 5, 3),
];

impl RulePlanner {
    /// A planner choosing from `catalog`, whose plans default to its first region.
    pub fn new(catalog: PlanningCatalog) -> Self {
        Self {
            default_region: catalog.regions.first().cloned().unwrap_or_default(),
            catalog,
        }
    }

    /// Plans default to `region`.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.default_region = region.into();
        self
    }

    fn estimate(&self, machine: &str, count: u32, database: Option<&str>) -> f64 {
        let price = |m: &str| self.catalog.monthly_price_usd(m).unwrap_or(0.0);
        let compute = price(machine) * f64::from(count);
        let db = database.map(price).unwrap_or(0.0);
        ((compute + db) * 100.0).round() / 100.0
    }

    /// The database tier for `users`, when the goal asks for a database.
    fn database_tier(&self, facts: &GoalFacts, users: u64) -> Option<&str> {
        let db_step = if users > 50_000 {
            2
        } else {
            usize::from(users > 5_000)
        };
        let tiers = &self.catalog.databases;
        tiers
            .get(db_step.min(tiers.len().saturating_sub(1)))
            .filter(|_| facts.database)
            .map(|(t, _)| t.as_str())
    }

    /// Steps down the compute ladder from `sized_idx` while the estimate is
    /// over the budget: the machine chosen, its estimate and the risks flagged.
    fn fit_budget(
        &self,
        facts: &GoalFacts,
        users: u64,
        sized_idx: usize,
        group_count: u32,
        db_tier: Option<&str>,
    ) -> (&str, f64, Vec<String>) {
        let ladder = &self.catalog.compute;
        let sized = ladder[sized_idx].0.as_str();
        let mut risk_flags = Vec::new();
        let mut chosen = sized;
        let mut cost = self.estimate(chosen, group_count, db_tier);
        if let Some(budget) = facts.budget_usd {
            let mut idx = sized_idx;
            while cost > budget && idx > 0 {
                idx -= 1;
                chosen = ladder[idx].0.as_str();
                cost = self.estimate(chosen, group_count, db_tier);
            }
            if chosen != sized {
                risk_flags.push(format!("sized down from {sized} to {chosen} to fit the ${budget:.0}/month budget; may not carry {users} users"));
            }
            if cost > budget {
                risk_flags.push(format!(
                    "estimated ${cost:.2}/month exceeds the ${budget:.0}/month budget"
                ));
            }
        }
        (chosen, cost, risk_flags)
    }
}

fn name(s: &str) -> Result<ResourceName> {
    ResourceName::new(s)
}

fn machine(s: &str) -> Result<MachineType> {
    MachineType::new(s)
}

#[async_trait]
impl Planner for RulePlanner {
    fn name(&self) -> &str {
        "rules"
    }

    async fn plan(&self, request: &PlanRequest) -> Result<InfraPlan> {
        let goal = request.goal.trim();
        check_goal(goal)?;
        let facts = GoalFacts::parse(goal);
        let users = facts.users.unwrap_or(1_000);
        let stack = facts.stack.unwrap_or(StackType::WebApp);
        let &(_, step, group_count) = SIZING
            .iter()
            .find(|(max, _, _)| users <= *max)
            .unwrap_or(&SIZING[SIZING.len() - 1]);
        let Some(last) = self.catalog.compute.len().checked_sub(1) else {
            return Err(Error::invalid("planning catalog", "lists no machine types"));
        };
        let autoscaling = group_count > 1;
        let db_tier = self.database_tier(&facts, users);
        let (chosen, cost, mut risk_flags) =
            self.fit_budget(&facts, users, step.min(last), group_count, db_tier);
        if !autoscaling {
            risk_flags.push("single instance: no high availability".into());
        }
        if facts.cache {
            risk_flags.push("the cache's price is not in the estimate".into());
        }
        let resources = resources(stack, users, chosen, group_count, db_tier, facts.cache)?;
        let summary = format!(
            "{} for ~{users} users on {}{} {chosen}{}, est. ${cost:.2}/month",
            stack_label(stack),
            if autoscaling {
                format!("an autoscaled group of {group_count}× ")
            } else {
                String::new()
            },
            if autoscaling { "" } else { "one" },
            db_tier
                .map(|t| format!(" with a {t} database"))
                .unwrap_or_default(),
        );
        let plan = InfraPlan {
            cloud: request.cloud.clone(),
            stack_type: stack,
            region: request
                .region
                .clone()
                .unwrap_or_else(|| self.default_region.clone()),
            machine_type: machine(chosen)?,
            autoscaling,
            estimated_cost_usd: cost,
            risk_flags,
            resources,
            monitoring: vec![],
            confidence: confidence(&facts),
            summary,
        };
        plan.validate()?;
        Ok(plan)
    }
}

/// Refuses an empty goal and one over 4000 characters.
fn check_goal(goal: &str) -> Result<()> {
    if goal.is_empty() {
        return Err(Error::invalid(
            "goal",
            "is empty; describe what to run, e.g. \"a backend API for 10k users under $100/month\"",
        ));
    }
    if goal.len() > 4000 {
        return Err(Error::invalid("goal", "is longer than 4000 characters"));
    }
    Ok(())
}

/// The compute (a group when `group_count` > 1), the database when there is a
/// tier, the cache when asked for, and the compute's firewall.
fn resources(
    stack: StackType,
    users: u64,
    chosen: &str,
    group_count: u32,
    db_tier: Option<&str>,
    cache: bool,
) -> Result<Vec<PlannedResource>> {
    let compute_name = match stack {
        StackType::BackendApi => "api",
        StackType::WebApp => "web",
        StackType::Worker => "worker",
        StackType::StaticSite => "site",
    };
    let mut resources = vec![PlannedResource {
        name: name(compute_name)?,
        kind: if group_count > 1 {
            ResourceKind::InstanceGroup
        } else {
            ResourceKind::Compute
        },
        resource_type: None,
        machine_type: Some(machine(chosen)?),
        count: group_count,
        depends_on: [(db_tier.is_some(), "db"), (cache, "cache")]
            .into_iter()
            .filter(|(wanted, _)| *wanted)
            .map(|(_, n)| name(n))
            .collect::<Result<_>>()?,
        description: format!("{} serving ~{users} users", stack_label(stack)),
    }];
    if let Some(tier) = db_tier {
        resources.push(PlannedResource {
            name: name("db")?,
            kind: ResourceKind::Database,
            resource_type: None,
            machine_type: Some(machine(tier)?),
            count: 1,
            depends_on: vec![],
            description: "managed PostgreSQL".into(),
        });
    }
    if cache {
        resources.push(PlannedResource {
            name: name("cache")?,
            kind: ResourceKind::Cache,
            resource_type: None,
            machine_type: None,
            count: 1,
            depends_on: vec![],
            description: "managed Redis".into(),
        });
    }
    resources.push(PlannedResource {
        name: name(&format!("{compute_name}-firewall"))?,
        kind: ResourceKind::Firewall,
        resource_type: None,
        machine_type: None,
        count: 1,
        depends_on: vec![name(compute_name)?],
        description: "HTTP/HTTPS in; SSH only from configured ranges".into(),
    });
    Ok(resources)
}

/// 0.55, more for each of users, budget and stack the goal states; at most 0.9.
fn confidence(facts: &GoalFacts) -> f64 {
    let mut confidence: f64 = 0.55;
    if facts.users.is_some() {
        confidence += 0.15;
    }
    if facts.budget_usd.is_some() {
        confidence += 0.1;
    }
    if facts.stack.is_some() {
        confidence += 0.1;
    }
    confidence.min(0.9)
}

fn stack_label(s: StackType) -> &'static str {
    match s {
        StackType::BackendApi => "backend API",
        StackType::WebApp => "web app",
        StackType::Worker => "worker",
        StackType::StaticSite => "static site",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn planner() -> RulePlanner {
        RulePlanner::new(crate::testing::catalog())
    }

    fn req(goal: &str) -> PlanRequest {
        PlanRequest {
            goal: goal.into(),
            cloud: "gcp".into(),
            region: None,
        }
    }

    #[test]
    fn reads_users_budget_stack_and_database() {
        let f = GoalFacts::parse(
            "A backend API for 10k users under $100/month with a Postgres database",
        );
        assert_eq!(f.users, Some(10_000));
        assert_eq!(f.budget_usd, Some(100.0));
        assert_eq!(f.stack, Some(StackType::BackendApi));
        assert!(f.database);
        let f = GoalFacts::parse("web shop, 250,000 monthly users, budget 300 usd");
        assert_eq!(f.users, Some(250_000));
        assert_eq!(f.budget_usd, Some(300.0));
        assert_eq!(f.stack, Some(StackType::WebApp));
        assert!(!f.database);
        let f = GoalFacts::parse("queue workers for 1.5m users, $2k/month");
        assert_eq!(
            (f.users, f.budget_usd, f.stack),
            (Some(1_500_000), Some(2000.0), Some(StackType::Worker))
        );
    }

    #[tokio::test]
    async fn a_cache_is_planned_when_the_goal_asks_for_redis() {
        let plan = planner()
            .plan(&req("a web app with PostgreSQL and Redis for 100k users"))
            .await
            .unwrap();
        let web = plan.resource("web").unwrap();
        assert_eq!(web.kind, ResourceKind::InstanceGroup);
        assert_eq!(web.count, 2);
        let deps: Vec<&str> = web.depends_on.iter().map(|d| d.as_str()).collect();
        assert_eq!(deps, ["db", "cache"]);
        assert_eq!(plan.resource("cache").unwrap().kind, ResourceKind::Cache);
        assert!(plan.risk_flags.iter().any(|f| f.contains("cache's price")));
        let plain = planner()
            .plan(&req("a web app for 100 users"))
            .await
            .unwrap();
        assert!(plain.resource("cache").is_none() && plain.resource("db").is_none());
    }

    #[tokio::test]
    async fn the_seed_goal_fits_its_budget() {
        let plan = planner()
            .plan(&req("a backend API for 10k users under $100/month"))
            .await
            .unwrap();
        assert_eq!(plan.stack_type, StackType::BackendApi);
        assert_eq!(plan.machine_type.as_str(), "e2-medium");
        assert!(!plan.autoscaling);
        assert_eq!(plan.estimated_cost_usd, 24.46);
        assert!(plan.estimated_cost_usd <= 100.0);
        assert_eq!(plan.region, "us-central1");
        assert!(plan.resource("api").is_some() && plan.resource("api-firewall").is_some());
        assert!(
            plan.monitoring.is_empty(),
            "monitoring is bound by the deploy loop, not the planner"
        );
    }

    #[tokio::test]
    async fn big_goals_autoscale_and_tight_budgets_are_flagged() {
        let plan = planner()
            .plan(&req("web app with database for 150k users"))
            .await
            .unwrap();
        assert!(plan.autoscaling);
        assert_eq!(plan.resource("web").unwrap().count, 2);
        assert_eq!(
            plan.resource("web").unwrap().kind,
            ResourceKind::InstanceGroup
        );
        assert_eq!(plan.estimated_cost_usd, 245.58);
        let tight = planner()
            .plan(&req("api for 150k users with a database under $20/month"))
            .await
            .unwrap();
        assert_eq!(tight.machine_type.as_str(), "e2-micro");
        assert!(
            tight
                .risk_flags
                .iter()
                .any(|f| f.contains("exceeds the $20/month budget")),
            "{:?}",
            tight.risk_flags
        );
    }

    #[tokio::test]
    async fn empty_goal_is_rejected() {
        let err = planner().plan(&req("   ")).await.unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }));
    }

    proptest! {
        #[test]
        fn any_goal_gives_a_valid_plan_or_a_clear_error(goal in "\\PC{0,200}") {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            match rt.block_on(planner().plan(&req(&goal))) {
                Ok(plan) => prop_assert!(plan.validate().is_ok()),
                Err(e) => { let invalid = matches!(e, Error::Invalid { .. }); prop_assert!(invalid, "unexpected error {}", e) }
            }
        }
    }
}
