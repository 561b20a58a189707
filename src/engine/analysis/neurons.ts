/**
 * MLP neurons: activations over text, colored per token (neuroscope-style data, as the contraction-circuit study's
 * basic_neuron_vis reads blocks.L.mlp.hook_post[0, :, n]); the lines of a file on which a neuron
 * fires most; and the direct logit attribution of every neuron of a layer.
 */
import type { HookedTransformer, Tokens } from '../model/hookedTransformer.js';
import type { HookName, OutputName } from '../hooks/hooks.js';
import { getParam } from '../model/params.js';
import { splitAnswers, tokensToResidualDirections } from '../cache/activationCache.js';
import { SweepAbortedError, type SweepOptions } from './sweep.js';

export interface NeuronText {
  tokens: number[];
  /** Activation at each token, [pos]. */
  acts: number[];
  max: number;
  min: number;
}

function checkNeuron(model: HookedTransformer, layer: number, neuron: number): void {
  const cfg = model.cfg;
  if (cfg.d_mlp === null) throw new Error('an attention-only model has no MLP neurons');
  if (!Number.isInteger(layer) || layer < 0 || layer >= cfg.n_layers) throw new Error(`layer ${layer} is out of range: the model has layers 0..${cfg.n_layers - 1}`);
  if (!Number.isInteger(neuron) || neuron < 0 || neuron >= cfg.d_mlp) throw new Error(`neuron ${neuron} is out of range: layers have neurons 0..${cfg.d_mlp - 1}`);
}

/**
 * blocks.L.mlp.hook_<hook>[:, :, neuron] for each sequence (rows may differ in length: rows of
 * equal length run as one batch).
 */
export async function neuronActivations(model: HookedTransformer, rows: Tokens, layer: number, neuron: number, opts: { hook?: 'post' | 'pre' } & Pick<SweepOptions, 'signal' | 'onProgress'> = {}): Promise<NeuronText[]> {
  checkNeuron(model, layer, neuron);
  const N = model.cfg.d_mlp!;
  const name = `blocks.${layer}.mlp.hook_${opts.hook ?? 'post'}` as HookName;
  const out: NeuronText[] = new Array(rows.length);
  const byLen = new Map<number, number[]>();
  rows.forEach((r, i) => {
    if (r.length === 0) {
      out[i] = { tokens: [], acts: [], max: NaN, min: NaN };
      return;
    }
    byLen.set(r.length, [...(byLen.get(r.length) ?? []), i]);
  });
  let done = 0;
  for (const [P, idx] of byLen) {
    // Bounded batches: a long file can have many lines of one length.
    for (let i0 = 0; i0 < idx.length; i0 += 64) {
      if (opts.signal?.aborted) throw new SweepAbortedError(out);
      const part = idx.slice(i0, i0 + 64);
      const r = await model.run(part.map((i) => rows[i]!), { names: [name as OutputName], noLogits: true, stopAtLayer: layer + 1 });
      const t = r.cache.get(name)!.data; // [batch, pos, d_mlp]
      part.forEach((i, b) => {
        const acts = Array.from({ length: P }, (_, p) => t[(b * P + p) * N + neuron]!);
        out[i] = { tokens: [...rows[i]!], acts, max: Math.max(...acts), min: Math.min(...acts) };
      });
      done += part.length;
      opts.onProgress?.(done, rows.length);
    }
  }
  return out;
}

export interface MaxActivatingLine extends NeuronText {
  /** 0-based index of the line in the input. */
  line: number;
}

/**
 * The k lines on which the neuron's largest activation is highest (ties: earlier line first),
 * each with its per-token activations. Lines are token rows (e.g. each line of a file,
 * tokenized with BOS); empty rows are skipped.
 */
export async function maxActivatingLines(model: HookedTransformer, lines: Tokens, layer: number, neuron: number, k = 10, opts: { hook?: 'post' | 'pre' } & Pick<SweepOptions, 'signal' | 'onProgress'> = {}): Promise<MaxActivatingLine[]> {
  const acts = await neuronActivations(model, lines, layer, neuron, opts);
  return acts
    .map((a, line) => ({ ...a, line }))
    .filter((a) => a.tokens.length > 0)
    .sort((a, b) => b.max - a.max || a.line - b.line)
    .slice(0, k);
}

/**
 * Direct logit attribution of every neuron of `layer` to the logit difference at the last
 * position, [d_mlp]: the neuron's output post[b, -1, n] W_out[n] is centred and divided by the
 * cached final LayerNorm scale (as TL's stack_neuron_results + logit_attrs do), dotted with
 * W_U[:, correct_b] - W_U[:, wrong_b], and averaged over prompts.
 */
export async function neuronDla(model: HookedTransformer, tokens: Tokens, answers: readonly (readonly number[])[], layer: number): Promise<number[]> {
  checkNeuron(model, layer, 0);
  const cfg = model.cfg;
  const [B, P] = model.checkTokens(tokens);
  if (answers.length !== B) throw new Error(`answers: ${answers.length} pairs for ${B} prompts`);
  const { correct, wrong } = splitAnswers(answers);
  const postName = `blocks.${layer}.mlp.hook_post` as OutputName;
  const names: OutputName[] = [postName];
  const ln = cfg.normalization_type !== null;
  if (ln) names.push('ln_final.hook_scale');
  const r = await model.run(tokens, { names, noLogits: true });
  const post = r.cache.get(postName)!.data;
  const scale = ln ? r.cache.get('ln_final.hook_scale')!.data : null;
  const d = cfg.d_model;
  const N = cfg.d_mlp!;
  const Wout = getParam(model.params, `blocks.${layer}.mlp.W_out`).data; // [d_mlp, d_model]
  // W_U[:, correct_b] - W_U[:, wrong_b] per prompt, [batch, d_model] (only those columns are built).
  const dirs = tokensToResidualDirections(model.params, correct, wrong).data;
  const out = new Float64Array(N);
  const u = new Float64Array(d);
  for (let b = 0; b < B; b++) {
    let sumU = 0;
    for (let i = 0; i < d; i++) sumU += u[i] = dirs[b * d + i]!;
    const sc = scale ? scale[b * P + P - 1]! : 1;
    for (let n = 0; n < N; n++) {
      const w = Wout.subarray(n * d, (n + 1) * d);
      let dot = 0;
      let mean = 0;
      for (let i = 0; i < d; i++) {
        dot += w[i]! * u[i]!;
        mean += w[i]!;
      }
      // LN centring: (x - mean(x)) . u = x . u - mean(x) sum(u)
      const centred = ln ? dot - (mean / d) * sumU : dot;
      out[n]! += (post[(b * P + P - 1) * N + n]! * centred) / sc / B;
    }
  }
  return Array.from(out);
}
