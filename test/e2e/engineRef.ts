/**
 * The reference numbers for the e2e checks, computed here in the test process with the engine's
 * own API (no extension, no worker): LoadedEngine.load('builtin:default'), then
 * model.runWithCache. What the webview shows must match these.
 */
import { LoadedEngine } from '../../src/engine/engine';

let enginePromise: Promise<LoadedEngine> | undefined;

export function referenceEngine(): Promise<LoadedEngine> {
  return (enginePromise ??= LoadedEngine.load('builtin:default', { device: 'cpu', allowDownload: false }));
}

export async function disposeReferenceEngine(): Promise<void> {
  const e = enginePromise;
  enginePromise = undefined;
  if (e) await (await e).dispose();
}

export interface ReferenceAttention {
  strTokens: string[];
  nLayers: number;
  nHeads: number;
  /** pattern(layer, head, q, k) from blocks.L.attn.hook_pattern [batch, head_index, query_pos, key_pos]. */
  pattern(layer: number, head: number, q: number, k: number): number;
}

export async function referenceAttention(prompt: string, prependBos = true): Promise<ReferenceAttention> {
  const eng = await referenceEngine();
  const { tokens, strTokens } = eng.tokenize([prompt], prependBos);
  const cfg = eng.model.cfg;
  const names = Array.from({ length: cfg.n_layers }, (_, l) => `blocks.${l}.attn.hook_pattern` as const);
  const r = await eng.model.runWithCache(tokens, { names });
  const P = tokens[0]!.length;
  const data = names.map((n) => {
    const t = r.cache.get(n);
    if (!t) throw new Error(`runWithCache returned no ${n}`);
    const want = [1, cfg.n_heads, P, P];
    if (t.dims.join() !== want.join()) throw new Error(`${n} has dims [${t.dims.join(', ')}], want [${want.join(', ')}]`);
    return t.data;
  });
  return {
    strTokens: strTokens[0]!,
    nLayers: cfg.n_layers,
    nHeads: cfg.n_heads,
    pattern: (l, h, q, k) => data[l]![(h * P + q) * P + k]!,
  };
}

/** How the webview writes a token (documented in its legend): '·' a space, '⏎' a newline. */
export function visibleToken(s: string): string {
  if (s === '') return '∅';
  return s.replace(/ /g, '·').replace(/\n/g, '⏎').replace(/\t/g, '⇥');
}
