// Drives the console's Operations view in Debian's headless chromium: open it, wait until it has
// drawn `samples` snapshots of GET /ops/overview (its time series then have that many points),
// save a screenshot and report what the page shows: the tables' rows (and the shards' flags), the
// tiles, and each chart's canvas, points and series. Usage: node drive_ops.mjs URL SCREENSHOT [SAMPLES]
import { launch } from "./chromium.mjs";

const [url, screenshot, samples = "2"] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("console", (m) => console.error(`page: ${m.text()}`));
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  await page.goto(url);
  await page.waitForFunction(
    (n) => Number(document.body.dataset.opsSnapshots ?? 0) >= n, Number(samples), { timeout: 20000 },
  );
  await page.screenshot({ path: screenshot, fullPage: true });
  const shown = await page.evaluate(() => {
    const cells = (selector) => [...document.querySelectorAll(selector)].map(
      (row) => [...row.querySelectorAll("td")].map((td) => td.textContent),
    );
    return {
      view: document.body.dataset.view,
      sessionHidden: document.getElementById("session-view").hidden,
      status: document.getElementById("ops-status").dataset.state,
      error: document.getElementById("ops-error").hidden ? null : document.getElementById("ops-error").textContent,
      runners: cells("#ops-runners tbody tr[data-runner]"),
      shards: cells("#ops-shards tbody tr[data-shard]"),
      shardFlags: Object.fromEntries([...document.querySelectorAll("#ops-shards tbody tr[data-flag]")]
        .map((row) => [row.dataset.shard, row.dataset.flag])),
      usage: cells("#ops-usage tbody tr[data-tenant]"),
      tiles: Object.fromEntries([...document.querySelectorAll(".tile")].map(
        (tile) => [tile.dataset.tile, tile.querySelector("b").textContent],
      )),
      charts: Object.fromEntries([...document.querySelectorAll("[data-chart]")].map((box) => [
        box.dataset.chart,
        {
          canvas: box.querySelectorAll("canvas").length,
          width: box.querySelector("canvas")?.width ?? 0,
          points: Number(box.dataset.points ?? 0),
          values: Number(box.dataset.values ?? 0),
          series: box.dataset.series ?? "",
        },
      ])),
    };
  });
  console.log(JSON.stringify(shown));
} finally {
  await browser.close();
}
