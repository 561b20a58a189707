/**
 * A run killed at any moment is never half-written and keeps its finished work: `mechlens run` is
 * SIGKILLed at random moments; every folder left is then a complete run (report works), an
 * incomplete one (listed as such; `--resume` finishes it with the numbers of an uninterrupted
 * run), or nothing. Two runs started at once in one workspace both land.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { main } from '../../src/engine/cli.js';
import { resumeRun, runExperimentFile } from '../../src/engine/experiments/commands.js';
import { RUN_FILE, RUNS_DIR } from '../../src/protocol/runs.js';
import { RunStore } from '../../src/extension/runStore.js';
import { mulberry32 } from '../../src/engine/tensor/mulberry32.js';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'src', 'engine', 'cli.ts');
// The children run in a temporary workspace, where `--import tsx` would not resolve.
const TSX = pathToFileURL(require.resolve('tsx', { paths: [ROOT] }).replace(/[^/\\]+$/, 'loader.mjs')).href;
const KILLS = 20;

const EXPERIMENT = {
  model: 'builtin:toy',
  prompts: [
    { prompt: 'the cat sat on the m', corrupted: 'the dog sat on the m', answer: 'a', wrong: 'o' },
    { prompt: 'a bird sat on the ro', corrupted: 'a frog sat on the ro', answer: 'o', wrong: 'a' },
  ],
  analyses: [{ kind: 'logit_diff' }, { kind: 'layer_dla' }, { kind: 'head_dla' }, { kind: 'patch', hook: 'resid_pre' }, { kind: 'patch', hook: 'attn_out' }, { kind: 'patch_heads', activation: 'z' }, { kind: 'ablation', ablation: 'mean' }, { kind: 'logit_lens' }],
};

const quiet = { log: () => undefined };

/** What must not depend on being interrupted: every analysis's numbers and figures. */
function numbers(dir: string): unknown {
  const r = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8')) as { results: { elapsedMs?: number }[] };
  return r.results.map(({ elapsedMs: _e, ...rest }) => rest);
}

function spawnRun(args: string[], cwd: string): ReturnType<typeof spawn> {
  return spawn(process.execPath, ['--import', TSX, CLI, 'run', ...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

test(`mechlens run SIGKILLed at ${KILLS} random moments: complete, incomplete (resumed to the same numbers) or nothing`, { timeout: 240_000 }, async (t) => {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-kill-'));
  const file = path.join(ws, 'k.experiment.json');
  fs.writeFileSync(file, JSON.stringify(EXPERIMENT));
  const reference = (await runExperimentFile(file, { ...quiet, out: path.join(ws, 'reference') })).saved.dir;
  const want = numbers(reference);

  // Kill times spread over a whole run: the first child's lifetime (start-up included) sets the range.
  const t0 = Date.now();
  await new Promise<void>((resolve) => spawnRun([file, '--out', path.join(ws, 'timing')], ws).on('exit', () => resolve()));
  const span = Date.now() - t0;
  const rnd = mulberry32(20261204);
  const dirs: string[] = [];
  for (let k = 0; k < KILLS; k++) {
    const out = path.join(ws, RUNS_DIR, `killed-${k}`);
    dirs.push(out);
    const child = spawnRun([file, '--out', out], ws);
    const at = Math.floor(rnd() * span * 1.1);
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), at);
      child.on('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  const listed = new Map((await new RunStore(path.join(ws, RUNS_DIR)).list()).map((r) => [r.id, r]));
  let complete = 0;
  let incomplete = 0;
  for (const dir of dirs) {
    const id = path.basename(dir);
    const hasRun = fs.existsSync(path.join(dir, RUN_FILE));
    const hasProgress = fs.existsSync(path.join(dir, 'progress.json'));
    if (hasRun) {
      complete++;
      assert.ok(listed.get(id)?.record, `${id}: a complete run is listed as one`);
      assert.deepEqual(numbers(dir), want, `${id}: a run that finished has the uninterrupted numbers`);
      const html = path.join(ws, `${id}.html`);
      assert.equal(await main(['report', dir, '--out', html], { out: () => undefined }), 0, `${id}: report`);
      assert.ok(fs.statSync(html).size > 1000);
    } else if (hasProgress) {
      incomplete++;
      const l = listed.get(id);
      assert.ok(l?.incomplete, `${id}: an incomplete run is listed as incomplete`);
      assert.equal(l.incomplete.total, EXPERIMENT.analyses.length * 1);
      const done = l.incomplete.done;
      const r = await resumeRun(dir, quiet);
      assert.equal(r.saved.dir, dir);
      assert.deepEqual(numbers(dir), want, `${id}: resumed after ${done} saved analyses, the numbers equal an uninterrupted run`);
      assert.equal(fs.existsSync(path.join(dir, 'parts')), false, 'the in-progress files are gone once complete');
    } else if (fs.existsSync(dir)) {
      // Killed between making the folder and writing progress.json: empty debris, never listed as a run.
      assert.deepEqual(fs.readdirSync(dir).filter((f) => !f.startsWith('.probe')), [], `${id}: debris holds nothing`);
      assert.equal(listed.get(id), undefined);
    }
  }
  t.diagnostic(`${KILLS} kills over ${span} ms: ${complete} complete, ${incomplete} incomplete and resumed, ${KILLS - complete - incomplete} left nothing or empty debris`);
  // The kill moments cover both outcomes (the seed is fixed; a change of speed moves them).
  assert.ok(complete + incomplete > 0, 'some kills left a run');
  assert.ok(incomplete > 0, `no kill landed during the analyses (${complete} complete); the test would prove nothing`);
});

test('two runs started at once in one workspace both land, in distinct folders', { timeout: 120_000 }, async () => {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-twice-'));
  const file = path.join(ws, 'k.experiment.json');
  fs.writeFileSync(file, JSON.stringify({ ...EXPERIMENT, analyses: EXPERIMENT.analyses.slice(0, 3) }));
  const codes = await Promise.all([0, 1].map(() => new Promise<number | null>((resolve) => spawnRun([file], ws).on('exit', (c) => resolve(c)))));
  assert.deepEqual(codes, [0, 0]);
  const runs = fs.readdirSync(path.join(ws, RUNS_DIR));
  assert.equal(runs.length, 2);
  for (const r of runs) assert.ok(fs.existsSync(path.join(ws, RUNS_DIR, r, RUN_FILE)), r);
});

test('resume refuses a complete run and a folder that is not a run', async () => {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-resume-'));
  const file = path.join(ws, 'k.experiment.json');
  fs.writeFileSync(file, JSON.stringify({ ...EXPERIMENT, analyses: EXPERIMENT.analyses.slice(0, 1) }));
  const done = (await runExperimentFile(file, { ...quiet, out: path.join(ws, 'done') })).saved.dir;
  await assert.rejects(resumeRun(done, quiet), /is a complete run: there is nothing to resume/);
  fs.mkdirSync(path.join(ws, 'empty'));
  await assert.rejects(resumeRun(path.join(ws, 'empty'), quiet), /not an incomplete MechLens run \(no progress\.json\)/);
});
