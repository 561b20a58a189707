/**
 * Every long analysis stops within a second of a cancel (the CLI's Ctrl-C and the editor's Cancel
 * both abort the run's signal): one experiment per family of analyses runs on builtin:toy with
 * sizes that take many runs, the signal is aborted from a timer once the analysis has reported
 * progress, and the run must end within 1 s of the abort with that analysis not finished. An
 * analysis that ignored the signal would finish it (and take seconds more).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LoadedEngine } from '../../src/engine/engine.js';
import { checkWithModel, parseExperiment } from '../../src/engine/experiments/parse.js';
import { runExperiment } from '../../src/engine/experiments/run.js';
import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { RUN_FILE } from '../../src/protocol/runs.js';
import { RunStore } from '../../src/extension/runStore.js';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'src', 'engine', 'cli.ts');
// The child runs in a temporary folder, where `--import tsx` would not resolve.
const TSX = pathToFileURL(require.resolve('tsx', { paths: [ROOT] }).replace(/[^/\\]+$/, 'loader.mjs')).href;

const STOP_MS = 1000;

let engine: LoadedEngine | undefined;
const load = async () => (engine ??= await LoadedEngine.load('builtin:toy', { processing: 'default', device: 'cpu' }));

/** A printable-character prompt of n characters (n + 1 tokens with BOS on builtin:toy). */
function text(n: number, seed: number): string {
  return Array.from({ length: n }, (_, i) => String.fromCharCode(97 + ((i * 7 + seed * 3) % 26))).join('');
}

function prompts(count: number, len: number): { prompt: string; corrupted: string; answer: string; wrong: string }[] {
  return Array.from({ length: count }, (_, i) => {
    const p = text(len, i);
    // The corrupted prompt differs at its first character, so nothing is shared with the clean run.
    return { prompt: p, corrupted: (p[0] === 'z' ? 'y' : 'z') + p.slice(1), answer: 'a', wrong: 'b' };
  });
}

interface Family {
  name: string;
  analysis: Record<string, unknown>;
  prompts: ReturnType<typeof prompts>;
  files?: Record<string, string>;
}

const FAMILIES: Family[] = [
  { name: 'activation patching (batched sweep)', analysis: { kind: 'patch_heads', activation: 'z', by: 'pos' }, prompts: prompts(2, 200) },
  { name: 'causal tracing', analysis: { kind: 'causal_trace', subject: [1, 6], samples: 100 }, prompts: prompts(1, 120) },
  { name: 'path patching', analysis: { kind: 'path_patch', receivers: 'logits' }, prompts: prompts(16, 200) },
  { name: 'ablation of every hook', analysis: { kind: 'ablation', ablation: 'mean' }, prompts: prompts(16, 200) },
  { name: 'neuron activations over a file', analysis: { kind: 'neuron_activations', layer: 0, neuron: 3, file: 'corpus.txt' }, prompts: prompts(1, 8), files: { 'corpus.txt': Array.from({ length: 2000 }, (_, i) => text(200, i)).join('\n') } },
  { name: 'head scores on repeated random tokens', analysis: { kind: 'head_scores', batch: 1024, seqLen: 100 }, prompts: prompts(1, 8) },
  { name: 'head detection', analysis: { kind: 'detect_heads', pattern: 'induction_head' }, prompts: prompts(1024, 200) },
  { name: 'attention patterns', analysis: { kind: 'attention', heads: ['L0H0', 'L1H1'] }, prompts: prompts(1024, 200) },
  { name: 'QK / OV circuits of heads', analysis: { kind: 'circuits', heads: Array.from({ length: 200 }, (_, i) => `L${i % 2}H${i % 4}`) }, prompts: prompts(1, 90) },
];

for (const f of FAMILIES) {
  test(`${f.name}: stops within ${STOP_MS} ms of a cancel, unfinished`, { timeout: 120_000 }, async () => {
    const eng = await load();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-cancel-'));
    for (const [name, content] of Object.entries(f.files ?? {})) fs.writeFileSync(path.join(dir, name), content);
    const file = path.join(dir, 'c.experiment.json');
    const parsed = parseExperiment(JSON.stringify({ model: 'builtin:toy', prompts: f.prompts, analyses: [f.analysis] }), file);
    assert.ok(parsed.experiment, JSON.stringify(parsed.diagnostics.map((d) => d.message)));
    const checked = checkWithModel(parsed.experiment, eng.model.cfg, eng.tokenizer);
    assert.deepEqual(checked.diagnostics.map((d) => d.message), []);
    const ac = new AbortController();
    let abortedAt = 0;
    let fractionAtAbort = NaN;
    const t0 = performance.now();
    const r = await runExperiment(parsed.experiment, eng.model, eng.tokenizer, checked.tokens, {
      signal: ac.signal,
      onProgress: (p) => {
        // From a timer, not inside the callback: the analysis must give the event loop a turn
        // between its runs for a cancel to reach it at all.
        if (p.phase === 'progress' && abortedAt === 0) {
          abortedAt = -1;
          fractionAtAbort = p.fraction ?? NaN;
          setTimeout(() => {
            abortedAt = performance.now();
            ac.abort();
          }, 0);
        }
      },
    });
    const stoppedAt = performance.now();
    assert.ok(abortedAt > 0, `the analysis finished (${(stoppedAt - t0).toFixed(0)} ms) before the cancel: it reported ${Number.isNaN(fractionAtAbort) ? 'no progress' : 'progress only at the end'}`);
    assert.ok(fractionAtAbort < 1, `progress ${fractionAtAbort} at the first report: the analysis must run in several steps`);
    assert.equal(r.cancelled, true, 'the run says it was cancelled');
    const res = r.results.find((x) => x.index === 0);
    assert.ok(res === undefined || res.partial === true, 'the analysis did not finish');
    const ms = stoppedAt - abortedAt;
    assert.ok(ms < STOP_MS, `stopped ${ms.toFixed(0)} ms after the cancel (at ${((abortedAt - t0) / 1000).toFixed(1)} s of the run)`);
  });
}

