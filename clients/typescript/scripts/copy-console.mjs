// The console (gateway/static/) runs the client's compiled modules: copy them, each under a
// banner, into gateway/static/client/, where the gateway serves them (/console/client/*.js) with
// no build step at run time. tests/clients/test_typescript_client.py checks the copies are current.
// And the charting library of its Operations view, uPlot (a pinned devDependency: package.json),
// vendored as the package ships it into gateway/static/vendor/ (/console/vendor/…), its licence
// beside it; tests/clients/test_console_operations.py checks those copies are the package's files.
// Usage: node scripts/copy-console.mjs (after tsc; `npm run build` does both)
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";

const dist = new URL("../dist/", import.meta.url);
const target = new URL("../../../gateway/static/client/", import.meta.url);

export const banner = (name) =>
  `// Compiled from clients/typescript/src/${name.replace(/\.js$/, ".ts")} by \`npm run build\`: do not edit.\n`;

const modules = (await readdir(dist)).filter((name) => name.endsWith(".js")).sort();
await rm(target, { recursive: true, force: true });
await mkdir(target, { recursive: true });
for (const name of modules) {
  await writeFile(new URL(name, target), banner(name) + (await readFile(new URL(name, dist), "utf8")));
}
console.log(`copied ${modules.join(", ")} to gateway/static/client/`);

// uPlot, byte for byte: the minified IIFE (the page loads it as a classic script: global uPlot),
// its stylesheet and licence.
const uplot = new URL("../node_modules/uplot/", import.meta.url);
const vendor = new URL("../../../gateway/static/vendor/", import.meta.url);
const VENDORED = { "uPlot.iife.min.js": "dist/uPlot.iife.min.js", "uPlot.min.css": "dist/uPlot.min.css", "uPlot.LICENSE": "LICENSE" };
const { version } = JSON.parse(await readFile(new URL("package.json", uplot), "utf8"));
await rm(vendor, { recursive: true, force: true });
await mkdir(vendor, { recursive: true });
for (const [name, source] of Object.entries(VENDORED)) await copyFile(new URL(source, uplot), new URL(name, vendor));
console.log(`copied uPlot ${version} (${Object.keys(VENDORED).join(", ")}) to gateway/static/vendor/`);
