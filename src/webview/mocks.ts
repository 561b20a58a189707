/**
 * Mock panel states (plain JSON, GPT-2-small-sized, IOI-flavoured) for the jsdom tests and the
 * preview tool. Not imported by main.ts, so they never reach the shipped bundle. Values are
 * synthetic but shaped like the real thing: attention rows sum to 1 and are causal, per-layer
 * DLA sums to the total, the logit lens is the running sum, patching maps are 0..1-ish.
 */
import type { TestPromptResult } from '../protocol/engine.js';
import type { AttentionState, AttributionState, ErrorState, HeatmapData, HeatmapState, InspectState, LoadingState, PanelState, TopKViewState } from '../protocol/webview.js';

/** Deterministic PRNG (mulberry32) so mocks, tests and screenshots are stable. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const r4 = (x: number) => Math.round(x * 1e4) / 1e4;

export const MOCK_MODEL = 'gpt2-small';
export const MOCK_PROMPT = 'When Mary and John went to the store, John gave a drink to';
export const MOCK_STR_TOKENS = ['<|endoftext|>', 'When', ' Mary', ' and', ' John', ' went', ' to', ' the', ' store', ',', ' John', ' gave', ' a', ' drink', ' to'];
export const MOCK_TOKENS = [50256, 2215, 5335, 290, 1757, 1816, 284, 262, 3650, 11, 1757, 2921, 257, 4144, 284];

export const MOCK_RESULT: TestPromptResult = {
  tokens: MOCK_TOKENS,
  strTokens: MOCK_STR_TOKENS,
  topK: [
    { token: 5335, str: ' Mary', logit: 18.3121, prob: 0.68119 },
    { token: 606, str: ' them', logit: 15.5237, prob: 0.041823 },
    { token: 262, str: ' the', logit: 15.2044, prob: 0.030391 },
    { token: 1757, str: ' John', logit: 14.9522, prob: 0.023614 },
    { token: 607, str: ' her', logit: 14.6108, prob: 0.016789 },
    { token: 465, str: ' his', logit: 14.2031, prob: 0.011167 },
    { token: 257, str: ' a', logit: 13.9147, prob: 0.0083664 },
    { token: 683, str: ' him', logit: 13.8095, prob: 0.0075311 },
    { token: 511, str: ' their', logit: 13.1102, prob: 0.0037416 },
    { token: 198, str: '\n', logit: 12.0172, prob: 0.0012541 },
  ],
  perTokenLoss: [6.118, 9.842, 2.291, 5.174, 4.803, 1.236, 2.014, 3.108, 1.417, 3.903, 3.517, 1.902, 6.233, 1.311],
  answer: { token: 5335, str: ' Mary', rank: 0, logit: 18.3121, prob: 0.68119 },
};

export const MOCK_INSPECT: InspectState = {
  kind: 'inspect',
  model: MOCK_MODEL,
  prompt: MOCK_PROMPT,
  result: MOCK_RESULT,
  wrong: { token: 1757, str: ' John', logit: 14.9522 },
};

function softmax(xs: number[]): number[] {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

/**
 * patterns[layer][head][query][key] with recognisable heads: previous-token (L2H2, L4H11),
 * duplicate-token (L0H1, L3H0), induction (L5H5, L6H9), S-inhibition (L7H3, L8H6), name movers
 * (L9H9, L9H6, L10H0), negative name mover (L10H7, L11H10); the rest mix BOS and local attention.
 */
export function mockPatterns(nLayers: number, nHeads: number, toks: string[], seed = 7): number[][][][] {
  const R = rng(seed);
  const n = toks.length;
  const last = n - 1;
  const io = toks.indexOf(' Mary');
  const s1 = toks.indexOf(' John');
  const s2 = toks.lastIndexOf(' John');
  const kind = (l: number, h: number): string => {
    const named: Record<string, string> = {
      '0,1': 'dup',
      '3,0': 'dup',
      '2,2': 'prev',
      '4,11': 'prev',
      '5,5': 'induction',
      '6,9': 'induction',
      '7,3': 'sinhib',
      '8,6': 'sinhib',
      '9,9': 'mover',
      '9,6': 'mover',
      '10,0': 'mover',
      '10,7': 'mover',
      '11,10': 'mover',
    };
    return named[`${l},${h}`] ?? (R() < 0.25 ? 'prev' : R() < 0.2 ? 'self' : 'bos');
  };
  const out: number[][][][] = [];
  for (let l = 0; l < nLayers; l++) {
    const layer: number[][][] = [];
    for (let h = 0; h < nHeads; h++) {
      const k = kind(l, h);
      const sharp = 1 + R() * 2;
      const rows: number[][] = [];
      for (let q = 0; q < n; q++) {
        const scores: number[] = [];
        for (let key = 0; key <= q; key++) {
          let sc = R() * 1.2;
          if (key === 0) sc += k === 'bos' ? 3 + sharp : 1.5;
          if (k === 'prev' && key === q - 1) sc += 3 + sharp;
          if (k === 'self' && key === q) sc += 2 + sharp;
          if (k === 'bos' && key >= q - 2) sc += 0.8;
          if (k === 'dup' && key < q && toks[key] === toks[q]) sc += 5;
          if (k === 'induction' && key > 0 && key < q && toks[key - 1] === toks[q]) sc += 5;
          if (k === 'sinhib' && q === last && key === s2) sc += 5;
          if (k === 'mover' && q === last && key === io) sc += 6;
          if (k === 'mover' && q === last && key === s1) sc += 1.5;
          scores.push(sc);
        }
        const p = softmax(scores).map(r4);
        rows.push([...p, ...new Array<number>(n - 1 - q).fill(0)]);
      }
      layer.push(rows);
    }
    out.push(layer);
  }
  return out;
}

