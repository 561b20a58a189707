/**
 * Bounded fuzzing (fast-check) of every parser of untrusted input: experiment files, .prompts
 * files, safetensors headers and config.json. Whatever the input, each gives the project's own
 * answer — diagnostics, or an Error whose message says what is wrong — never a TypeError,
 * RangeError or stack overflow from inside the parser, and quickly.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { parseExperiment, type FileReader } from '../../src/engine/experiments/parse.js';
import { parsePromptsFile } from '../../src/engine/prompts/promptsFile.js';
import { SafetensorsError, SafetensorsFile } from '../../src/engine/model/safetensors.js';
import { familyOf } from '../../src/engine/arch/index.js';

const SEED = 20261204;
const none: FileReader = { read: () => '' };

/** Internal JavaScript failures that must never escape a parser. */
function isInternal(e: unknown): boolean {
  return e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError || e instanceof SyntaxError || !(e instanceof Error) || e.message === '';
}

/** JSON values shaped like experiment files: known keys with arbitrary values, and noise. */
const jsonish = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom<unknown>(null, true, false, 0, -1, 1e308, 0.5, '', 'builtin:toy', 'L0H0', 'blocks.0.hook_resid_pre', 'constructor', '__proto__'),
    fc.string(),
    fc.integer(),
    fc.double(),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.constantFrom('model', 'prompts', 'analyses', 'kind', 'prompt', 'corrupted', 'answer', 'wrong', 'groups', 'name', 'hook', 'heads', 'layer', 'file', 'section', 'lines', 'metric', 'normalize', 'samples', 'subject', 'expect', 'task', 'train', '__proto__', 'constructor', 'x'), tie('value'), { maxKeys: 6 }),
  ),
})).value;

const kinds = ['test_prompt', 'logit_diff', 'layer_dla', 'head_dla', 'logit_lens', 'attention', 'patch', 'patch_heads', 'causal_trace', 'ablation', 'neuron_activations', 'head_scores', 'circuits'];
const experimentLike = fc.record({
  model: fc.oneof(fc.constant('builtin:toy'), fc.string()),
  prompts: fc.oneof(fc.array(fc.record({ prompt: fc.string(), corrupted: fc.option(fc.string(), { nil: undefined }), answer: fc.option(fc.string(), { nil: undefined }) }), { maxLength: 3 }), jsonish),
  analyses: fc.array(fc.record({ kind: fc.constantFrom(...kinds), layer: fc.option(fc.integer(), { nil: undefined }), hook: fc.option(fc.string(), { nil: undefined }), x: fc.option(jsonish, { nil: undefined }) }), { maxLength: 4 }),
});

test('experiment parser: any text, any JSON, any experiment-shaped object gives diagnostics, never an exception', () => {
  const check = (text: string) => {
    const t0 = performance.now();
    const r = parseExperiment(text, '/virtual/f.experiment.json', none);
    assert.ok(Array.isArray(r.diagnostics));
    for (const d of r.diagnostics) assert.ok(typeof d.message === 'string' && d.message.length > 0 && d.range.start.line >= 0);
    assert.ok(performance.now() - t0 < 2000);
  };
  fc.assert(fc.property(fc.string({ maxLength: 300 }), check), { seed: SEED, numRuns: 300 });
  fc.assert(fc.property(jsonish, (v) => check(JSON.stringify(v) ?? 'null')), { seed: SEED, numRuns: 300 });
  fc.assert(fc.property(experimentLike, (v) => check(JSON.stringify(v))), { seed: SEED, numRuns: 300 });
  // Truncations and byte flips of a real sample.
  const sample = fs.readFileSync(path.join(__dirname, '..', '..', 'samples', 'toy-tour.experiment.json'), 'utf8');
  fc.assert(fc.property(fc.nat(sample.length), fc.nat(sample.length), fc.string({ maxLength: 3 }), (cut, at, ins) => check(sample.slice(0, cut) + ins + sample.slice(at))), { seed: SEED, numRuns: 300 });
});

test('.prompts parser: any text gives prompts and problems, never an exception', () => {
  const line = fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom('a -> " b" | " c"', 'x => y -> "z"', '## section', '# c', '"', '->', '=>', '|', ' -> "', 'a => b => c'));
  fc.assert(
    fc.property(fc.array(line, { maxLength: 12 }), fc.constantFrom('\n', '\r\n', '\r'), (ls, nl) => {
      const r = parsePromptsFile(ls.join(nl));
      assert.ok(Array.isArray(r.prompts) && Array.isArray(r.problems));
    }),
    { seed: SEED, numRuns: 500 },
  );
});

test('safetensors reader: any header bytes give a SafetensorsError naming the problem, or a valid file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-fuzz-st-'));
  const file = path.join(dir, 'f.safetensors');
  const entry = fc.record({ dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'I64', 'constructor', '__proto__'), fc.string()), shape: fc.oneof(fc.array(fc.integer({ min: -2, max: 1e12 }), { maxLength: 3 }), jsonish), data_offsets: fc.oneof(fc.tuple(fc.nat(64), fc.nat(64)), jsonish) });
  const header = fc.oneof(fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('__metadata__', '__proto__', 'constructor')), fc.oneof(entry, jsonish), { maxKeys: 4 }), jsonish);
  fc.assert(
    fc.property(header, fc.nat(64), fc.option(fc.bigInt({ min: 0n, max: 1n << 62n }), { nil: undefined }), (h, dataLen, lenOverride) => {
      const hb = Buffer.from(JSON.stringify(h) ?? 'null');
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(lenOverride ?? BigInt(hb.length));
      fs.writeFileSync(file, Buffer.concat([len, hb, Buffer.alloc(dataLen)]));
      try {
        const f = SafetensorsFile.open(file);
        f.close();
      } catch (e) {
        assert.ok(e instanceof SafetensorsError, `not a SafetensorsError: ${String(e)}`);
        assert.ok(!isInternal(e));
      }
    }),
    { seed: SEED, numRuns: 400 },
  );
});

test('config.json: any object either picks a family and converts, or says why not', () => {
  const cfgKeys = ['architectures', 'model_type', 'n_embd', 'n_layer', 'n_head', 'n_positions', 'n_ctx', 'vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'intermediate_size', 'max_position_embeddings', 'rotary_pct', 'rope_theta', 'rope_scaling', 'sliding_window', 'activation_function', 'hidden_act', 'n_inner', 'rms_norm_eps', 'layer_norm_epsilon', 'tie_word_embeddings', 'use_parallel_residual', 'constructor', '__proto__', 'toString'];
  const value = fc.oneof(fc.integer({ min: -5, max: 5000 }), fc.constantFrom<unknown>(['GPT2LMHeadModel'], ['LlamaForCausalLM'], ['MistralForCausalLM'], ['GPTNeoXForCausalLM'], 'gpt2', 'llama', 'mistral', 'gpt_neox', 'silu', 'gelu_new', { type: 'llama3', factor: 8 }, null, 1e9, 0.5), jsonish);
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom(...cfgKeys), value, { maxKeys: 10 }), (hf) => {
      try {
        familyOf(hf).config(hf, 'fuzz');
      } catch (e) {
        assert.ok(!isInternal(e), `internal error for ${JSON.stringify(hf)}: ${String(e)}`);
      }
    }),
    { seed: SEED, numRuns: 600 },
  );
});
