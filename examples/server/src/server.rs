//! Start-up, background tasks and graceful shutdown.

use crate::app::{router, AppState, Shared};
use crate::auth::oidc::{RoleMap, SignIn};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::secrets::{load_or_create, Origin};
use anyhow::Context;
use axum::serve::ListenerExt;
use infraai_core::jobs::JobRunner;
use infraai_core::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// Waits for SIGINT or SIGTERM.
async fn signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Completes when shutdown is signalled.
async fn until(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// A token and where it came from.
struct Token {
    value: String,
    origin: Origin,
}

impl Token {
    /// The configured token, else the one in the data directory, else a new one.
    fn load(config: &Config, configured: &Option<String>, file: &str) -> anyhow::Result<Self> {
        let (value, origin) = load_or_create(configured.as_deref(), &config.server.data_dir, file)?;
        Ok(Self { value, origin })
    }
}

/// Runs the server until SIGINT/SIGTERM, then finishes in-flight requests.
pub async fn run(config: Config) -> anyhow::Result<()> {
    run_wired(config, |_| {}).await
}

/// [`run`] with the adapters changed by `customize` before the server
/// starts, e.g. an embedder's own alert source added to
/// [`crate::wiring::Wiring::alert_sources`].
pub async fn run_wired(
    config: Config,
    customize: impl FnOnce(&mut crate::wiring::Wiring),
) -> anyhow::Result<()> {
    let (operator, webhook) = tokens(&config)?;
    let metrics = Arc::new(Metrics::default());
    let mut w = crate::wiring::build(&config, &webhook.value, metrics.clone()).await?;
    customize(&mut w);
    crate::test_hooks::apply(&config, &mut w)?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    banner(&config, addr, &w.report, &operator, &webhook);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (deploy, ops) = agents(&config, &mut w, &metrics);
    count_run_phases(deploy.events(), metrics.clone(), shutdown_rx.clone());
    let (decide, queue) = tokio::sync::mpsc::unbounded_channel();
    let jobs = background_jobs(&config, &w, ops.clone()).decisions_to(decide.clone());
    tokio::spawn(jobs.run(until(shutdown_rx.clone())));
    let state = state(
        &config,
        w,
        (deploy, ops.clone()),
        &operator,
        metrics,
        (decide, shutdown_rx.clone()),
    )?;
    crate::app::decision_workers(ops, queue, state.ingesting.clone());
    let executing = state.executing.clone();
    let store = state.store.clone();
    tokio::spawn(async move {
        signal().await;
        info!("shutting down: finishing in-flight requests");
        let _ = shutdown_tx.send(true);
    });
    // The peer address is recorded in the audit of refused requests.
    let service = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    // TCP_NODELAY: a response written in two parts (head, then body) must
    // not wait for the client's delayed ACK (Nagle): on a kept-alive
    // connection that was up to ~40 ms per small response.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, service)
        .with_graceful_shutdown(until(shutdown_rx))
        .await
        .context("serving HTTP")?;
    finish_deploy_runs(&executing, store.as_ref()).await;
    info!("stopped");
    Ok(())
}

/// `infraai-server mcp`: the MCP interface on stdin/stdout over the same
/// store and adapters as the server, for a local assistant. Runs no HTTP
/// listener and no background loops (a running server on the same data
/// directory does those); start-up lines go to stderr.
pub async fn run_mcp_stdio(config: Config) -> anyhow::Result<()> {
    let (operator, webhook) = tokens(&config)?;
    let metrics = Arc::new(Metrics::default());
    let mut w = crate::wiring::build(&config, &webhook.value, metrics.clone()).await?;
    for line in &w.report {
        eprintln!("{line}");
    }
    eprintln!(
        "MCP on stdio: reads, plans, dry runs, proposals (a human approves each) and STOP AUTONOMY"
    );
    let (_shutdown, shutdown_rx) = watch::channel(false);
    let agents = agents(&config, &mut w, &metrics);
    let (decide, _queue) = tokio::sync::mpsc::unbounded_channel();
    let state = state(
        &config,
        w,
        agents,
        &operator,
        metrics,
        (decide, shutdown_rx),
    )?;
    crate::mcp::serve_stdio(state).await
}

/// The data directory, and the operator and webhook tokens in it.
fn tokens(config: &Config) -> anyhow::Result<(Token, Token)> {
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let operator = Token::load(config, &config.server.operator_token, "operator-token")?;
    let webhook = Token::load(config, &config.server.webhook_token, "webhook-token")?;
    Ok((operator, webhook))
}

/// What the handlers share.
fn state(
    config: &Config,
    w: crate::wiring::Wiring,
    (deploy, ops): (Arc<DeployAgent>, Arc<OpsAgent>),
    operator: &Token,
    metrics: Arc<Metrics>,
    (decide, shutdown): (
        tokio::sync::mpsc::UnboundedSender<IncidentId>,
        watch::Receiver<bool>,
    ),
) -> anyhow::Result<AppState> {
    let m = &config.mcp;
    // `https://host:port/…` → `host`.
    let public_host = (config.server.public_url.as_deref())
        .and_then(|u| u.split_once("://"))
        .and_then(|(_, rest)| rest.split(['/', ':']).next())
        .filter(|h| !h.is_empty())
        .map(str::to_string);
    let mcp = crate::mcp::McpAccess::new(
        &operator.value,
        m.mcp_read_token.as_deref(),
        m.mcp_propose_token.as_deref(),
        m.mcp_calls_per_minute,
    )
    .with_hosts(public_host);
    Ok(AppState::new(Shared {
        deploy,
        ops,
        store: w.store.clone(),
        actions: w.actions,
        telegram: w.telegram,
        discord: w.discord,
        slack: w.slack,
        operator_token: operator.value.clone().into(),
        operator_name: config.server.operator_name.clone().into(),
        metrics,
        executing: Arc::default(),
        shutdown,
        request_timeout: config.server.request_timeout_secs,
        replica_id: config.server.replica_id.clone().into(),
        metric_source: w.metrics.clone(),
        prom_queries: w.prom_queries,
        alert_sources: w.alert_sources,
        decide,
        ingesting: Arc::default(),
        simulated: w.simulated,
        mcp: Arc::new(mcp),
        sign_in: sign_in(config)?,
    }))
}

/// Single sign-on, when an issuer and a client id are configured.
fn sign_in(config: &Config) -> anyhow::Result<Option<Arc<SignIn>>> {
    let c = &config.sign_in;
    let (Some(issuer), Some(client_id)) = (&c.oidc_issuer, &c.oidc_client_id) else {
        if c.oidc_issuer.is_some() || c.oidc_client_id.is_some() {
            anyhow::bail!(
                "single sign-on needs both INFRAAI_OIDC_ISSUER and INFRAAI_OIDC_CLIENT_ID"
            );
        }
        return Ok(None);
    };
    let secret = match &c.session_secret {
        Some(secret) => secret.clone(),
        None => load_or_create(None, &config.server.data_dir, "session-key")?.0,
    };
    let public_url = config.server.public_url.clone();
    let secure = public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    Ok(Some(Arc::new(SignIn {
        provider: crate::auth::jwt::Provider::new(issuer, http),
        client_id: client_id.clone(),
        client_secret: c.oidc_client_secret.clone(),
        audience: c.oidc_audience.clone().unwrap_or_else(|| client_id.clone()),
        scopes: c.oidc_scopes.clone(),
        roles: RoleMap::new(&c.oidc_roles_claim, &c.oidc_role_map, &c.oidc_default_role)?,
        sessions: crate::auth::session::Sessions::new(secret.as_bytes(), c.session_secs, secure),
        public_url,
    })))
}

/// The deploy and ops agents over the wired adapters.
fn agents(
    config: &Config,
    w: &mut crate::wiring::Wiring,
    metrics: &Arc<Metrics>,
) -> (Arc<DeployAgent>, Arc<OpsAgent>) {
    let mut deploy_config = DeployConfig {
        region: config.cloud.region.clone(),
        ..Default::default()
    };
    if let Some(url) = &config.server.public_url {
        deploy_config.alert_webhook = Some(format!("{}/ops/webhook", url.trim_end_matches('/')));
    }
    // Stop diagnoses of the deploy loop (quota, API, permission) reach the
    // same channels as the ops loop's notifications.
    let deploy = Arc::new(
        DeployAgent::new(w.deploy.clone(), deploy_config).with_notifier(w.notifier.clone()),
    );
    let mut guardrails = w.guardrails.clone();
    config.autonomy.apply(&mut guardrails);
    let ops = Arc::new(OpsAgent::new(
        OpsDeps {
            // Counts decisions and execution outcomes on every path that
            // commits them (workers, approvals, watcher, recovery).
            store: Arc::new(Observed::new(w.store.clone(), metrics.clone())),
            policy: w.policy.clone(),
            notifier: w.notifier.clone(),
            actions: w.actions.clone(),
            metrics: w.metrics.clone(),
            registry: w.registry.clone(),
        },
        Guardrails::new(guardrails),
        OpsConfig {
            feedback_delay: config.ops.feedback_delay_secs,
            approvers: std::mem::take(&mut w.approvers),
            replica_id: config.server.replica_id.clone(),
            lease: config.ops.lease_secs,
            ..Default::default()
        },
    ));
    (deploy, ops)
}

/// The start-up banner: versions, adapters, where the tokens are. A token
/// is printed once, on the start that generates it.
fn banner(
    config: &Config,
    addr: std::net::SocketAddr,
    report: &[String],
    operator: &Token,
    webhook: &Token,
) {
    let s = &config.server;
    println!("infraai-server {}", env!("CARGO_PKG_VERSION"));
    println!("data directory: {}", s.data_dir.display());
    println!("replica: {}", s.replica_id);
    for line in report {
        println!("{line}");
    }
    let token_file = s.data_dir.join("operator-token");
    match operator.origin {
        Origin::Configured => println!(
            "operator token: from configuration; operator name {:?}",
            s.operator_name
        ),
        Origin::Stored => println!(
            "operator token: in {} (generated at first start); operator name {:?}",
            token_file.display(),
            s.operator_name
        ),
        Origin::Generated => println!(
            "operator token (generated now, stored in {}): {}",
            token_file.display(),
            operator.value
        ),
    }
    let webhook_file = s.data_dir.join("webhook-token");
    match webhook.origin {
        Origin::Configured => println!("alert webhook token: from configuration"),
        Origin::Stored => println!("alert webhook token: in {}", webhook_file.display()),
        Origin::Generated => println!(
            "alert webhook token (generated now, stored in {}): {}",
            webhook_file.display(),
            webhook.value
        ),
    }
    println!("dashboard: http://{addr}/   API: http://{addr}/openapi.json");
    println!("listening on http://{addr}");
}

/// Run-phase counters from the event bus, until shutdown.
fn count_run_phases(events: &EventBus, metrics: Arc<Metrics>, shutdown: watch::Receiver<bool>) {
    let (_, mut rx) = events.subscribe(RunId::new());
    let stop = until(shutdown);
    tokio::spawn(async move {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                ev = rx.recv() => match ev {
                    Ok(RunEvent::Phase { phase, .. }) => metrics.run_phase(&phase.to_string()),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
        }
    });
}

/// Background work that runs once across replicas: the loops below on
/// whichever replica holds each, and every job a dead replica left.
fn background_jobs(config: &Config, w: &crate::wiring::Wiring, ops: Arc<OpsAgent>) -> JobRunner {
    let mut runner = JobRunner::new(ops.clone());
    let max_wait = config.ops.approval_timeout_secs;
    let expiry = ops.clone();
    runner = runner.with_loop("approval-expiry", move || {
        let ops = expiry.clone();
        async move {
            let every = (max_wait / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match ops.expire_pending(max_wait).await {
                    Ok(0) => {}
                    Ok(n) => info!(expired = n, "pending approvals expired"),
                    Err(e) => warn!(error = %e, "approval expiry failed"),
                }
            }
        }
    });
    let digests = ops.clone();
    runner = runner.with_loop("quiet-digests", move || {
        let ops = digests.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(15));
            loop {
                tick.tick().await;
                match ops.send_closed_digests().await {
                    Ok(0) => {}
                    Ok(n) => info!(digests = n, "quiet-window digests sent"),
                    Err(e) => warn!(error = %e, "quiet-window digests failed"),
                }
            }
        }
    });
    if w.run_watcher {
        let (metrics, store, watch_ops) = (w.metrics.clone(), w.store.clone(), ops.clone());
        let every = config.ops.watch_interval_secs;
        runner = runner.with_loop("watcher", move || {
            let watcher = ThresholdWatcher::new(metrics.clone());
            watcher.run(
                store.clone(),
                watch_ops.clone(),
                every,
                std::future::pending(),
            )
        });
    }
    if let Some(tg) = &w.telegram {
        if config.telegram.telegram_webhook_secret.is_none() {
            let poller = Arc::new(infraai_telegram::TelegramPoller::new(
                tg.as_ref().clone(),
                w.store.clone(),
                Duration::from_secs(25),
            ));
            runner = runner.with_loop("telegram-poll", move || {
                let (poller, ops) = (poller.clone(), ops.clone());
                async move { poller.run(ops, std::future::pending()).await }
            });
        }
    }
    runner
}

/// Deploy runs started over the API are in the middle of Terraform: gives
/// them up to a minute to finish rather than leave a half-applied run behind.
/// A run paused by STOP AUTONOMY is not waited for: it does nothing until a
/// human acts, and stays `paused_by_kill_switch` in the store.
async fn finish_deploy_runs(
    executing: &std::sync::Mutex<std::collections::HashSet<RunId>>,
    store: &dyn RunStore,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ids: Vec<RunId> = (executing.lock().unwrap_or_else(|p| p.into_inner()).iter())
            .copied()
            .collect();
        let mut n = 0;
        for id in ids {
            let paused =
                matches!(store.get_run(id).await, Ok(Some(r)) if r.phase == RunPhase::Paused);
            n += usize::from(!paused);
        }
        if n == 0 {
            return;
        }
        if std::time::Instant::now() > deadline {
            warn!(
                runs = n,
                "stopping with deploy runs still executing; they will show their last phase"
            );
            return;
        }
        info!(runs = n, "waiting for deploy runs to finish");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
