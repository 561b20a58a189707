/**
 * NaN/Inf weights are reported, not passed silently: one NaN used to turn every result into null
 * with exit code 0 and a clean `info`.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors } from '../../src/engine/model/safetensors.js';
import { LoadedEngine } from '../../src/engine/engine.js';
import { runCli } from '../helpers/cli.js';
import { runExperimentFile } from '../../src/engine/experiments/commands.js';
import { allFinite, countNonFinite, nonFiniteWarning } from '../../src/engine/tensor/stats.js';
import { f32 } from '../../src/engine/tensor/tensor.js';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'gpt2-tied-gelu-new');

/** The fixture GPT-2 with one NaN in the first block's attention weights and two Inf in its MLP. */
function poisoned(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-nan-'));
  for (const f of fs.readdirSync(FIXTURE)) if (!f.startsWith('expected')) fs.copyFileSync(path.join(FIXTURE, f), path.join(dir, f));
  const t = readSafetensors(path.join(dir, 'model.safetensors'));
  const attn = [...t.keys()].find((k) => /h\.0\.attn\.c_attn\.weight$/.test(k))!;
  const mlp = [...t.keys()].find((k) => /h\.0\.mlp\.c_fc\.weight$/.test(k))!;
  t.get(attn)!.data[5] = NaN;
  t.get(mlp)!.data[1] = Infinity;
  t.get(mlp)!.data[2] = -Infinity;
  writeSafetensors(path.join(dir, 'model.safetensors'), t);
  return dir;
}

test('countNonFinite / nonFiniteWarning name each tensor with its counts', () => {
  assert.deepEqual(countNonFinite([1, NaN, Infinity, -Infinity, 0]), { nan: 1, inf: 2 });
  assert.equal(nonFiniteWarning([['a', f32([2], [1, 2])]]), null);
  assert.match(nonFiniteWarning([['a', f32([2], [1, NaN])], ['b', f32([1], [Infinity])]])!, /2 tensors: a \(1 NaN\); b \(1 ±Inf\)/);
});

test('loading a model with non-finite weights warns, naming the tensors; info says so too', async () => {
  const dir = poisoned();
  const eng = await LoadedEngine.load(dir, { processing: 'default' });
  try {
    assert.equal(eng.warnings.length, 1);
    assert.match(eng.warnings[0]!, /non-finite values in 2 tensors: blocks\.0\.attn\.W_[QKV] \(1 NaN\); blocks\.0\.mlp\.W_in \(2 ±Inf\)/);
    assert.deepEqual(eng.info().warnings, eng.warnings);
  } finally {
    await eng.dispose();
  }
  const info = await runCli(['info', '--model', dir]);
  assert.equal(info.code, 0);
  assert.match(info.err, /mechlens: warning: the model's weights hold non-finite values/);
  assert.match((JSON.parse(info.out) as { warnings: string[] }).warnings[0]!, /W_in \(2 ±Inf\)/);
});

test('a run on such a model says so in the terminal, the panel state and the report instead of a bare null', async () => {
  const dir = poisoned();
  const file = path.join(dir, 'x.experiment.json');
  fs.writeFileSync(file, JSON.stringify({ model: '.', prompts: [{ prompt: 'When Mary and John', corrupted: 'When Mary and James', answer: 'it', wrong: 'L' }], analyses: [{ kind: 'logit_diff' }, { kind: 'patch', hook: 'resid_pre' }] }));
  const lines: string[] = [];
  const r = await runExperimentFile(file, { out: path.join(dir, 'run'), log: (l) => lines.push(l) });
  const log = lines.join('\n');
  assert.match(log, /warning: the model's weights hold non-finite values/);
  assert.match(log, /Not finite: the clean metric is NaN and the corrupted metric is NaN: the model's outputs are not finite numbers \(see the warning about its weights\)/);
  const state = r.saved.record.state;
  assert.ok(state.kind === 'experiment');
  assert.match(state.description, /^Warning: the model's weights hold non-finite values/);
  assert.ok(state.sections.every((s) => s.notes?.some((n) => n.startsWith('Not finite'))));
  const html = path.join(dir, 'report.html');
  const rep = await runCli(['report', r.saved.dir, '--out', html]);
  assert.equal(rep.code, 0, rep.err);
  const text = fs.readFileSync(html, 'utf8');
  assert.match(text, /Warning: the model&#39;s weights hold non-finite values|Warning: the model's weights hold non-finite values/);
  assert.match(text, /Not finite: the clean metric is NaN/);
});

test('allFinite finds a NaN or ±Inf anywhere, the tail past a multiple of four included', () => {
  for (const n of [0, 1, 4, 7, 9]) {
    const d = new Float32Array(n).map((_, i) => i - 3.5);
    assert.equal(allFinite(d), true, `all finite, length ${n}`);
    for (let i = 0; i < n; i++) {
      for (const bad of [NaN, Infinity, -Infinity]) {
        const e = d.slice();
        e[i] = bad;
        assert.equal(allFinite(e), false, `${bad} at ${i} of ${n}`);
      }
    }
  }
  // Large finite values: v * 0 stays 0 (no overflow to Inf).
  assert.equal(allFinite(Float32Array.of(3.4e38, -3.4e38, 1e-45)), true);
});
