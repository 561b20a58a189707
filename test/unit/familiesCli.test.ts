/**
 * The `mechlens` command on every registered family's oracle fixture (a model folder as a user
 * has one): `info` names the family's TransformerLens architecture and its hooks, and `run` runs
 * an experiment of the common kinds (logit difference, head DLA, residual and head patching,
 * attention, neurons) whose logit difference must equal TransformerLens's. The families with
 * post-norms, softcaps, local attention, unscaled attention, offset positions or ALiBi (Gemma 1, 2, 3, GPT-Neo, OLMo-2, OPT, BLOOM) also
 * run an experiment of every analysis kind (attribution patching included, which goes through the
 * differentiable graph), every section finishing with finite numbers.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../src/engine/cli.js';
import { oracleFixture } from '../helpers/oracle.js';
import { LoadedEngine } from '../../src/engine/engine.js';

/** The CLI in-process: its result (io.out) and stderr; stdout stays the test reporter's. */
async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const ew = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((c: string | Uint8Array) => ((err += String(c)), true)) as typeof process.stderr.write;
  try {
    const code = await main(args, { out: (t) => (out += t) });
    return { code, out, err };
  } finally {
    process.stderr.write = ew;
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-families-cli-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** One fixture per family (beyond GPT-2, which the CLI's own tests cover). */
const FIXTURES = ['neox-parallel-partial-rotary', 'rms-gqa-gated', 'mistral-sliding-window', 'qkv-bias-gqa-tied', 'per-head-qk-norm', 'fused-qkv-gate-up', 'parallel-interleaved-rotary',
  'rms1p-scaled-embed', 'postnorm-softcap-local', 'qknorm-local-rope-base', 'neo-unscaled-local', 'postnorm-qknorm-whole', 'learned-pos-offset-relu', 'alibi-embed-ln', 'moe-top2-of-4-renorm', 'moe-qknorm-clip-top2-of-6'];

for (const name of FIXTURES) {
  test(`mechlens info and run on ${name}`, async () => {
    const fx = oracleFixture(name);
    const arch = String(fx.expected.tl_cfg['original_architecture']);
    const info = await runCli(['info', '--model', fx.dir]);
    assert.equal(info.code, 0, info.err);
    const got = JSON.parse(info.out) as { cfg: { original_architecture: string; num_experts?: number | null; experts_per_token?: number | null }; hooks: number };
    assert.equal(got.cfg.original_architecture, arch);
    assert.deepEqual([got.cfg.num_experts ?? null, got.cfg.experts_per_token ?? null], [fx.expected.tl_cfg['num_experts'] ?? null, fx.expected.tl_cfg['experts_per_token'] ?? null], 'mixture-of-experts sizes');
    // TransformerLens's hooks (with use_attn_result) but unembed.hook_in / hook_out, which MechLens does not name.
    assert.equal(got.hooks, fx.expected.processing.default!.hooks.filter((h) => !h.startsWith('unembed.')).length, 'hook count');

    // Answers: two whole-word tokens (a word-start piece, "▁word" or "Ġword"), written as a user
    // writes them; the fixture's own answers are word pieces a SentencePiece tokenizer
    // cannot produce from text alone. The expected logit difference is TransformerLens's, read off
    // its logits for those tokens.
    const vocab = (JSON.parse(fs.readFileSync(path.join(fx.dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } }).model.vocab;
    const words = Object.entries(vocab).filter(([p]) => /^[\u2581\u0120][a-z]{2,}$/.test(p)).sort((a, b) => a[1] - b[1]).slice(0, 2);
    assert.equal(words.length, 2, 'two word tokens in the vocabulary');
    const [[aPiece, a], [wPiece, w]] = words as [[string, number], [string, number]];
    // Byte-level "Ġword" is " word"; SentencePiece's normalizer adds the "▁" to "word" itself.
    const asText = (piece: string): string => (piece.startsWith('\u0120') ? ' ' : '') + piece.slice(1);
    const logits = fx.tensors.get('default/logits')!; // [batch, pos, d_vocab]
    const [B, P, V] = logits.dims as [number, number, number];
    let ld = 0;
    for (let b = 0; b < B; b++) ld += (logits.data[(b * P + P - 1) * V + a]! - logits.data[(b * P + P - 1) * V + w]!) / B;
    const file = path.join(tmp, `${name}.experiment.json`);
    fs.writeFileSync(file, JSON.stringify({
      title: `${name} study`,
      model: { name: fx.dir, processing: 'default' },
      prependBos: fx.spec.prepend_bos,
      prompts: fx.spec.prompts.map((p, i) => ({ prompt: p, corrupted: fx.spec.corrupted_prompts[i]!, answer: asText(aPiece), wrong: asText(wPiece) })),
      analyses: [
        { kind: 'logit_diff', expect: { clean: ld, tolerance: 1e-4 } },
        { kind: 'head_dla' },
        { kind: 'patch', hook: 'resid_pre' },
        { kind: 'patch_heads', activation: 'z' },
        { kind: 'attention', heads: ['L1H0'] },
        // A mixture of experts has no layer-wide neurons (checked below); its MLP output is patched instead.
        name.startsWith('moe-') ? { kind: 'patch', hook: 'mlp_out' } : { kind: 'neuron_activations', layer: 1, neuron: 3 },
      ],
    }, null, 2));
    const out = path.join(tmp, `run-${name}`);
    const r = await runCli(['run', file, '--out', out]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /expectations: 1 of 1 met/);
    assert.ok(fs.existsSync(path.join(out, 'results.json')));
  });
}

interface Spec { prompts: string[]; corrupted_prompts: string[]; answer_strs: string[][] }

/** Two distinct strings that the model's tokenizer makes one token each (without BOS). */
async function singleTokenAnswers(dir: string, spec: Spec): Promise<[string, string]> {
  const engine = await LoadedEngine.load(dir, { processing: 'none', device: 'cpu', threads: 1 });
  try {
    const pool = [...spec.answer_strs.flat(), ' Mary', ' John', ' the', 'the', 'a', 'e', 's', 't'];
    const ok = [...new Set(pool)].filter((s) => engine.tokenize([s], false).tokens[0]!.length === 1);
    assert.ok(ok.length >= 2, `two single-token answers among ${JSON.stringify(pool)}`);
    return [ok[0]!, ok[1]!];
  } finally {
    await engine.dispose();
  }
}

for (const fx of ['rms1p-scaled-embed', 'postnorm-softcap-local', 'qknorm-local-rope-base', 'neo-unscaled-local', 'postnorm-qknorm-whole', 'learned-pos-offset-relu', 'alibi-embed-ln', 'moe-top2-of-4-renorm', 'moe-qknorm-clip-top2-of-6']) {
  test(`mechlens run runs every analysis kind on ${fx}`, async () => {
    const src = oracleFixture(fx).dir;
    // The experiment lives beside a copy of the checkpoint (experiment files name models relative to themselves).
    const dir = path.join(tmp, `all-${fx}`);
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(src).filter((n) => !n.startsWith('expected'))) fs.copyFileSync(path.join(src, f), path.join(dir, f));
    const spec = JSON.parse(fs.readFileSync(path.join(src, 'spec.json'), 'utf8')) as Spec;
    const [answer, wrong] = await singleTokenAnswers(dir, spec);
    const subject = spec.prompts[0]!.split(' ')[1]!;
    const experiment = {
      model: '.',
      prompts: spec.prompts.map((p, i) => ({ prompt: p, corrupted: spec.corrupted_prompts[i]!, answer, wrong })),
      analyses: [
        { kind: 'test_prompt' }, { kind: 'logit_diff' }, { kind: 'layer_dla' }, { kind: 'head_dla' },
        { kind: 'neuron_dla', layer: 1 }, { kind: 'logit_lens' }, { kind: 'attention', heads: ['L1H0'] },
        { kind: 'head_scores', seqLen: 6, batch: 2 }, { kind: 'detect_heads', pattern: 'previous_token_head' },
        { kind: 'circuits', heads: ['L1H1'] }, { kind: 'copying_scores' }, { kind: 'composition', mode: 'K' },
        { kind: 'neuron_activations', layer: 0, neuron: 3, text: spec.prompts[0]! }, { kind: 'ablation' },
        { kind: 'patch', hook: 'resid_pre' }, { kind: 'patch', hook: 'mlp_out', attribution: true },
        { kind: 'patch_heads', activation: 'z' }, { kind: 'patch_heads', activation: 'pattern', by: 'pos' },
        { kind: 'patch_heads', activation: 'v', attribution: true },
        { kind: 'patch_neurons', layer: 1, top: 4 },
        { kind: 'causal_trace', subject, samples: 2 },
        { kind: 'path_patch', receivers: 'logits' },
      ],
    };
    const moe = fx.startsWith('moe-');
    if (moe) {
      // Neuron analyses are refused before anything runs, naming the experts' hooks.
      const neuronKinds = experiment.analyses.filter((a) => a.kind.startsWith('neuron_') || a.kind === 'patch_neurons');
      assert.equal(neuronKinds.length, 3);
      const bad = path.join(dir, 'neurons.experiment.json');
      fs.writeFileSync(bad, JSON.stringify({ ...experiment, analyses: neuronKinds }));
      const refused = await runCli(['run', bad, '--out', path.join(dir, 'run-neurons')]);
      assert.notEqual(refused.code, 0);
      assert.equal(refused.err.match(/is a mixture of experts: its neurons belong to each of \d+ experts/g)?.length, 3, refused.err);
      assert.doesNotMatch(refused.err, /\[1\/3\]/, 'nothing ran');
      experiment.analyses = experiment.analyses.filter((a) => !neuronKinds.includes(a));
    }
    const file = path.join(dir, 'all.experiment.json');
    fs.writeFileSync(file, JSON.stringify(experiment));
    const run = await runCli(['run', file, '--out', path.join(dir, 'run')]);
    assert.equal(run.code, 0, run.err);
    // Every analysis wrote its section, and none says its numbers are not finite.
    const record = JSON.parse(fs.readFileSync(path.join(dir, 'run', 'run.json'), 'utf8')) as { state: { sections: { notes?: string[] }[] } };
    assert.ok(record.state.sections.length > 0, 'the run has its sections');
    for (const f of ['run.json', 'results.json']) {
      const text = fs.readFileSync(path.join(dir, 'run', f), 'utf8');
      assert.doesNotMatch(text, /Not finite/, f);
      // Attribution patching reports a failure as a skipped estimate; it must run on every family.
      assert.doesNotMatch(text, /attribution patching failed/, f);
    }
  });
}
