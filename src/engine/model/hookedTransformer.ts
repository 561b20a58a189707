/**
 * HookedTransformer: the TransformerLens-style API over chained onnxruntime sessions.
 *
 *   forward(tokens)                      -> logits [batch, pos, d_vocab]
 *   runWithCache(tokens, {names, ...})   -> { logits, cache: Map<hook, Tensor> } (only hooks asked for)
 *   runWithHooks(tokens, interventions)  -> logits with interventions applied
 *
 * Tokens are [batch, pos] ids. `startAtLayer: L` replaces tokens with the residual stream entering
 * block L ([batch, pos, d_model]); `stopAtLayer: L` returns the residual stream entering block L
 * instead of logits, exactly as TransformerLens's start_at_layer / stop_at_layer.
 */
import { isTiedUnembed } from './unembed.js';
import { buildBlockGraph, buildEmbedGraph, buildFinalGraph, buildUnembedGraph, FINAL_X, fuseSegments, fusedInputName, layerFreeBlockGraph, PAST_K, PAST_V, prefixHookOk, Q_IN, K_IN, V_IN, RESID_IN, RESID_OUT, slotInputName, TOKENS, VOCAB_IDS, type InterventionSlot, type Segment, type SegmentGraph, type SegmentVariant } from '../graph/segments.js';
import { allHooks, expertOfHook, hookAxes, hookDims, parseSaeHook, requireHook, type HookName, type OutputName, type SaeHookName } from '../hooks/hooks.js';
import { saeHooksOf, saeHookWidth, saeSlot, type SaeSlot } from '../sae/graph.js';
import { checkSaeForModel, type Sae } from '../sae/sae.js';
import type { Intervention, InterventionIndex } from '../interventions/plan.js';
import { OnnxRuntime, ortF32, ortI64, type CompiledSession, type OrtTensor, type RuntimeOptions } from '../backends/onnx/runtime.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { encodeModel } from '../graph/onnxProto.js';
import { createHash } from 'node:crypto';
import { isMoe, type HookedTransformerConfig } from './config.js';
import type { LoadedModel, Params, Processing } from './params.js';

export type Tokens = readonly (readonly number[])[];

export interface RunOptions {
  /**
   * Hook names to return. 'all': every hook that TransformerLens's run_with_cache caches in its
   * default config, i.e. all but attn.hook_result, which fires only with use_attn_result (ask for
   * it by name; ActivationCache also derives it from hook_z and W_O, as compute_head_results).
   * Default none.
   */
  names?: readonly OutputName[] | 'all';
  interventions?: readonly Intervention[];
  startAtLayer?: number;
  stopAtLayer?: number;
  /** Residual stream entering startAtLayer, [batch, pos, d_model]; required when startAtLayer > 0. */
  residual?: F32;
  /** Skip the unembedding (no logits), e.g. when only activations are wanted. */
  noLogits?: boolean;
  /**
   * Logits of the last position only, [batch, 1, d_vocab_out]: the final segment, and the last
   * block when nothing is hooked or intervened on in it, compute just that row (patching
   * metrics read nothing else). Not with ln_final hooks as outputs.
   */
  lastPositionOnly?: boolean;
  /** Logits of these token ids only, in this order: [batch, pos, K] (or [batch, 1, K]). */
  vocab?: readonly number[];
  /**
   * With startAtLayer L < n_layers: `residual` is blocks.L.hook_resid_mid ([batch, pos, d_model])
   * and block L runs only ln2 and its MLP (hooks and interventions of its attention half are
   * not available).
   */
  startAtResidMid?: boolean;
  /**
   * The residual covers only the positions after a prefix of `length` positions whose keys and
   * values at every layer run are given (keys[l], values[l]: blocks.l.attn.hook_k / hook_v of
   * those positions, [batch, length, head_index, d_head], or [k, length, ...] with k dividing
   * batch, for which row r reads row r mod k), e.g. a prefix shared with a cached
   * run. Logits are for the given positions only. No hook outputs; interventions act on the
   * given positions (their masks and sources cover those), at every hook but the attention
   * scores / pattern and the rotated q / k (prefixHookOk). With startAtResidMid the first block runs its MLP on the given positions alone.
   */
  prefix?: { keys: readonly (F32 | undefined)[]; values: readonly (F32 | undefined)[] };
  /**
   * The first block's hook_q / hook_k / hook_v ([batch, pos, head_index | kv_head, d_head], pos
   * as the residual's), given instead of computed from its ln1: a sweep that knows them cheaply
   * skips ln1 and the projections there. Needs startAtLayer < n_layers (not with
   * startAtResidMid); ln1 hooks of that block are neither outputs nor intervention targets.
   */
  qkv?: { q: F32; k: F32; v: F32 };
  /**
   * SAEs and transcoders to splice in for this run (as HookedSAETransformer's run_with_saes):
   * at each one's output hook the model continues with its output, the reconstruction (plus
   * the error term with useErrorTerm, which leaves the model's output unchanged while features
   * stay readable and editable). Their hooks, `<output hook>.hook_sae_{input, acts_pre,
   * acts_post, recons, error, output}`, can be asked for in `names` ('all' includes them) and
   * intervened on like any hook. The output hook itself keeps the model's own value.
   */
  saes?: readonly SaeSplice[];
}

/** One SAE spliced into a run. */
export interface SaeSplice {
  sae: Sae;
  /** Add the error term (the activation minus the clean reconstruction); default false, as SAELens. */
  useErrorTerm?: boolean;
}

export interface RunResult {
  /** [batch, pos, d_vocab_out]; absent with stopAtLayer or noLogits. */
  logits?: F32;
  /** The residual stream entering stopAtLayer, [batch, pos, d_model], when stopAtLayer is set. */
  residual?: F32;
  cache: Map<OutputName, F32>;
}

