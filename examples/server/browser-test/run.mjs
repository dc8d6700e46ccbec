// Drives the dashboard of a running infraai-server in headless Chromium:
// goal → plan card → deploy → verification card → alert → decision and
// confidence → Approve → history shows the outcome → STOP AUTONOMY → a new
// approval executes nothing. Screenshots go to $INFRAAI_SCREENSHOTS.
//
// Env: INFRAAI_URL, INFRAAI_OPERATOR_TOKEN, INFRAAI_WEBHOOK_TOKEN,
// INFRAAI_SCREENSHOTS, INFRAAI_CHROMIUM (default /usr/bin/chromium),
// INFRAAI_ALERT_METRIC.
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
if (!base || !token || !webhook) throw new Error("INFRAAI_URL, INFRAAI_OPERATOR_TOKEN and INFRAAI_WEBHOOK_TOKEN are required");
mkdirSync(shots, { recursive: true });

const step = (m) => console.log("browser-test: " + m);
const api = async (method, path, body) => {
  const r = await fetch(base + path, {
    method,
    headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(method + " " + path + ": " + r.status + " " + (await r.text()));
  return r.json();
};
const sendAlert = async (fingerprint, resource, resourceType) => {
  const r = await fetch(base + "/ops/webhook", {
    method: "POST",
    headers: { "X-Infraai-Webhook-Token": webhook, "Content-Type": "application/json" },
    body: JSON.stringify({
      source: "browser-test", fingerprint, policy_name: "High CPU", resource, resource_type: resourceType,
      cloud: "test", metric: alertMetric, value: 0.97, threshold: 0.8, severity: "critical",
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
  viewport: { width: 1400, height: 1000 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => errors.push(e.message));
  page.setDefaultTimeout(30000);
  await page.goto(base + "/");

  step("token");
  await page.fill("#token-input", token);
  await page.click("#token-save");
  await page.waitForFunction(() => document.getElementById("autonomy-state").textContent.includes("autonomy: on"));

  step("goal → plan card");
  await page.fill("#goal", "a backend API for 10k users under $100/month");
  await page.click("#plan-btn");
  await page.waitForSelector("#plan-card:not([hidden])");
  for (const id of ["#plan-cloud", "#plan-region", "#plan-machine", "#plan-cost", "#plan-confidence"]) {
    const t = (await page.textContent(id)).trim();
    if (!t) throw new Error(id + " is empty");
  }
  if (!(await page.textContent("#plan-cost")).includes("$")) throw new Error("no cost shown");
  await page.waitForSelector("#files details");
  await page.screenshot({ path: join(shots, "1-plan.png"), fullPage: true });

  // The compute resource the plan deploys (first row with a resource type).
  const [resource, resourceType] = await page.$$eval("#plan-resources tr", (rows) => {
    for (const r of rows) {
      const c = [...r.children].map((td) => td.textContent.trim());
      if (c[1] === "compute" && c[2] !== "—") return [c[0], c[2]];
    }
    return [null, null];
  });
  if (!resource) throw new Error("no compute resource in the plan");

  step("deploy → verification card");
  await page.click("#proceed-btn");
  await page.waitForSelector("#verification.ok:not([hidden])", { timeout: 120000 });
  const phases = await page.$$eval("#phases li", (l) => l.map((x) => x.textContent));
  for (const p of ["validating", "planning", "applying", "verifying", "completed"]) {
    if (!phases.includes(p)) throw new Error("phase " + p + " not shown: " + phases.join(","));
  }
  if (!(await page.textContent("#log")).trim()) throw new Error("no live log lines");
  await page.screenshot({ path: join(shots, "2-deployed.png"), fullPage: true });

  step("alert → decision and confidence → Approve");
  const first = await sendAlert("browser-cpu-1", resource, resourceType);
  const item = `#pending [data-incident="${first}"]`;
  await page.waitForSelector(item + " button[data-action=approve]");
  const text = await page.textContent(item);
  if (!/Decision: .*confidence \d+%/.test(text)) throw new Error("decision/confidence not shown: " + text);
  await page.waitForFunction((sel) => document.querySelector(sel + " .preview")?.textContent.startsWith("Dry run"), item);
  await page.screenshot({ path: join(shots, "3-pending.png"), fullPage: true });
  await page.click(item + " button[data-action=approve]");
  await page.waitForFunction((id) => {
    const h = document.querySelector(`#history [data-incident="${id}"]`);
    return h && h.textContent.includes("✔") && h.textContent.includes("approved by web:");
  }, first, { timeout: 60000 });
  // The metric re-check closes it: resolved (back under the threshold) or unresolved.
  await page.waitForFunction((id) => /resolved/.test(document.querySelector(`#history [data-incident="${id}"] .status`)?.textContent || ""), first, { timeout: 60000 });
  await page.screenshot({ path: join(shots, "4-history.png"), fullPage: true });

  step("STOP AUTONOMY → a new approval executes nothing");
  const second = await sendAlert("browser-cpu-2", resource, resourceType);
  const item2 = `#pending [data-incident="${second}"]`;
  await page.waitForSelector(item2 + " button[data-action=approve]");
  await page.click("#stop-btn");
  await page.waitForFunction(() => document.getElementById("autonomy-state").textContent.includes("AUTONOMY STOPPED"));
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.includes("Blocked"), item2);
  await page.click(item2 + " button[data-action=approve]");
  await page.waitForFunction((sel) => (document.querySelector(sel + " [data-role=message]")?.textContent || "").includes("nothing was executed"), item2);
  await page.waitForTimeout(1000);
  const detail = await api("GET", "/ops/alerts/" + second);
  if (detail.actions.length !== 0) throw new Error("an action ran while autonomy was stopped");
  if (detail.incident.status !== "blocked") throw new Error("expected blocked, got " + detail.incident.status);
  await page.screenshot({ path: join(shots, "5-stopped.png"), fullPage: true });
  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  step("ok");
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
