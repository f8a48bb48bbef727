// The console's transcript fold (gateway/static/transcript.js) against the recorded logs and
// their hand-written expectations: the same cases as tests/core/test_transcript.py.
// Run: node --test tests/clients/transcript.test.mjs
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { Transcript } from "../../gateway/static/transcript.js";

const fixtures = new URL("../fixtures/transcripts/", import.meta.url);
const expected = JSON.parse(readFileSync(new URL("expected.json", fixtures)));

for (const file of readdirSync(fixtures).filter((f) => f.endsWith(".events.json")).sort()) {
  const name = file.replace(/\.events\.json$/, "");
  test(`${name} folds to its expected transcript`, () => {
    const transcript = new Transcript();
    for (const event of JSON.parse(readFileSync(new URL(file, fixtures)))) transcript.apply(event);
    const folded = transcript.toJSON();
    assert.ok(name in expected, `no expectation for ${name}`);
    for (const [key, value] of Object.entries(expected[name])) {
      assert.deepEqual(folded[key], value, `${name}: ${key}`);
    }
  });
}

test("an abandoned attempt is dropped at once, and the changes render the text", () => {
  const t = new Transcript();
  const token = (attempt, index, text) =>
    ({ type: "Token", data: { text, index, step: 0, attempt } });
  assert.deepEqual(t.apply(token(1, 0, "w0 w1")), [{ kind: "delta", step: 0, text: "w0 w1" }]);
  assert.deepEqual(t.apply({ type: "StepFailed", data: { step: 0, name: "model", attempt: 1,
    error: "abandoned", retryable: true, abandoned: true } }), [{ kind: "reset", step: 0 }]);
  assert.equal(t.text, "");
  assert.deepEqual(t.apply(token(1, 1, "late")), []);
  t.apply(token(2, 0, "whole"));
  t.apply(token(2, 0, "whole")); // a repeat
  assert.equal(t.text, "whole");
});
