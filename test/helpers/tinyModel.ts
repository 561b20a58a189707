/**
 * A small fixed GPT-2 (test/fixtures/tiny-gpt2: 2 layers, d_model 32, vocab 50, n_ctx 16, no
 * tokenizer files) with a batch of 4 prompts of 8 tokens, for tests of properties that need no
 * reference numbers: shapes, batching, cancellation, error messages, identities between
 * analyses, attribution-vs-exact correlation. Its parameters are read from its checkpoint and
 * processed by MechLens (whose loading and processing the oracle tests check against
 * TransformerLens). Reference numbers come from the oracle fixtures (./fixture.ts, ./oracle.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModelFolder } from '../../src/engine/model/load.js';
import { applyProcessing } from '../../src/engine/weights/process.js';
import type { HookedTransformerConfig } from '../../src/engine/model/config.js';
import type { Params } from '../../src/engine/model/params.js';

export { assertClose, assertNumClose } from './fixture.js';

export const TINY_DIR = path.join(__dirname, '..', 'fixtures', 'tiny-gpt2');

export interface TinySpec {
  tokens: number[][];
  corrupted_tokens: number[][];
  answers: [number, number][];
}
export const spec: TinySpec = JSON.parse(fs.readFileSync(path.join(TINY_DIR, 'spec.json'), 'utf8')) as TinySpec;

let loaded: ReturnType<typeof loadModelFolder> | undefined;
const load = () => (loaded ??= loadModelFolder(TINY_DIR));

export function fixtureConfig(): HookedTransformerConfig {
  return load().cfg;
}

/** The model's params, unprocessed ('none') or processed by MechLens ('default'). */
export function fixtureParams(mode: 'none' | 'default'): Params {
  const { cfg, params } = load();
  return mode === 'none' ? new Map(params) : applyProcessing(cfg, params, 'default').params;
}
