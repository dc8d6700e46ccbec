// The simulated cloud is never mistaken for a real one: against a server on
// the simulated cloud, the dashboard shows its banner at once (before any
// token is entered) and keeps it on the ops view (`/ops`) and after a
// refresh cycle. Env: INFRAAI_URL, INFRAAI_CHROMIUM.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const base = process.env.INFRAAI_URL;
const userDataDir = mkdtempSync(join(tmpdir(), "infraai-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.INFRAAI_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
});
try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(15000);
  for (const path of ["/", "/ops"]) {
    await page.goto(base + path);
    await page.waitForSelector("#sim-banner:not([hidden])");
    const text = await page.textContent("#sim-banner");
    if (!/SIMULATED/.test(text) || !/nothing real/.test(text)) throw new Error("banner text: " + text);
    const box = await page.locator("#sim-banner").boundingBox();
    if (!box || box.height < 10) throw new Error(path + ": the banner is not visible: " + JSON.stringify(box));
  }
  await page.waitForTimeout(2500); // a refresh cycle of the ops view
  if (await page.isHidden("#sim-banner")) throw new Error("the banner went away");
  console.log("banner-test: ok");
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
