/**
 * Access to the tiny GPT-2 reference fixture (test/fixtures/tiny-gpt2, copied from
 * ../shared/fixtures): params and every hook for each processing mode, as produced by an
 * independent implementation of TransformerLens semantics.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensors } from '../../src/engine/model/safetensors.js';
import { configFromHfGpt2, type HookedTransformerConfig } from '../../src/engine/model/config.js';
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
