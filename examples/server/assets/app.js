// infraai dashboard: plain JS, no build step. All untrusted text goes through
// textContent, never innerHTML.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "infraai.operatorToken";
let token = localStorage.getItem(TOKEN_KEY) || "";
// The caller, from GET /auth/me: who, their role, and for a signed-in
// session the CSRF token that state-changing requests send back.
let me = null;
const ROLES = ["viewer", "approver", "operator", "admin"];
const may = (role) => !!me && ROLES.indexOf(me.role) >= ROLES.indexOf(role);
const signedIn = () => !!me;
let currentRun = null;
const previews = new Map();
const messages = new Map(); // incident id → last command outcome, kept across refreshes
let stopped = false; // STOP AUTONOMY engaged, as of the last refresh

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// Replaces a node's children, skipping absent ones (replaceChildren would
// render null as the text "null").
function fill(node, ...children) {
  node.replaceChildren(...children.filter((c) => c !== null && c !== undefined));
}

function banner(msg) {
  const b = $("banner");
  b.textContent = msg || "";
  b.hidden = !msg;
}

function authHeaders(method) {
  const h = {};
  if (token) h.Authorization = "Bearer " + token;
  else if (me && me.csrf && method !== "GET") h["X-CSRF-Token"] = me.csrf;
  return h;
}

async function api(method, path, body) {
  const opts = { method, headers: authHeaders(method) };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { detail: text }; }
  if (!r.ok) {
    const err = new Error((data && data.detail) || r.status + " " + r.statusText);
    err.status = r.status;
    if (r.status === 401) banner("Not signed in: sign in, or enter the operator token at the top right.");
    throw err;
  }
  return data;
}

function when(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  return d.toLocaleString(undefined, { hour12: false });
}

// ---------------------------------------------------------------- token

function showTokenState() {
  $("token-state").textContent = token ? "token saved" : "no token";
  $("token-input").value = "";
}
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const v = $("token-input").value.trim();
  if (!v) return;
  token = v;
  localStorage.setItem(TOKEN_KEY, token);
  banner("");
  showTokenState();
  whoami().then(refreshOps);
});

// Who is signed in (operator token, API token or the identity provider's
// session), and what their role shows: viewers get no Approve, Reject or
// STOP button, RESUME needs an operator.
async function whoami() {
  const sso = await fetch("/auth/config").then((r) => r.json()).catch(() => ({ sign_in: false }));
  const r = await fetch("/auth/me", { headers: authHeaders("GET") }).catch(() => null);
  me = r && r.ok ? await r.json() : null;
  document.body.dataset.role = me ? me.role : "";
  const who = $("who");
  who.hidden = !me;
  who.textContent = me ? (me.name || me.email || me.subject) + (me.email && me.name ? " <" + me.email + ">" : "") + " · " + me.role : "";
  $("sign-in").hidden = !sso.sign_in || !!me;
  $("sign-out").hidden = !(me && me.via === "session");
  // What the role may not do is not offered (the API refuses it anyway).
  $("plan-btn").hidden = !may("operator");
  $("window-form").hidden = !may("operator");
  if (!me) banner(sso.sign_in ? "Sign in, or enter the operator token (printed at first start, stored in data/operator-token)." : "Enter the operator token (printed at first start, stored in data/operator-token).");
  else banner("");
}
$("sign-out").addEventListener("click", async () => {
  try { await api("POST", "/auth/logout"); } catch (e) { banner(e.message); }
  me = null;
  await whoami();
});

// ---------------------------------------------------------------- deploy

$("plan-btn").addEventListener("click", async () => {
  const goal = $("goal").value.trim();
  if (!goal) { $("plan-msg").textContent = "Type a goal first."; return; }
  $("plan-btn").disabled = true;
  $("plan-msg").textContent = "Planning…";
  try {
    const p = await api("POST", "/generate-graph", { goal });
    currentRun = p.run_id;
    renderPlan(p);
    renderGraph(p.graph, p.plan);
    const files = await api("POST", "/generate_terraform", { run_id: p.run_id });
    renderFiles(files.files);
    loadRunViews(p.run_id);
    $("plan-msg").textContent = "";
    $("deploy-card").hidden = true;
  } catch (e) {
    $("plan-msg").textContent = e.message;
  } finally {
    $("plan-btn").disabled = false;
  }
});