/** Sessions kept per segment; older variants are released (each holds that segment's weights). */
const MAX_VARIANTS_PER_SEGMENT = 3;
/** Whole-chain sessions kept (one per distinct hook set asked for without interventions). */
const MAX_FUSED_PLANS = 4;
const FUSED = 'fused';
const UNEMBED = 'unembed';
/** Block sessions shared by every layer whose variant has the same layer-free graph (layerFreeBlockGraph). */
const SHARED_BLOCK = 'block';
/** Shared block sessions kept: a sweep uses a few variants (intervened, prefix, last position), now for every layer at once. */
const MAX_SHARED_BLOCKS = 8;
/** The unembed session with W_U as a weight input, used until the pre-packed one is compiled. */
const UNEMBED_QUICK = 'unembed_quick';
/**
 * W_U at least this large (bytes) is pre-packed after the first full-logits run instead of before
 * it: packing GPT-2 small's (154 MB) takes 0.5-1.3 s, the first run without it ~40 ms more.
 */
const DEFER_PACKING_MIN_BYTES = 16 << 20;
/**
 * W_U is packed once the model has been idle this long after a run that needed it (the next
 * request of a panel comes within milliseconds and should not wait for packing), or at once after
 * this many runs without it (by then the slower unembedding has cost about as much as packing).
 */
const PACK_WHEN_IDLE_MS = 250;
const QUICK_RUNS_BEFORE_PACKING = 4;

/**
 * Weights from this size on make a model "large" for memory: its sessions share the engine's
 * arrays only. A smaller model's full-logits runs end up on W_U compiled in and pre-packed by
 * onnxruntime (buildUnembedGraph: a second copy of W_U, and three while the session is built,
 * for ~20 ms of a 64-token GPT-2-small forward), and its one-session chains keep a memory arena
 * (every-hook runs of GPT-2 small 1.2x the plain forward with it, 1.3x without). For a large
 * model both would cost a noticeable share of its weights (W_U is 5-20% of a 1-2B model's, and an
 * arena keeps its largest run's activations for good) for a few percent of a forward's time: its
 * full logits come from the one-session chain itself, with W_U a shared input, and are never packed.
 */
const LARGE_MODEL_BYTES = 1 << 30;
/**
 * A one-session chain's outputs exist twice when it ends (onnxruntime's and the copies handed to
 * JS): a run whose hook outputs exceed this goes segment by segment instead, so that only one
 * segment's outputs are doubled at a time (the every-hook cache of a 1.4B model at 1x128 is ~0.6 GB).
 */
const FUSED_MAX_OUTPUT_BYTES = 128 << 20;

/** The sizes behind the memory choices above (defaults LARGE_MODEL_BYTES, FUSED_MAX_OUTPUT_BYTES); tests lower them. */
export interface MemoryPolicy {
  largeModelBytes?: number;
  fusedMaxOutputBytes?: number;
}

/** Runtime options plus how the model compiles its unembedding. */
export interface ModelOptions extends RuntimeOptions {
  /** Memory thresholds (see LARGE_MODEL_BYTES, FUSED_MAX_OUTPUT_BYTES). */
  memory?: MemoryPolicy;
  /**
   * Serve full-logits runs with W_U as a weight input until the pre-packed unembed session is
   * compiled, which happens after the first such run (see unembedForRun). Default: for W_U of
   * 16 MiB and more, where packing costs a cold start most.
   */
  deferUnembedPacking?: boolean;
}

export class HookedTransformer {
  readonly runtime: OnnxRuntime;
  private readonly sessions = new Map<string, Map<string, Promise<CompiledSession>>>();
  private disposed = false;
  /** Runs in flight per session, so a session dropped from the cache is released only when idle. */
  private readonly inUse = new Map<Promise<CompiledSession>, number>();
  private readonly releaseWhenIdle = new Set<Promise<CompiledSession>>();

  /** Whether the model's weights are LARGE_MODEL_BYTES or more (see there). */
  private readonly large: boolean;
  private readonly fusedMaxOutputBytes: number;
  /** Whether full logits wait for W_U's packing (ModelOptions.deferUnembedPacking). */
  private readonly deferPacking: boolean;
  /** The pre-packed unembed session is compiled (from then on every full-logits run uses it). */
  private packedReady = false;
  /** A full-logits run used the quick unembed session: pack W_U once that run has returned. */
  private packingWanted = false;
  /** The pre-packed unembed session's compilation has started. */
  private packingStarted = false;
  /** The timer that will start it (re-armed by every run until then). */
  private packingTimer: ReturnType<typeof setTimeout> | null = null;
  /** Full-logits runs the quick unembed session has served. */
  private quickRuns = 0;

  constructor(readonly cfg: HookedTransformerConfig, readonly params: Params, readonly processing: Processing, readonly source: string, runtimeOpts: ModelOptions = {}) {
    this.runtime = new OnnxRuntime(runtimeOpts);
    let bytes = 0;
    for (const t of params.values()) bytes += t.data.byteLength;
    this.large = bytes >= (runtimeOpts.memory?.largeModelBytes ?? LARGE_MODEL_BYTES);
    this.fusedMaxOutputBytes = runtimeOpts.memory?.fusedMaxOutputBytes ?? FUSED_MAX_OUTPUT_BYTES;
    // The matrix the unembed session packs: W_U, or the W_E a tied W_U is made from.
    const WU = params.get('unembed.W_U') ?? (isTiedUnembed(params) ? params.get('embed.W_E') : undefined);
    this.deferPacking = runtimeOpts.deferUnembedPacking ?? (WU !== undefined && WU.data.byteLength >= DEFER_PACKING_MIN_BYTES);
  }

  static fromLoaded(m: LoadedModel, runtimeOpts: ModelOptions = {}): HookedTransformer {
    return new HookedTransformer(m.cfg, m.params, m.processing, m.source, runtimeOpts);
  }

  async forward(tokens: Tokens, opts: Omit<RunOptions, 'names'> = {}): Promise<F32> {
    const r = await this.run(tokens, { ...opts, names: [] });
    if (!r.logits) throw new Error('forward: no logits (stopAtLayer or noLogits was set)');
    return r.logits;
  }

  runWithCache(tokens: Tokens | null, opts: RunOptions = {}): Promise<RunResult> {
    return this.run(tokens, { names: 'all', ...opts });
  }

  async runWithHooks(tokens: Tokens, interventions: readonly Intervention[], opts: Omit<RunOptions, 'interventions'> = {}): Promise<F32> {
    const r = await this.run(tokens, { ...opts, interventions });
    if (!r.logits) throw new Error('runWithHooks: no logits (stopAtLayer or noLogits was set)');
    return r.logits;
  }

