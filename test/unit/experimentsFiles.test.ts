/**
 * Files an experiment names stay inside its folder: an experiment file from someone else's
 * repository must not read /etc/shadow (or ~/.ssh) into a run and its shareable report.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseExperiment, type Diagnostic } from '../../src/engine/experiments/parse.js';
import { confinePath, readConfinedText } from '../../src/engine/experiments/files.js';
import { LineIndex } from '../../src/engine/experiments/json.js';
import { runCli } from '../helpers/cli.js';

/** A workspace: `ws/exp/` holds the experiment; `outside/` is a sibling the experiment must not reach. */
function workspace(): { ws: string; exp: string; outside: string } {
  const top = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-files-'));
  const ws = path.join(top, 'ws');
  const exp = path.join(ws, 'exp');
  const outside = path.join(top, 'outside');
  fs.mkdirSync(exp, { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'the user\'s secret\n');
  fs.writeFileSync(path.join(exp, 'ok.txt'), 'a line of text\nanother line\n');
  fs.writeFileSync(path.join(exp, 'p.prompts'), 'The cat sat -> " on" | " in"\n');
  return { ws, exp, outside };
}

const neuronText = (file: string) => `{
  "model": "builtin:toy",
  "prompts": [{ "prompt": "ab", "corrupted": "ac", "answer": "d", "wrong": "e" }],
  "analyses": [{ "kind": "neuron_activations", "layer": 0, "neuron": 1, "file": ${JSON.stringify(file)} }]
}`;

function errorsOf(ds: Diagnostic[]): Diagnostic[] {
  return ds.filter((d) => d.severity === 'error');
}

/** The one error, located at the quoted file name in the experiment's text. */
function oneErrorAt(text: string, ds: Diagnostic[], needle: string): Diagnostic {
  const errs = errorsOf(ds);
  assert.equal(errs.length, 1, JSON.stringify(errs.map((d) => d.message)));
  const d = errs[0]!;
  assert.deepEqual(d.range.start, new LineIndex(text).position(text.indexOf(JSON.stringify(needle))));
  return d;
}

test('an absolute path is refused, located at the name, naming the rule', () => {
  const { exp } = workspace();
  for (const name of ['/etc/passwd', '/etc/shadow']) {
    const text = neuronText(name);
    const d = oneErrorAt(text, parseExperiment(text, path.join(exp, 'x.experiment.json')).diagnostics, name);
    assert.equal(d.code, 'file-outside');
    assert.match(d.message, /absolute path/);
    assert.match(d.message, /inside its folder/);
  }
});

test('.. out of the folder is refused; inside the root (--root) it is allowed', () => {
  const { ws, exp } = workspace();
  fs.writeFileSync(path.join(ws, 'shared.txt'), 'shared text\n');
  const text = neuronText('../shared.txt');
  const d = oneErrorAt(text, parseExperiment(text, path.join(exp, 'x.experiment.json')).diagnostics, '../shared.txt');
  assert.match(d.message, /leaves the experiment's folder/);
  assert.deepEqual(errorsOf(parseExperiment(text, path.join(exp, 'x.experiment.json'), undefined, { root: ws }).diagnostics), []);
  const far = neuronText('../../outside/secret.txt');
  assert.match(oneErrorAt(far, parseExperiment(far, path.join(exp, 'x.experiment.json'), undefined, { root: ws }).diagnostics, '../../outside/secret.txt').message, /leaves/);
});

test('a symbolic link out of the folder is refused; one inside it is followed', () => {
  const { exp, outside } = workspace();
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(exp, 'innocent.txt'));
  fs.symlinkSync(path.join(exp, 'ok.txt'), path.join(exp, 'alias.txt'));
  fs.symlinkSync(outside, path.join(exp, 'dirlink'));
  const text = neuronText('innocent.txt');
  const d = oneErrorAt(text, parseExperiment(text, path.join(exp, 'x.experiment.json')).diagnostics, 'innocent.txt');
  assert.match(d.message, /symbolic link/);
  assert.doesNotMatch(d.message, /secret\n/);
  const viaDir = neuronText('dirlink/secret.txt');
  assert.match(oneErrorAt(viaDir, parseExperiment(viaDir, path.join(exp, 'x.experiment.json')).diagnostics, 'dirlink/secret.txt').message, /symbolic link/);
  assert.deepEqual(errorsOf(parseExperiment(neuronText('alias.txt'), path.join(exp, 'x.experiment.json')).diagnostics), []);
});

test('only regular files under the size limit are read (a device or FIFO never ends)', () => {
  const { exp } = workspace();
  fs.mkdirSync(path.join(exp, 'folder'));
  const folder = neuronText('folder');
  assert.match(oneErrorAt(folder, parseExperiment(folder, path.join(exp, 'x.experiment.json')).diagnostics, 'folder').message, /not a regular file \(a folder\)/);
  execFileSync('mkfifo', [path.join(exp, 'fifo')]);
  const t0 = Date.now();
  const fifo = readConfinedText(exp, path.join(exp, 'fifo'));
  assert.ok(Date.now() - t0 < 2000, 'a FIFO must be refused at once, not read');
  assert.match((fifo as { error: string }).error, /not a regular file \(a device, pipe or socket\)/);
  fs.writeFileSync(path.join(exp, 'big.txt'), 'x'.repeat(2000));
  assert.match((readConfinedText(exp, path.join(exp, 'big.txt'), 1000) as { error: string }).error, /2000 bytes; .* at most 1000 bytes/);
  assert.equal(readConfinedText(exp, path.join(exp, 'ok.txt')), 'a line of text\nanother line\n');
  assert.equal(readConfinedText(exp, path.join(exp, 'missing.txt')), null);
});

test('prompts files follow the same rules', () => {
  const { exp, outside } = workspace();
  fs.writeFileSync(path.join(outside, 'o.prompts'), 'a -> " b" | " c"\n');
  const text = `{ "model": "builtin:toy", "prompts": { "file": "../../outside/o.prompts" }, "analyses": [{ "kind": "logit_diff" }] }`;
  const d = oneErrorAt(text, parseExperiment(text, path.join(exp, 'x.experiment.json')).diagnostics, '../../outside/o.prompts');
  assert.equal(d.code, 'file-outside');
  const ok = `{ "model": "builtin:toy", "prompts": { "file": "p.prompts" }, "analyses": [{ "kind": "logit_diff" }] }`;
  assert.deepEqual(errorsOf(parseExperiment(ok, path.join(exp, 'x.experiment.json')).diagnostics), []);
});

test('confinePath: lexical rules alone', () => {
  assert.ok('error' in confinePath('/w', '/w/e', '/etc/passwd'));
  assert.ok('error' in confinePath('/w', '/w/e', '../../x'));
  assert.ok('error' in confinePath('/w', '/w/e', 'a/../../../x'));
  assert.ok('error' in confinePath('/w', '/w/e', 'C:\\Windows\\win.ini'));
  assert.deepEqual(confinePath('/w', '/w/e', '../x'), { path: '/w/x' });
  assert.deepEqual(confinePath('/w', '/w/e', 'a/b.txt'), { path: '/w/e/a/b.txt' });
});

test('mechlens run refuses /etc/passwd before loading anything and writes no run', async () => {
  const { exp } = workspace();
  const file = path.join(exp, 'leak.experiment.json');
  fs.writeFileSync(file, neuronText('/etc/passwd'));
  const { code, err } = await runCli(['run', file, '--out', path.join(exp, 'run')]);
  assert.equal(code, 1);
  assert.match(err, /leak\.experiment\.json:\d+:\d+: error: "\/etc\/passwd" is an absolute path/);
  assert.equal(fs.existsSync(path.join(exp, 'run')), false);
  assert.equal(fs.existsSync(path.join(exp, '.mechlens')), false);
});