function renderPlan(p) {
  const plan = p.plan;
  $("plan-card").hidden = false;
  $("plan-run").textContent = p.run_id;
  $("plan-summary").textContent = p.summary;
  $("plan-cloud").textContent = plan.cloud;
  $("plan-region").textContent = plan.region;
  $("plan-machine").textContent = plan.machine_type;
  $("plan-cost").textContent = "$" + Number(plan.estimated_cost_usd).toFixed(2) + "/mo";
  $("plan-confidence").textContent = Math.round(plan.confidence * 100) + "%";
  const risks = $("plan-risks");
  risks.replaceChildren(...(plan.risk_flags.length ? plan.risk_flags.map((r) => el("span", { class: "chip" }, r)) : [el("span", { class: "muted small" }, "No risk flags.")]));
  $("plan-resources").replaceChildren(...plan.resources.map((r) =>
    el("tr", {}, el("td", { class: "mono" }, r.name), el("td", {}, r.kind), el("td", { class: "mono" }, r.resource_type || "—"), el("td", { class: "mono" }, r.machine_type || "—"))));
  $("plan-monitoring").textContent = plan.monitoring.length
    ? "Monitoring: " + plan.monitoring.map((m) => m.metric_name + " on " + m.resource_ref + " (" + m.severity + ")").join(", ")
    : "No monitoring policies.";
  $("proceed-btn").disabled = false;
  $("dryrun-btn").disabled = false;
}

function renderFiles(files) {
  $("files-card").hidden = false;
  $("files").replaceChildren(...Object.entries(files).map(([name, text]) =>
    el("details", {}, el("summary", { class: "mono" }, name + " (" + text.split("\n").length + " lines)"), el("pre", {}, text))));
}

// Open an existing run by id (plan, files, Terraform view, timeline).
$("run-open-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const id = $("run-open-id").value.trim();
  if (!id) return;
  const run = await loadRunViews(id);
  if (!run) return;
  currentRun = run.id;
  if (run.plan) {
    renderPlan({ run_id: run.id, summary: run.plan.summary, plan: run.plan });
    renderGraph(graphOf(run.plan), run.plan);
  }
  if (run.files) renderFiles(run.files.files);
  $("deploy-card").hidden = true;
});

$("proceed-btn").addEventListener("click", () => execute(false));
$("dryrun-btn").addEventListener("click", () => execute(true));

async function execute(dryRun) {
  if (!currentRun) return;
  $("proceed-btn").disabled = true;
  $("dryrun-btn").disabled = true;
  $("deploy-card").hidden = false;
  $("phases").replaceChildren();
  $("log").textContent = "";
  $("verification").hidden = true;
  renderTimeline([], "starting");
  setPhase(dryRun ? "starting (dry run)" : "starting");
  try {
    await api("POST", "/execute", { run_id: currentRun, dry_run: dryRun });
    await streamEvents(currentRun);
  } catch (e) {
    appendLog("error: " + e.message);
  }
  await showStatus(currentRun);
  await loadRunViews(currentRun);
  $("dryrun-btn").disabled = false;
  $("proceed-btn").disabled = false;
}

function setPhase(phase) {
  const p = $("deploy-phase");
  p.textContent = phase;
  const good = phase === "verified" || phase === "completed";
  const bad = phase === "failed" || phase === "deploy_success_verify_failed";
  p.className = "pill" + (good ? " pill-on" : bad ? " pill-off" : "");
}

function addPhase(phase, note) {
  const li = el("li", { class: phase.startsWith("fix_attempt") || phase.startsWith("apply_retry") || phase === "diagnosing" ? "fix" : phase === "failed" || phase === "deploy_success_verify_failed" ? "failed" : "done", title: note || "" }, phase.replace(/_/g, " "));
  $("phases").append(li);
  setPhase(phase);
}

function appendLog(line) {
  const log = $("log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(document.createTextNode(line + "\n"));
  if (atBottom) log.scrollTop = log.scrollHeight;
}

// Server-Sent Events over fetch, so the token travels in a header.
async function streamEvents(runId) {
  const r = await fetch("/runs/" + runId + "/events", { headers: authHeaders("GET") });
  if (!r.ok || !r.body) throw new Error("event stream: HTTP " + r.status);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (!data) continue;
      let ev;
      try { ev = JSON.parse(data); } catch (_) { continue; }
      if (name === "phase") {
        addPhase(ev.phase, ev.note);
        timelinePhase(ev);
        appendLog("── " + ev.phase + (ev.note ? ": " + ev.note : ""));
      } else if (name === "log") {
        appendLog(ev.line.message);
      } else if (name === "lagged") {
        appendLog("(" + ev.missed + " log lines skipped)");
      }
    }
  }
}