test(`the metric of a group of 1024 long prompts (computed before its analyses) stops within ${STOP_MS} ms of a cancel`, { timeout: 120_000 }, async () => {
  const eng = await load();
  const parsed = parseExperiment(JSON.stringify({ model: 'builtin:toy', prompts: prompts(1024, 200), analyses: [{ kind: 'layer_dla' }] }), path.join(os.tmpdir(), 'm.experiment.json'));
  const checked = checkWithModel(parsed.experiment!, eng.model.cfg, eng.tokenizer);
  const ac = new AbortController();
  let abortedAt = 0;
  setTimeout(() => {
    abortedAt = performance.now();
    ac.abort();
  }, 300);
  const r = await runExperiment(parsed.experiment!, eng.model, eng.tokenizer, checked.tokens, { signal: ac.signal, onProgress: (p) => assert.notEqual(p.phase, 'done', 'no analysis finishes') });
  const ms = performance.now() - abortedAt;
  assert.ok(abortedAt > 0, 'the cancel came before the run ended');
  assert.equal(r.cancelled, true);
  assert.deepEqual(r.results, []);
  assert.ok(ms < STOP_MS, `stopped ${ms.toFixed(0)} ms after the cancel`);
});

test('Ctrl-C (SIGINT) stops `mechlens run` within a second, leaving an incomplete, resumable run and no half-written file', { timeout: 180_000 }, async () => {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-sigint-'));
  const file = path.join(ws, 's.experiment.json');
  fs.writeFileSync(file, JSON.stringify({ model: 'builtin:toy', prompts: prompts(1, 120), analyses: [{ kind: 'logit_diff' }, { kind: 'causal_trace', subject: [1, 6], samples: 100 }] }));
  const out = path.join(ws, '.mechlens', 'runs', 'interrupted');
  const child = spawn(process.execPath, ['--import', TSX, CLI, 'run', file, '--out', out], { cwd: ws, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  let sentAt = 0;
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  child.stderr!.on('data', (d: Buffer) => {
    err += String(d);
    // Once the long analysis has started (and a moment into it), Ctrl-C.
    if (sentAt === 0 && err.includes('[2/2]')) {
      sentAt = -1;
      setTimeout(() => {
        sentAt = performance.now();
        child.kill('SIGINT');
      }, 300);
    }
  });
  const code = await exited;
  const ms = performance.now() - sentAt;
  assert.ok(sentAt > 0, `the run ended before Ctrl-C: ${err}`);
  assert.equal(code, 130, err);
  assert.ok(ms < STOP_MS, `exited ${ms.toFixed(0)} ms after Ctrl-C`);
  assert.match(err, /interrupted: 1 of 2 analyses are saved in .*; finish it with: mechlens run --resume/);
  // Incomplete, not half-written: progress and the finished analysis, no run.json, no temporary file.
  assert.equal(fs.existsSync(path.join(out, RUN_FILE)), false);
  assert.ok(fs.existsSync(path.join(out, 'progress.json')));
  const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [e.name]));
  assert.deepEqual(walk(out).filter((n) => n.includes('.tmp')), []);
  const listed = (await new RunStore(path.join(ws, '.mechlens', 'runs')).list()).find((r) => r.id === 'interrupted');
  assert.equal(listed?.incomplete?.done, 1, 'listed as incomplete with one analysis done');
});

test('composition scores stop between heads on a cancel', async () => {
  const eng = await load();
  const { compositionScores } = await import('../../src/engine/analysis/circuits.js');
  const ac = new AbortController();
  let steps = 0;
  await assert.rejects(
    compositionScores(eng.model, 'Q', { signal: ac.signal, onProgress: () => (++steps, ac.abort()) }),
    (e: Error) => e.name === 'AbortError',
  );
  assert.equal(steps, 1, 'one head pair row, then the cancel');
});

test.after(async () => {
  await engine?.dispose();
});
