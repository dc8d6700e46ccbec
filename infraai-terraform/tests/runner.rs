//! The runner against the real terraform binary: the full pipeline, streamed
//! apply events, cancellation, timeouts, the directory lock, and the tfvars
//! action path.

mod common;

use common::{cleanup, event_type, runner, Channel, Collect};
use infraai_core::{
    Applied, AttributeChange, ChangeAction, ChangeSet, Error, LogLevel, ResourceChange, RunId,
    TerraformFiles, TfRunner,
};
use infraai_terraform::hcl::{Block, Body, Expr};
use infraai_terraform::{
    TerraformConfig, TerraformRunner, TfvarsChange, Timeouts, PLAN_FILE, SENSITIVE,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn null_provider() -> Block {
    Block::new("terraform", Vec::<&str>::new()).unwrap().block(
        Block::new("required_providers", Vec::<&str>::new())
            .unwrap()
            .attr(
                "null",
                json!({"source": "hashicorp/null", "version": "~> 2.1"}),
            )
            .unwrap(),
    )
}

fn files(body: &Body) -> TerraformFiles {
    TerraformFiles::single(body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_pipeline_init_validate_plan_apply_output_destroy() {
    let Some(runner) = runner("pipeline") else {
        return;
    };
    let mut body = Body::new();
    body.push(null_provider());
    body.push(
        Block::variable("greeting")
            .unwrap()
            .attr("default", "hello")
            .unwrap(),
    );
    body.push(
        Block::resource("terraform_data", "web")
            .unwrap()
            .attr("input", Expr::reference("var.greeting").unwrap())
            .unwrap()
            .block(
                Block::new("provisioner", ["local-exec"])
                    .unwrap()
                    .attr("command", "echo provisioned")
                    .unwrap(),
            ),
    );
    body.push(
        Block::resource("null_resource", "n")
            .unwrap()
            .attr("triggers", json!({"a": "1"}))
            .unwrap(),
    );
    body.push(
        Block::output("greeting")
            .unwrap()
            .attr(
                "value",
                Expr::reference("terraform_data.web.output").unwrap(),
            )
            .unwrap(),
    );
    body.push(
        Block::output("secret")
            .unwrap()
            .attr("value", "s3cret-value")
            .unwrap()
            .attr("sensitive", true)
            .unwrap(),
    );
    let version = runner.version().await.unwrap();
    if let Ok(expected) = std::env::var("TERRAFORM_VERSION") {
        assert_eq!(version, expected);
    }
    let log = Collect::default();
    let t = Instant::now();
    let ws = runner
        .write_files(RunId::new(), &files(&body))
        .await
        .unwrap();
    assert_eq!(
        ws.dir,
        runner.config().work_root.join(ws.run_id.to_string())
    );
    runner.init(&ws, &log).await.unwrap();
    let report = runner.validate(&ws).await.unwrap();
    assert!(report.valid, "{report:?}");
    assert!(report.diagnostics.is_empty(), "{report:?}");

    let set = runner.plan(&ws, &log).await.unwrap();
    assert!(ws.dir.join(PLAN_FILE).exists());
    let unknown = |path: &str| AttributeChange {
        path: path.into(),
        before: Value::Null,
        after: Value::Null,
        after_unknown: true,
    };
    let known = |path: &str, after: Value| AttributeChange {
        path: path.into(),
        before: Value::Null,
        after,
        after_unknown: false,
    };
    assert_eq!(
        set,
        ChangeSet {
            changes: vec![
                ResourceChange {
                    address: "null_resource.n".into(),
                    action: ChangeAction::Create,
                    attributes: vec![unknown("id"), known("triggers.a", json!("1"))],
                },
                ResourceChange {
                    address: "terraform_data.web".into(),
                    action: ChangeAction::Create,
                    attributes: vec![
                        unknown("id"),
                        known("input", json!("hello")),
                        unknown("output")
                    ],
                },
            ]
        }
    );
    assert_eq!(set.summary(), "2 to create");

    // Planned again to be applied at once: addresses and actions from the
    // plan's own stream, and the attributes from the apply.
    let actions = runner.plan_to_apply(&ws, &log).await.unwrap();
    let mut bare = set.clone();
    bare.changes.iter_mut().for_each(|c| c.attributes.clear());
    assert_eq!(actions, bare);
    // A preview in between (a file of its own) leaves the saved plan unread.
    let greeting = BTreeMap::from([("greeting".to_string(), json!("hi"))]);
    let preview = TfvarsChange::new("bench", greeting);
    runner.preview_tfvars(&ws, &preview, &log).await.unwrap();
    let applied = runner.apply(&ws, &log).await.unwrap();
    assert_eq!(
        applied.change_set,
        Some(set),
        "the applied plan, read while applying"
    );
    assert!(
        !ws.dir.join(PLAN_FILE).exists(),
        "an applied plan is removed"
    );
    let types = log.event_types();
    for expected in [
        "apply_start",
        "provision_progress",
        "apply_complete",
        "change_summary",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} missing from {types:?}"
        );
    }
    assert!(log
        .lines()
        .iter()
        .any(|l| event_type(l) == "provision_progress" && l.message.contains("provisioned")));

    let outputs = runner.output(&ws).await.unwrap();
    assert_eq!(
        outputs,
        BTreeMap::from([
            ("greeting".to_string(), json!("hello")),
            ("secret".to_string(), json!(SENSITIVE)),
        ])
    );
    let detailed = runner.outputs(&ws).await.unwrap();
    assert_eq!(detailed["secret"].value, json!("s3cret-value"));
    assert!(detailed["secret"].sensitive);
    assert!(!detailed["greeting"].sensitive);
    assert_eq!(detailed["greeting"].value_type, json!("string"));
    // One `show -json` gives the same outputs, masked alike, and the state.
    let (shown, state) = runner.output_and_state(&ws).await.unwrap();
    assert_eq!(shown, outputs);
    let state = state.unwrap();
    assert_eq!(state, runner.state(&ws).await.unwrap());
    // The apply knew them already: its `outputs` event and the plan it applied.
    assert_eq!(applied.left, Some((outputs, state)));

    // Nothing left to do; applying again without a new plan is refused.
    let again = runner.plan(&ws, &log).await.unwrap();
    assert_eq!(again.summary(), "no changes");
    let applied = runner.apply(&ws, &log).await.unwrap();
    assert_eq!(
        applied,
        Applied::default(),
        "a plan read when it was made is not read again"
    );
    let err = runner.apply(&ws, &log).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("no saved plan"), "{err}");

    // Deleting is previewed and approved like any change.
    let deletion = runner.plan_destroy(&ws, &log).await.unwrap();
    let deleted: Vec<(&str, ChangeAction)> = deletion
        .changes
        .iter()
        .map(|c| (c.address.as_str(), c.action))
        .collect();
    assert_eq!(
        deleted,
        [
            ("null_resource.n", ChangeAction::Delete),
            ("terraform_data.web", ChangeAction::Delete)
        ]
    );
    runner.apply(&ws, &log).await.unwrap();
    let after = runner.output(&ws).await.unwrap();
    assert!(after.is_empty(), "{after:?}");
    // Direct destroy (the trait's) on an empty state succeeds too.
    runner.destroy(&ws, &log).await.unwrap();

    // Secrets never reach the log.
    for l in log.lines() {
        assert!(!l.message.contains("s3cret"), "{l:?}");
        assert!(!l.fields.to_string().contains("s3cret"), "{l:?}");
    }
    eprintln!("pipeline took {:?}", t.elapsed());
    cleanup(&runner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_failure_reports_terraform_diagnostics() {
    let Some(runner) = runner("plan-failure") else {
        return;
    };
    // Valid, but plan needs a value nobody gives.
    let mut body = Body::new();
    body.push(Block::variable("required").unwrap());
    body.push(
        Block::output("o")
            .unwrap()
            .attr("value", Expr::reference("var.required").unwrap())
            .unwrap(),
    );
    let ws = runner
        .write_files(RunId::new(), &files(&body))
        .await
        .unwrap();
    runner.init(&ws, &Collect::default()).await.unwrap();
    let err = runner.plan(&ws, &Collect::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("terraform: plan failed: plan in "),
        "{text}"
    );
    assert!(text.contains("No value for required variable"), "{text}");
    assert!(!err.is_retryable());
    cleanup(&runner).await;
}

fn slow_config(command: &str) -> TerraformFiles {
    let mut body = Body::new();
    body.push(
        Block::resource("terraform_data", "slow")
            .unwrap()
            .attr("input", "x")
            .unwrap()
            .block(
                Block::new("provisioner", ["local-exec"])
                    .unwrap()
                    .attr("command", command)
                    .unwrap(),
            ),
    );
    body.push(
        Block::resource("terraform_data", "after")
            .unwrap()
            .attr("input", "y")
            .unwrap()
            .attr(
                "depends_on",
                Expr::List(vec![Expr::reference("terraform_data.slow").unwrap()]),
            )
            .unwrap(),
    );
    files(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_events_arrive_in_order_while_apply_runs() {
    let Some(runner) = runner("streaming") else {
        return;
    };
    let runner = Arc::new(runner);
    let ws = runner
        .write_files(
            RunId::new(),
            &slow_config("echo first; sleep 3; echo second"),
        )
        .await
        .unwrap();
    runner.init(&ws, &Collect::default()).await.unwrap();
    runner.plan(&ws, &Collect::default()).await.unwrap();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let apply = {
        let (runner, ws) = (runner.clone(), ws.clone());
        tokio::spawn(async move { runner.apply(&ws, &Channel(tx)).await })
    };
    // The first provisioner line arrives while apply is still running.
    let mut seen = Vec::new();
    loop {
        let (at, line) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("an event within 30 s")
            .expect("channel open");
        let is_first =
            event_type(&line) == "provision_progress" && line.message.ends_with(": first");
        seen.push((at, line));
        if is_first {
            break;
        }
    }
    assert!(
        !apply.is_finished(),
        "the event was published before apply ended"
    );
    assert_eq!(runner.running(ws.run_id), Some("apply"));
    apply.await.unwrap().unwrap();
    let finished = Instant::now();
    while let Ok(item) = rx.try_recv() {
        seen.push(item);
    }
    let pos = |pred: &dyn Fn(&infraai_core::LogLine) -> bool| {
        seen.iter()
            .position(|(_, l)| pred(l))
            .expect("event present")
    };
    let start =
        pos(&|l| event_type(l) == "apply_start" && l.message.contains("terraform_data.slow"));
    let first = pos(&|l| event_type(l) == "provision_progress" && l.message.ends_with(": first"));
    let second = pos(&|l| event_type(l) == "provision_progress" && l.message.ends_with(": second"));
    let slow_done =
        pos(&|l| event_type(l) == "apply_complete" && l.message.contains("terraform_data.slow"));
    let after_start =
        pos(&|l| event_type(l) == "apply_start" && l.message.contains("terraform_data.after"));
    assert!(start < first && first < second && second < slow_done && slow_done < after_start);
    // The first line came about 3 s before the end, not in a burst at the end.
    assert!(finished.duration_since(seen[first].0) >= Duration::from_secs(2));
    // Terraform's own timestamps are in order too.
    let stamps: Vec<&str> = seen
        .iter()
        .filter_map(|(_, l)| l.fields.get("@timestamp").and_then(Value::as_str))
        .collect();
    assert!(stamps.len() >= 5);
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    cleanup(&runner).await;
}

/// Members of a process group, from /proc.
fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Fields after the `(comm)`: state ppid pgrp …
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() > 2 && f[2] == pgid.to_string() && f[0] != "Z" {
                out.push(pid);
            }
        }
    }
    out
}

fn pgid_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(2)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_apply_kills_the_process_group_within_5s() {
    let Some(runner) = runner("cancel") else {
        return;
    };
    let runner = Arc::new(runner);
    let run_id = RunId::new();
    let pid_file = runner.workspace(run_id).dir.join("sleeper.pid");
    let ws = runner
        .write_files(
            run_id,
            &slow_config(&format!(
                "echo $$ > '{}'; sleep 60; echo never",
                pid_file.display()
            )),
        )
        .await
        .unwrap();
    runner.init(&ws, &Collect::default()).await.unwrap();
    runner.plan(&ws, &Collect::default()).await.unwrap();
    let log = Arc::new(Collect::default());
    let apply = {
        let (runner, ws, log) = (runner.clone(), ws.clone(), log.clone());
        tokio::spawn(async move { runner.apply(&ws, log.as_ref()).await })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "provisioner never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pgid = pgid_of(pid).expect("provisioner shell is running");
    assert!(!group_members(pgid).is_empty());

    // A second operation on the same directory is refused meanwhile.
    let busy = runner.plan(&ws, &Collect::default()).await.unwrap_err();
    assert!(
        busy.to_string().contains("busy (apply of this runner)"),
        "{busy}"
    );
    assert!(busy.is_retryable());

    let t = Instant::now();
    assert!(runner.cancel(run_id));
    let result = tokio::time::timeout(Duration::from_secs(5), apply)
        .await
        .expect("apply ended within 5 s of cancel")
        .unwrap();
    let err = result.unwrap_err();
    assert!(
        matches!(&err, Error::Cancelled { component, op } if component == "terraform" && op == "apply"),
        "{err}"
    );
    // Every process of terraform's group is gone (terraform, sh, sleep),
    // within 5 s of the cancel (SIGKILLed processes may take a moment to exit).
    while !group_members(pgid).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still running: {:?}",
            group_members(pgid)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The run says so in its log.
    let last = log.lines().pop().expect("a log line");
    assert_eq!(last.level, LogLevel::Error);
    assert!(
        last.message
            .contains("cancelled; terraform stopped on SIGINT, then its process group was killed"),
        "{}",
        last.message
    );
    assert!(!runner.cancel(run_id), "nothing left to cancel");
    assert!(!log.lines().iter().any(|l| l.message.ends_with(": never")));
    cleanup(&runner).await;
}

/// Starts a slow apply whose provisioner writes its shell's pid; returns the
/// task and the pid once the provisioner runs.
async fn start_slow_apply(
    runner: &Arc<TerraformRunner>,
    log: Arc<Collect>,
) -> (
    RunId,
    tokio::task::JoinHandle<infraai_core::Result<Applied>>,
    i32,
) {
    let run_id = RunId::new();
    let pid_file = runner.workspace(run_id).dir.join("sleeper.pid");
    let ws = runner
        .write_files(
            run_id,
            &slow_config(&format!(
                "echo $$ > '{}'; sleep 60; echo never",
                pid_file.display()
            )),
        )
        .await
        .unwrap();
    runner.init(&ws, &Collect::default()).await.unwrap();
    runner.plan(&ws, &Collect::default()).await.unwrap();
    let apply = {
        let (runner, ws) = (runner.clone(), ws.clone());
        tokio::spawn(async move { runner.apply(&ws, log.as_ref()).await })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            return (run_id, apply, pid);
        }
        assert!(Instant::now() < deadline, "provisioner never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_running_apply_kills_the_process_group() {
    let Some(runner) = runner("drop") else {
        return;
    };
    let runner = Arc::new(runner);
    let (run_id, apply, pid) = start_slow_apply(&runner, Arc::default()).await;
    let pgid = pgid_of(pid).expect("provisioner shell is running");
    apply.abort();
    let _ = apply.await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !group_members(pgid).is_empty() {
        assert!(
            Instant::now() < deadline,
            "group {pgid} survived: {:?}",
            group_members(pgid)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        runner.running(run_id),
        None,
        "the directory lock was released"
    );
    cleanup(&runner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_past_its_timeout_is_killed() {
    let Some(config) = common::config("timeout") else {
        return;
    };
    let mut timeouts = Timeouts::all(Duration::from_secs(60));
    timeouts.apply = Duration::from_secs(2);
    let runner = TerraformRunner::new(TerraformConfig { timeouts, ..config });
    let ws = runner
        .write_files(RunId::new(), &slow_config("sleep 60"))
        .await
        .unwrap();
    runner.init(&ws, &Collect::default()).await.unwrap();
    runner.plan(&ws, &Collect::default()).await.unwrap();
    let t = Instant::now();
    let err = runner.apply(&ws, &Collect::default()).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(
        matches!(&err, Error::Timeout { op, after, .. } if op == "apply" && *after == Duration::from_secs(2)),
        "{err}"
    );
    assert!(err.is_retryable());
    cleanup(&runner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tfvars_change_updates_exactly_one_resource() {
    let Some(runner) = runner("tfvars") else {
        return;
    };
    let mut body = Body::new();
    body.push(
        Block::variable("size")
            .unwrap()
            .attr("default", "small")
            .unwrap(),
    );
    body.push(
        Block::resource("terraform_data", "app")
            .unwrap()
            .attr("input", Expr::reference("var.size").unwrap())
            .unwrap(),
    );
    body.push(
        Block::resource("terraform_data", "other")
            .unwrap()
            .attr("input", "static")
            .unwrap(),
    );
    body.push(
        Block::variable("replicas")
            .unwrap()
            .attr("default", 1)
            .unwrap(),
    );
    body.push(
        Block::resource("terraform_data", "workers")
            .unwrap()
            .attr("input", Expr::reference("var.replicas").unwrap())
            .unwrap(),
    );
    body.push(
        Block::resource("terraform_data", "pinned")
            .unwrap()
            .attr("input", "p")
            .unwrap()
            .attr(
                "triggers_replace",
                Expr::List(vec![Expr::reference("terraform_data.other.output").unwrap()]),
            )
            .unwrap(),
    );
    body.push(
        Block::output("size")
            .unwrap()
            .attr(
                "value",
                Expr::reference("terraform_data.app.output").unwrap(),
            )
            .unwrap(),
    );
    let log = Collect::default();
    let ws = runner
        .write_files(RunId::new(), &files(&body))
        .await
        .unwrap();
    runner.init(&ws, &log).await.unwrap();
    assert_eq!(
        runner.plan(&ws, &log).await.unwrap().summary(),
        "4 to create"
    );
    runner.apply(&ws, &log).await.unwrap();
    let main_before = std::fs::read(ws.dir.join("main.tf")).unwrap();

    let values = BTreeMap::from([("size".to_string(), json!("large"))]);
    let expected = ChangeSet {
        changes: vec![ResourceChange {
            address: "terraform_data.app".into(),
            action: ChangeAction::Update,
            attributes: vec![
                AttributeChange {
                    path: "input".into(),
                    before: json!("small"),
                    after: json!("large"),
                    after_unknown: false,
                },
                AttributeChange {
                    path: "output".into(),
                    before: json!("small"),
                    after: Value::Null,
                    after_unknown: true,
                },
            ],
        }],
    };
    // The preview changes nothing on disk.
    let change = TfvarsChange::new("scale", values.clone());
    let preview = runner.preview_tfvars(&ws, &change, &log).await.unwrap();
    assert_eq!(preview, expected);
    assert!(!ws.dir.join("scale.auto.tfvars.json").exists());
    assert_eq!(
        runner.plan(&ws, &log).await.unwrap().summary(),
        "no changes"
    );

    // Apply exactly the approved change.
    let applied = runner
        .apply_tfvars(&ws, &change.approved(preview.clone()), &log)
        .await
        .unwrap();
    assert_eq!(applied, expected);
    let tfvars = |ws: &infraai_core::TfWorkspace| -> Value {
        serde_json::from_slice(&std::fs::read(ws.dir.join("scale.auto.tfvars.json")).unwrap())
            .unwrap()
    };
    assert_eq!(tfvars(&ws), json!({"size": "large"}));
    assert_eq!(
        std::fs::read(ws.dir.join("main.tf")).unwrap(),
        main_before,
        "configuration untouched"
    );
    assert_eq!(runner.output(&ws).await.unwrap()["size"], json!("large"));
    // The value persists: a later plan (e.g. after re-generating files) keeps it.
    assert_eq!(
        runner.plan(&ws, &log).await.unwrap().summary(),
        "no changes"
    );

    // A plan that differs from what was approved is not applied, and the
    // tfvars file is restored.
    let replicas = BTreeMap::from([("replicas".to_string(), json!(3))]);
    let stale = TfvarsChange::new("scale", replicas.clone()).approved(preview);
    let err = runner.apply_tfvars(&ws, &stale, &log).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the plan changed since it was approved"),
        "{err}"
    );
    assert!(matches!(
        infraai_core::Error::from(err),
        Error::Conflict { .. }
    ));
    assert_eq!(tfvars(&ws), json!({"size": "large"}));
    assert!(!ws.dir.join(PLAN_FILE).exists());
    assert_eq!(
        runner.plan(&ws, &log).await.unwrap().summary(),
        "no changes"
    );

    // Variables merge into the file; only the resource using this one changes.
    let applied = runner
        .apply_tfvars(&ws, &TfvarsChange::new("scale", replicas), &log)
        .await
        .unwrap();
    let changed: Vec<(&str, ChangeAction)> = applied
        .changes
        .iter()
        .map(|c| (c.address.as_str(), c.action))
        .collect();
    assert_eq!(changed, [("terraform_data.workers", ChangeAction::Update)]);
    assert_eq!(tfvars(&ws), json!({"replicas": 3, "size": "large"}));

    for (name, var) in [
        ("bad name", "size"),
        ("scale", "bad-\"var"),
        ("../x", "size"),
    ] {
        let change = TfvarsChange::new(name, BTreeMap::from([(var.to_string(), json!(1))]));
        let err = runner.write_tfvars(&ws, &change).await.unwrap_err();
        assert!(err.to_string().contains("must match"), "{err}");
    }

    // The trait's destroy removes everything, streaming its events.
    let destroy_log = Collect::default();
    runner.destroy(&ws, &destroy_log).await.unwrap();
    assert!(runner.output(&ws).await.unwrap().is_empty());
    let done = destroy_log
        .lines()
        .iter()
        .filter(|l| event_type(l) == "apply_complete")
        .count();
    assert_eq!(done, 4, "{:?}", destroy_log.event_types());
    cleanup(&runner).await;
}