async function showStatus(runId) {
  let s;
  try { s = await api("GET", "/runs/" + runId + "/status"); } catch (e) { appendLog("status: " + e.message); return; }
  setPhase(s.phase);
  const v = $("verification");
  if (s.verification) {
    v.hidden = false;
    v.className = "verification " + (s.verification.ok ? "ok" : "bad");
    v.replaceChildren(
      el("div", {}, s.verification.ok ? "✔ Verified: the deployment answers" : "✘ Verification failed"),
      ...s.verification.checks.map((c) => el("div", { class: "mono small" }, c.url + " → " + (c.ok ? "HTTP " + c.status + " in " + c.latency_ms + " ms" : (c.error || "HTTP " + c.status)))));
    // The architecture again, now with where each resource runs.
    api("GET", "/runs/" + runId).then((r) => { if (r.run.plan && currentRun === runId) renderGraph(graphOf(r.run.plan), r.run.plan, r.run.outputs); }).catch(() => {});
  } else if (s.phase === "completed" && s.dry_run) {
    v.hidden = false;
    v.className = "verification ok";
    const n = s.change_set ? s.change_set.changes.length : 0;
    v.replaceChildren(el("div", {}, "Dry run complete: configuration valid, " + n + " change(s) planned, nothing applied."));
  } else if (s.phase === "failed") {
    v.hidden = false;
    v.className = "verification bad";
    v.replaceChildren(el("div", {}, "✘ Run failed: " + (s.error || "unknown reason")));
  }
  if (s.fix_attempts && s.fix_attempts.length) appendLog("fix attempts: " + s.fix_attempts.map((f) => "#" + f.attempt + " by " + f.fixer).join(", "));
}

// ---------------------------------------------------------------- ops

function incidentItem(i, extra) {
  const a = i.alert;
  const d = i.decision;
  return el("div", { class: "item sev-" + a.severity, "data-incident": i.id },
    el("div", { class: "item-head" },
      el("span", { class: "sev" }, a.severity),
      el("strong", {}, a.policy_name),
      el("span", { class: "mono muted" }, a.resource),
      el("span", { class: "status status-" + i.status }, i.status),
      el("span", { class: "when" }, when(i.created_at))),
    el("div", { class: "small muted" }, a.metric + (a.value !== null && a.value !== undefined ? " = " + a.value : "") + (a.threshold !== null && a.threshold !== undefined ? " (threshold " + a.threshold + ")" : "")),
    d ? el("div", { class: "small" }, "Decision: ", el("strong", {}, describe(d.recommended_action)), " · confidence ", el("span", { class: "conf" }, Math.round(d.confidence * 100) + "%"), " · risk " + d.risk) : null,
    d ? el("p", { class: "reason small" }, d.reasoning) : null,
    i.note ? el("div", { class: "small muted" }, i.note) : null,
    extra || null,
    el("button", { class: "btn btn-small", type: "button", "data-action": "details", onclick: () => openIncident(i.id) }, "Details"));
}

function describe(a) {
  if (!a) return "—";
  if (a.type === "scale_up") return "scale up to " + a.machine_type;
  if (a.type === "scale_out") return "scale out to " + a.instances + " instances";
  if (a.type === "modify_firewall") return "modify firewall";
  return a.type.replace("_", " ");
}

function pendingItem(i) {
  const prev = el("div", { class: "preview small mono" }, previews.get(i.id) || "loading dry-run preview…");
  if (!previews.has(i.id)) {
    previews.set(i.id, "loading dry-run preview…"); // one request at a time
    api("GET", "/ops/alerts/" + i.id + "/preview").then((p) => {
      previews.set(i.id, "Dry run: " + p.preview.summary + " · Cost change: " + p.cost_text);
      prev.textContent = previews.get(i.id);
    }).catch((e) => {
      previews.set(i.id, "No preview: " + e.message);
      prev.textContent = previews.get(i.id);
      setTimeout(() => previews.delete(i.id), 10000); // try again later
    });
  }
  if (!may("approver")) {
    const wait = el("div", { class: "small muted", "data-role": "message" }, "Waiting for an approver (you are " + (me ? "a " + me.role : "not signed in") + ").");
    return incidentItem(i, el("div", {}, prev, wait));
  }
  const approve = el("button", { class: "btn btn-ok", type: "button", "data-action": "approve" }, "Approve");
  const reject = el("button", { class: "btn", type: "button", "data-action": "reject" }, "Reject");
  const msg = el("span", { class: "small muted", "data-role": "message" }, messages.get(i.id) || "");
  const act = (verb) => async () => {
    approve.disabled = reject.disabled = true;
    try {
      const r = await api("POST", "/ops/alerts/" + i.id + "/" + verb, verb === "reject" ? {} : undefined);
      messages.set(i.id, r.message);
    } catch (e) {
      messages.set(i.id, e.message);
    }
    msg.textContent = messages.get(i.id);
    refreshOps();
  };
  approve.addEventListener("click", act("approve"));
  reject.addEventListener("click", act("reject"));
  const held = i.status === "blocked"
    ? "Blocked: autonomy was stopped when this was due to run; nothing will execute. Resume, then approve again."
    : stopped ? "Autonomy is stopped: approving executes nothing until it is resumed." : null;
  const note = held ? el("div", { class: "small", "data-role": "held" }, held) : null;
  return incidentItem(i, el("div", {}, prev, note, el("div", { class: "row" }, approve, reject, msg)));
}