  /**
   * SAEs spliced into every run until detached (HookedSAETransformer's add_sae), so that every
   * analysis sees the model with them; a run's own `saes` replace an attached one at the same
   * output hook. Analyses computed from the weights alone (circuits, composition) do not see them,
   * and attribution patching refuses to run while any is attached.
   */
  private readonly attached: SaeSplice[] = [];

  attachSae(splice: SaeSplice): void {
    const { hookOut } = checkSaeForModel(splice.sae, this.cfg);
    const i = this.attached.findIndex((s) => checkSaeForModel(s.sae, this.cfg).hookOut === hookOut);
    if (i >= 0) this.attached.splice(i, 1);
    this.attached.push(splice);
  }

  /** Detaches the SAEs at these output hooks (default all), as HookedSAETransformer's reset_saes. */
  detachSaes(hooks?: readonly string[]): void {
    for (let i = this.attached.length - 1; i >= 0; i--) {
      if (!hooks || hooks.includes(checkSaeForModel(this.attached[i]!.sae, this.cfg).hookOut)) this.attached.splice(i, 1);
    }
  }

  attachedSaes(): readonly SaeSplice[] {
    return this.attached;
  }

  /**
   * The run's SAEs: the attached ones (marked, so that one outside the layers a run computes is
   * left out instead of refused), replaced at a hook by the run's own.
   */
  private runSaes(own: readonly SaeSplice[]): (SaeSplice & { attached?: boolean })[] {
    const ownHooks = new Set(own.map((s) => checkSaeForModel(s.sae, this.cfg).hookOut));
    return [...this.attached.filter((s) => !ownHooks.has(checkSaeForModel(s.sae, this.cfg).hookOut)).map((s) => ({ ...s, attached: true })), ...own];
  }

  /** Validates tokens: rectangular, ids in [0, d_vocab), length <= n_ctx. Returns [batch, pos]. */
  checkTokens(tokens: Tokens): [number, number] {
    const B = tokens.length;
    if (B === 0) throw new Error('tokens: the batch is empty (give at least one sequence)');
    const P = tokens[0]!.length;
    if (P === 0) throw new Error('tokens: sequence 0 is empty');
    if (P > this.cfg.n_ctx) throw new Error(`tokens: sequences have ${P} tokens but the model's context is n_ctx = ${this.cfg.n_ctx}; shorten them`);
    tokens.forEach((row, b) => {
      if (row.length !== P) throw new Error(`tokens: sequence ${b} has ${row.length} tokens but sequence 0 has ${P}; pad them to one length`);
      row.forEach((t, p) => {
        if (!Number.isInteger(t) || t < 0 || t >= this.cfg.d_vocab) {
          throw new Error(`tokens: id ${JSON.stringify(t)} at [${b}, ${p}] is out of range; ids must be integers in [0, ${this.cfg.d_vocab - 1}]`);
        }
      });
    });
    return [B, P];
  }

