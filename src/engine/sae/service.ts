/**
 * The SAE operations the editor's views call through the engine worker (engine/sae/* requests):
 * load an SAE for the loaded model, the top features of each token of some texts, one feature's
 * activation on each token, and a feature dashboard over a corpus (top-activating contexts,
 * histogram, density, logit effect). Corpus statistics are computed for every feature in one
 * streaming pass and cached per SAE and corpus, so opening the next feature is immediate.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import type { HookedTransformer } from '../model/hookedTransformer.js';
import { toSingleToken, toTokens, tokensToStrings, type Tokenizer } from '../model/tokenizer.js';
import { featureActivations, featureDla, topFeaturesPerToken } from '../analysis/sae.js';
import { featureLogitEffect, featureStats, histogram, type FeatureStats } from '../analysis/saeFeatures.js';
import { loadSae } from './load.js';
import { checkSaeForModel, type Sae } from './sae.js';
import type { SaeDashboardParams, SaeDashboardResult, SaeFeatureActsResult, SaeFeatureDlaParams, SaeFeatureDlaResult, SaeFeaturesResult, SaeInfo } from '../../protocol/engine.js';

export interface SaeHost {
  readonly model: HookedTransformer;
  readonly tokenizer: Tokenizer;
}

/** Largest corpus a dashboard reads. */
export const MAX_CORPUS_BYTES = 32 * 1024 * 1024;

export class SaeService {
  private readonly saes = new Map<string, Sae>();
  private readonly stats = new Map<string, Promise<{ stats: FeatureStats; rows: number[][] }>>();

  constructor(private readonly host: () => SaeHost) {}

  async load(spec: string, opts: { allowDownload?: boolean; signal?: AbortSignal } = {}): Promise<SaeInfo> {
    const sae = await loadSae(spec, { allowDownload: opts.allowDownload ?? true, signal: opts.signal });
    const { hookIn, hookOut } = checkSaeForModel(sae, this.host().model.cfg);
    this.saes.set(sae.id, sae);
    const c = sae.cfg;
    return {
      id: sae.id, source: sae.source, architecture: c.architecture, d_in: c.d_in, d_sae: c.d_sae, d_out: c.d_out, hookIn, hookOut,
      normalizeActivations: c.normalize_activations, k: c.k, hasSparsity: sae.sparsity !== null, notes: [...c.notes],
      ...(c.model_name ? { modelName: c.model_name } : {}),
    };
  }

  /** A loaded SAE by id (for runs that splice it). */
  sae(id: string): Sae {
    return this.get(id).sae;
  }

  private get(id: string): { sae: Sae; host: SaeHost } {
    const sae = this.saes.get(id);
    if (!sae) throw new Error(`no SAE ${id} is loaded: load it first (engine/sae/load)`);
    const host = this.host();
    checkSaeForModel(sae, host.model.cfg);
    return { sae, host };
  }

  private rows(host: SaeHost, texts: string[], prependBos?: boolean): number[][] {
    return texts.map((t) => toTokens(host.tokenizer, t, { prependBos, nCtx: host.model.cfg.n_ctx, truncate: false }).tokens[0]!);
  }

  /** The `top` most active features of every token of each text (one text at a time: lengths differ). */
  async features(id: string, texts: string[], opts: { prependBos?: boolean; top?: number } = {}): Promise<SaeFeaturesResult> {
    const { sae, host } = this.get(id);
    const out: SaeFeaturesResult = { tokens: [], strTokens: [], top: [], l0: [], explainedVariance: [], acts: [] };
    const D = sae.cfg.d_sae;
    for (const row of this.rows(host, texts, opts.prependBos)) {
      const f = await featureActivations(host.model, [row], sae);
      const top = topFeaturesPerToken(f.acts, opts.top ?? 10)[0]!;
      out.tokens.push(row);
      out.strTokens.push(tokensToStrings(host.tokenizer, row));
      out.top.push(top);
      out.l0.push(f.l0);
      out.explainedVariance.push(f.explainedVariance);
      // acts: [1, pos, d_sae]; the columns of the features some token ranks among its top ones.
      const union = new Set(top.flatMap((t) => t.map((x) => x.feature)));
      const acts: Record<string, number[]> = {};
      for (const feature of [...union].sort((a, b) => a - b)) acts[String(feature)] = row.map((_, p) => f.acts.data[p * D + feature]!);
      out.acts.push(acts);
    }
    return out;
  }

