/**
 * The `mechlens` command on each model family added with the post-norm / softcap / local-attention
 * components (Gemma 1, 2, 3, GPT-Neo, OLMo-2): `info` reports the family's architecture, and `run`
 * runs an experiment with every analysis kind (attribution patching included, which goes through
 * the differentiable graph) on its oracle fixture, every section finishing with finite numbers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../src/engine/cli.js';
import { LoadedEngine } from '../../src/engine/engine.js';

const FIXTURES = path.join(__dirname, '..', 'fixtures');

/**
 * The command's entry point with its result captured through io.out. Not test/helpers/cli.ts's
 * runCli: that one replaces process.stdout.write, which swallows the test runner's reports of
 * the earlier tests of this file.
 */
async function mechlens(args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await main(args, { out: (t) => void (out += t) });
  return { code, out };
}
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-families-cli-'));
process.on('exit', () => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const CASES: [fixture: string, architecture: string][] = [
  ['rms1p-scaled-embed', 'GemmaForCausalLM'],
  ['postnorm-softcap-local', 'Gemma2ForCausalLM'],
  ['qknorm-local-rope-base', 'Gemma3ForCausalLM'],
  ['neo-unscaled-local', 'GPTNeoForCausalLM'],
  ['postnorm-qknorm-whole', 'Olmo2ForCausalLM'],
];

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

for (const [fx, arch] of CASES) {
  test(`${fx}: mechlens info names ${arch}; mechlens run runs every analysis kind on it`, async () => {
    const src = path.join(FIXTURES, fx);
    const info = await mechlens(['info', '--model', src]);
    assert.equal(info.code, 0);
    const cfg = (JSON.parse(info.out) as { cfg: { original_architecture: string; n_layers: number } }).cfg;
    assert.equal(cfg.original_architecture, arch);

    // The experiment lives beside a copy of the checkpoint (experiment files name models relative to themselves).
    const dir = path.join(tmpRoot, fx);
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
    const file = path.join(dir, 'all.experiment.json');
    fs.writeFileSync(file, JSON.stringify(experiment));
    const run = await mechlens(['run', file, '--out', path.join(dir, 'run')]);
    assert.equal(run.code, 0, run.out);
    // Every analysis wrote its section, and none says its numbers are not finite.
    const record = JSON.parse(fs.readFileSync(path.join(dir, 'run', 'run.json'), 'utf8')) as { state: { sections: { notes?: string[] }[] } };
    assert.ok(record.state.sections.length > 0, 'the run has its sections');
    for (const f of ['run.json', 'results.json']) assert.doesNotMatch(fs.readFileSync(path.join(dir, 'run', f), 'utf8'), /Not finite/, f);
  });
}