  async run(tokens: Tokens | null, opts: RunOptions = {}): Promise<RunResult> {
    if (this.disposed) throw new Error('the model was disposed');
    if (this.quickRuns < QUICK_RUNS_BEFORE_PACKING) this.cancelPackingTimer();
    const cfg = this.cfg;
    const start = opts.startAtLayer ?? 0;
    const stop = opts.stopAtLayer ?? cfg.n_layers;
    if (!Number.isInteger(start) || start < 0 || start > cfg.n_layers) throw new Error(`startAtLayer must be in [0, ${cfg.n_layers}], got ${start}`);
    if (!Number.isInteger(stop) || stop < start || stop > cfg.n_layers) throw new Error(`stopAtLayer must be in [startAtLayer, ${cfg.n_layers}], got ${stop}`);
    let B: number, P: number;
    let resid: F32 | undefined;
    if (start > 0 || opts.residual) {
      if (!opts.residual) throw new Error(`startAtLayer ${start} needs the residual stream entering that layer ([batch, pos, d_model])`);
      const r = opts.residual;
      if (r.dims.length !== 3 || r.dims[2] !== cfg.d_model) throw new Error(`residual must be [batch, pos, ${cfg.d_model}], got [${r.dims.join(', ')}]`);
      [B, P] = [r.dims[0]!, r.dims[1]!];
      if (P > cfg.n_ctx) throw new Error(`residual has ${P} positions but n_ctx = ${cfg.n_ctx}`);
      resid = r;
    } else {
      if (!tokens) throw new Error('tokens are required unless startAtLayer and residual are given');
      [B, P] = this.checkTokens(tokens);
    }

    const fromMid = opts.startAtResidMid === true;
    if (fromMid) {
      if (!opts.residual || start >= cfg.n_layers) throw new Error(`startAtResidMid needs startAtLayer < ${cfg.n_layers} and the residual stream blocks.L.hook_resid_mid`);
      if (cfg.attn_only) throw new Error('startAtResidMid: an attention-only model has no resid_mid');
    }
    if (opts.vocab) {
      if (opts.vocab.length === 0) throw new Error('vocab: give at least one token id');
      for (const t of opts.vocab) if (!Number.isInteger(t) || t < 0 || t >= cfg.d_vocab_out) throw new Error(`vocab: token id ${t} is out of range [0, ${cfg.d_vocab_out - 1}]`);
    }
    if (opts.prefix) {
      if (!resid) throw new Error('prefix needs startAtLayer and the residual stream of the positions after the prefix');
      if ((opts.names && opts.names !== 'all' && opts.names.length > 0) || opts.names === 'all') throw new Error('prefix runs cannot return hooks');
      // Interventions apply to the given positions (masks and sources cover those only).
      const bad = opts.interventions?.find((iv) => !prefixHookOk(iv.hook));
      if (bad) throw new Error(`prefix runs cannot intervene at ${bad.hook}: its key axis spans the prefix too, or a prefix block does not hook it`);
      // A block that starts at resid_mid runs only its MLP, which needs no other position.
      // Keys and values as hook_k / hook_v cache them: n_key_value_heads heads under grouped-query attention.
      const KV = cfg.n_key_value_heads ?? cfg.n_heads;
      for (let l = fromMid ? start + 1 : start; l < stop; l++) {
        for (const t of [opts.prefix.keys[l], opts.prefix.values[l]]) {
          if (!t || t.dims.length !== 4 || !(t.dims[0]! > 0 && B % t.dims[0]! === 0) || t.dims[2] !== KV || t.dims[3] !== cfg.d_head || t.dims[1]! + P > cfg.n_ctx) {
            throw new Error(`prefix: layer ${l} needs keys and values [${B} (or a divisor of it: rows c·k + b read row b), length, ${KV}, ${cfg.d_head}] with length + ${P} <= n_ctx`);
          }
        }
      }
    }
    if (opts.qkv) {
      if (!resid || fromMid || start >= stop) throw new Error('qkv needs startAtLayer, its residual and at least one block to run (not startAtResidMid)');
      const KV = cfg.n_key_value_heads ?? cfg.n_heads;
      for (const [which, t, heads] of [['q', opts.qkv.q, cfg.n_heads], ['k', opts.qkv.k, KV], ['v', opts.qkv.v, KV]] as const) {
        if (t.dims.length !== 4 || t.dims[0] !== B || t.dims[1] !== P || t.dims[2] !== heads || t.dims[3] !== cfg.d_head) throw new Error(`qkv.${which} must be [${B}, ${P}, ${heads}, ${cfg.d_head}], got [${t.dims.join(', ')}]`);
      }
    }
    const saeSlots = this.saeSlots(this.runSaes(opts.saes ?? []), start, stop, fromMid);
    const names: OutputName[] = opts.names === 'all' ? this.allOutputs(start, stop, saeSlots) : [...(opts.names ?? [])];
    if (opts.lastPositionOnly && names.some((n) => n.startsWith('ln_final.'))) throw new Error('lastPositionOnly cannot return ln_final hooks (they would cover one position)');
    for (const n of names) requireHookOrLogits(n, cfg, saeSlots);
    const ivs = opts.interventions ?? [];
    ivs.forEach((iv) => this.checkIntervention(iv, B, P, saeSlots));

    const cache = new Map<OutputName, F32>();
    const wantLogits = stop === cfg.n_layers && !opts.noLogits;
    const segments: Segment[] = [];
    if (!resid) segments.push({ kind: 'embed' });
    for (let l = start; l < stop; l++) segments.push({ kind: 'block', layer: l });
    if (wantLogits || names.some((n) => n.startsWith('ln_final.'))) segments.push({ kind: 'final' });

    const plan = segments.map((seg) => {
      const segHooks = names.filter((n) => segmentOf(n) === segKey(seg));
      const segIvs = ivs.filter((iv) => segmentOf(iv.hook) === segKey(seg));
      const slots: InterventionSlot[] = segIvs.map((iv) => toSlot(iv, cfg));
      const needsResult = segHooks.some((n) => n.endsWith('attn.hook_result')) || slots.some((s) => s.hook.endsWith('attn.hook_result'));
      const variant: SegmentVariant = { outputs: segHooks.filter((n) => n !== 'logits'), useAttnResult: needsResult, slots };
      const segSaes = saeSlots.filter((s) => segmentOf(s.hookOut) === segKey(seg));
      if (segSaes.length > 0) variant.saes = segSaes;
      if (seg.kind === 'block' && seg.layer === start && fromMid) variant.fromMid = true;
      // Only the last block can skip the other positions: every earlier block feeds them as keys.
      if (opts.lastPositionOnly && wantLogits && ((seg.kind === 'block' && seg.layer === cfg.n_layers - 1 && variant.outputs.length === 0 && slots.length === 0 && segSaes.length === 0) || (seg.kind === 'final' && segSaes.length === 0))) {
        variant.lastPos = true;
      }
      if (seg.kind === 'final' && opts.vocab) variant.vocab = true;
      // Full logits come from the shared unembed session with its pre-packed W_U.
      if (seg.kind === 'final' && wantLogits && !variant.lastPos && !variant.vocab && !this.large) variant.unembedApart = true;
      if (seg.kind === 'block' && opts.prefix && !variant.fromMid) variant.prefix = true;
      if (seg.kind === 'block' && seg.layer === start && opts.qkv) variant.qkvIn = true;
      return { seg, variant, segIvs };
    });
    /** The segment's own inputs (not the residual from the previous segment). */
    const localFeeds = ({ seg, variant, segIvs }: (typeof plan)[number]): Record<string, OrtTensor> => {
      const feeds: Record<string, OrtTensor> = {};
      if (seg.kind === 'embed') {
        const flat = new BigInt64Array(B * P);
        tokens!.forEach((row, b) => row.forEach((t, p) => (flat[b * P + p] = BigInt(t))));
        feeds[TOKENS] = ortI64(flat, [B, P]);
      }
      if (variant.prefix && seg.kind === 'block') {
        feeds[PAST_K] = ortF32(opts.prefix!.keys[seg.layer]!);
        feeds[PAST_V] = ortF32(opts.prefix!.values[seg.layer]!);
      }
      if (variant.qkvIn) {
        feeds[Q_IN] = ortF32(opts.qkv!.q);
        feeds[K_IN] = ortF32(opts.qkv!.k);
        feeds[V_IN] = ortF32(opts.qkv!.v);
      }
      if (variant.vocab) feeds[VOCAB_IDS] = ortI64(BigInt64Array.from(opts.vocab!.map((t) => BigInt(t))), [opts.vocab!.length]);
      segIvs.forEach((iv, j) => Object.assign(feeds, slotFeeds(iv, j, cfg, B, P, saeSlots)));
      return feeds;
    };
    const collect = async (seg: Segment, variant: SegmentVariant, out: Record<string, F32>) => {
      for (const n of variant.outputs) cache.set(n, withAxes(out[n]!, n, cfg));
      if (seg.kind === 'final' && wantLogits) {
        const logits = variant.unembedApart ? (await this.runSession(this.unembedForRun(), { [FINAL_X]: ortF32(out[FINAL_X]!) }, ['logits']))['logits']! : out['logits']!;
        cache.set('logits', logits);
      }
    };
    const finalFetch = (variant: SegmentVariant): string[] => (!wantLogits ? [] : variant.unembedApart ? [FINAL_X] : ['logits']);

    // A run from tokens without interventions is one session over the whole chain (see
    // fuseSegments: it saves the hand-over between per-segment sessions' threads); runs with
    // interventions, a residual or a prefix chain per-segment sessions, so a new intervention
    // compiles only its own block. Mixture-of-experts models always chain per-segment sessions:
    // onnxruntime's allocation planner takes time superlinear in a graph's data-dependent values
    // (each expert's routed rows), so one session of L such blocks compiles far slower than L
    // sessions of one (measured with 64 experts of width 256 at d_model 512: 1 block 1.1 s,
    // 2 fused 3.2 s, 4 fused 15 s), while the hand-over costs ~2 ms a block. So do runs whose hook
    // outputs exceed fusedMaxOutputBytes (see FUSED_MAX_OUTPUT_BYTES).
    const outputBytes = names.reduce((n, name) => n + 4 * (name === 'logits' ? 0 : outputDims(name, cfg, B, P, saeSlots).reduce((a, b) => a * b, 1)), 0);
    if (!resid && ivs.length === 0 && !opts.prefix && plan.length > 1 && !isMoe(cfg) && outputBytes <= this.fusedMaxOutputBytes) {
      const feeds: Record<string, OrtTensor> = {};
      plan.forEach((step, k) => {
        for (const [n, t] of Object.entries(localFeeds(step))) feeds[fusedInputName(k, n)] = t;
      });
      const last = plan[plan.length - 1]!;
      const fetch: string[] = plan.flatMap((p) => [...p.variant.outputs]);
      if (last.seg.kind === 'final') fetch.push(...finalFetch(last.variant));
      else fetch.push(RESID_OUT);
      const out = await this.runSession(this.fusedSession(plan.map((p) => ({ seg: p.seg, variant: p.variant }))), feeds, fetch);
      for (const p of plan) await collect(p.seg, p.variant, out);
      if (last.seg.kind !== 'final') resid = out[RESID_OUT]!;
    } else {
      for (const step of plan) {
        const { seg, variant } = step;
        const feeds = localFeeds(step);
        if (seg.kind !== 'embed') feeds[RESID_IN] = ortF32(resid!);
        const fetch: string[] = [...variant.outputs];
        if (seg.kind !== 'final') fetch.push(RESID_OUT);
        else fetch.push(...finalFetch(variant));
        const { sp, weights } = this.session(seg, variant);
        const out = await this.runSession(sp, weights ? { ...weights, ...feeds } : feeds, fetch);
        await collect(seg, variant, out);
        if (seg.kind !== 'final') resid = out[RESID_OUT]!;
      }
    }

    const result: RunResult = { cache };
    if (wantLogits) {
      result.logits = cache.get('logits');
      if (!names.includes('logits')) cache.delete('logits');
    }
    if (stop < cfg.n_layers) result.residual = resid;
    this.schedulePacking();
    return result;
  }

