import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { f32, maxAbsDiff, type F32 } from '../../src/engine/tensor/tensor.js';
import { makeConfig } from '../../src/engine/model/config.js';
import { configFromHfGpt2, convertGpt2Weights } from '../../src/engine/arch/gpt2.js';
import { readSafetensors } from '../../src/engine/model/safetensors.js';
import { headsRule, linearRule, streamTranspose } from '../../src/engine/model/hf.js';
import { isTiedUnembed, untieUnembed } from '../../src/engine/model/unembed.js';

// An oracle fixture saved without the transformer. prefix, as the hub's gpt2 is; its expected.safetensors
// holds TransformerLens's converted params.
const FIXTURE = path.join(__dirname, '..', 'fixtures', 'gpt2-noprefix-gelu');
const fixtureConfig = (): Record<string, unknown> => JSON.parse(fs.readFileSync(path.join(FIXTURE, 'config.json'), 'utf8')) as Record<string, unknown>;

/** TransformerLens's reference params ('none' processing) from expected.safetensors. */
function expectedNoneParams(): Map<string, F32> {
  const all = readSafetensors(path.join(FIXTURE, 'expected.safetensors'));
  const out = new Map<string, F32>();
  for (const [k, v] of all) if (k.startsWith('none/params/')) out.set(k.slice('none/params/'.length), v);
  return out;
}

/** Every expected param present with equal dims and max |diff| <= tol; reports the max diff per param on failure. */
function assertParamsMatch(tiedOrNot: Map<string, F32>, want: Map<string, F32>, tol = 1e-6): void {
  // A tied checkpoint's W_U is kept as factors of W_E (model/unembed.ts): compared as the W_U they stand for.
  const got = untieUnembed(tiedOrNot);
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), 'param names');
  const bad: string[] = [];
  let worst = 0;
  for (const [k, w] of want) {
    const g = got.get(k)!;
    assert.deepEqual(g.dims, w.dims, `${k} dims`);
    const d = maxAbsDiff(g, w);
    worst = Math.max(worst, d);
    if (!(d <= tol)) bad.push(`${k}: max abs diff ${d}`);
  }
  assert.equal(bad.length, 0, `params differ from TransformerLens (overall max diff ${worst}):\n${bad.join('\n')}`);
}

test('the fixture converts to exactly TransformerLens none/params', () => {
  const cfg = configFromHfGpt2(fixtureConfig(), 'tiny-gpt2');
  const sd = readSafetensors(path.join(FIXTURE, 'model.safetensors'));
  const params = convertGpt2Weights(sd, cfg);
  const want = expectedNoneParams();
  assert.equal(want.size, 38);
  assertParamsMatch(params, want);
  // Named axes in TransformerLens order.
  assert.deepEqual(params.get('blocks.0.attn.W_Q')!.axes, ['head_index', 'd_model', 'd_head']);
  assert.deepEqual(params.get('blocks.1.attn.W_O')!.axes, ['head_index', 'd_head', 'd_model']);
  assert.deepEqual(untieUnembed(params).get('unembed.W_U')!.axes, ['d_model', 'd_vocab_out']);
  assert.ok(isTiedUnembed(params), 'the tied checkpoint keeps one copy of its embedding');
  // Fresh buffers: mutating a param must not change the caller's state dict.
  params.get('blocks.0.ln1.w')!.data[0] = 12345;
  assert.notEqual(sd.get('h.0.ln_1.weight')!.data[0], 12345);
});

test('keys with the transformer. prefix convert the same (and an extra lm_head is ignored when tied)', () => {
  const cfg = configFromHfGpt2(fixtureConfig(), 'tiny-gpt2');
  const sd = readSafetensors(path.join(FIXTURE, 'model.safetensors'));
  const prefixed = new Map<string, F32>();
  for (const [k, v] of sd) prefixed.set(`transformer.${k}`, v);
  prefixed.set('lm_head.weight', f32([50, 32])); // zeros: would break W_U if used while tied
  prefixed.set('transformer.h.0.attn.bias', f32([1, 1, 16, 16])); // HF's causal-mask buffer: ignored
  assertParamsMatch(convertGpt2Weights(prefixed, cfg), expectedNoneParams());
});

