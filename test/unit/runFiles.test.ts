/**
 * `mechlens report` on damaged run folders: located messages (file, field, what was expected),
 * only what the report needs is read, and what is skipped is said.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { checkRunFile } from '../../src/protocol/runFiles.js';

const cli = runCli;

let made: string | undefined;
/** One real run of the toy model, copied afresh for each damage. */
async function freshRun(): Promise<string> {
  if (!made) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-runfiles-'));
    const file = path.join(dir, 'x.experiment.json');
    fs.writeFileSync(file, JSON.stringify({ model: 'builtin:toy', prompts: [{ prompt: 'abcab', corrupted: 'abdab', answer: 'c', wrong: 'd' }], analyses: [{ kind: 'logit_diff' }, { kind: 'layer_dla' }] }));
    made = path.join(dir, 'run');
    const r = await cli(['run', file, '--out', made]);
    assert.equal(r.code, 0, r.err);
  }
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-runcopy-'));
  fs.cpSync(made, copy, { recursive: true });
  return copy;
}

function edit(dir: string, f: (r: Record<string, unknown> & { state: { sections: { blocks: Record<string, unknown>[] }[] } }) => void): void {
  const p = path.join(dir, 'run.json');
  const r = JSON.parse(fs.readFileSync(p, 'utf8'));
  f(r);
  fs.writeFileSync(p, JSON.stringify(r));
}

test('a damaged results.json does not stop the report, which does not need it', async () => {
  const dir = await freshRun();
  fs.writeFileSync(path.join(dir, 'results.json'), '{ "results": [ tru');
  const out = path.join(dir, 'report.html');
  const r = await cli(['report', dir, '--out', out]);
  assert.equal(r.code, 0, r.err);
  assert.match(fs.readFileSync(out, 'utf8'), /<h1>x<\/h1>/);
});

test('malformed run.json fields give located messages, not JavaScript errors', async () => {
  const dir = await freshRun();
  edit(dir, (r) => {
    r['title'] = 42;
  });
  const r = await cli(['report', dir, '--out', path.join(dir, 'r.html')]);
  assert.equal(r.code, 1);
  assert.match(r.err, /run\.json is not a (valid )?MechLens run: "title" must be a string|run\.json is not a valid MechLens run: title: expected a string, got number 42/);
  assert.doesNotMatch(r.err, /is not a function|Cannot read properties/);
  const dir2 = await freshRun();
  edit(dir2, (r) => {
    (r.state as unknown as Record<string, unknown>)['sections'] = 'oops';
  });
  const r2 = await cli(['report', dir2, '--out', path.join(dir2, 'r.html')]);
  assert.match(r2.err, /state\.sections: expected an array of objects, got the string "oops"/);
  assert.equal(fs.existsSync(path.join(dir2, 'r.html')), false);
});

test('an unknown or malformed block is skipped and said so, in the terminal and the report', async () => {
  const dir = await freshRun();
  edit(dir, (r) => {
    r.state.sections[0]!.blocks.unshift({ type: 'hologram', beams: 3 });
    r.state.sections[1]!.blocks[0] = { ...r.state.sections[1]!.blocks[0], labels: 7 };
  });
  const out = path.join(dir, 'report.html');
  const r = await cli(['report', dir, '--out', out]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /skipped run\.json: state\.sections\[0\]\.blocks\[0\]\.type: unknown block type "hologram"/);
  assert.match(r.err, /skipped run\.json: state\.sections\[1\]\.blocks\[0\]\.labels: expected an array of strings, got number 7/);
  assert.match(fs.readFileSync(out, 'utf8'), /could not be shown .* skipped/);
});

test('checkRunFile accepts a real run and locates problems', async () => {
  const dir = await freshRun();
  const ok = checkRunFile(JSON.parse(fs.readFileSync(path.join(dir, 'run.json'), 'utf8')));
  assert.deepEqual([ok.errors, ok.skipped], [[], []]);
  assert.deepEqual(checkRunFile({ id: 1 }).errors.slice(0, 2), ['id: expected a string, got number 1', 'kind: missing (expected a string)']);
  assert.deepEqual(checkRunFile(null).errors, ['the file: expected an object, got null']);
});
