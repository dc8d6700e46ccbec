//! The LLM adapters wired into the real server binary, against a wiremock
//! stand-in for the provider's HTTP API: plans on the simulated cloud go
//! through the LLM planner to a completed run, decisions through the LLM
//! policy, and every call's tokens reach `/metrics`.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "fake-gemini-key-for-the-llm-test";

/// A Gemini `generateContent` answer whose text is `answer`, with the usage
/// shape of `tests/fixtures/gemini/generateContent-json.json`.
fn gemini_envelope(answer: &Value, prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "candidates": [{"content": {"parts": [{"text": answer.to_string()}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": prompt_tokens, "candidatesTokenCount": completion_tokens,
                          "totalTokenCount": prompt_tokens + completion_tokens},
        "modelVersion": "gemini-2.5-flash"
    })
}

fn plan_answer() -> Value {
    json!({
        "stack_type": "web_app", "region": "us-central1", "machine_type": "e2-small",
        "autoscaling": false, "estimated_cost_usd": 12.0, "risk_flags": ["single instance"],
        "resources": [{"name": "api", "kind": "compute", "machine_type": null, "count": 1,
                       "depends_on": [], "description": "the API"}],
        "confidence": 0.8, "summary": "one small VM planned by the mocked LLM"
    })
}

fn decision_answer() -> Value {
    json!({"severity": "warning", "recommended_action": {"type": "escalate"}, "requires_approval": true,
           "confidence": 0.9, "reasoning": "mocked LLM: a human should look", "risk": "low",
           "precedent": null})
}

/// The value of one sample line of the exposition text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_plans_the_simulated_cloud_decides_and_its_tokens_reach_metrics() {
    let llm = MockServer::start().await;
    let route = "/v1beta/models/gemini-2.5-flash:generateContent";
    Mock::given(method("POST"))
        .and(path(route))
        .and(header("x-goog-api-key", KEY))
        .and(body_string_contains("goal_data"))
        .respond_with(ResponseTemplate::new(200).set_body_json(gemini_envelope(
            &plan_answer(),
            700,
            150,
        )))
        .expect(1)
        .mount(&llm)
        .await;
    Mock::given(method("POST"))
        .and(path(route))
        .and(header("x-goog-api-key", KEY))
        .and(body_string_contains("incident_data"))
        .respond_with(ResponseTemplate::new(200).set_body_json(gemini_envelope(
            &decision_answer(),
            300,
            60,
        )))
        .expect(1)
        .mount(&llm)
        .await;
    let base = format!("{}/v1beta", llm.uri());
    let s = Server::start(
        "llm-gemini",
        &["--cloud", "simulated", "--gemini-base-url", &base],
        &[
            ("GEMINI_API_KEY", KEY),
            ("INFRAAI_GEMINI_MODEL", "gemini-2.5-flash"),
        ],
    )
    .await;
    assert!(
        s.startup
            .iter()
            .any(|l| l.starts_with("llm: Gemini (gemini-2.5-flash)") && l.contains(&base)),
        "{:?}",
        s.startup
    );
    assert!(s.startup.iter().all(|l| !l.contains(KEY)));

    let planned = s
        .ok(
            Method::POST,
            "/generate-graph",
            Some(json!({"goal": "a small web API"})),
            201,
        )
        .await;
    let plan = &planned["plan"];
    assert_eq!(plan["cloud"], "memory", "{planned:#}");
    assert_eq!(
        plan["summary"], "one small VM planned by the mocked LLM",
        "the LLM planned it, not the rules: {planned:#}"
    );
    let run_id = planned["run_id"].as_str().unwrap();
    let events = s.apply(run_id).await;
    assert_eq!(events.last().unwrap().1["phase"], "verified", "{events:?}");

    let r = s
        .http
        .post(s.url("/ops/webhook"))
        .header("x-infraai-webhook-token", WEBHOOK)
        .json(&json!({
            "source": "test", "fingerprint": "llm-cpu", "policy_name": "High CPU",
            "resource": "api", "resource_type": "gce_instance", "cloud": "memory",
            "metric": "compute.googleapis.com/instance/cpu/utilization", "value": 0.97,
            "threshold": 0.8, "severity": "warning", "state": "firing",
            "started_at": "2026-11-25T10:00:00Z",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ack: Value = r.json().await.unwrap();
    let id = ack["results"][0]["incident_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no incident id in {ack:#}"))
        .to_string();
    let incident = s
        .wait_incident(&id, |v| !v["incident"]["decision"].is_null())
        .await;
    assert_eq!(
        incident["incident"]["decision"]["reasoning"], "mocked LLM: a human should look",
        "{incident:#}"
    );

    let text = s.metrics().await;
    assert_eq!(
        sample(&text, "infraai_llm_tokens_total{kind=\"prompt\"}"),
        Some(1000.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "infraai_llm_tokens_total{kind=\"completion\"}"),
        Some(210.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "infraai_llm_calls_total{component=\"plan\",outcome=\"ok\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "infraai_llm_calls_total{component=\"decision\",outcome=\"ok\"}"
        ),
        Some(1.0),
        "{text}"
    );
    llm.verify().await;
}

fn openai_envelope(answer: &Value, prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "model": "llama3.1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.to_string(), "refusal": null},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}
    })
}

/// An OpenAI-compatible server without a key (a local Ollama), and a token
/// budget the plan alone spends: the decision that follows is the rules',
/// and the incident's audit says why — one budget across planner and policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_compatible_server_plans_and_past_the_shared_budget_the_rules_decide() {
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("goal_data"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_envelope(
            &plan_answer(),
            900,
            200,
        )))
        .expect(1)
        .mount(&llm)
        .await;
    let base = format!("{}/v1", llm.uri());
    let s = Server::start(
        "llm-openai",
        &["--cloud", "simulated"],
        &[
            ("INFRAAI_OPENAI_MODEL", "llama3.1"),
            ("INFRAAI_OPENAI_BASE_URL", &base),
            ("INFRAAI_LLM_TOKEN_BUDGET_PER_HOUR", "1000"),
            ("INFRAAI_DECISION_CACHE_TTL_SECS", "0"),
        ],
    )
    .await;
    assert!(
        s.startup
            .iter()
            .any(|l| l.starts_with("llm: OpenAI-compatible (llama3.1) at ")
                && l.contains(&base)
                && l.contains("without a key")),
        "{:?}",
        s.startup
    );
    assert!(
        s.startup
            .iter()
            .any(|l| l.starts_with("llm: token budget 1000 tokens/hour") && l.contains("for 0 s")),
        "{:?}",
        s.startup
    );

    let planned = s
        .ok(
            Method::POST,
            "/generate-graph",
            Some(json!({"goal": "a small web API"})),
            201,
        )
        .await;
    assert_eq!(
        planned["plan"]["summary"], "one small VM planned by the mocked LLM",
        "{planned:#}"
    );
    let sent = &llm.received_requests().await.unwrap()[0];
    assert!(
        !sent.headers.contains_key("authorization"),
        "no key configured, no Authorization header"
    );

    let r = s
        .http
        .post(s.url("/ops/webhook"))
        .header("x-infraai-webhook-token", WEBHOOK)
        .json(&json!({
            "source": "test", "fingerprint": "budget-cpu", "policy_name": "High CPU",
            "resource": "api", "resource_type": "gce_instance", "cloud": "memory",
            "metric": "compute.googleapis.com/instance/cpu/utilization", "value": 0.97,
            "threshold": 0.8, "severity": "warning", "state": "firing",
            "started_at": "2026-11-25T10:00:00Z",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ack: Value = r.json().await.unwrap();
    let id = ack["results"][0]["incident_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no incident id in {ack:#}"))
        .to_string();
    let detail = s
        .wait_incident(&id, |v| !v["incident"]["decision"].is_null())
        .await;
    let audit = detail["audit"].as_array().expect("audit list");
    assert!(
        audit.iter().any(|r| {
            let outcome = r["outcome"].as_str().unwrap_or_default();
            outcome.contains("budget is spent") && outcome.contains("rule-based path")
        }),
        "{detail:#}"
    );
    assert_eq!(
        llm.received_requests().await.unwrap().len(),
        1,
        "no LLM call past the budget"
    );
    let text = s.metrics().await;
    assert_eq!(
        sample(
            &text,
            "infraai_llm_calls_total{component=\"decision\",outcome=\"over_budget\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "infraai_llm_tokens_total{kind=\"prompt\"}"),
        Some(900.0),
        "{text}"
    );
    llm.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_llm_providers_at_once_are_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_infraai-server"))
        .args(["--cloud", "simulated", "--data-dir"])
        .arg(Server::fresh_dir("llm-both"))
        .env("GEMINI_API_KEY", KEY)
        .env("INFRAAI_OPENAI_MODEL", "gpt-4o-mini")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("both Gemini") && stderr.contains("set only one"),
        "{stderr}"
    );
    assert!(!stderr.contains(KEY), "{stderr}");
}
