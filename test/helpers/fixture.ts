/**
 * Access to the tiny GPT-2 reference fixture (test/fixtures/tiny-gpt2, copied from
 * ../shared/fixtures): params and every hook for each processing mode, as produced by an
 * independent implementation of TransformerLens semantics.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensors } from '../../src/engine/model/safetensors.js';
import { type HookedTransformerConfig } from '../../src/engine/model/config.js';
import { configFromHfGpt2 } from '../../src/engine/arch/gpt2.js';
import type { Params, Processing } from '../../src/engine/model/params.js';
import { maxAbsDiff, type F32 } from '../../src/engine/tensor/tensor.js';

export const FIXTURE_DIR = path.join(__dirname, '..', 'fixtures', 'tiny-gpt2');

let expectedCache: Map<string, F32> | undefined;
export function expectedTensors(): Map<string, F32> {
  return (expectedCache ??= readSafetensors(path.join(FIXTURE_DIR, 'expected.safetensors')));
}

export interface FixtureSpec {
  tokens: number[][];
  corrupted_tokens: number[][];
  answers: [number, number][];
}
export const spec: FixtureSpec = JSON.parse(fs.readFileSync(path.join(FIXTURE_DIR, 'spec.json'), 'utf8')) as FixtureSpec;
export const expectedJson = JSON.parse(fs.readFileSync(path.join(FIXTURE_DIR, 'expected.json'), 'utf8')) as {
  processing: Record<Processing, Record<string, unknown>>;
};

export function fixtureConfig(): HookedTransformerConfig {
  return configFromHfGpt2(JSON.parse(fs.readFileSync(path.join(FIXTURE_DIR, 'config.json'), 'utf8')) as Record<string, unknown>, 'tiny-gpt2');
}

/** Reference params stored in the fixture for a mode ('none' or 'default'). */
export function fixtureParams(mode: 'none' | 'default'): Params {
  const out: Params = new Map();
  const prefix = `${mode}/params/`;
  for (const [k, v] of expectedTensors()) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  return out;
}

/** Reference hook value: `<mode>/<hook>`. */
export function expectedHook(mode: Processing, hook: string): F32 {
  const t = expectedTensors().get(`${mode}/${hook}`);
  if (!t) throw new Error(`fixture has no ${mode}/${hook}`);
  return t;
}

export function hookNamesIn(mode: Processing): string[] {
  const prefix = `${mode}/`;
  return [...expectedTensors().keys()].filter((k) => k.startsWith(prefix) && !k.startsWith(`${prefix}params/`)).map((k) => k.slice(prefix.length));
}

/** Asserts max |a-b| <= atol and reports the difference and where on failure. */
export function assertClose(actual: F32, expected: F32, atol: number, what: string): number {
  const d = maxAbsDiff(actual, expected);
  if (!(d <= atol)) {
    let worst = 0;
    for (let i = 0; i < actual.data.length; i++) {
      const x = Math.abs(actual.data[i]! - expected.data[i]!);
      if (x > Math.abs(actual.data[worst]! - expected.data[worst]!) || Number.isNaN(x)) worst = i;
    }
    throw new Error(`${what}: max |diff| = ${d} > atol ${atol} (flat index ${worst}: got ${actual.data[worst]}, expected ${expected.data[worst]})`);
  }
  return d;
}

export function assertNumClose(actual: number, expected: number, atol: number, what: string): void {
  if (!(Math.abs(actual - expected) <= atol)) throw new Error(`${what}: got ${actual}, expected ${expected}, |diff| = ${Math.abs(actual - expected)} > atol ${atol}`);
}

/**
 * The reference value of a hook as MechLens defines it, for comparison with our output:
 *  - 'default+refactor' attn.hook_q/k/v/z: refactor_factored_attn_matrices sets W_Q, W_K (and
 *    W_V, W_O) from an SVD, whose singular vectors are unique only up to sign. The fixture's
 *    signs come from LAPACK's dense SVD; ours from a canonical rule (largest |u| entry positive).
 *    So each (head, d_head) column is compared up to one sign, which must be the same for q and k
 *    (and for v and z), since q·k (and z @ W_O) is sign-invariant. `signs` carries the pattern
 *    found on q (resp. v) to k (resp. z).
 */
export function alignedReference(mode: Processing, name: string, got: F32, signs: Map<string, Int8Array>): F32 {
  const e = expectedHook(mode, name);
  const qkvz = /^blocks\.(\d+)\.attn\.hook_([qkvz])$/.exec(name);
  if (mode !== 'default+refactor' || !qkvz) return e;
  const layer = qkvz[1]!;
  const group = qkvz[2] === 'q' || qkvz[2] === 'k' ? 'qk' : 'vz';
  const key = `${layer}.${group}`;
  const [B, P, H, D] = e.dims as [number, number, number, number];
  let s = signs.get(key);
  if (!s) {
    // First of the pair: choose each column's sign from the data.
    s = new Int8Array(H * D);
    for (let c = 0; c < H * D; c++) {
      let dot = 0;
      for (let r = 0; r < B * P; r++) dot += got.data[r * H * D + c]! * e.data[r * H * D + c]!;
      s[c] = dot < 0 ? -1 : 1;
    }
    signs.set(key, s);
  }
  const sign = s;
  return { ...e, data: e.data.map((v, i) => v * sign[i % (H * D)]!) };
}
