/**
 * Absurd config.json sizes fail at once, naming the field, its value and what the weights say:
 * `n_layer: 1000000000` used to hang `info` and `run` with memory growing.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModelFolder } from '../../src/engine/model/load.js';
import { main } from '../../src/engine/cli.js';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'gpt2-tied-gelu-new');

function withConfig(patch: Record<string, unknown>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-dims-'));
  for (const f of ['model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) fs.copyFileSync(path.join(FIXTURE, f), path.join(dir, f));
  const cfg = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'config.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, ...patch }));
  return dir;
}

const cases: [string, Record<string, unknown>, RegExp][] = [
  ['n_layer 1e9', { n_layer: 1_000_000_000 }, /n_layers is 1000000000, but the weights hold 2 layers \(per-layer tensors numbered 0 to 1\)/],
  ['n_embd 1e6', { n_embd: 1_000_000, n_head: 4 }, /d_model is 1000000, but the token embedding \S*wte\.weight is \[\d+, \d+\]/],
  ['vocab 1e9', { vocab_size: 1_000_000_000 }, /d_vocab is 1000000000, but the token embedding \S*wte\.weight has \d+ rows/],
  ['n_inner 1e9', { n_inner: 1_000_000_000 }, /imply about .* parameters, but the weights hold \d+|d_mlp/],
];

for (const [what, patch, re] of cases) {
  test(`config.json with ${what}: a clear error at once, before anything is allocated`, () => {
    const dir = withConfig(patch);
    const t0 = Date.now();
    const rss0 = process.memoryUsage().rss;
    assert.throws(() => loadModelFolder(dir), (e: Error) => {
      assert.match(e.message, re);
      assert.match(e.message, /config\.json does not match the weights|config\.json/);
      return true;
    });
    assert.ok(Date.now() - t0 < 5000, 'fails at once');
    assert.ok(process.memoryUsage().rss - rss0 < 200 * 1024 * 1024, 'allocates nothing large');
  });
}

test('mechlens info on n_layer 1e9: one line naming the field and the weights, exit 1', async () => {
  const dir = withConfig({ n_layer: 1_000_000_000 });
  const errs: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string | Uint8Array) => (errs.push(String(s)), true)) as typeof process.stderr.write;
  let code: number;
  try {
    code = await main(['info', '--model', dir], { out: () => undefined });
  } finally {
    process.stderr.write = write;
  }
  assert.equal(code, 1);
  assert.match(errs.join(''), /^mechlens: .*n_layers is 1000000000, but the weights hold 2 layers/m);
});