test('a small hand-made model: Q/K/V split per head, W_O reshape, untied lm_head transposed', () => {
  // d_model 4 = 2 heads x d_head 2, d_mlp 3, d_vocab 5, n_ctx 3, one layer.
  const cfg = makeConfig({ n_layers: 1, d_model: 4, n_heads: 2, d_mlp: 3, d_vocab: 5, n_ctx: 3, tie_word_embeddings: false });
  const ar = (dims: number[], start = 0): F32 => {
    const n = dims.reduce((a, b) => a * b, 1);
    return f32(dims, Array.from({ length: n }, (_, i) => start + i));
  };
  const sd = new Map<string, F32>([
    ['wte.weight', ar([5, 4])], ['wpe.weight', ar([3, 4])],
    ['h.0.ln_1.weight', ar([4])], ['h.0.ln_1.bias', ar([4])],
    ['h.0.attn.c_attn.weight', ar([4, 12])], ['h.0.attn.c_attn.bias', ar([12], 100)],
    ['h.0.attn.c_proj.weight', ar([4, 4])], ['h.0.attn.c_proj.bias', ar([4])],
    ['h.0.ln_2.weight', ar([4])], ['h.0.ln_2.bias', ar([4])],
    ['h.0.mlp.c_fc.weight', ar([4, 3])], ['h.0.mlp.c_fc.bias', ar([3])],
    ['h.0.mlp.c_proj.weight', ar([3, 4])], ['h.0.mlp.c_proj.bias', ar([4])],
    ['ln_f.weight', ar([4])], ['ln_f.bias', ar([4])],
    ['lm_head.weight', ar([5, 4], 1000)],
  ]);
  const p = convertGpt2Weights(sd, cfg);
  const at = (name: string, ...idx: number[]): number => {
    const t = p.get(name)!;
    let o = 0;
    for (let i = 0; i < idx.length; i++) o = o * t.dims[i]! + idx[i]!;
    return t.data[o]!;
  };
  // W_X[i, m, h] = c_attn.weight[m, X*d_model + i*d_head + h], with c_attn.weight[m, c] = 12 m + c.
  for (const [q, name] of ['W_Q', 'W_K', 'W_V'].entries()) {
    for (let i = 0; i < 2; i++) for (let m = 0; m < 4; m++) for (let h = 0; h < 2; h++) {
      assert.equal(at(`blocks.0.attn.${name}`, i, m, h), 12 * m + q * 4 + i * 2 + h, `${name}[${i},${m},${h}]`);
    }
  }
  assert.deepEqual([...p.get('blocks.0.attn.b_K')!.data], [104, 105, 106, 107]);
  assert.deepEqual(p.get('blocks.0.attn.b_V')!.dims, [2, 2]);
  // W_O[i, h, m] = c_proj.weight[i*d_head + h, m].
  assert.equal(at('blocks.0.attn.W_O', 1, 0, 3), (1 * 2 + 0) * 4 + 3);
  // W_U[m, v] = lm_head.weight[v, m] (untied), b_U zeros.
  assert.equal(at('unembed.W_U', 2, 3), 1000 + 3 * 4 + 2);
  assert.deepEqual([...p.get('unembed.b_U')!.data], [0, 0, 0, 0, 0]);
});

test('missing tensors and wrong shapes: one error naming each tensor with expected and actual shape', () => {
  const cfg = configFromHfGpt2(fixtureConfig(), 'tiny-gpt2');
  const sd = readSafetensors(path.join(FIXTURE, 'model.safetensors'));
  sd.delete('h.1.mlp.c_fc.bias');
  sd.set('h.0.attn.c_attn.weight', f32([32, 64]));
  assert.throws(() => convertGpt2Weights(sd, cfg), (e: unknown) => {
    const msg = (e as Error).message;
    assert.match(msg, /2 problem\(s\)/);
    assert.match(msg, /h\.0\.attn\.c_attn\.weight: expected shape \[32, 96\], got \[32, 64\]/);
    assert.match(msg, /h\.1\.mlp\.c_fc\.bias: expected shape \[128\], but the tensor is missing/);
    return true;
  });
  // Untied config without lm_head.weight.
  const untied = { ...cfg, tie_word_embeddings: false };
  assert.throws(() => convertGpt2Weights(readSafetensors(path.join(FIXTURE, 'model.safetensors')), untied), /lm_head\.weight: expected shape \[320, 32\], but the tensor is missing/);
  // More layers in the weights than in the config.
  const oneLayer = { ...cfg, n_layers: 1 };
  assert.throws(() => convertGpt2Weights(readSafetensors(path.join(FIXTURE, 'model.safetensors')), oneLayer), /more layers than the config's n_layers = 1/);
});

test('transposing rules (per-head projection, linear) give the same params streamed row by row as from whole tensors', () => {
  // [n·h, m] = [3·4, 5] per-head projection and a [7, 6] linear weight, with distinct values.
  const tensors = new Map([
    ['proj', f32([12, 5], Float32Array.from({ length: 60 }, (_, i) => i + 0.5))],
    ['lin', f32([7, 6], Float32Array.from({ length: 42 }, (_, i) => -i - 0.25))],
  ]);
  const rules = [headsRule('W_Q', 'proj', 3, 4, 5), linearRule('W_U', 'lin', 7, 6)];
  let chunks = 0;
  const streaming = {
    keys: () => tensors.keys(),
    get: (n: string) => tensors.get(n),
    readRows(name: string, rowLength: number, visit: (rows: Float32Array, first: number) => void): void {
      const t = tensors.get(name)!;
      // Two rows at a time, in one reused buffer, as the file reader does.
      const buf = new Float32Array(2 * rowLength);
      for (let r = 0; r * rowLength < t.data.length; r += 2) {
        const k = Math.min(2, t.data.length / rowLength - r);
        buf.fill(NaN).set(t.data.subarray(r * rowLength, (r + k) * rowLength));
        visit(buf.subarray(0, k * rowLength), r);
        chunks++;
      }
    },
  };
  for (const r of rules) {
    const viaMake = r.make(r.from.map((s) => tensors.get(s.name)!.data), false)[0]!;
    const viaStream = streamTranspose(streaming, r.from[0]!.name, r.transpose!);
    assert.deepEqual([...viaStream], [...viaMake], `${r.to[0]}: streamed transpose differs from make`);
  }
  assert.ok(chunks > 4);
});
