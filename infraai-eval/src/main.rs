//! `infraai-eval`: runs the decision evaluation suite and prints its table;
//! `--check` fails on a harmful action run alone or a drop below the
//! committed baseline.

use clap::Parser;
use infraai_eval::policy::PolicyChoice;
use infraai_eval::report::{self, Baseline};
use infraai_eval::{evaluate, scenario};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Evaluate the agent's decisions over the scenario corpus.
#[derive(Parser)]
#[command(name = "infraai-eval")]
struct Args {
    /// The scenario corpus.
    #[arg(long, default_value = "eval/scenarios")]
    scenarios: PathBuf,
    /// Recorded LLM answers for the `replay` policy, one file per scenario.
    #[arg(long, default_value = "eval/replay")]
    replay: PathBuf,
    /// Policies to run: `rules`, `replay`, `live` (Gemini; needs
    /// GEMINI_API_KEY). Repeat or separate with commas.
    #[arg(long, value_delimiter = ',', default_value = "rules,replay")]
    policy: Vec<String>,
    /// The committed baseline.
    #[arg(long, default_value = "eval/baseline.json")]
    baseline: PathBuf,
    /// Fail (exit 1) on a harmful action run alone or a drop below the baseline.
    #[arg(long)]
    check: bool,
    /// Write the current results as the new baseline.
    #[arg(long)]
    update_baseline: bool,
    /// Also write the full report (summaries and per-scenario results) as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print every scenario's outcome, not only failures.
    #[arg(long)]
    verbose: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("infraai-eval: {e}");
            ExitCode::from(2)
        }
    }
}

fn choice(name: &str, args: &Args) -> Result<PolicyChoice, String> {
    match name {
        "rules" => Ok(PolicyChoice::Rules),
        "replay" => Ok(PolicyChoice::Replay {
            dir: args.replay.clone(),
        }),
        "live" => {
            let key = std::env::var("GEMINI_API_KEY")
                .map_err(|_| "the live policy needs GEMINI_API_KEY".to_string())?;
            let config = infraai_gemini::GeminiConfig::new(infraai_core::Secret::new(key));
            let provider =
                infraai_gemini::GeminiProvider::new(config).map_err(|e| e.to_string())?;
            Ok(PolicyChoice::Live(Arc::new(provider)))
        }
        other => Err(format!("unknown policy {other:?} (rules, replay, live)")),
    }
}

async fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let scenarios = scenario::load_dir(&args.scenarios)?;
    let policies = (args.policy.iter())
        .map(|p| choice(p, &args))
        .collect::<Result<Vec<_>, _>>()?;
    let runs = evaluate(&scenarios, &policies).await?;
    for run in &runs {
        for r in &run.results {
            if !r.passed || args.verbose {
                let seen: Vec<String> = r
                    .seen
                    .iter()
                    .map(|s| format!("{:?}{}", s.handling, if s.alone { " (alone)" } else { "" }))
                    .collect();
                println!(
                    "{:<8} {:<4} {:<40} {}{}",
                    run.summary.policy,
                    if r.passed { "ok" } else { "FAIL" },
                    r.id,
                    seen.join(", "),
                    r.why
                        .as_deref()
                        .map(|w| format!(" — {w}"))
                        .unwrap_or_default()
                );
                if args.verbose {
                    for note in r.seen.iter().flat_map(|s| &s.notes) {
                        println!("{:>15} {note}", "·");
                    }
                }
            }
        }
    }
    println!("\n{}", report::table(&runs));
    let baseline = if args.baseline.exists() {
        Baseline::load(&args.baseline)?
    } else {
        println!("no baseline at {}", args.baseline.display());
        Baseline::default()
    };
    let gate = report::gate(&runs, &baseline);
    if let Some(path) = &args.json {
        let json = serde_json::json!({ "runs": runs, "gate": gate });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    for c in &gate.changes {
        println!("changed since the baseline: {c}");
    }
    for i in &gate.improvements {
        println!("improved: {i} (update the baseline)");
    }
    if args.update_baseline {
        let mut next = baseline.clone();
        next.0.extend(Baseline::of(&runs).0);
        std::fs::write(&args.baseline, serde_json::to_string_pretty(&next)? + "\n")?;
        println!("baseline written to {}", args.baseline.display());
        return Ok(ExitCode::SUCCESS);
    }
    for f in &gate.failures {
        println!("gate: {f}");
    }
    if args.check && !gate.holds() {
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "{}",
        if gate.holds() {
            "gate holds"
        } else {
            "gate would fail (run with --check to enforce)"
        }
    );
    Ok(ExitCode::SUCCESS)
}
