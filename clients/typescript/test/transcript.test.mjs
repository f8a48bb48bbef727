// The client's transcript fold against the recorded logs every fold is tested with
// (tests/fixtures/transcripts: the same cases as tests/core/test_transcript.py and the Python
// client's). AGENTLANE_TRANSCRIPT_MODULE picks the compiled module (default ../dist/transcript.js;
// tests/clients/test_node_folds.py points it at the copy the console serves).
// Run: node --test test/transcript.test.mjs   (after `npm run build`)
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

const module = process.env.AGENTLANE_TRANSCRIPT_MODULE
  ? pathToFileURL(process.env.AGENTLANE_TRANSCRIPT_MODULE).href
  : new URL("../dist/transcript.js", import.meta.url).href;
const { Transcript, transcriptOf } = await import(module);

const fixtures = new URL("../../../tests/fixtures/transcripts/", import.meta.url);
const expected = JSON.parse(readFileSync(new URL("expected.json", fixtures), "utf8"));
const logs = readdirSync(fixtures).filter((f) => f.endsWith(".events.json")).sort();

test("every recorded log has an expectation", () => {
  assert.ok(logs.length >= 8, logs.join());
  for (const file of logs) assert.ok(file.replace(/\.events\.json$/, "") in expected, file);
});

for (const file of logs) {
  const name = file.replace(/\.events\.json$/, "");
  test(`${name} folds to its expected transcript`, () => {
    const events = JSON.parse(readFileSync(new URL(file, fixtures), "utf8"));
    const folded = transcriptOf(events).toJSON();
    for (const [key, value] of Object.entries(expected[name] ?? {})) {
      assert.deepEqual(folded[key], value, `${name}: ${key}`);
    }
  });
}

test("the changes, rendered as a page does, show the transcript's text", () => {
  for (const file of logs) {
    const transcript = new Transcript();
    const shown = new Map();
    for (const event of JSON.parse(readFileSync(new URL(file, fixtures), "utf8"))) {
      for (const change of transcript.apply(event)) {
        if (change.kind === "delta") shown.set(change.step, (shown.get(change.step) ?? "") + change.text);
        if (change.kind === "reset") shown.set(change.step, "");
      }
    }
    const rendered = [...shown].sort(([a], [b]) => a - b).map(([, text]) => text).join("");
    assert.equal(rendered, transcript.text, file);
  }
});

test("an abandoned attempt is dropped at once; late and repeated tokens are ignored", () => {
  const t = new Transcript();
  const token = (attempt, index, text) => ({ type: "Token", data: { text, index, step: 0, attempt } });
  assert.deepEqual(t.apply(token(1, 0, "w0 w1")), [{ kind: "delta", step: 0, text: "w0 w1" }]);
  assert.deepEqual(
    t.apply({ type: "StepFailed", data: { step: 0, name: "model", attempt: 1, error: "abandoned",
      retryable: true, abandoned: true } }),
    [{ kind: "reset", step: 0 }],
  );
  assert.equal(t.text, "");
  assert.deepEqual(t.apply(token(1, 1, "late")), []);
  assert.deepEqual(t.apply(token(2, 0, "whole")), [{ kind: "delta", step: 0, text: "whole" }]);
  assert.deepEqual(t.apply(token(2, 0, "whole")), []); // a repeat
  assert.equal(t.text, "whole");
});

test("a newer attempt replaces an older one's text without a StepFailed (older logs)", () => {
  const t = new Transcript();
  t.apply({ type: "Token", data: { text: "par", index: 0, step: 1, attempt: 1 } });
  assert.deepEqual(t.apply({ type: "Token", data: { text: "whole", index: 0, step: 1, attempt: 2 } }),
    [{ kind: "reset", step: 1 }, { kind: "delta", step: 1, text: "whole" }]);
  assert.deepEqual(t.apply({ type: "Completed", data: { answer: "whole" } }),
    [{ kind: "ended", status: "completed", answer: "whole", reason: null }]);
  assert.equal(t.status, "completed");
});
