// Drives the console in Debian's headless chromium through an approval: ask for a tool call that
// needs one, read the countdown to the approval's deadline, approve, wait for the answer, and
// report what the page shows (the cost included). Usage: node drive_approval.mjs URL SCREENSHOT
import { ask, launch, openSession } from "./chromium.mjs";

const [url, screenshot] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await openSession(browser, url);
  await ask(page, "call send_email");
  const box = page.locator(".approval").first();
  await box.locator(".deadline").waitFor({ timeout: 30000 });
  const first = await box.locator(".deadline").textContent();
  await page.waitForTimeout(1500); // the countdown moves on its own
  const later = await box.locator(".deadline").textContent();
  const deadline = await box.getAttribute("data-deadline");
  await box.locator("button", { hasText: "approve" }).click();
  await page.waitForSelector('.run[data-state="completed"]', { timeout: 30000 });
  await page.screenshot({ path: screenshot, fullPage: true });
  const run = page.locator(".run").first();
  console.log(JSON.stringify({
    first, later, deadline,
    afterwards: (await box.locator(".deadline").count()) > 0,
    usage: await run.locator(".usage").textContent(),
    costMicros: Number(await run.getAttribute("data-cost-micros")),
    tools: await run.locator(".tools").textContent(),
  }));
} finally {
  await browser.close();
}
