// Debian's chromium, headless, as every console driver here launches it (no downloads, no
// background traffic); the drivers import this instead of repeating the flags.
import { chromium } from "playwright-core";

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/** A page of the console's Session view at `url`, live on its session (its logs go to stderr). */
export async function openSession(browser, url) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  page.on("console", (m) => console.error(`page: ${m.text()}`));
  await page.goto(url);
  await page.waitForSelector('#status[data-state="live"]', { timeout: 20000 });
  return page;
}

/** Ask the agent from the page's form. */
export async function ask(page, message) {
  await page.fill("#message", message);
  await page.click('#ask button[type="submit"]');
}
