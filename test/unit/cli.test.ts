import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { main } from '../../src/engine/cli.js';
import { readSafetensors } from '../../src/engine/model/safetensors.js';
import { FIXTURE_DIR, FIXTURE_MODEL_DIR, alignedReference, expectedJson, hookNamesIn, spec } from '../helpers/fixture.js';
import { f32, maxAbsDiff } from '../../src/engine/tensor/tensor.js';
import { PROCESSING_MODES } from '../../src/engine/model/params.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-cli-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs main() in-process, capturing stderr. */
async function run(args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(args), stderr };
  } finally {
    process.stderr.write = orig;
  }
}

function writeTmp(name: string, content: string | Buffer): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, content);
  return p;
}

for (const mode of PROCESSING_MODES) {
  test(`cache writes logits and every hook under its TransformerLens name (${mode})`, async () => {
    const tok = writeTmp('tokens.json', JSON.stringify(spec.tokens));
    const out = path.join(tmp, `cache-${mode.replace('+', '_')}.safetensors`);
    const r = await run(['cache', '--model', FIXTURE_MODEL_DIR, '--tokens-json', tok, '--processing', mode, '--hooks', 'all', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const got = readSafetensors(out);
    const ref = hookNamesIn(mode).map((h) => `${mode}/${h}`);
    assert.ok(ref.length >= 40);
    const signs = new Map<string, Int8Array>();
    for (const k of ref) {
      const name = k.slice(mode.length + 1);
      const t = got.get(name);
      assert.ok(t, `output lacks ${name}`);
      const d = maxAbsDiff(t, alignedReference(mode, name, t, signs));
      assert.ok(d <= 1e-4, `${mode} ${name}: max |diff| ${d} > 1e-4`);
    }
  });

  test(`analyze reproduces expected.json (${mode})`, async () => {
    const out = path.join(tmp, `analysis-${mode.replace('+', '_')}.json`);
    const r = await run(['analyze', '--model', FIXTURE_MODEL_DIR, '--spec', path.join(FIXTURE_DIR, 'spec.json'), '--processing', mode, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(fs.readFileSync(out, 'utf8')) as Record<string, unknown>;
    const want = expectedJson.processing[mode];
    const flat = (v: unknown): number[] => (Array.isArray(v) ? v.flatMap(flat) : typeof v === 'number' ? [v] : typeof v === 'object' && v ? flat((v as { values: unknown }).values) : []);
    for (const key of ['loss', 'logit_diff', 'corrupted_logit_diff', 'head_dla', 'layer_dla', 'logit_lens', 'resid_pre_patching', 'head_z_patching']) {
      const a = flat(got[key]), b = flat(want[key]);
      assert.equal(a.length, b.length, `${key} length`);
      const d = Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
      assert.ok(d <= 1e-4, `${mode} ${key}: max |diff| ${d} > 1e-4`);
    }
    assert.deepEqual((got['logit_lens'] as { labels: string[] }).labels, (want['logit_lens'] as { labels: string[] }).labels);
  });
}

test('malformed input exits non-zero with one clear line and leaves no output file', async () => {
  const good = writeTmp('good.json', JSON.stringify(spec.tokens));
  const out = path.join(tmp, 'should-not-exist.safetensors');
  const trunc = fs.mkdtempSync(path.join(tmp, 'trunc-'));
  fs.copyFileSync(path.join(FIXTURE_DIR, 'config.json'), path.join(trunc, 'config.json'));
  const full = fs.readFileSync(path.join(FIXTURE_DIR, 'model.safetensors'));
  fs.writeFileSync(path.join(trunc, 'model.safetensors'), full.subarray(0, full.length - 1000));
  const absurd = fs.mkdtempSync(path.join(tmp, 'absurd-'));
  fs.copyFileSync(path.join(FIXTURE_DIR, 'config.json'), path.join(absurd, 'config.json'));
  const hdr = Buffer.alloc(8);
  hdr.writeBigUInt64LE(1n << 60n);
  fs.writeFileSync(path.join(absurd, 'model.safetensors'), Buffer.concat([hdr, Buffer.from('{}')]));
  const missingT = fs.mkdtempSync(path.join(tmp, 'missing-'));
  fs.copyFileSync(path.join(FIXTURE_DIR, 'config.json'), path.join(missingT, 'config.json'));
  const sd = readSafetensors(path.join(FIXTURE_DIR, 'model.safetensors'));
  sd.delete('transformer.h.1.mlp.c_fc.weight');
  const { writeSafetensors } = await import('../../src/engine/model/safetensors.js');
  writeSafetensors(path.join(missingT, 'model.safetensors'), sd);
  const wrongShape = fs.mkdtempSync(path.join(tmp, 'shape-'));
  fs.copyFileSync(path.join(FIXTURE_DIR, 'config.json'), path.join(wrongShape, 'config.json'));
  const sd2 = readSafetensors(path.join(FIXTURE_DIR, 'model.safetensors'));
  sd2.set('transformer.h.0.attn.c_proj.weight', f32([32, 31]));
  writeSafetensors(path.join(wrongShape, 'model.safetensors'), sd2);

  const cases: [string[], RegExp][] = [
    [['cache', '--model', FIXTURE_MODEL_DIR, '--tokens-json', writeTmp('bad.json', '[[0, 1,'), '--out', out], /not valid JSON/],
    [['cache', '--model', FIXTURE_MODEL_DIR, '--tokens-json', writeTmp('range.json', '[[0, 1, 320]]'), '--out', out], /out of range/],
    [['cache', '--model', FIXTURE_MODEL_DIR, '--tokens-json', writeTmp('float.json', '[[0, 1.5]]'), '--out', out], /not an integer/],
    [['cache', '--model', FIXTURE_MODEL_DIR, '--tokens-json', writeTmp('long.json', JSON.stringify([Array.from({ length: 33 }, () => 1)])), '--out', out], /n_ctx = 32/],
    [['cache', '--model', FIXTURE_MODEL_DIR, '--tokens-json', writeTmp('ragged.json', '[[0, 1, 2], [0, 1]]'), '--out', out], /pad them/],
    [['cache', '--model', FIXTURE_MODEL_DIR, '--tokens-json', good, '--hooks', 'blocks.0.attn.hook_nope', '--out', out], /unknown hook/],
    [['cache', '--model', FIXTURE_MODEL_DIR, '--tokens-json', path.join(tmp, 'absent.json'), '--out', out], /cannot read tokens file/],
    [['cache', '--model', trunc, '--tokens-json', good, '--out', out], /truncated/],
    [['cache', '--model', absurd, '--tokens-json', good, '--out', out], /claims .* bytes/],
    [['cache', '--model', missingT, '--tokens-json', good, '--out', out], /h\.1\.mlp\.c_fc\.weight/],
    [['cache', '--model', wrongShape, '--tokens-json', good, '--out', out], /c_proj\.weight/],
    [['cache', '--model', path.join(tmp, 'no-such-model'), '--tokens-json', good, '--out', out], /does not exist/],
    [['cache', '--model', FIXTURE_MODEL_DIR, '--tokens-json', good, '--processing', 'fold', '--out', out], /--processing must be one of/],
    [['analyze', '--model', FIXTURE_MODEL_DIR, '--spec', writeTmp('spec1.json', JSON.stringify({ ...spec, answers: [[1, 2]] })), '--out', out], /answers has 1 pairs/],
    [['analyze', '--model', FIXTURE_MODEL_DIR, '--spec', writeTmp('spec2.json', JSON.stringify({ ...spec, corrupted_tokens: spec.tokens.map((r) => r.slice(1)) })), '--out', out], /same shape/],
    [['analyze', '--model', FIXTURE_MODEL_DIR, '--spec', writeTmp('spec3.json', JSON.stringify({ tokens: spec.tokens })), '--out', out], /corrupted_tokens/],
    [['cache', '--model', FIXTURE_MODEL_DIR, '--tokens-json', good, '--out', path.join(tmp, 'no-dir', 'x.safetensors')], /output folder/],
    [['frobnicate'], /unknown command/],
  ];
  for (const [args, re] of cases) {
    const r = await run(args);
    assert.notEqual(r.code, 0, `${args.join(' ')} should fail`);
    const first = r.stderr.split('\n')[0]!;
    assert.match(first, /^mechlens: /, `first stderr line: ${first}`);
    assert.match(first, re, `for ${args.slice(0, 2).join(' ')} ${args.at(-3) ?? ''}: ${first}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.ok(!fs.existsSync(out), 'no output file left behind');
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-')), [], 'no temp files left behind');
  }
});

test('the CLI as a process: one stderr line and a non-zero status', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', '..', 'src', 'engine', 'cli.ts'), 'cache', '--model', FIXTURE_MODEL_DIR, '--tokens-json', writeTmp('x.json', 'nope'), '--out', path.join(tmp, 'x.safetensors')], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr.trim(), /^mechlens: tokens file .* is not valid JSON/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});

test('mechlens run on a training experiment says how to train it and runs nothing', async () => {
  const file = path.join(__dirname, '..', '..', 'samples', 'induction.experiment.json');
  const r = await run(['run', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is a training experiment \("kind": "train"\): train it with its Train lens in VS Code, or run `node --import tsx scripts\/train-experiment\.ts /);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});
