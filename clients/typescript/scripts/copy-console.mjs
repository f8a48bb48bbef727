// The console (gateway/static/) runs the client's compiled modules: copy them, each under a
// banner, into gateway/static/client/, where the gateway serves them (/console/client/*.js) with
// no build step at run time. tests/clients/test_typescript_client.py checks the copies are current.
// Usage: node scripts/copy-console.mjs (after tsc; `npm run build` does both)
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";

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
