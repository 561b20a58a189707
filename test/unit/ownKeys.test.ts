/**
 * Keys of input files are looked up as own properties only: "constructor", "__proto__",
 * "toString" and "hasOwnProperty" used to find Object.prototype's members through the schema's
 * property table and were accepted silently, where every other unknown key is an error.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseExperiment, type FileReader } from '../../src/engine/experiments/parse.js';
import { checkRunFile } from '../../src/protocol/runFiles.js';

const NAMES = ['constructor', '__proto__', 'toString', 'hasOwnProperty'];
const none: FileReader = { read: () => null };
const base = '"model": "builtin:toy", "prompts": [{ "prompt": "ab" }], "analyses": [{ "kind": "test_prompt" }]';

for (const name of NAMES) {
  test(`an experiment file's top-level "${name}" is an unknown property, located at its key`, () => {
    const text = `{ ${base}, ${JSON.stringify(name)}: 1 }`;
    const errs = parseExperiment(text, '/virtual/x.experiment.json', none).diagnostics.filter((d) => d.severity === 'error');
    assert.equal(errs.length, 1, JSON.stringify(errs.map((d) => d.message)));
    assert.match(errs[0]!.message, new RegExp(`unknown property "${name}"; allowed here: `));
    assert.equal(errs[0]!.range.start.character, text.indexOf(JSON.stringify(name)));
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined, 'Object.prototype is untouched');
  });

  test(`"${name}" inside an analysis and inside a train file's model is an unknown property`, () => {
    const text = `{ "model": "builtin:toy", "prompts": [{ "prompt": "ab" }], "analyses": [{ "kind": "test_prompt", ${JSON.stringify(name)}: { "polluted": true } }] }`;
    const errs = parseExperiment(text, '/virtual/x.experiment.json', none).diagnostics.filter((d) => d.severity === 'error');
    assert.ok(errs.some((d) => d.message.startsWith(`unknown property "${name}"`)), JSON.stringify(errs.map((d) => d.message)));
    const train = `{ "kind": "train", "model": { "n_layers": 1, "d_model": 8, "n_heads": 1, "n_ctx": 8, "d_vocab": 4, ${JSON.stringify(name)}: 2 }, "task": { "kind": "reverse" } }`;
    const terrs = parseExperiment(train, '/virtual/t.experiment.json', none).diagnostics.filter((d) => d.severity === 'error');
    assert.ok(terrs.some((d) => d.message.startsWith(`unknown property "${name}"`)), JSON.stringify(terrs.map((d) => d.message)));
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });

  test(`a run file's block of type "${name}" is unknown, not a prototype member`, () => {
    const rec = JSON.parse(`{ "id": "r", "kind": "experiment", "title": "t", "createdAt": "2026-01-01T00:00:00Z", "engineVersion": "0", "model": { "spec": "s", "name": "n", "processing": "none" }, "inputs": { "prompts": [] }, "state": { "kind": "experiment", "title": "t", "model": "n", "description": "", "metric": "m", "sections": [{ "title": "s", "blocks": [{ "type": ${JSON.stringify(name)} }] }] } }`) as unknown;
    const c = checkRunFile(rec);
    assert.deepEqual(c.errors, []);
    assert.match(c.skipped[0] ?? '', new RegExp(`unknown block type "${name}"`));
  });
}
