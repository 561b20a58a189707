/**
 * The GPT-2 reference most unit tests use: the oracle fixture test/fixtures/gpt2-tied-gelu-new,
 * computed by TransformerLens 3's HookedTransformer itself (oracle/gen_models.py): params and
 * every hook for each processing mode, spec tokens, and the analyses in expected.json. The full
 * comparison against every oracle fixture is test/unit/oracle.test.ts (helpers in ./oracle.ts).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors } from '../../src/engine/model/safetensors.js';
import { type HookedTransformerConfig } from '../../src/engine/model/config.js';
import { configFromHfGpt2 } from '../../src/engine/arch/gpt2.js';
import type { Params, Processing } from '../../src/engine/model/params.js';
import { maxAbsDiff, type F32 } from '../../src/engine/tensor/tensor.js';

export const FIXTURE_NAME = 'gpt2-tied-gelu-new';
export const FIXTURE_DIR = path.join(__dirname, '..', 'fixtures', FIXTURE_NAME);

/**
 * The fixture's checkpoint (config.json, model.safetensors) without its tokenizer files, in a
 * temporary folder of the same name: for tests of the engine, worker and CLI that load a model
 * folder and feed token ids. MechLens then tokenizes with integer ids, which these tests use;
 * the oracle fixture's own tokenizer is checked by the tokenizer tests.
 */
export const FIXTURE_MODEL_DIR: string = (() => {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-fixture-')), FIXTURE_NAME);
  fs.mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(FIXTURE_DIR, f), path.join(dir, f));
  process.on('exit', () => fs.rmSync(path.dirname(dir), { recursive: true, force: true }));
  return dir;
})();

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
  return configFromHfGpt2(JSON.parse(fs.readFileSync(path.join(FIXTURE_DIR, 'config.json'), 'utf8')) as Record<string, unknown>, FIXTURE_NAME);
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

/** The hooks TransformerLens cached for a mode that MechLens names (unembed.* are not yet, see oracle.test.ts). */
export function hookNamesIn(mode: Processing): string[] {
  const prefix = `${mode}/`;
  const notHooks = /^(params|dla|lens|patching|loss)\/|^logits$|^unembed\./;
  return [...expectedTensors().keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length)).filter((k) => !notHooks.test(k));
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
 * The reference value of a hook for comparison with MechLens's output. After
 * refactor_factored_attn_matrices ('default+refactor'), W_Q, W_K (and W_V, W_O) come from an SVD,
 * whose singular vectors are unique only up to sign: TransformerLens takes LAPACK's signs, MechLens
 * a canonical rule (largest |u| entry positive). So attn.hook_q/k/v/z are compared per (head,
 * d_head) column up to one sign, which must be the same for q and k (and for v and z), since q·k
 * (and z @ W_O) is sign-invariant. `signs` carries the pattern found on q (resp. v) to k (resp. z).
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
