// Drives the gateway's console in Debian's headless chromium: ask, wait for the run to finish,
// report what the page shows, save a screenshot.
// Usage: node drive_console.mjs URL SCREENSHOT [MESSAGE]
import { ask, launch, openSession } from "./chromium.mjs";

const [url, screenshot, message = "tell me a story"] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await openSession(browser, url);
  await ask(page, message);
  console.log(JSON.stringify({ asked: true }));
  const run = page.locator(".run").first();
  await page.waitForSelector('.run[data-state="completed"]', { timeout: 90000 });
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({
    text: await run.locator(".tokens").textContent(),
    tokens: Number(await run.getAttribute("data-tokens")),
    resets: Number((await run.getAttribute("data-resets")) ?? 0),
    connections: Number(await page.evaluate(() => document.body.dataset.connections)),
    status: await page.textContent("#status"),
  }));
} finally {
  await browser.close();
}