  /** Runs a cached session, holding it so that a release in the meantime waits for this run. */
  private async runSession(sp: Promise<CompiledSession>, feeds: Record<string, OrtTensor>, fetch: readonly string[]): Promise<Record<string, F32>> {
    this.inUse.set(sp, (this.inUse.get(sp) ?? 0) + 1);
    try {
      return await this.runtime.run(await sp, feeds, fetch);
    } finally {
      const left = this.inUse.get(sp)! - 1;
      if (left > 0) this.inUse.set(sp, left);
      else {
        this.inUse.delete(sp);
        if (this.releaseWhenIdle.delete(sp)) await sp.then((x) => x.session.release()).catch(() => undefined);
      }
    }
  }

  /** The one-session version of a chain of segment variants (LRU-cached like the segments). */
  private fusedSession(chain: readonly { seg: Segment; variant: SegmentVariant }[]): Promise<CompiledSession> {
    return this.cached(FUSED, JSON.stringify(chain), MAX_FUSED_PLANS, !this.large, () =>
      fuseSegments(chain.map(({ seg, variant }) => this.segmentGraph(seg, variant)), `chain_${chain.map((c) => segKey(c.seg)).join('_')}`),
    );
  }

  /** The one session that turns ln_final's output into full logits (buildUnembedGraph). */
  private unembedSession(): Promise<CompiledSession> {
    return this.cached(UNEMBED, 'plain', 1, true, () => buildUnembedGraph(this.cfg, this.params));
  }

  /**
   * The session a full-logits run unembeds with. With deferred packing, until the pre-packed
   * session exists: one with W_U as a weight input, which compiles at once; the run that used it
   * then schedules the pre-packed one (schedulePacking).
   */
  private unembedForRun(): Promise<CompiledSession> {
    if (!this.deferPacking || this.packedReady) return this.unembedSession();
    this.packingWanted = true;
    this.quickRuns++;
    return this.quickUnembedSession();
  }

  /**
   * After a run, once one has unembedded without packing: compile the pre-packed session on a
   * timer, so that it starts only once the run's caller has its result (onnxruntime compiles
   * synchronously: started during a run, it would hold that run's result back until it
   * finished), and only when no run has followed for PACK_WHEN_IDLE_MS (each run re-arms it) or
   * after QUICK_RUNS_BEFORE_PACKING quick runs. A process that ends first never packs (the timer
   * does not keep it alive).
   */
  private schedulePacking(): void {
    if (!this.packingWanted || this.packingStarted || this.packedReady) return;
    this.cancelPackingTimer();
    const delay = this.quickRuns >= QUICK_RUNS_BEFORE_PACKING ? 0 : PACK_WHEN_IDLE_MS;
    this.packingTimer = setTimeout(() => {
      this.packingTimer = null;
      void this.packUnembed();
    }, delay);
    this.packingTimer.unref?.();
  }

  /** A run starting while the model waits to be idle: the wait starts again after it. */
  private cancelPackingTimer(): void {
    if (this.packingTimer) clearTimeout(this.packingTimer);
    this.packingTimer = null;
  }

  /** The unembed session with W_U as a weight input (compiles in milliseconds). */
  private quickUnembedSession(): Promise<CompiledSession> {
    return this.cached(UNEMBED_QUICK, 'plain', 1, true, () => buildUnembedGraph(this.cfg, this.params, { prepack: false }));
  }

