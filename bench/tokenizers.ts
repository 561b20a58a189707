/**
 * Tokenizer speed: GPT-2's BPE through js-tiktoken (what GPT-2 folders without tokenizer.json
 * use) against the same vocabulary through @huggingface/tokenizers (what every tokenizer.json
 * uses), on one ~400k-character text, interleaved in the same run; plus the real tokenizer.json
 * files of ../shared/tokenizers (Pythia, Phi-3) when present. Prints one JSON line.
 *
 *   node --import tsx bench/tokenizers.ts
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createGpt2Tokenizer, type Tokenizer } from '../src/engine/model/tokenizer.js';
import { loadHfTokenizer } from '../src/engine/model/hfTokenizer.js';

const REPO = path.resolve(__dirname, '..');
const SHARED = path.resolve(REPO, '..', 'shared', 'tokenizers');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** A temporary folder with a tokenizer.json (+ config), as a model folder would hold them. */
function folderWith(files: Record<string, string | { link: string }>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-tokbench-'));
  for (const [name, v] of Object.entries(files)) {
    if (typeof v === 'string') fs.writeFileSync(path.join(dir, name), v);
    else fs.symlinkSync(v.link, path.join(dir, name));
  }
  return dir;
}

const base = ['README.md', 'docs/DESIGN.md', 'src/engine/model/tokenizer.ts'].map((f) => fs.readFileSync(path.join(REPO, f), 'utf8')).join('\n');
let text = '';
while (text.length < 400_000) text += base;
text = text.slice(0, 400_000);

const out: Record<string, unknown> = { bench: 'tokenizers', chars: text.length };
const gpt2Dir = path.join(SHARED, 'gpt2-gptneo-gptj');
if (!fs.existsSync(path.join(gpt2Dir, 'vocab.json'))) {
  out.error = `${gpt2Dir} is absent: the GPT-2 comparison needs ../shared/tokenizers`;
} else {
  // The same skeleton the oracle uses for GPT-2's vocab.json + merges.txt.
  const fx = JSON.parse(fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'tokenizers', 'gpt2-vocab-merges.json'), 'utf8')) as {
    source: { skeleton: { model: Record<string, unknown> }; tokenizer_config: unknown };
  };
  const tj = structuredClone(fx.source.skeleton);
  tj.model.vocab = JSON.parse(fs.readFileSync(path.join(gpt2Dir, 'vocab.json'), 'utf8')) as unknown;
  tj.model.merges = fs.readFileSync(path.join(gpt2Dir, 'merges.txt'), 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#version'));
  const dir = folderWith({ 'tokenizer.json': JSON.stringify(tj), 'tokenizer_config.json': JSON.stringify(fx.source.tokenizer_config) });
  let t0 = performance.now();
  const tiktoken = createGpt2Tokenizer();
  tiktoken.encode('');
  const tiktokenLoad = performance.now() - t0;
  t0 = performance.now();
  const hf = loadHfTokenizer(dir, { architecture: 'GPT2LMHeadModel' });
  const hfLoad = performance.now() - t0;
  fs.rmSync(dir, { recursive: true, force: true });
  const fns: [string, Tokenizer][] = [['js_tiktoken', tiktoken], ['hf_tokenizers', hf]];
  const ts = fns.map(() => [] as number[]);
  for (let i = 0; i < 7; i++) {
    for (const [k, [, tok]] of fns.entries()) {
      const t = performance.now();
      tok.encode(text);
      if (i >= 2) ts[k]!.push(performance.now() - t);
    }
  }
  const [tk, hfMs] = ts.map(median) as [number, number];
  const ids = tiktoken.encode(text);
  t0 = performance.now();
  hf.encodeWithOffsets(text);
  out.gpt2 = {
    tokens: ids.length,
    identical_ids: JSON.stringify(ids) === JSON.stringify(hf.encode(text)),
    load_ms: { js_tiktoken: Math.round(tiktokenLoad), hf_tokenizers: Math.round(hfLoad) },
    encode_ms: { js_tiktoken: Math.round(tk), hf_tokenizers: Math.round(hfMs), hf_with_offsets: Math.round(performance.now() - t0) },
    ratio_hf_over_tiktoken: Number((hfMs / tk).toFixed(2)),
  };
}
for (const [name, file, cfg, arch] of [
  ['pythia', 'gpt-neox-pythia/20B_tokenizer.json', null, 'GPTNeoXForCausalLM'],
  ['phi3', 'phi3/tokenizer.json', 'phi3/tokenizer_config.json', 'Phi3ForCausalLM'],
] as const) {
  const src = path.join(SHARED, file);
  if (!fs.existsSync(src)) continue;
  const dir = folderWith({ 'tokenizer.json': { link: src }, ...(cfg ? { 'tokenizer_config.json': { link: path.join(SHARED, cfg) } } : {}) });
  let t0 = performance.now();
  const tok = loadHfTokenizer(dir, { architecture: arch });
  const load = performance.now() - t0;
  tok.encode(text);
  const ms: number[] = [];
  let n = 0;
  for (let i = 0; i < 3; i++) {
    t0 = performance.now();
    n = tok.encode(text).length;
    ms.push(performance.now() - t0);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  out[name] = { tokens: n, load_ms: Math.round(load), encode_ms: Math.round(median(ms)) };
}
console.log(JSON.stringify(out));