async function historyItem(i) {
  let detail = null;
  try { detail = await api("GET", "/ops/alerts/" + i.id); } catch (_) { /* shown without actions */ }
  const actions = detail ? detail.actions : [];
  const approvals = detail ? detail.approvals : [];
  const lines = actions.map((x) => el("div", { class: "small " + (x.success ? "" : "muted") }, (x.success ? "✔ " : "✘ ") + x.summary + " · " + when(x.finished_at)));
  const who = approvals.filter((a) => a.effective).map((a) => (a.approved ? "approved by " : "rejected by ") + a.actor.channel + ":" + a.actor.id + (a.actor.name ? " (" + a.actor.name + ")" : ""));
  return incidentItem(i, el("div", {}, ...lines, who.length ? el("div", { class: "small muted" }, who.join(", ")) : null));
}

let refreshing = false;
async function refreshOps() {
  if (!signedIn() || refreshing) return;
  refreshing = true;
  // The lists are rebuilt: remember which button had the keyboard focus.
  const f = document.activeElement;
  const item = f && f.closest ? f.closest(".list [data-incident]") : null;
  const focusKey = item && f.dataset.action ? [item.closest(".list").id, item.dataset.incident, f.dataset.action] : null;
  try {
    const k = (await api("GET", "/ops/autonomy")).kill_switch;
    stopped = k.engaged;
    const st = $("autonomy-state");
    st.textContent = k.engaged ? "AUTONOMY STOPPED" + (k.set_by ? " by " + k.set_by : "") : "autonomy: on";
    st.className = "pill " + (k.engaged ? "pill-off" : "pill-on");
    $("stop-btn").hidden = k.engaged || !may("approver");
    $("resume-btn").hidden = !k.engaged || !may("operator");

    const all = (await api("GET", "/ops/alerts?limit=100")).incidents;
    const pending = all.filter((i) => i.status === "pending" || i.status === "blocked");
    $("pending").replaceChildren(...(pending.length ? pending.map(pendingItem)
      : [el("p", { class: "muted" }, "Nothing waiting for you.")]));
    $("alerts").replaceChildren(...(all.length ? all.map((i) => incidentItem(i)) : [el("p", { class: "muted" }, "No alerts yet.")]));
    const done = all.filter((i) => ["executing", "executed", "resolved", "unresolved", "rejected", "expired", "escalated", "ignored"].includes(i.status));
    const items = await Promise.all(done.slice(0, 20).map(historyItem));
    $("history").replaceChildren(...(items.length ? items : [el("p", { class: "muted" }, "No actions yet.")]));
    if (focusKey && (document.activeElement === document.body || !document.activeElement)) {
      const again = document.querySelector(`#${focusKey[0]} [data-incident="${focusKey[1]}"] [data-action="${focusKey[2]}"]`);
      if (again) again.focus();
    }
    banner("");
  } catch (e) {
    if (e.status !== 401) banner("Could not refresh: " + e.message);
  } finally {
    refreshing = false;
  }
}

$("stop-btn").addEventListener("click", async () => {
  try { await api("POST", "/ops/autonomy/stop", { reason: "STOP AUTONOMY pressed on the dashboard" }); } catch (e) { banner(e.message); }
  refreshOps();
});
$("resume-btn").addEventListener("click", async () => {
  if (!confirm("Resume autonomy? Blocked incidents will need a fresh approval.")) return;
  try { await api("POST", "/ops/autonomy/resume"); } catch (e) { banner(e.message); }
  refreshOps();
});

// The simulated cloud says so, permanently (readiness is public: no token needed).
fetch("/readyz").then((r) => r.json()).then((r) => { $("sim-banner").hidden = !r.simulated; }).catch(() => {});

showTokenState();
whoami().then(refreshOps);
setInterval(refreshOps, 2000);
// `/ops` is the product plan's address of the ops view: the same page, opened there.
if (location.pathname === "/ops") $("ops").scrollIntoView();