  /** Compiles the pre-packed unembed session, then drops the quick one (after its runs end). */
  private async packUnembed(): Promise<void> {
    if (this.disposed || this.packedReady || this.packingStarted) return;
    this.packingStarted = true;
    try {
      await this.unembedSession();
    } catch {
      // A failed compile leaves the quick session serving; the next full-logits run retries.
      this.packingStarted = false;
      return;
    }
    if (this.disposed) return;
    this.packedReady = true;
    const quick = this.sessions.get(UNEMBED_QUICK);
    for (const p of quick?.values() ?? []) await this.release(p);
    quick?.clear();
  }

  private segmentGraph(seg: Segment, v: SegmentVariant): SegmentGraph {
    const saes = this.saeWeights;
    return seg.kind === 'embed' ? buildEmbedGraph(this.cfg, this.params, v, saes) : seg.kind === 'block' ? buildBlockGraph(this.cfg, this.params, seg.layer, v, saes) : buildFinalGraph(this.cfg, this.params, v, saes);
  }

  /**
   * SAEs spliced in runs so far, by id (sessions compiled for them read their weights). An id
   * names one loaded SAE: another object under the same id is refused.
   */
  private readonly saeWeights = new Map<string, Sae>();

  /** Checks a run's SAEs against the model and each other; their compiled slots. */
  private saeSlots(splices: readonly (SaeSplice & { attached?: boolean })[], start: number, stop: number, fromMid: boolean): SaeSlot[] {
    const byOut = new Map<string, Sae>();
    const computed = (hook: string): boolean => {
      const m = /^blocks\.(\d+)\./.exec(hook);
      if (!m) return hook.startsWith('ln_final.') ? stop === this.cfg.n_layers : start === 0;
      const l = Number(m[1]);
      if (l < start || l >= stop) return false;
      return !(fromMid && l === start && !/\.(hook_resid_mid|ln2\.hook_normalized|mlp\.hook_(pre|pre_linear|post)|hook_mlp_out|hook_resid_post)$/.test(hook));
    };
    return splices.filter(({ sae, attached }) => {
      if (!attached) return true;
      const { hookIn, hookOut } = checkSaeForModel(sae, this.cfg);
      return computed(hookIn) && computed(hookOut);
    }).map(({ sae, useErrorTerm }) => {
      const known = this.saeWeights.get(sae.id);
      if (known && known !== sae) throw new Error(`SAE id ${sae.id} is already used by another SAE in this model; load each SAE once (loadSaeFolder gives each load its own id)`);
      const { hookIn, hookOut } = checkSaeForModel(sae, this.cfg);
      const other = byOut.get(hookOut);
      if (other) throw new Error(`two SAEs replace ${hookOut} in one run (${other.source} and ${sae.source}); splice one SAE per hook`);
      byOut.set(hookOut, sae);
      const layer = /^blocks\.(\d+)\./.exec(hookOut);
      const l = layer ? Number(layer[1]) : null;
      if (l !== null && (l < start || l >= stop)) throw new Error(`SAE ${sae.source} at ${hookOut} is outside the layers this run computes (${start}..${stop - 1})`);
      if (l === null && hookOut.startsWith('ln_final.') && stop < this.cfg.n_layers) throw new Error(`SAE ${sae.source} at ${hookOut}: this run stops before ln_final`);
      if (l === null && !hookOut.startsWith('ln_final.') && start > 0) throw new Error(`SAE ${sae.source} at ${hookOut}: this run starts after the embedding`);
      if (fromMid && l === start && !/\.(hook_resid_mid|ln2\.hook_normalized|mlp\.hook_(pre|pre_linear|post)|hook_mlp_out|hook_resid_post)$/.test(hookIn)) {
        throw new Error(`SAE ${sae.source} reads ${hookIn}, which a run starting at blocks.${start}.hook_resid_mid does not compute`);
      }
      this.saeWeights.set(sae.id, sae);
      return saeSlot(sae, hookIn, hookOut, useErrorTerm === true);
    });
  }

  private allOutputs(start: number, stop: number, saes: readonly SaeSlot[] = []): OutputName[] {
    const all: OutputName[] = allHooksOf(this.cfg).filter((n) => !n.endsWith('attn.hook_result'));
    // Each SAE's hooks right after its output hook, as they fire.
    for (const s of saes) all.splice(all.indexOf(s.hookOut) + 1, 0, ...saeHooksOf(s));
    return all.filter((n) => {
      const s = segmentOf(n);
      if (s === 'embed') return start === 0;
      if (s === 'final') return stop === this.cfg.n_layers;
      const l = Number(s.slice(5));
      return l >= start && l < stop;
    });
  }

  private checkIntervention(iv: Intervention, B: number, P: number, saes: readonly SaeSlot[]): void {
    requireHookOrLogits(iv.hook, this.cfg, saes);
    if (expertOfHook(iv.hook) !== null) {
      throw new Error(`intervention at ${iv.hook}: an expert's hooks have one row per token the router sent to it, a number known only while the model runs, so no mask or patch source can be shaped for them; intervene on the router instead (blocks.L.mlp.hook_expert_weights [batch·pos, expert] or hook_expert_indices [batch·pos, top_k]), or on hook_mlp_out`);
    }
    const axes = hookAxes(iv.hook, this.cfg);
    const dims = outputDims(iv.hook, this.cfg, B, P, saes);
    if (iv.mask) {
      if (iv.index) throw new Error(`intervention at ${iv.hook}: give either index or mask, not both`);
      const md = iv.mask.dims;
      if (md.length !== dims.length || md.some((d, i) => d !== 1 && d !== dims[i])) {
        throw new Error(`intervention at ${iv.hook}: mask of shape [${md.join(', ')}] does not broadcast to the hook's [${dims.join(', ')}] (each dim must be 1 or equal)`);
      }
    }
    for (const [ax, idx] of Object.entries(iv.index ?? {})) {
      if (idx == null) continue;
      const a = axes.indexOf(ax as never);
      if (a < 0) throw new Error(`intervention at ${iv.hook}: index axis "${ax}" is not an axis of this hook (axes: ${axes.join(', ')})`);
      for (const i of idx) {
        if (!Number.isInteger(i) || i >= dims[a]! || i < -dims[a]!) {
          throw new Error(`intervention at ${iv.hook}: ${ax} index ${i} is out of range for size ${dims[a]}`);
        }
      }
    }
    const need = (t: F32, want: number[], what: string) => {
      if (t.dims.length !== want.length || t.dims.some((d, i) => d !== want[i])) {
        throw new Error(`intervention at ${iv.hook}: ${what} must have shape [${want.join(', ')}], got [${t.dims.join(', ')}]`);
      }
    };
    if (iv.kind === 'patch') need(iv.source, dims, 'the patch source');
    if (iv.kind === 'mean' && iv.over === 'supplied') need(iv.mean, dims.slice(1), 'the supplied mean');
    if (iv.kind === 'add') need(iv.vector, [dims[dims.length - 1]!], 'the added vector');
    if (iv.kind === 'scale' && !Number.isFinite(iv.factor)) throw new Error(`intervention at ${iv.hook}: scale factor must be a finite number`);
  }

