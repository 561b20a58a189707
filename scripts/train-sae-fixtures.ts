/**
 * Trains the MechLens-trained SAE that the SAELens oracle (oracle/gen_trained_saes.py) loads
 * beside the sample SAE (samples/saes/blocks.1.hook_resid_post): a standard (ReLU + L1) SAE with
 * 256 features on builtin:default's blocks.0.hook_resid_post, written to
 * test/fixtures/saes-trained/standard-resid-post-0. After rerunning it, regenerate the oracle
 * fixture (python oracle/regenerate.py --only trained_saes) and commit both.
 *
 *   node --import tsx scripts/train-sae-fixtures.ts
 */
import * as path from 'node:path';
import { trainSaeRun } from '../src/engine/sae/trainRun.js';

async function main(): Promise<void> {
  const root = path.join(__dirname, '..');
  const r = await trainSaeRun({
    model: 'builtin:default', hook: 'blocks.0.hook_resid_post', architecture: 'standard', d_sae: 256, k: 16,
    l1_coefficient: 2, l1_warm_up_steps: 50, aux_loss_coefficient: 1, apply_b_dec_to_input: true, b_dec_init: 'mean', decoder_init_norm: 0.1,
    steps: 300, batch_size: 1024, lr: 2e-3, betas: [0.9, 0.999], lr_warm_up_steps: 0, lr_decay_steps: 60, max_grad_norm: 1, dead_feature_window: 100, log_every: 50,
    corpus: 'builtin:book', context_size: 128, corpus_tokens: 200_000, eval_tokens: 4096, seed: 5,
    output: path.join(root, 'test', 'fixtures', 'saes-trained', 'standard-resid-post-0'),
  }, { threads: 1, onProgress: (p) => { if (p.kind === 'snapshot') console.error(`step ${p.step}: mse ${p.mse.toFixed(3)} L0 ${p.l0.toFixed(1)} EV ${p.explainedVariance.toFixed(4)}`); } });
  console.log(`${r.output}: held-out explained variance ${r.evaluation.explainedVariance.toFixed(4)}, L0 ${r.evaluation.l0.toFixed(2)}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
