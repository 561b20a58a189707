/**
 * The real character-level GPT-2 in ../shared/models/slm4096 (trained by someone else on a
 * Q&A text; not committed here): it must load through the engine and predict a line of its own
 * Q&A text with low loss, under every processing mode.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoadedEngine } from '../../src/engine/engine.js';
import { loss } from '../../src/engine/analysis/basic.js';

const DIR = path.join(__dirname, '..', '..', '..', 'shared', 'models', 'slm4096');
const present = fs.existsSync(path.join(DIR, 'model.safetensors'));
// A passage in the style the model was trained on (its own greedy continuation of "Q: ").
const QA = 'Q: What is your latency?\nA: Instant, because thinking is not in the critical path.\nQ: How is this disruptive?\nA: We disrupt';
const ENGLISH = 'The quick brown fox jumps over the lazy dog.';

for (const processing of ['none', 'default', 'default+refactor'] as const) {
  test(`slm4096 predicts its own Q&A text with low loss (${processing})`, { skip: present ? false : `model folder ${DIR} is absent` }, async () => {
    const e = await LoadedEngine.load(DIR, { device: 'cpu', processing, threads: 1 });
    try {
      assert.equal(e.tokenizer.kind, 'char');
      assert.equal(e.model.cfg.n_layers, 4);
      const qa = e.tokenizer.encode(QA);
      const l = loss(await e.model.forward([qa]), [qa]);
      assert.ok(l < 0.1, `loss on its own Q&A text is ${l} nats/char, expected < 0.1`);
      // Sanity of the comparison: unrelated text is far less predictable for this tiny model.
      const en = e.tokenizer.encode(ENGLISH);
      const le = loss(await e.model.forward([en]), [en]);
      assert.ok(le > 10 * l, `unrelated text loss ${le} should be far above ${l}`);
      // Greedy continuation of "Q: " keeps the Q&A shape.
      const ids = e.tokenizer.encode('Q: ');
      for (let i = 0; i < 60; i++) {
        const logits = await e.model.forward([ids]);
        const V = logits.dims[2]!;
        const row = logits.data.subarray((ids.length - 1) * V, ids.length * V);
        let best = 0;
        for (let v = 1; v < V; v++) if (row[v]! > row[best]!) best = v;
        ids.push(best);
      }
      assert.match(e.tokenizer.decode(ids), /^Q: [^\n]+\?\nA: /);
    } finally {
      await e.dispose();
    }
  });
}