  /**
   * Per (layer, variant) of a block without hook outputs or SAEs: the key of its layer-free graph
   * in the SHARED_BLOCK group, that graph, and the layer's weights under its layer-free names.
   */
  private readonly layerFree = new Map<string, { key: string; graph: SegmentGraph; weights: Record<string, OrtTensor> }>();

  /**
   * The compiled session of a segment variant, and the weight feeds to give it when it is a
   * block session shared across layers (those without hook outputs or SAEs: what sweeps run;
   * a sweep over 12 layers then compiles each of its variants once, not 12 times).
   */
  private session(seg: Segment, v: SegmentVariant): { sp: Promise<CompiledSession>; weights?: Record<string, OrtTensor> } {
    if (seg.kind === 'block' && v.outputs.length === 0 && (v.saes?.length ?? 0) === 0) {
      const memo = `${seg.layer}|${JSON.stringify(v)}`;
      let e = this.layerFree.get(memo);
      if (!e) {
        const graph = layerFreeBlockGraph(this.segmentGraph(seg, v), seg.layer);
        const weights: Record<string, OrtTensor> = {};
        for (const [n, t] of graph.weightInputs) weights[n] = ortF32(t);
        e = { key: createHash('sha1').update(encodeModel(graph)).digest('hex'), graph, weights };
        // Only a memo (sessions stay cached by key): bounded for runs that never release variants.
        if (this.layerFree.size >= 1024) this.layerFree.clear();
        this.layerFree.set(memo, e);
      }
      const graph = e.graph;
      // With a memory arena (not for large models, see LARGE_MODEL_BYTES): a sweep runs each of
      // these sessions dozens of times at the same batch shape, and without one every run
      // allocates its activations afresh (tens of MB per GEMM output, page-faulted and zeroed
      // by the kernel each time). Measured on the layer-8 neuron sweep of the GPT-2-small-shaped
      // bench: 20% less CPU time, +0.6 GB peak RSS, held until the sweep's variants are released.
      return { sp: this.cached(SHARED_BLOCK, e.key, MAX_SHARED_BLOCKS, !this.large, () => graph), weights: e.weights };
    }
    return { sp: this.cached(segKey(seg), JSON.stringify(v), MAX_VARIANTS_PER_SEGMENT, false, () => this.segmentGraph(seg, v)) };
  }

  /** A compiled session from the per-group LRU cache (`group`: a segment, or FUSED). */
  private cached(group: string, key: string, max: number, arena: boolean, build: () => SegmentGraph): Promise<CompiledSession> {
    let per = this.sessions.get(group);
    if (!per) this.sessions.set(group, (per = new Map()));
    const hit = per.get(key);
    if (hit) {
      // LRU: move to the back.
      per.delete(key);
      per.set(key, hit);
      return hit;
    }
    const p = this.runtime.compile(build(), { arena });
    per.set(key, p);
    p.catch(() => per!.delete(key));
    while (per.size > max) {
      const [oldKey, old] = per.entries().next().value as [string, Promise<CompiledSession>];
      per.delete(oldKey);
      void this.release(old);
    }
    return p;
  }

  /**
   * Compiles what the first plain forward needs (its one-session chain and the unembedding), so
   * that the first forward is fast. The per-segment sessions that runs with interventions chain
   * are compiled when first used (14 of them for GPT-2 small, ~0.2 s of a cold start), and a
   * large W_U is pre-packed after the first full-logits run (unembedForRun).
   */
  async warmUp(): Promise<void> {
    // A mixture-of-experts model's plain forward chains per-segment sessions (run()), not one.
    if (isMoe(this.cfg)) for (const { seg, variant } of this.plainChain()) await this.session(seg, variant).sp;
    else await this.fusedSession(this.plainChain());
    if (this.large) return;
    await (this.deferPacking && !this.packedReady ? this.quickUnembedSession() : this.unembedSession());
  }

  /** The segments and variants of a plain forward, exactly as run() plans them. */
  private plainChain(): { seg: Segment; variant: SegmentVariant }[] {
    const v = (): SegmentVariant => ({ outputs: [], useAttnResult: false, slots: [] });
    return [
      { seg: { kind: 'embed' }, variant: v() },
      ...Array.from({ length: this.cfg.n_layers }, (_, layer) => ({ seg: { kind: 'block' as const, layer }, variant: v() })),
      { seg: { kind: 'final' }, variant: this.large ? v() : { ...v(), unembedApart: true } },
    ];
  }

  /**
   * Releases every compiled session except those of the plain forward (its one-session chain,
   * each segment's plain variant, the unembed session). Sweeps compile many variants (an
   * intervention at each layer, last-position and prefix blocks); after a sweep they are dead
   * weight. A session still running is released when its runs finish.
   */
  async releaseVariants(): Promise<number> {
    const chain = this.plainChain();
    const chainKey = JSON.stringify(chain);
    const plainKeys = new Set(chain.map((c) => JSON.stringify(c.variant)));
    // Shared block sessions of the plain variant stay; the other layer-free entries go with their sessions.
    const plainShared = new Set<string>();
    for (const [memo, e] of [...this.layerFree]) {
      if (plainKeys.has(memo.slice(memo.indexOf('|') + 1))) plainShared.add(e.key);
      else this.layerFree.delete(memo);
    }
    const keep = (group: string, k: string) => (group === FUSED ? k === chainKey : group === SHARED_BLOCK ? plainShared.has(k) : group === UNEMBED || group === UNEMBED_QUICK || plainKeys.has(k));
    const drop: Promise<CompiledSession>[] = [];
    for (const [group, per] of this.sessions) {
      for (const [k, p] of [...per]) {
        if (keep(group, k)) continue;
        per.delete(k);
        drop.push(p);
      }
    }
    await Promise.all(drop.map((p) => this.release(p)));
    return drop.length;
  }