export const MOCK_ATTENTION: AttentionState = {
  kind: 'attention',
  model: MOCK_MODEL,
  prompts: [MOCK_PROMPT, 'When Tom and James went to the park, James gave a ball to', 'When Dan and Sid went to the shops, Sid gave an apple to'],
  strTokens: MOCK_STR_TOKENS,
  nLayers: 12,
  nHeads: 12,
  patterns: mockPatterns(12, 12, MOCK_STR_TOKENS),
  meanOver: 3,
};

/** A longer single prompt (label thinning on the large pattern) on a small 4×4-head model. */
export const MOCK_LONG_TOKENS = (() => {
  const words = ['<|endoftext|>', 'def', ' fib', '(', 'n', '):', '\n', '   ', ' if', ' n', ' <', ' 2', ':', '\n', '       ', ' return', ' n', '\n', '   ', ' return', ' fib', '(', 'n', ' -', ' 1', ')', ' +', ' fib', '(', 'n', ' -', ' 2', ')', '\n\n', 'print', '(', 'fib', '(', '10', '))'];
  return words;
})();

export const MOCK_ATTENTION_LONG: AttentionState = {
  kind: 'attention',
  model: 'attn-only-4l',
  prompts: [MOCK_LONG_TOKENS.slice(1).join('')],
  strTokens: MOCK_LONG_TOKENS,
  nLayers: 4,
  nHeads: 4,
  patterns: mockPatterns(4, 4, MOCK_LONG_TOKENS, 21),
  meanOver: 1,
};

export function mockLayerLabels(nLayers: number): string[] {
  const out = ['embed', 'pos_embed'];
  for (let l = 0; l < nLayers; l++) out.push(`${l}_attn_out`, `${l}_mlp_out`);
  return out;
}

function mockAttribution(): AttributionState {
  const R = rng(11);
  const headDla: number[][] = [];
  const big: Record<string, number> = { '9,9': 1.62, '9,6': 0.92, '10,0': 0.71, '10,7': -1.05, '11,10': -0.83, '8,6': 0.21, '7,3': 0.18, '10,10': 0.35, '10,6': 0.25, '11,2': -0.22 };
  for (let l = 0; l < 12; l++) {
    const row: number[] = [];
    for (let h = 0; h < 12; h++) row.push(r4(big[`${l},${h}`] ?? (R() - 0.5) * (l < 6 ? 0.04 : 0.12)));
    headDla.push(row);
  }
  const layerLabels = mockLayerLabels(12);
  // Attention outputs are the sum of their heads (+ a small bias term); MLPs small noise.
  const layerDla = layerLabels.map((lab) => {
    const m = /^(\d+)_(attn|mlp)_out$/.exec(lab);
    if (!m) return r4((R() - 0.5) * 0.2);
    const l = Number(m[1]);
    if (m[2] === 'attn') return r4((headDla[l] ?? []).reduce((a, b) => a + b, 0) + (R() - 0.5) * 0.02);
    return r4((R() - 0.5) * (l > 8 ? 0.5 : 0.15));
  });
  const total = r4(layerDla.reduce((a, b) => a + b, 0));
  // Logit lens: the running sum at each accumulated residual stream position.
  const labels: string[] = [];
  const values: number[] = [];
  let acc = (layerDla[0] ?? 0) + (layerDla[1] ?? 0);
  for (let l = 0; l < 12; l++) {
    labels.push(`${l}_pre`);
    values.push(r4(acc));
    acc += layerDla[2 + 2 * l] ?? 0;
    labels.push(`${l}_mid`);
    values.push(r4(acc));
    acc += layerDla[3 + 2 * l] ?? 0;
  }
  labels.push('final_post');
  values.push(total);
  return {
    kind: 'attribution',
    model: MOCK_MODEL,
    prompt: MOCK_PROMPT,
    strTokens: MOCK_STR_TOKENS,
    target: { answer: ' Mary', wrong: ' John' },
    layerLabels,
    layerDla,
    headDla,
    logitLens: { labels, values },
    // The logit difference = the components (the lens's final_post) + the unembedding bias.
    total: r4(total + 0.0375),
    unembedBias: 0.0375,
    lnFinalTerm: null,
  };
}

