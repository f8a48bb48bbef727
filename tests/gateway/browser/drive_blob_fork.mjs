// Drives the console in Debian's headless chromium through a long message and a fork: ask with a
// message that goes to the blob store, load it from the run's header, fork the session after the
// run, and ask again in the fork. Prints what the page showed as one JSON line.
// Usage: node drive_blob_fork.mjs URL SCREENSHOT
import { ask, launch, openSession } from "./chromium.mjs";

const [url, screenshot] = process.argv.slice(2);
const message = `blob:${"z".repeat(40000)}`;
const browser = await launch();
try {
  const page = await openSession(browser, url);
  await ask(page, message);
  await page.waitForSelector('.run[data-state="completed"]', { timeout: 30000 });
  const run = page.locator(".run").first();
  const button = run.locator("header button.blob");
  const offered = await button.textContent();
  await button.click();
  const loaded = await run.locator("header .blob-value").textContent({ timeout: 10000 });
  const parent = await page.inputValue("#session");
  await run.locator("button.fork").click();
  await page.waitForSelector("#forked:not([hidden])", { timeout: 10000 });
  await page.waitForSelector('#status[data-state="live"]', { timeout: 20000 });
  const forked = await page.locator("#forked").textContent();
  const child = await page.inputValue("#session");
  await ask(page, "and now?");
  await page.waitForSelector('.run[data-state="completed"]', { timeout: 30000 });
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({
    offered, loadedLength: loaded.length, loadedMatches: loaded === message, parent, child, forked,
    address: page.url(), runs: await page.locator(".run").count(),
    answer: await page.locator(".run .tokens").first().textContent(),
  }));
} finally {
  await browser.close();
}