  /** Releases a session now, or after the runs that are using it finish. */
  private async release(p: Promise<CompiledSession>): Promise<void> {
    if (this.inUse.has(p)) this.releaseWhenIdle.add(p);
    else await p.then((s) => s.session.release()).catch(() => undefined);
  }

  /** Whether full logits come from the pre-packed unembed session yet (for tests and the bench). */
  get unembedPacked(): boolean {
    return !this.large && (!this.deferPacking || this.packedReady);
  }

  /** Number of live compiled sessions (for tests and the side view). */
  sessionCount(): number {
    let n = 0;
    for (const m of this.sessions.values()) n += m.size;
    return n;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.layerFree.clear();
    this.cancelPackingTimer();
    const all = [...this.sessions.values()].flatMap((m) => [...m.values()]);
    this.sessions.clear();
    await Promise.all(all.map((p) => p.then((s) => s.session.release()).catch(() => undefined)));
  }
}

function requireHookOrLogits(n: string, cfg: HookedTransformerConfig, saes: readonly SaeSlot[] = []): void {
  if (n === 'logits') return;
  const sae = parseSaeHook(n);
  if (sae) {
    const slot = saes.find((s) => s.hookOut === sae.base);
    if (!slot) {
      throw new Error(`hook ${n} exists only while an SAE is spliced at ${sae.base}` + (saes.length ? ` (this run splices SAEs at ${saes.map((s) => s.hookOut).join(', ')})` : ' (pass it in the run\'s saes)'));
    }
    if (sae.suffix === 'hook_sae_error' && !slot.useErrorTerm) throw new Error(`hook ${n} exists only when the SAE at ${sae.base} is spliced with useErrorTerm`);
    return;
  }
  requireHook(n, cfg);
}

/** Concrete dims of a hook, SAE hooks included ([batch, pos, width of the SAE's axis]). */
function outputDims(name: OutputName, cfg: HookedTransformerConfig, B: number, P: number, saes: readonly SaeSlot[]): number[] {
  const sae = parseSaeHook(name);
  if (sae) {
    const slot = saes.find((s) => s.hookOut === sae.base);
    if (!slot) throw new Error(`internal: no SAE at ${sae.base}`);
    return [B, P, saeHookWidth(slot, sae.suffix)];
  }
  return hookDims(name, cfg, B, P);
}

function segKey(s: Segment): string {
  return s.kind === 'block' ? `block${s.layer}` : s.kind;
}

function segmentOf(name: OutputName): string {
  if (name === 'hook_embed' || name === 'hook_pos_embed' || name.startsWith('embed.ln.')) return 'embed';
  if (name === 'logits' || name.startsWith('ln_final.')) return 'final';
  const m = /^blocks\.(\d+)\./.exec(name);
  return `block${m![1]}`;
}

function allHooksOf(cfg: HookedTransformerConfig): OutputName[] {
  return allHooks(cfg);
}

function withAxes(t: F32, name: OutputName, cfg: HookedTransformerConfig): F32 {
  return { ...t, axes: hookAxes(name, cfg) };
}

function toSlot(iv: Intervention, cfg: HookedTransformerConfig): InterventionSlot {
  const axes = hookAxes(iv.hook, cfg);
  const maskAxes = iv.mask ? iv.mask.dims.map((d) => d !== 1) : axes.map((a) => {
    const idx = iv.index?.[a as keyof InterventionIndex];
    return idx != null;
  });
  const s: InterventionSlot = { hook: iv.hook, kind: iv.kind, maskAxes };
  if (iv.kind === 'mean') s.over = iv.over;
  return s;
}

/** Mask [dims with 1 on unindexed axes] with ones on the cartesian product of the indices. */
export function buildMask(hook: HookName | SaeHookName, index: InterventionIndex | undefined, cfg: HookedTransformerConfig, B: number, P: number, saes: readonly SaeSlot[] = []): F32 {
  const axes = hookAxes(hook, cfg);
  const full = outputDims(hook, cfg, B, P, saes);
  const sel = axes.map((a, i) => {
    const idx = index?.[a as keyof InterventionIndex];
    if (idx == null) return null;
    return [...new Set(idx.map((v) => (v < 0 ? v + full[i]! : v)))];
  });
  const dims = sel.map((s, i) => (s === null ? 1 : full[i]!));
  const m = f32(dims);
  const strides = dims.map((_, i) => dims.slice(i + 1).reduce((a, b) => a * b, 1));
  const lists = sel.map((s) => s ?? [0]);
  const rec = (ax: number, off: number) => {
    if (ax === lists.length) {
      m.data[off] = 1;
      return;
    }
    for (const v of lists[ax]!) rec(ax + 1, off + v * strides[ax]!);
  };
  rec(0, 0);
  return m;
}

function slotFeeds(iv: Intervention, j: number, cfg: HookedTransformerConfig, B: number, P: number, saes: readonly SaeSlot[]): Record<string, OrtTensor> {
  const feeds: Record<string, OrtTensor> = { [slotInputName(j, 'mask')]: ortF32(iv.mask ?? buildMask(iv.hook, iv.index, cfg, B, P, saes)) };
  switch (iv.kind) {
    case 'patch': feeds[slotInputName(j, 'source')] = ortF32(iv.source); break;
    case 'mean': if (iv.over === 'supplied') feeds[slotInputName(j, 'mean')] = ortF32(iv.mean); break;
    case 'add': feeds[slotInputName(j, 'vector')] = ortF32(iv.vector); break;
    case 'scale': feeds[slotInputName(j, 'factor')] = ortF32(f32([], [iv.factor])); break;
    case 'zero': break;
  }
  return feeds;
}

