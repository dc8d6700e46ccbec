//! Deterministic fixers against the real terraform: a broken configuration is
//! repaired and validates on attempt 2, through core's `DeployAgent` and directly.

mod common;

use common::{cleanup, runner, Collect};
use infraai_core::testing::{MemoryStore, StaticVerifier};
use infraai_core::{
    ChangeAction, DeployAgent, DeployConfig, DeployDeps, EventBus, FixRequest, GenerateRequest,
    PlanRequest, Planner, ResourceKind, RunId, RunPhase, TerraformFiles, TerraformGenerator,
    TfRunner,
};
use infraai_terraform::deterministic_fixers;
use infraai_terraform::hcl::{Block, Body, Expr};
use std::sync::Arc;

/// Generates a configuration that references `var.region` without declaring it.
struct BrokenGenerator;

impl TerraformGenerator for BrokenGenerator {
    fn cloud(&self) -> &str {
        "local"
    }

    fn resource_type(&self, _kind: ResourceKind) -> Option<String> {
        Some("terraform_data".into())
    }

    fn generate(&self, request: &GenerateRequest<'_>) -> infraai_core::Result<TerraformFiles> {
        let mut body = Body::new();
        for r in &request.plan.resources {
            body.push(
                Block::resource("terraform_data", r.name.as_str())?
                    .attr("input", Expr::reference("var.region")?)?,
            );
        }
        Ok(TerraformFiles::single(body.to_string()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_agent_repairs_an_undeclared_variable_and_validates_on_attempt_2() {
    let Some(runner) = runner("fix-agent") else {
        return;
    };
    let runner = Arc::new(runner);
    let agent = DeployAgent::new(
        DeployDeps {
            planner: Arc::new(
                infraai_core::rules::RulePlanner::new(infraai_core::testing::catalog())
                    .with_region("eu-local-1"),
            ),
            generator: Arc::new(BrokenGenerator),
            fixers: deterministic_fixers(),
            runner: runner.clone(),
            verifier: Arc::new(StaticVerifier::default()),
            store: Arc::new(MemoryStore::new()),
            registry: Arc::new(infraai_core::testing::profiles()),
            events: EventBus::new(),
        },
        DeployConfig::default(),
    );
    let run = agent
        .deploy("a backend API for 100 users under $50/month", true)
        .await
        .unwrap();
    assert_eq!(run.phase, RunPhase::Completed, "{:?}", run.error);
    let phases: Vec<String> = run.history.iter().map(|p| p.phase.to_string()).collect();
    assert_eq!(
        phases,
        [
            "starting",
            "initializing",
            "validating",
            "fix_attempt_1",
            "validating",
            "planning",
            "completed"
        ]
    );
    assert_eq!(run.fix_attempts.len(), 1);
    let attempt = &run.fix_attempts[0];
    assert_eq!(attempt.fixer, "add_undeclared_variable");
    assert_eq!(
        attempt.diagnostics[0].summary,
        "Reference to undeclared input variable"
    );
    let files = run.files.as_ref().unwrap();
    assert!(files.files["variables.tf"].contains("default     = \"eu-local-1\""));
    // The dry-run change set creates the planned resources with the plan's region.
    let plan = run.plan.as_ref().unwrap();
    let set = run.change_set.as_ref().unwrap();
    assert_eq!(set.changes.len(), plan.resources.len());
    for c in &set.changes {
        assert_eq!(c.action, ChangeAction::Create);
        let input = c.attributes.iter().find(|a| a.path == "input").unwrap();
        assert_eq!(input.after, serde_json::json!("eu-local-1"));
    }
    cleanup(&runner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_argument_and_duplicate_resource_are_repaired() {
    let Some(runner) = runner("fix-direct") else {
        return;
    };
    // Init refuses the duplicate (so the null provider is not installed yet);
    // validate reports it; after that fix validate installs the provider
    // itself, and the unsupported (multi-line) argument shows up and is removed.
    let main = concat!(
        "resource \"null_resource\" \"n\" {}\n",
        "\n",
        "resource \"terraform_data\" \"a\" {\n",
        "  input = \"one\"\n",
        "  bogus = [\n",
        "    \"x ]\",\n",
        "  ]\n",
        "}\n",
        "\n",
        "resource \"terraform_data\" \"a\" {\n",
        "  input = \"two\"\n",
        "}\n",
    );
    let mut files = TerraformFiles::single(main);
    let run_id = RunId::new();
    let log = Collect::default();
    let ws = runner.write_files(run_id, &files).await.unwrap();
    runner.init(&ws, &log).await.unwrap();
    assert!(log
        .lines()
        .iter()
        .any(|l| l.message.starts_with("init deferred")));
    let plan = infraai_core::rules::RulePlanner::new(infraai_core::testing::catalog())
        .plan(&PlanRequest {
            goal: "a small web app".into(),
            cloud: "local".into(),
            region: None,
        })
        .await
        .unwrap();
    let fixers = deterministic_fixers();
    let mut used = Vec::new();
    let mut attempt = 0u8;
    loop {
        let report = runner.validate(&ws).await.unwrap();
        if report.valid {
            break;
        }
        attempt += 1;
        assert!(attempt <= 3, "still invalid: {report:?}");
        let request = FixRequest {
            plan: &plan,
            files: &files,
            diagnostics: &report.diagnostics,
            attempt,
        };
        let mut fixed = None;
        for f in &fixers {
            if let Some(new) = f.fix(&request).await.unwrap() {
                fixed = Some((f.name().to_string(), new));
                break;
            }
        }
        let (name, new) = fixed.unwrap_or_else(|| panic!("no fixer for {report:?}"));
        used.push(name);
        files = new;
        runner.write_files(run_id, &files).await.unwrap();
    }
    assert_eq!(used, ["dedupe_resource", "remove_unsupported_argument"]);
    assert_eq!(
        files.files["main.tf"],
        concat!(
            "resource \"null_resource\" \"n\" {}\n",
            "\n",
            "resource \"terraform_data\" \"a\" {\n",
            "  input = \"one\"\n",
            "}\n",
            "\n",
            "resource \"terraform_data\" \"a_2\" {\n",
            "  input = \"two\"\n",
            "}\n",
        )
    );
    let set = runner.plan(&ws, &log).await.unwrap();
    assert_eq!(set.summary(), "3 to create");
    assert!(
        ws.dir.join(".terraform.lock.hcl").exists(),
        "validate ran init"
    );
    cleanup(&runner).await;
}
