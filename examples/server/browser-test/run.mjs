// Drives the dashboard of a running infraai-server in headless Chromium:
// goal → plan card (with its risk chips) → deploy → verification card →
// alert (in the alert feed) → decision and confidence → Approve → history
// shows exactly "resolved" → Reject another → STOP AUTONOMY → a new
// approval executes nothing. Second level: the architecture canvas (node and
// edge count, details by keyboard and click), the run timeline, the Terraform
// view (change set; for INFRAAI_BROKEN_RUN: an inline diagnostic at the line
// Terraform names, the diff between fix attempts 1 and 2), the incident view
// (chart, threshold line, action marker), a narrow window. Any request not to
// the server's origin is aborted and fails the test. Screenshots go to
// $INFRAAI_SCREENSHOTS.
//
// Env: INFRAAI_URL, INFRAAI_OPERATOR_TOKEN, INFRAAI_WEBHOOK_TOKEN,
// INFRAAI_SCREENSHOTS, INFRAAI_CHROMIUM (default /usr/bin/chromium),
// INFRAAI_ALERT_METRIC, INFRAAI_BROKEN_RUN (optional run id with broken files).
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const base = process.env.INFRAAI_URL;
const token = process.env.INFRAAI_OPERATOR_TOKEN;
const webhook = process.env.INFRAAI_WEBHOOK_TOKEN;
const shots = process.env.INFRAAI_SCREENSHOTS || "target/test-output";
const executablePath = process.env.INFRAAI_CHROMIUM || "/usr/bin/chromium";
// The metric the alert names (the local cloud re-reads it after the action).
const alertMetric = process.env.INFRAAI_ALERT_METRIC || "cpu/utilization";
// The metric a database alert names (the local cloud reads it from PostgreSQL).
const dbMetric = process.env.INFRAAI_DB_METRIC || "cloudsql.googleapis.com/database/network/connections";
const brokenRun = process.env.INFRAAI_BROKEN_RUN || "";
if (!base || !token || !webhook) throw new Error("INFRAAI_URL, INFRAAI_OPERATOR_TOKEN and INFRAAI_WEBHOOK_TOKEN are required");
mkdirSync(shots, { recursive: true });

