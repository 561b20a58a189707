/**
 * A whole SAE training run from a resolved "train_sae" experiment (SaeTrainPayload): load the
 * model, read and cut the corpus, compute the hook's activations, train, save the SAELens
 * folder, and measure the saved SAE on the held-out tokens with the engine's spliced forward.
 * The engine worker's engine/sae/train request, the bench and the tests call it.
 */
import * as path from 'node:path';
import type { SaeTrainPayload, SaeTrainResult, SaeTrainingProgress } from '../../protocol/engine.js';
import { LoadedEngine } from '../engine.js';
import { loadSaeFolder } from './sae.js';
import { collectActivations, evaluateSae, hookWidth, SaeTrainer, SaeTrainError, type SaeTrainConfig } from './train.js';
import { BOOK_CORPUS, corpusTrainRows, readCorpus } from './trainCorpus.js';

/** Activations kept in memory by default, and at most. */
const DEFAULT_ACTIVATION_BYTES = 2 ** 30;
const MAX_ACTIVATION_BYTES = 4 * 2 ** 30;

export interface SaeTrainRunOptions {
  threads?: number;
  signal?: AbortSignal;
  onProgress?: (p: SaeTrainingProgress) => void;
  /** A model already loaded (tests, the bench): used instead of loading payload.model. */
  engine?: LoadedEngine;
}

export async function trainSaeRun(p: SaeTrainPayload, opts: SaeTrainRunOptions = {}): Promise<SaeTrainResult> {
  const eng = opts.engine ?? (await LoadedEngine.load(p.model, { device: 'cpu', ...(opts.threads !== undefined ? { threads: opts.threads } : {}), signal: opts.signal }));
  try {
    const model = eng.model;
    const dIn = hookWidth(model, p.hook);
    const dSae = p.d_sae ?? Math.round((p.expansion_factor ?? 8) * dIn);
    const n = p.context_size ?? Math.min(model.cfg.n_ctx, 128);
    if (n > model.cfg.n_ctx) throw new SaeTrainError(`context_size ${n} is longer than the model's context of ${model.cfg.n_ctx} tokens`, 'CONFIG');
    const prependBos = p.prepend_bos ?? eng.tokenizer.defaultPrependBos ?? true;
    const bos = prependBos && eng.tokenizer.bosTokenId !== null;
    // Every training token's activation is kept in memory: [tokens, d_in] float32.
    const maxTokens = p.corpus_tokens ?? Math.min(2_000_000, Math.floor(DEFAULT_ACTIVATION_BYTES / (4 * dIn)));
    if (maxTokens * dIn * 4 > MAX_ACTIVATION_BYTES) {
      throw new SaeTrainError(`corpus_tokens ${maxTokens} x width ${dIn} x 4 bytes is ${(maxTokens * dIn * 4 / 2 ** 30).toFixed(1)} GiB of activations; at most ${MAX_ACTIVATION_BYTES / 2 ** 30} GiB are kept: lower corpus_tokens to ${Math.floor(MAX_ACTIVATION_BYTES / (4 * dIn))} or less`, 'CONFIG');
    }
    const { text, label } = readCorpus(p.corpus);
    const rows = corpusTrainRows(eng.tokenizer, text, n, { prependBos, maxTokens, evalTokens: p.eval_tokens });
    const t0 = performance.now();
    const acts = await collectActivations(model, p.hook, rows.train, { batchRows: 32, skipFirst: bos, signal: opts.signal, onProgress: (done, total) => opts.onProgress?.({ kind: 'activations', done, total }) });
    const activationSec = (performance.now() - t0) / 1000;
    const config: SaeTrainConfig = {
      architecture: p.architecture, hook: p.hook, d_sae: dSae, k: p.k, l1_coefficient: p.l1_coefficient, l1_warm_up_steps: p.l1_warm_up_steps,
      aux_loss_coefficient: p.aux_loss_coefficient, lr: p.lr, betas: p.betas, lr_warm_up_steps: p.lr_warm_up_steps, lr_decay_steps: p.lr_decay_steps,
      max_grad_norm: p.max_grad_norm, steps: p.steps, batch_size: p.batch_size, apply_b_dec_to_input: p.apply_b_dec_to_input, b_dec_init: p.b_dec_init,
      decoder_init_norm: p.decoder_init_norm, dead_feature_window: p.dead_feature_window, seed: p.seed, log_every: p.log_every,
    };
    const context = { d_in: dIn, model_name: model.cfg.model_name, context_size: n, prepend_bos: bos, dataset: p.corpus === BOOK_CORPUS ? BOOK_CORPUS : path.basename(p.corpus) };
    const trainer = await SaeTrainer.create(config, context, acts, opts.threads !== undefined ? { threads: opts.threads } : {});
    try {
      opts.onProgress?.({ kind: 'started', d_in: dIn, d_sae: dSae, params: 2 * dIn * dSae + dSae + dIn, trainTokens: acts.tokens, evalTokens: rows.eval.length * (n - (bos ? 1 : 0)), corpus: label, steps: p.steps });
      const r = await trainer.run({ signal: opts.signal, onSnapshot: (s) => opts.onProgress?.({ kind: 'snapshot', ...s }) });
      const out = trainer.save(p.output);
      opts.onProgress?.({ kind: 'saved', path: out });
      // Measured on the saved folder as a user loads it, spliced into the model.
      const evaluation = rows.eval.length ? await evaluateSae(model, loadSaeFolder(out), rows.eval) : { tokens: 0, explainedVariance: NaN, l0: NaN, mse: NaN, neverFired: dSae };
      return { status: r.status, step: r.step, steps: p.steps, output: out, d_in: dIn, d_sae: dSae, evaluation, snapshots: r.snapshots, activationSec, trainSec: r.seconds };
    } finally {
      await trainer.dispose();
    }
  } finally {
    if (!opts.engine) await eng.model.dispose();
  }
}
