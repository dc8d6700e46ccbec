// Single sign-on in headless Chromium, through the test issuer: Bob signs
// in as a viewer and sees the pending incident without an Approve or STOP
// button, and the API refuses his approval (403) even with the session's
// CSRF token; he signs out; Alice signs in as an approver and approves it.
// Env: INFRAAI_URL, INFRAAI_CHROMIUM, INFRAAI_SCREENSHOTS, INFRAAI_INCIDENT.
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const base = process.env.INFRAAI_URL;
const incident = process.env.INFRAAI_INCIDENT;
const shots = process.env.INFRAAI_SCREENSHOTS;
mkdirSync(shots, { recursive: true });
const userDataDir = mkdtempSync(join(tmpdir(), "infraai-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.INFRAAI_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
});
try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(15000);
  page.on("pageerror", (e) => { throw e; });

  async function signIn(user, name, role) {
    await page.goto(base + "/");
    await page.waitForSelector("#sign-in:not([hidden])");
    await Promise.all([page.waitForURL(/\/authorize\?/), page.click("#sign-in")]);
    await Promise.all([page.waitForURL(base + "/"), page.click("#as-" + user)]);
    await page.waitForSelector("#who:not([hidden])");
    const who = await page.textContent("#who");
    if (!who.includes(name) || !who.endsWith(role)) throw new Error("shown as " + who);
    if (await page.isVisible("#sign-in")) throw new Error("Sign in still shown");
    await page.waitForSelector(`#pending [data-incident="${incident}"]`);
  }

  // Bob: a viewer.
  await signIn("bob-19c2", "Bob Viewer", "viewer");
  const item = `#pending [data-incident="${incident}"]`;
  await page.waitForSelector(`${item} [data-role="message"]`);
  if (await page.locator(`${item} [data-action="approve"]`).count()) throw new Error("a viewer sees Approve");
  const wait = await page.textContent(`${item} [data-role="message"]`);
  if (!/Waiting for an approver/.test(wait)) throw new Error("viewer message: " + wait);
  if (await page.isVisible("#stop-btn")) throw new Error("a viewer sees STOP AUTONOMY");
  if (await page.isVisible("#plan-btn")) throw new Error("a viewer sees Plan");
  if (await page.isVisible("#window-form")) throw new Error("a viewer sees the change-window form");
  const refused = await page.evaluate(async (id) => {
    const me = await (await fetch("/auth/me")).json();
    const r = await fetch("/ops/alerts/" + id + "/approve", { method: "POST", headers: { "X-CSRF-Token": me.csrf } });
    return { status: r.status, role: me.role, detail: (await r.json()).detail };
  }, incident);
  if (refused.status !== 403 || refused.role !== "viewer") throw new Error("viewer approve: " + JSON.stringify(refused));
  await page.screenshot({ path: join(shots, "17-sso-viewer.png"), fullPage: true });

  // Sign out, then Alice: an approver.
  await page.click("#sign-out");
  await page.waitForSelector("#sign-in:not([hidden])");
  await signIn("alice-7f3a", "Alice Approver", "approver");
  if (!(await page.isVisible("#stop-btn"))) throw new Error("an approver does not see STOP AUTONOMY");
  await page.click(`${item} [data-action="approve"]`);
  await page.waitForFunction((id) => !document.querySelector(`#pending [data-incident="${id}"]`), incident);
  await page.screenshot({ path: join(shots, "18-sso-approver.png"), fullPage: true });
  console.log("sso-test: ok");
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