const step = (m) => console.log("browser-test: " + m);
// A text node "null" under `sel`: an absent part handed to replaceChildren.
const strayNull = (page, sel) => page.$eval(sel, (root) => {
  const w = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  while (w.nextNode()) if (w.currentNode.textContent === "null") return true;
  return false;
});
const api = async (method, path, body) => {
  const r = await fetch(base + path, {
    method,
    headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(method + " " + path + ": " + r.status + " " + (await r.text()));
  return r.json();
};
const sendAlert = async (fingerprint, resource, resourceType, metric = alertMetric, policy = "High CPU") => {
  const r = await fetch(base + "/ops/webhook", {
    method: "POST",
    headers: { "X-Infraai-Webhook-Token": webhook, "Content-Type": "application/json" },
    body: JSON.stringify({
      source: "browser-test", fingerprint, policy_name: policy, resource, resource_type: resourceType,
      cloud: "test", metric, value: 0.97, threshold: 0.8, severity: "critical",
      state: "firing", started_at: new Date().toISOString(),
    }),
  });
  if (r.status !== 200) throw new Error("webhook: " + r.status + " " + (await r.text()));
  return (await r.json()).results[0].incident_id;
};

const userDataDir = mkdtempSync(join(tmpdir(), "infraai-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
// Offline: every request must go to the server; anything else is aborted and
// fails the test.
const origin = new URL(base).origin;
const external = [];
await context.route("**/*", (route) => {
  const url = route.request().url();
  if (new URL(url).origin === origin) return route.continue();
  external.push(url);
  return route.abort();
});
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => errors.push(e.message));
  // Layout shifts not caused by input (reported, see the end).
  await page.addInitScript(() => {
    window.__cls = 0;
    window.__shifts = [];
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) {
        if (e.hadRecentInput) continue;
        window.__cls += e.value;
        window.__shifts.push(e.value.toFixed(3) + " " + (e.sources || []).map((x) => x.node ? (x.node.id || x.node.className || x.node.nodeName) : "?").join("+"));
      }
    })
      .observe({ type: "layout-shift", buffered: true });
  });
  page.setDefaultTimeout(30000);
  await page.goto(base + "/");
  // The simulated-cloud banner shows exactly when the server is simulated.
  const simulated = (await api("GET", "/readyz")).simulated;
  await page.waitForFunction((sim) => document.getElementById("sim-banner").hidden === !sim, simulated);

  step("token");
  await page.fill("#token-input", token);
  await page.click("#token-save");
  await page.waitForFunction(() => document.getElementById("autonomy-state").textContent.includes("autonomy: on"));

  step("architecture canvas: the seed example (VM + database + monitoring), node and edge count, details");
  await page.fill("#goal", "a backend API with a postgres database for 10k users under $100/month");
  await page.click("#plan-btn");
  await page.waitForFunction(() => /database/.test(document.getElementById("plan-resources").textContent));
  const planRunId = (await page.textContent("#plan-run")).trim();
  const planRun = (await api("GET", "/runs/" + planRunId)).run;
  const wantNodes = planRun.plan.resources.length + planRun.plan.monitoring.length;
  const wantEdges = planRun.plan.resources.reduce((a, r) => a + (r.depends_on || []).length, 0) + planRun.plan.monitoring.length;
  const kinds = planRun.plan.resources.map((r) => r.kind);
  if (!kinds.includes("compute") || !kinds.includes("database") || !planRun.plan.monitoring.length) {
    throw new Error("the seed example is not VM + database + monitoring: " + kinds.join(",") + ", " + planRun.plan.monitoring.length + " policies");
  }
  await page.waitForSelector("#arch-card:not([hidden]) #arch-canvas .node");
  const gotNodes = await page.$$eval("#arch-canvas .node", (l) => l.length);
  const gotEdges = await page.$$eval("#arch-canvas .edge", (l) => l.length);
  if (gotNodes !== wantNodes || gotEdges !== wantEdges) throw new Error(`canvas: ${gotNodes} nodes / ${gotEdges} edges, want ${wantNodes} / ${wantEdges}`);
  // No two nodes overlap.
  const boxes = await page.$$eval("#arch-canvas .node", (l) => l.map((g) => { const b = g.getBoundingClientRect(); return [b.x, b.y, b.width, b.height]; }));
  for (let a = 0; a < boxes.length; a++) for (let b = a + 1; b < boxes.length; b++) {
    const [x1, y1, w1, h1] = boxes[a], [x2, y2, w2, h2] = boxes[b];
    if (x1 < x2 + w2 && x2 < x1 + w1 && y1 < y2 + h2 && y2 < y1 + h1) throw new Error("canvas nodes overlap");
  }
  const computeName = planRun.plan.resources.find((r) => r.kind === "compute").name;
  // Keyboard: focus the node and press Enter.
  await page.focus(`#arch-canvas .node[data-node="resource:${computeName}"]`);
  await page.keyboard.press("Enter");
  await page.waitForFunction((n) => document.querySelector("#arch-details h3")?.textContent === n, computeName);
  const details = await page.textContent("#arch-details");
  if (await strayNull(page, "#arch-details")) throw new Error("node details draw a literal null: " + details);
  const policiesOn = planRun.plan.monitoring.filter((m) => m.resource_ref === computeName);
  if (!details.includes("Monitoring policies (" + policiesOn.length + ")")) throw new Error("node details lack its policies: " + details);
  for (const m of policiesOn) if (!details.includes(m.metric_name)) throw new Error("policy " + m.metric_name + " not in details");
  await page.locator("#arch-card").screenshot({ path: join(shots, "6-architecture.png") });
  // Click a database node too.
  const dbName = planRun.plan.resources.find((r) => r.kind === "database").name;
  await page.click(`#arch-canvas .node[data-node="resource:${dbName}"]`);
  await page.waitForFunction((n) => document.querySelector("#arch-details h3")?.textContent === n, dbName);

  // The compute resource the plan deploys (first row with a resource type).
  const [resource, resourceType] = await page.$$eval("#plan-resources tr", (rows) => {
    for (const r of rows) {
      const c = [...r.children].map((td) => td.textContent.trim());
      if (c[1] === "compute" && c[2] !== "—") return [c[0], c[2]];
    }
    return [null, null];
  });
  if (!resource) throw new Error("no compute resource in the plan");

  step("goal → plan card");
  await page.fill("#goal", "a backend API with a postgres database for 10k users under $100/month");
  await page.click("#plan-btn");
  await page.waitForSelector("#plan-card:not([hidden])");
  await page.waitForFunction((prev) => document.getElementById("plan-run").textContent !== prev && !document.getElementById("plan-btn").disabled, planRunId);
  for (const id of ["#plan-cloud", "#plan-region", "#plan-machine", "#plan-cost", "#plan-confidence"]) {
    const t = (await page.textContent(id)).trim();
    if (!t) throw new Error(id + " is empty");
  }
  if (!(await page.textContent("#plan-cost")).includes("$")) throw new Error("no cost shown");
  // Risk flags: one chip per flag of the stored plan, in order.
  const shownRun = (await page.textContent("#plan-run")).trim();
  const wantRisks = (await api("GET", "/runs/" + shownRun)).run.plan.risk_flags;
  if (!wantRisks.length) throw new Error("the plan has no risk flags to show; pick a goal that has some");
  const chips = await page.$$eval("#plan-risks .chip", (l) => l.map((c) => c.textContent.trim()));
  if (JSON.stringify(chips) !== JSON.stringify(wantRisks)) throw new Error("risk chips " + JSON.stringify(chips) + ", want " + JSON.stringify(wantRisks));
  await page.waitForSelector("#files details");
  await page.screenshot({ path: join(shots, "1-plan.png"), fullPage: true });

  step("deploy → verification card");
  await page.click("#proceed-btn");
  await page.waitForSelector("#verification.ok:not([hidden])", { timeout: 120000 });
  const phases = await page.$$eval("#phases li", (l) => l.map((x) => x.textContent));
  for (const p of ["validating", "planning", "applying", "verifying", "verified"]) {
    if (!phases.includes(p)) throw new Error("phase " + p + " not shown: " + phases.join(","));
  }
  if (!(await page.textContent("#log")).trim()) throw new Error("no live log lines");
  await page.screenshot({ path: join(shots, "2-deployed.png"), fullPage: true });

  step("the database node deployed, its metrics in an incident's chart");
  const deployedRun = (await api("GET", "/runs/" + shownRun)).run;
  const db = deployedRun.plan.resources.find((r) => r.kind === "database");
  if (!db) throw new Error("the deployed plan has no database");
  const dbAt = (deployedRun.outputs.endpoints || {})[db.name];
  if (!simulated && !/^127\.0\.0\.1:\d+$/.test(dbAt || "")) throw new Error("the database runs nowhere: outputs " + JSON.stringify(deployedRun.outputs));
  if (dbAt) {
    await page.waitForSelector(`#arch-canvas .node.deployed[data-node="resource:${db.name}"]`);
    await page.click(`#arch-canvas .node[data-node="resource:${db.name}"]`);
    await page.waitForFunction((at) => document.getElementById("arch-details").textContent.includes(at), dbAt);
  }
  const dbIncident = await sendAlert("browser-db-1", db.name, db.resource_type, dbMetric, "sql_connections_high");
  const dbItem = `#pending [data-incident="${dbIncident}"]`;
  await page.waitForSelector(dbItem + " button[data-action=details]");
  await page.click(dbItem + " button[data-action=details]");
  // The watcher's readings of the database: the alert's point and at least
  // two real readings.
  await page.waitForFunction(() => document.querySelectorAll("#incident-view .chart .pt").length >= 3, null, { timeout: 60000 });
  const dbPoints = await page.$$eval("#incident-view .chart .pt", (l) => l.length);
  if (!(await page.textContent("#incident-view")).includes(db.name)) throw new Error("the incident view does not name the database");
  await page.locator("#incident-view").screenshot({ path: join(shots, "16-database-incident.png") });
  step(`database ${db.name} (${db.resource_type}) at ${dbAt || "(simulated)"}: ${dbPoints} points of ${dbMetric}`);
  await page.keyboard.press("Escape");
  await page.waitForSelector("#incident-view:not([open])", { state: "attached" });
  await page.click(dbItem + " button[data-action=reject]");
  await page.waitForFunction((id) => document.querySelector(`#history [data-incident="${id}"] .status`)?.textContent.trim() === "rejected", dbIncident);

  step("run timeline and Terraform view after the deploy");
  const tl = await page.$$eval("#timeline .tl-row", (l) => l.map((r) => [r.dataset.phase, r.querySelector(".tl-dur").textContent]));
  for (const p of ["initializing", "validating", "planning", "applying", "verifying"]) {
    const row = tl.find((r) => r[0] === p);
    if (!row || !/\d/.test(row[1])) throw new Error("timeline lacks a duration for " + p + ": " + JSON.stringify(tl));
  }
  await page.locator("#deploy-card").screenshot({ path: join(shots, "7-timeline.png") });
  await page.waitForSelector("#tf-card:not([hidden]) #tf-plan details");
  const planText = await page.textContent("#tf-plan");
  if (!/to create/.test(planText) || !/\+ create/.test(planText)) throw new Error("change set not rendered: " + planText.slice(0, 200));
  // The files in CodeMirror: HCL highlighting (block types, strings in the
  // dashboard's colors), line numbers, read-only.
  await page.waitForSelector("#tf-code .cm-editor .cm-content .cm-line");
  if (!(await page.$$eval("#tf-code .cm-lineNumbers .cm-gutterElement", (l) => l.some((g) => g.textContent === "1")))) throw new Error("no line numbers in the editor");
  // Block types, block labels, attribute names and strings each in their color.
  const colors = await page.$$eval("#tf-code .cm-line span", (l) => [...new Set(l.map((x) => getComputedStyle(x).color))]);
  const want = { "block type": "rgb(199, 146, 234)", "block label": "rgb(255, 203, 107)", attribute: "rgb(130, 170, 255)", string: "rgb(195, 232, 141)" };
  const lacking = Object.entries(want).filter(([, c]) => !colors.includes(c)).map(([k]) => k);
  if (lacking.length) throw new Error("no HCL highlighting for " + lacking.join(", ") + " in the editor: " + colors.join(" "));
  if (!(await page.isVisible("#tf-card .ro-label"))) throw new Error("the editor is not labelled read-only");
  await page.locator("#tf-card").screenshot({ path: join(shots, "8-terraform-plan.png") });
  const before0 = await page.textContent("#tf-code .cm-content");
  await page.click("#tf-code .cm-line", { position: { x: 4, y: 4 } });
  await page.keyboard.type("zz");
  await page.keyboard.press("Enter");
  if ((await page.textContent("#tf-code .cm-content")) !== before0) throw new Error("the read-only editor took typing");

  step("alert → decision and confidence → Approve");
  const first = await sendAlert("browser-cpu-1", resource, resourceType);
  const item = `#pending [data-incident="${first}"]`;
  await page.waitForSelector(item + " button[data-action=approve]");
  // The alert feed shows it: severity style, policy, resource, metric value.
  const feedItem = `#alerts [data-incident="${first}"]`;
  await page.waitForSelector(feedItem + ".sev-critical");
  const feedText = await page.textContent(feedItem);
  for (const want of ["critical", "High CPU", resource, alertMetric + " = 0.97", "threshold 0.8"]) {
    if (!feedText.includes(want)) throw new Error("alert feed item lacks " + JSON.stringify(want) + ": " + feedText);
  }
  const text = await page.textContent(item);
  if (!/Decision: .*confidence \d+%/.test(text)) throw new Error("decision/confidence not shown: " + text);
  await page.waitForFunction((sel) => document.querySelector(sel + " .preview")?.textContent.startsWith("Dry run"), item);
  // The cost change, from the cloud's price table.
  const previewText = await page.textContent(item + " .preview");
  if (!/Cost change: .+: [+-]\$\d+\.\d\d\/month/.test(previewText)) throw new Error("the dry run lacks the cost change: " + previewText);
  step("pending: " + previewText);
  await page.screenshot({ path: join(shots, "3-pending.png"), fullPage: true });
  await page.click(item + " button[data-action=approve]");
  await page.waitForFunction((id) => {
    const h = document.querySelector(`#history [data-incident="${id}"]`);
    return h && h.textContent.includes("✔") && h.textContent.includes("approved by web:");
  }, first, { timeout: 60000 });
  // The metric re-check closes it: wait for either outcome, then require
  // exactly "resolved" (the action brought the metric back under the
  // threshold). A bare /resolved/ would also match "unresolved".
  const statusSel = `#history [data-incident="${first}"] .status`;
  await page.waitForFunction((sel) => ["resolved", "unresolved"].includes((document.querySelector(sel)?.textContent || "").trim()), statusSel, { timeout: 60000 });
  const finalStatus = (await page.textContent(statusSel)).trim();
  if (finalStatus !== "resolved") throw new Error("history shows " + JSON.stringify(finalStatus) + ", want exactly \"resolved\"");
  if (!(await page.$(statusSel + ".status-resolved"))) throw new Error("the history status chip lacks the status-resolved style");
  await page.screenshot({ path: join(shots, "4-history.png"), fullPage: true });
  step("autonomy card: cost summed per deployment, a window from the form, an earned level pinned");
  await page.waitForFunction(() => /Deployment \S+: \+\$\d+\.\d\d\/month from 1 action/.test(document.getElementById("costs")?.textContent || ""), null, { timeout: 15000 });
  await page.fill("#window-name", "nightly freeze");
  await page.selectOption("#window-kind", "freeze");
  await page.fill("#window-cron", "0 2 * * *");
  await page.fill("#window-minutes", "30");
  await page.click("#window-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#windows [data-window]")?.textContent.includes("nightly freeze"));
  const made = (await api("GET", "/ops/windows")).windows;
  if (made.length !== 1 || made[0].kind !== "freeze" || made[0].created_by !== "web:operator" || made[0].schedule.cron !== "0 2 * * *") {
    throw new Error("the window form made " + JSON.stringify(made));
  }
  const pinSel = `#earned select[data-pair="restart/${resourceType}"]`;
  await page.waitForSelector(pinSel);
  await page.selectOption(pinSel, "never");
  await page.waitForFunction((sel) => document.querySelector(sel)?.closest(".item")?.textContent.includes("never (pinned)"), pinSel);
  const pinned = (await api("GET", "/ops/autonomy/levels")).pairs.find((p) => p.action === "restart" && p.resource_type === resourceType);
  if (!pinned || pinned.level !== "never" || !pinned.pinned) throw new Error("the pin did not hold: " + JSON.stringify(pinned));
  await page.waitForFunction((t) => document.getElementById("autonomy-changes")?.textContent.includes(t), `restart on ${resourceType}: shadow → never`);
  const autonomyText = await page.textContent("#autonomy-card");
  step("autonomy card: " + autonomyText.replace(/\s+/g, " ").slice(0, 300));
  await page.screenshot({ path: join(shots, "4b-autonomy.png"), fullPage: true });
  page.once("dialog", (d) => d.accept());
  await page.click(`#windows [data-window="${made[0].id}"] button[data-action=delete-window]`);
  await page.waitForFunction(() => !document.querySelector("#windows [data-window]"));
  await page.selectOption(pinSel, "");
  await page.waitForFunction((sel) => !document.querySelector(sel)?.closest(".item")?.textContent.includes("(pinned)"), pinSel);


  step("incident view: chart, threshold line, action marker, audit trail");
  // Keyboard: the Details button keeps its focus across list refreshes, Enter opens the view.
  await page.focus(`#history [data-incident="${first}"] button[data-action=details]`);
  await page.waitForTimeout(2500);
  const kept = await page.evaluate((id) => {
    const a = document.activeElement;
    return a?.dataset.action === "details" && a.closest("[data-incident]")?.dataset.incident === id && a.closest(".list")?.id === "history";
  }, first);
  if (!kept) throw new Error("keyboard focus lost when the lists refreshed");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#incident-view[open] .chart .threshold", { state: "attached" });
  await page.waitForSelector("#incident-view .chart .marker-action", { state: "attached" });
  await page.waitForFunction(() => document.querySelectorAll("#incident-view .chart .pt").length >= 2);
  const thr = await page.getAttribute("#incident-view .chart .threshold", "data-threshold");
  if (Number(thr) !== 0.8) throw new Error("threshold line at " + thr + ", want 0.8");
  for (const k of ["alert", "decision", "approval", "action", "feedback"]) {
    if (!(await page.$(`#incident-view .chart .marker-${k}`))) throw new Error("no " + k + " marker on the chart");
  }
  const ivText = await page.textContent("#incident-view");
  if (await strayNull(page, "#incident-view")) throw new Error("the incident view draws a literal null: " + ivText);
  if (!/Confidence \d+%/.test(ivText)) throw new Error("incident view lacks the confidence");
  if ((await page.$$("#iv-audit li")).length < 3) throw new Error("audit timeline too short");
  await page.locator("#incident-view").screenshot({ path: join(shots, "9-incident.png") });
  // Live refreshes (every 2 s: new samples, audit records) move nothing.
  const cls0 = await page.evaluate(() => window.__cls);
  const pts0 = await page.$$eval("#incident-view .chart .pt", (l) => l.length);
  await page.waitForTimeout(4500);
  const pts1 = await page.$$eval("#incident-view .chart .pt", (l) => l.length);
  const clsLive = (await page.evaluate(() => window.__cls)) - cls0;
  if (clsLive > 0.01) throw new Error("layout shift while the incident view refreshed: " + clsLive.toFixed(3));
  step(`incident view live: ${pts0} → ${pts1} points, layout shift ${clsLive.toFixed(3)}`);
  await page.keyboard.press("Escape");
  await page.waitForSelector("#incident-view:not([open])", { state: "attached" });

  step("incident view of an alert that cleared at once (no guardrail notes): nothing absent is drawn");
  const clearedAlert = (state) => fetch(base + "/ops/webhook", {
    method: "POST",
    headers: { "X-Infraai-Webhook-Token": webhook, "Content-Type": "application/json" },
    body: JSON.stringify({
      source: "browser-test", fingerprint: "browser-cleared", policy_name: "High CPU", resource: "not-deployed-1",
      resource_type: resourceType, cloud: "test", metric: alertMetric, value: 0.97, threshold: 0.8, severity: "warning",
      state, started_at: "2026-11-25T10:00:00Z",
    }),
  }).then(async (r) => { if (r.status !== 200) throw new Error("webhook: " + r.status + " " + (await r.text())); return r.json(); });
  const clearedId = (await clearedAlert("firing")).results[0].incident_id;
  await clearedAlert("resolved");
  await page.click(`#history [data-incident="${clearedId}"] button[data-action=details]`);
  await page.waitForFunction(() => /the alert cleared/.test(document.getElementById("iv-decision")?.textContent || ""));
  if (await strayNull(page, "#iv-decision")) throw new Error("the incident view draws a literal null: " + (await page.textContent("#iv-decision")));
  await page.keyboard.press("Escape");
  await page.waitForSelector("#incident-view:not([open])", { state: "attached" });

  if (brokenRun) {
    step("broken run: inline diagnostic at Terraform's line, diff between fix attempts");
    await page.fill("#run-open-id", brokenRun);
    await page.click("#run-open-btn");
    await page.waitForFunction((id) => document.getElementById("plan-run").textContent === id, brokenRun);
    // The timeline is live while the run is in progress.
    await page.evaluate(() => {
      window.__sawLive = false;
      new MutationObserver(() => { if (document.querySelector("#timeline .tl-row.live .tl-dur")?.textContent.includes("…")) window.__sawLive = true; })
        .observe(document.getElementById("timeline"), { childList: true, subtree: true, characterData: true });
    });
    await page.click("#dryrun-btn");
    await page.waitForSelector("#verification.bad:not([hidden])", { timeout: 120000 });
    if (!(await page.evaluate(() => window.__sawLive))) throw new Error("the timeline never showed a running phase");
    const fixRows = await page.$$eval("#timeline .tl-row.fix", (l) => l.map((r) => r.dataset.phase + " " + r.querySelector(".tl-dur").textContent));
    if (fixRows.length !== 3 || !fixRows.every((r) => /\d/.test(r))) throw new Error("timeline fix attempts: " + fixRows.join(", "));
    await page.locator("#deploy-card").screenshot({ path: join(shots, "13-timeline-broken.png") });
    await page.waitForFunction(() => /failed/.test(document.getElementById("tf-run").textContent));
    const broken = (await api("GET", "/runs/" + brokenRun)).run;
    // The line Terraform names, read from the run's files (not from the page).
    const lineOf = (text, needle) => text.split("\n").findIndex((l) => l.includes(needle)) + 1;
    const missingLine = lineOf(broken.files.files["main.tf"], "local_file.missing");
    const undeclared = broken.diagnostics.find((d) => d.summary.includes("undeclared resource"));
    if (!missingLine || !undeclared || undeclared.range.start_line !== missingLine) throw new Error("terraform did not report the undeclared resource at line " + missingLine + ": " + JSON.stringify(broken.diagnostics));
    // In CodeMirror's DOM: a lint range on the line holding the broken
    // reference, the gutter's line number and error marker beside it.
    // The list under the editor is in line order; a click on an entry
    // brings its line into the editor's view.
    const inline = async (needle, line) => {
      const starts = await page.$$eval("#tf-diags .tf-diag", (l) => l.map((d) => Number(d.dataset.start)));
      if (starts.some((x, k) => k && x < starts[k - 1])) throw new Error("diagnostics list not in line order: " + starts);
      await page.click(`#tf-diags .tf-diag-error[data-start="${line}"] button`);
      await page.locator("#tf-code").scrollIntoViewIfNeeded();
      await page.waitForFunction((n) => [...document.querySelectorAll("#tf-code .cm-lintRange-error")].some((r) => r.closest(".cm-line")?.textContent.includes(n)), needle, { timeout: 10000 })
        .catch(async (e) => {
          const seen = await page.evaluate(() => ({ ranges: [...document.querySelectorAll("#tf-code .cm-lintRange-error")].map((r) => r.closest(".cm-line")?.textContent),
            lines: [...document.querySelectorAll("#tf-code .cm-line")].map((l) => l.textContent).filter((t) => t.trim()).slice(0, 40), list: document.getElementById("tf-diags").textContent }));
          throw new Error("no inline diagnostic on the line with " + needle + ": " + JSON.stringify(seen) + " (" + e.message + ")");
        });
      return page.evaluate((n) => {
        const line = [...document.querySelectorAll("#tf-code .cm-lintRange-error")].map((r) => r.closest(".cm-line")).find((l) => l.textContent.includes(n));
        const top = line.getBoundingClientRect().top;
        const at = (sel) => [...document.querySelectorAll(sel)].find((g) => Math.abs(g.getBoundingClientRect().top - top) < 2);
        return { number: Number(at("#tf-code .cm-lineNumbers .cm-gutterElement")?.textContent), marker: !!at("#tf-code .cm-gutter-lint .cm-gutterElement")?.querySelector(".cm-lint-marker-error") };
      }, needle);
    };
    const shown = await inline("local_file.missing", missingLine);
    if (shown.number !== missingLine || !shown.marker) throw new Error(`inline diagnostic on line ${shown.number} (marker ${shown.marker}), the broken reference is on ${missingLine}`);
    const listed = await page.textContent(`#tf-diags .tf-diag-error[data-start="${missingLine}"]`);
    if (!listed.includes(undeclared.summary)) throw new Error("the diagnostics list lacks line " + missingLine + ": " + listed);
    // The message on hover.
    await page.hover(`#tf-code .cm-line:has-text("local_file.missing") .cm-lintRange-error`);
    await page.waitForSelector("#tf-code .cm-tooltip-lint .cm-diagnostic-error");
    if (!(await page.textContent("#tf-code .cm-tooltip-lint")).includes(undeclared.summary)) throw new Error("the hover tooltip lacks the message");
    await page.locator("#tf-card").screenshot({ path: join(shots, "10-terraform-broken.png") });
    await page.mouse.move(0, 0);
    // Diffs by @codemirror/merge, checked against the attempts' files.
    const pairs = await page.$$eval("#tf-diff-pair option", (l) => l.map((o) => o.value));
    if (!pairs.includes("1:2")) throw new Error("no diff between attempts 1 and 2: " + pairs.join(","));
    await page.selectOption("#tf-diff-pair", "1:2");
    const filesOf = (n) => broken.fix_attempts.find((f) => f.attempt === n).files.files;
    const expectDiff = async (a, b, what) => {
      const added = [], removed = [];
      for (const [name, text] of Object.entries(b)) {
        const old = (a[name] || "").split("\n");
        added.push(...text.split("\n").filter((l) => l.trim() && !old.includes(l)).map((l) => l.trim()));
        removed.push(...old.filter((l) => l.trim() && !text.split("\n").includes(l)).map((l) => l.trim()));
      }
      if (!added.length && !removed.length) throw new Error(what + ": the attempts' files do not differ");
      await page.locator("#tf-diff").scrollIntoViewIfNeeded();
      await page.waitForSelector("#tf-diff .cm-changedLine, #tf-diff .cm-deletedChunk .cm-deletedLine", { state: "attached" });
      const got = await page.evaluate(() => ({
        added: [...document.querySelectorAll("#tf-diff .cm-changedLine")].map((l) => l.textContent.trim()),
        removed: [...document.querySelectorAll("#tf-diff .cm-deletedChunk .cm-deletedLine")].map((l) => l.textContent.trim()),
      }));
      const lost = [...added.filter((l) => !got.added.includes(l)), ...removed.filter((l) => !got.removed.includes(l))];
      if (lost.length || got.added.length < added.length || got.removed.length < removed.length) throw new Error(what + ": the merge view lacks " + JSON.stringify(lost) + "; shows " + JSON.stringify(got));
      step(`broken run: ${what}: ${got.added.length} inserted / ${got.removed.length} deleted line(s): ` + [...got.added.map((l) => "+ " + l), ...got.removed.map((l) => "- " + l)].join(" | "));
    };
    await expectDiff(filesOf(1), filesOf(2), "attempt 1 → 2");
    await page.locator("#tf-diff").screenshot({ path: join(shots, "11-fix-diff.png") });
    // Browse back one step: generated → attempt 1.
    if (pairs[0] === "before:1") {
      await page.click("#tf-diff-prev");
      if ((await page.inputValue("#tf-diff-pair")) !== "before:1") throw new Error("◀ did not step back to generated → attempt 1");
      await expectDiff(broken.fix_attempts[0].files_before.files, filesOf(1), "generated → attempt 1");
    }
    // The generated files with attempt 1's diagnostics in place.
    await page.selectOption("#tf-source", "before");
    const bogus = lineOf(broken.fix_attempts[0].files_before.files["main.tf"], "bogus_setting");
    const unsupported = await inline("bogus_setting", bogus);
    if (!bogus || unsupported.number !== bogus || !unsupported.marker) throw new Error(`attempt 1: inline diagnostic on line ${unsupported.number}, bogus_setting is on ${bogus}`);
    const placed = await page.$$eval("#tf-diags .tf-diag", (l) => l.map((d) => [Number(d.dataset.start), d.querySelector("strong").textContent]));
    if (!placed.some(([l, t]) => l === bogus && t.includes("Unsupported argument"))) throw new Error("attempt 1: Unsupported argument not listed at line " + bogus + ": " + JSON.stringify(placed));
    step("broken run: attempt 1 diagnostics in the generated files: " + placed.map(([l, t]) => l + " " + t).join("; "));
    await page.locator("#tf-card").screenshot({ path: join(shots, "14-terraform-before-attempt-1.png") });
  }

  step("narrow window: no horizontal overflow");
  await page.setViewportSize({ width: 400, height: 800 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) {
    const wide = await page.evaluate(() => [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && e.offsetParent !== null)
      .slice(0, 8).map((e) => e.tagName + "#" + e.id + "." + e.className + " " + Math.round(e.getBoundingClientRect().right)));
    throw new Error("page overflows a 400 px window by " + overflow + " px: " + wide.join(", "));
  }
  await page.screenshot({ path: join(shots, "12-narrow.png"), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });

  step("Reject → nothing runs, history shows the rejection");
  const rejected = await sendAlert("browser-cpu-reject", resource, resourceType);
  const itemR = `#pending [data-incident="${rejected}"]`;
  await page.waitForSelector(itemR + " button[data-action=reject]");
  await page.click(itemR + " button[data-action=reject]");
  await page.waitForFunction((id) => {
    const h = document.querySelector(`#history [data-incident="${id}"]`);
    return h && h.querySelector(".status")?.textContent.trim() === "rejected" && h.textContent.includes("rejected by web:");
  }, rejected, { timeout: 30000 });
  if (await page.$(itemR)) throw new Error("a rejected incident is still waiting for approval");
  const rDetail = await api("GET", "/ops/alerts/" + rejected);
  if (rDetail.incident.status !== "rejected" || rDetail.actions.length !== 0) throw new Error("reject: status " + rDetail.incident.status + ", " + rDetail.actions.length + " action(s)");

  step("STOP AUTONOMY → a new approval executes nothing");
  const second = await sendAlert("browser-cpu-2", resource, resourceType);
  const item2 = `#pending [data-incident="${second}"]`;
  await page.waitForSelector(item2 + " button[data-action=approve]");
  await page.click("#stop-btn");
  await page.waitForFunction(() => document.getElementById("autonomy-state").textContent.includes("AUTONOMY STOPPED"));
  await page.waitForFunction((sel) => document.querySelector(sel + " [data-role=held]")?.textContent.includes("Autonomy is stopped"), item2);
  await page.click(item2 + " button[data-action=approve]");
  await page.waitForFunction((sel) => (document.querySelector(sel + " [data-role=message]")?.textContent || "").includes("nothing was executed"), item2);
  await page.waitForTimeout(1000);
  const detail = await api("GET", "/ops/alerts/" + second);
  if (detail.actions.length !== 0) throw new Error("an action ran while autonomy was stopped");
  if (detail.incident.status !== "pending") throw new Error("expected still pending, got " + detail.incident.status);
  await page.screenshot({ path: join(shots, "5-stopped.png"), fullPage: true });

  step("contrast: every visible text against its background (WCAG AA)");
  const lowContrast = await page.evaluate(() => {
    const rgba = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    // The first opaque background up the tree (the page's own at the top).
    const background = (e) => {
      for (let n = e; n; n = n.parentElement) {
        const c = rgba(getComputedStyle(n).backgroundColor);
        if (c.length >= 3 && (c.length === 3 || c[3] > 0.5)) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const bad = [];
    let checked = 0;
    for (const e of document.querySelectorAll("body *")) {
      if (e.closest("svg") || !e.checkVisibility?.()) continue;
      const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own) continue;
      const st = getComputedStyle(e);
      if (st.visibility === "hidden" || +st.opacity === 0 || e.disabled) continue;
      const fg = rgba(st.color).slice(0, 3), bg = background(e);
      const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
      const ratio = (hi + 0.05) / (lo + 0.05);
      const size = parseFloat(st.fontSize), bold = +st.fontWeight >= 700;
      const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
      checked++;
      if (ratio < need) bad.push(`${e.tagName.toLowerCase()}.${[...e.classList].join(".")} ${st.color} on rgb(${bg.join(", ")}) ${ratio.toFixed(2)} < ${need}`);
    }
    return { checked, bad: [...new Set(bad)] };
  });
  step(`contrast: ${lowContrast.checked} text elements checked, ${lowContrast.bad.length} below AA`);
  if (lowContrast.bad.length) throw new Error("text below WCAG AA contrast: " + lowContrast.bad.slice(0, 15).join("; "));

  step("architecture canvas with 30 nodes: readable at natural size, no overlap, no sideways scroll");
  const big = await page.evaluate(() => {
    const nodes = [], edges = [];
    for (let i = 0; i < 10; i++) nodes.push({ id: "resource:web-" + i, type: "resource", label: "web-" + i, kind: "compute", resource_type: "gce_instance", machine_type: "e2-medium" });
    for (let i = 0; i < 2; i++) nodes.push({ id: "resource:db-" + i, type: "resource", label: "db-" + i, kind: "database", resource_type: "cloud_sql" });
    for (let i = 0; i < 18; i++) nodes.push({ id: "policy:p" + i, type: "monitoring_policy", label: "cpu_high web-" + (i % 10), comparison: "greater_than", threshold: 0.8, severity: "critical" });
    for (let i = 0; i < 10; i++) edges.push({ from: "resource:web-" + i, to: "resource:db-" + (i % 2), type: "database_connection" });
    for (let i = 0; i < 18; i++) edges.push({ from: "policy:p" + i, to: "resource:web-" + (i % 10), type: "monitors" });
    renderGraph({ nodes, edges }, { resources: [], monitoring: [] });
    const box = document.querySelector(".arch-canvas-box");
    const rects = [...document.querySelectorAll("#arch-canvas .node")].map((g) => { const b = g.getBoundingClientRect(); return [b.x, b.y, b.width, b.height]; });
    return { rects, edges: document.querySelectorAll("#arch-canvas .edge").length, scroll: box.scrollWidth - box.clientWidth };
  });
  if (big.rects.length !== 30 || big.edges !== 28) throw new Error(`30-node canvas: ${big.rects.length} nodes / ${big.edges} edges`);
  for (let a = 0; a < big.rects.length; a++) for (let b = a + 1; b < big.rects.length; b++) {
    const [x1, y1, w1, h1] = big.rects[a], [x2, y2, w2, h2] = big.rects[b];
    if (x1 < x2 + w2 && x2 < x1 + w1 && y1 < y2 + h2 && y2 < y1 + h1) throw new Error("30-node canvas: nodes overlap");
  }
  const narrowest = Math.min(...big.rects.map((r) => r[2]));
  if (narrowest < 150) throw new Error(`30-node canvas: nodes shrink to ${narrowest.toFixed(0)} px wide (unreadable)`);
  if (big.scroll > 0) throw new Error(`30-node canvas scrolls sideways by ${big.scroll} px at 1280 px`);
  step(`30-node canvas: nodes ${narrowest.toFixed(0)} px wide, no overlap`);
  await page.locator("#arch-card").screenshot({ path: join(shots, "15-architecture-30.png") });
  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  if (external.length) throw new Error("requests to other origins: " + external.join(", "));
  step("cumulative layout shift without input: " + (await page.evaluate(() => window.__cls)).toFixed(3) + " (" + (await page.evaluate(() => window.__shifts.join("; "))) + ")");
  step("ok");
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