  /** One feature's activation on every token of each text (to colour a prompt by it). */
  async featureActs(id: string, texts: string[], feature: number, opts: { prependBos?: boolean } = {}): Promise<SaeFeatureActsResult> {
    const { sae, host } = this.get(id);
    const D = sae.cfg.d_sae;
    if (!Number.isInteger(feature) || feature < 0 || feature >= D) throw new Error(`feature ${feature} does not exist: the SAE has features 0..${D - 1}`);
    const out: SaeFeatureActsResult = { strTokens: [], values: [] };
    for (const row of this.rows(host, texts, opts.prependBos)) {
      const { acts } = await featureActivations(host.model, [row], sae);
      out.strTokens.push(tokensToStrings(host.tokenizer, row));
      out.values.push(row.map((_, p) => acts.data[p * D + feature]!));
    }
    return out;
  }

  /**
   * A feature's dashboard over a corpus (a text file, or texts): the corpus is tokenized and cut
   * into rows of `rowTokens` (BOS first when the model prepends one), every feature's statistics
   * computed once (progress, cancellation) and cached per SAE and corpus content.
   */
  async dashboard(p: SaeDashboardParams, opts: { signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {}): Promise<SaeDashboardResult> {
    const { sae, host } = this.get(p.saeId);
    const D = sae.cfg.d_sae;
    if (!Number.isInteger(p.feature) || p.feature < 0 || p.feature >= D) throw new Error(`feature ${p.feature} does not exist: the SAE has features 0..${D - 1}`);
    let text: string;
    if ('file' in p.corpus) {
      const st = fs.statSync(p.corpus.file, { throwIfNoEntry: false });
      if (!st?.isFile()) throw new Error(`corpus ${p.corpus.file} is not a readable file`);
      if (st.size > MAX_CORPUS_BYTES) throw new Error(`corpus ${p.corpus.file} is ${st.size} bytes; at most ${MAX_CORPUS_BYTES}`);
      text = fs.readFileSync(p.corpus.file, 'utf8');
    } else text = p.corpus.texts.join('\n');
    const n = Math.min(p.rowTokens ?? 128, host.model.cfg.n_ctx);
    const maxTokens = p.maxTokens ?? 50_000;
    const key = `${sae.id}|${n}|${maxTokens}|${p.prependBos ?? ''}|${crypto.createHash('sha256').update(text).digest('hex')}`;
    let entry = this.stats.get(key);
    if (!entry) {
      const rows = corpusRows(host.tokenizer, text, n, maxTokens, p.prependBos);
      entry = featureStats(host.model, sae, rows, { topK: 20, signal: opts.signal, onProgress: opts.onProgress }).then((stats) => ({ stats, rows }));
      this.stats.set(key, entry);
      entry.catch(() => this.stats.delete(key));
    }
    const { stats, rows } = await entry;
    // Per-feature values are not kept for every feature: the histogram comes from the top contexts'
    // rows' activations of this feature, recomputed (a second, short pass over the rows it fires in).
    const firing = [...new Set(stats.top[p.feature]!.map((c) => c.row))];
    const w = p.contextTokens ?? 8;
    const contexts = stats.top[p.feature]!.slice(0, p.topK ?? 20).map((c) => {
      const row = rows[c.row]!;
      const lo = Math.max(0, c.pos - w), hi = Math.min(row.length, c.pos + w + 1);
      return { row: c.row, pos: c.pos, act: c.act, strTokens: tokensToStrings(host.tokenizer, row.slice(lo, hi)), highlight: c.pos - lo };
    });
    const values = await this.valuesOf(host, sae, p.feature, rows, p.histogramRows ?? 64, firing, opts.signal);
    const eff = sae.cfg.d_out === host.model.cfg.d_model ? featureLogitEffect(host.model, sae, p.feature, p.logitTokens ?? 10) : null;
    const str = (t: number) => tokensToStrings(host.tokenizer, [t])[0]!;
    return {
      feature: p.feature, tokens: stats.tokens, density: stats.density[p.feature]!, maxAct: stats.maxAct[p.feature]!, meanActive: stats.meanActive[p.feature]!,
      contexts, histogram: histogram(values, 32),
      logitEffect: eff ? { top: eff.top.map((t) => ({ token: t.token, str: str(t.token), value: t.value })), bottom: eff.bottom.map((t) => ({ token: t.token, str: str(t.token), value: t.value })) } : null,
      ...(sae.sparsity ? { logDensityFromFile: sae.sparsity.data[p.feature]! } : {}),
    };
  }

  /** The feature's non-zero activations over rows it fires in (the top contexts' rows first, then others up to `maxRows`). */
  private async valuesOf(host: SaeHost, sae: Sae, feature: number, rows: number[][], maxRows: number, first: number[], signal?: AbortSignal): Promise<Float32Array> {
    const pick = [...first, ...rows.map((_, i) => i).filter((i) => !first.includes(i))].slice(0, Math.max(maxRows, first.length));
    const D = sae.cfg.d_sae;
    const vals: number[] = [];
    for (const i of pick) {
      signal?.throwIfAborted();
      const { acts } = await featureActivations(host.model, [rows[i]!], sae);
      for (let q = 0; q < rows[i]!.length; q++) {
        const v = acts.data[q * D + feature]!;
        if (v > 0) vals.push(v);
      }
    }
    return Float32Array.from(vals);
  }

  /** Feature DLA of prompts (one token length) toward answer minus wrong answer. */
  async featureDla(p: SaeFeatureDlaParams): Promise<SaeFeatureDlaResult> {
    const { sae, host } = this.get(p.saeId);
    if (p.answers.length !== p.texts.length) throw new Error(`give one [answer, wrong] pair per prompt: ${p.texts.length} prompts, ${p.answers.length} pairs`);
    const rows = this.rows(host, p.texts, p.prependBos);
    if (rows.some((r) => r.length !== rows[0]!.length)) throw new Error(`the prompts must have one token length (they have ${rows.map((r) => r.length).join(', ')})`);
    const answers = p.answers.map(([a, w]) => [toSingleToken(host.tokenizer, a), toSingleToken(host.tokenizer, w)] as [number, number]);
    return featureDla(host.model, rows, sae, answers);
  }

  /** Forgets loaded SAEs and cached statistics (e.g. when the model changes). */
  clear(): void {
    this.saes.clear();
    this.stats.clear();
  }
}

/** The corpus as rows of `n` tokens (BOS first when prepended), at most `maxTokens` in all. */
export function corpusRows(tok: Tokenizer, text: string, n: number, maxTokens: number, prependBos?: boolean): number[][] {
  const bos = prependBos ?? tok.defaultPrependBos ?? true;
  const ids = toTokens(tok, text, { prependBos: false, truncate: false }).tokens[0]!;
  const body = bos && tok.bosTokenId !== null ? n - 1 : n;
  if (body < 1) throw new Error(`rows of ${n} tokens leave no room for text`);
  const rows: number[][] = [];
  let total = 0;
  for (let i = 0; i < ids.length && total < maxTokens; i += body) {
    const chunk = ids.slice(i, i + body);
    const row = bos && tok.bosTokenId !== null ? [tok.bosTokenId, ...chunk] : chunk;
    rows.push(row);
    total += row.length;
  }
  if (rows.length === 0) throw new Error('the corpus has no tokens');
  return rows;
}