export const MOCK_ATTRIBUTION: AttributionState = mockAttribution();

const layerRows = (n: number) => Array.from({ length: n }, (_, i) => String(i));

function mockResidPatching(): HeatmapData {
  const R = rng(3);
  const n = MOCK_STR_TOKENS.length;
  const values = layerRows(12).map((_, l) =>
    Array.from({ length: n }, (_, p) => {
      let v = (R() - 0.5) * 0.02;
      if (p === 2) v += l < 9 ? 1 - l * 0.01 : Math.max(0, 0.9 - (l - 8) * 0.45);
      if (p === n - 1) v += l < 8 ? 0 : Math.min(1, (l - 7) * 0.35);
      if (p === 10) v += l >= 3 && l < 9 ? 0.12 * Math.sin(l) : 0;
      return r4(v);
    }),
  );
  return {
    title: 'Patching resid_pre (normalised logit diff)',
    rowAxis: 'layer',
    colAxis: 'position',
    rowLabels: layerRows(12),
    colLabels: MOCK_STR_TOKENS.map((t, i) => `${t}_${i}`),
    values,
    valueLabel: 'normalised logit diff',
  };
}

function mockHeadPatching(): HeatmapData {
  const R = rng(5);
  const big: Record<string, number> = { '9,9': 0.61, '9,6': 0.33, '10,0': 0.28, '10,7': -0.41, '11,10': -0.3, '7,3': 0.19, '8,6': 0.24, '8,10': 0.11, '3,0': 0.14, '5,5': 0.09 };
  return {
    title: 'Patching each head’s output (hook_z)',
    rowAxis: 'layer',
    colAxis: 'head',
    rowLabels: layerRows(12),
    colLabels: layerRows(12),
    values: layerRows(12).map((_, l) => layerRows(12).map((_, hh) => r4(big[`${l},${hh}`] ?? (R() - 0.5) * 0.03))),
    valueLabel: 'normalised logit diff',
  };
}

/** 12 layers × 3072 MLP neurons: mostly noise with a few sparse spikes (tests binning). */
export function mockNeuronPatching(nLayers = 12, dMlp = 3072): HeatmapData {
  const R = rng(9);
  const spikes: Record<string, number> = { '8,1234': 0.31, '9,77': 0.22, '10,2900': -0.27, '11,1500': 0.18, '6,3000': -0.12, '10,640': 0.15 };
  return {
    title: 'Patching each MLP neuron (mlp_post)',
    rowAxis: 'layer',
    colAxis: 'neuron',
    rowLabels: layerRows(nLayers),
    colLabels: layerRows(dMlp),
    values: layerRows(nLayers).map((_, l) => layerRows(dMlp).map((_, nn) => r4(spikes[`${l},${nn}`] ?? (R() - 0.5) * 0.01 * (1 + l / 4)))),
    valueLabel: 'normalised logit diff',
  };
}

export const MOCK_HEATMAP: HeatmapState = {
  kind: 'heatmap',
  model: MOCK_MODEL,
  description:
    'Activation patching: clean "When Mary and John went to the store, John gave a drink to" vs corrupted (" Mary" at position 2 replaced by " Alice").\nMetric: (logit_diff − corrupted) / (clean − corrupted): 1 = clean behaviour restored, 0 = no effect.',
  heatmaps: [mockResidPatching(), mockHeadPatching(), mockNeuronPatching()],
};

export const MOCK_TOPK: TopKViewState = { kind: 'topk', model: MOCK_MODEL, prompt: MOCK_PROMPT, result: MOCK_RESULT };

export const MOCK_TOPK_EMPTY: TopKViewState = { kind: 'topk', model: null, prompt: null, result: null, message: 'No model loaded. Run “MechLens: Load Model” to see live predictions.' };

export const MOCK_ERROR: ErrorState = {
  kind: 'error',
  title: 'Could not load the model',
  message: 'No config.json in /models/gpt2-small.\nSet mechlens.model to a Hugging Face folder or id, or run “MechLens: Load Model”.',
};

export const MOCK_LOADING: LoadingState = { kind: 'loading', title: 'Running activation patching', message: 'Patching 144 heads over 15 positions…' };

/** Every mock by preview name. */
export const MOCK_STATES: Record<string, PanelState> = {
  inspect: MOCK_INSPECT,
  attention: MOCK_ATTENTION,
  'attention-long': MOCK_ATTENTION_LONG,
  attribution: MOCK_ATTRIBUTION,
  heatmap: MOCK_HEATMAP,
  topk: MOCK_TOPK,
  'topk-empty': MOCK_TOPK_EMPTY,
  error: MOCK_ERROR,
  loading: MOCK_LOADING,
};
