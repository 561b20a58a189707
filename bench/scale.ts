/**
 * The scale bench (`npm run bench -- scale [--only=gpt2-xl,...] [--dtypes=float32] [--reps=2]
 * [--sides=mechlens]`):
 * random checkpoints shaped like the models researchers study, stored once in fp32 and once in
 * bf16 (made by oracle/peer_bench.py with transformers into the ignored .bench/scale/, reused
 * across runs), each loaded by MechLens and by TransformerLens in the same run, one process at a
 * time (never both at once: GPT-2-XL in fp32 alone is 6.2 GB):
 *  - peak RSS of MechLens's process while loading and running vs the checkpoint's fp32 weight
 *    bytes (target <= 1.25x), TransformerLens's beside it;
 *  - forward 1x128 and run_with_cache 1x128, MechLens / TransformerLens (target <= 1.0), medians
 *    over both dtypes (computation is float32 on both sides either way);
 *  - load-to-first-result time (reading, conversion, default processing, first 1x128 forward)
 *    of both sides.
 * The order alternates per dtype (fp32: TransformerLens then MechLens; bf16: MechLens then
 * TransformerLens) so that drift in the host's speed hits both sides alike. `--sides=mechlens`
 * runs MechLens's side alone (TransformerLens's needs 3-4x the weights, 18-20 GB for these
 * shapes, which a shared machine may not spare): its peak RSS is still checked, the time ratios
 * are left out.
 *
 * FAMILIES is the data: one line per shape (its Hugging Face config, and a tiny variant used to
 * ask MechLens's loader whether it can load the family at all). A family MechLens cannot load
 * yet gets a "not supported yet" entry with the loader's reason, and nothing is built for it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModelFolder } from '../src/engine/model/load.js';
import { ENGINE_PROCESS_ENV } from '../src/engine/worker/processEnv.js';
import { BENCH_DIR, findOraclePython, makeCheckpoint, median, PyPeer, ROOT, round } from './pyPeer.js';
import { randomTokens } from './randomModel.js';

interface Family {
  id: string;
  /** transformers config fields (model_type picks the class); sizes as the real model's. */
  hf: Record<string, unknown>;
  /** Fields replaced for the support probe (a tiny checkpoint of the same family). */
  tiny: Record<string, unknown>;
}

const FAMILIES: Family[] = [
  { id: 'gpt2-xl', hf: { model_type: 'gpt2', n_layer: 48, n_embd: 1600, n_head: 25, n_positions: 1024, vocab_size: 50257, activation_function: 'gelu_new', tie_word_embeddings: true }, tiny: { n_layer: 1, n_embd: 32, n_head: 2, n_positions: 32, vocab_size: 64 } },
  { id: 'pythia-1.4b', hf: { model_type: 'gpt_neox', num_hidden_layers: 24, hidden_size: 2048, num_attention_heads: 16, intermediate_size: 8192, vocab_size: 50304, max_position_embeddings: 2048, rotary_pct: 0.25, rotary_emb_base: 10000, use_parallel_residual: true, hidden_act: 'gelu', tie_word_embeddings: false }, tiny: { num_hidden_layers: 1, hidden_size: 32, num_attention_heads: 2, intermediate_size: 64, vocab_size: 64, max_position_embeddings: 32 } },
  // n_ctx 2048 as TransformerLens's own Llama-3.2-1B config (its 131072 positions would make
  // TransformerLens allocate a causal mask of n_ctx^2 per layer).
  { id: 'llama-3.2-1b', hf: { model_type: 'llama', num_hidden_layers: 16, hidden_size: 2048, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, intermediate_size: 8192, vocab_size: 128256, max_position_embeddings: 2048, rms_norm_eps: 1e-5, hidden_act: 'silu', tie_word_embeddings: true, rope_theta: 500000, rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }, tiny: { num_hidden_layers: 1, hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, intermediate_size: 64, vocab_size: 64, max_position_embeddings: 32 } },
  // Qwen2.5-1.5B: q/k/v biases, 12 query / 2 key-value heads, tied embedding; n_ctx 2048 rather
  // than its 32768 for the same reason as Llama-3.2-1B (TransformerLens takes
  // max_position_embeddings as n_ctx for this family).
  { id: 'qwen2.5-1.5b', hf: { model_type: 'qwen2', num_hidden_layers: 28, hidden_size: 1536, num_attention_heads: 12, num_key_value_heads: 2, intermediate_size: 8960, vocab_size: 151936, max_position_embeddings: 2048, rms_norm_eps: 1e-6, hidden_act: 'silu', tie_word_embeddings: true, rope_theta: 1000000, use_sliding_window: false }, tiny: { num_hidden_layers: 1, hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 64, vocab_size: 64, max_position_embeddings: 32 } },
  // Gemma-2-2B: post-norms, softcaps, alternating local/global layers, a 256000-token tied
  // vocabulary (its embedding is a quarter of the weights); n_ctx 2048 as for Llama-3.2-1B.
  { id: 'gemma-2-2b', hf: { model_type: 'gemma2', num_hidden_layers: 26, hidden_size: 2304, num_attention_heads: 8, num_key_value_heads: 4, head_dim: 256, intermediate_size: 9216, vocab_size: 256000, max_position_embeddings: 2048, rms_norm_eps: 1e-6, hidden_activation: 'gelu_pytorch_tanh', query_pre_attn_scalar: 256, sliding_window: 4096, attn_logit_softcapping: 50, final_logit_softcapping: 30, tie_word_embeddings: true, rope_theta: 10000 }, tiny: { num_hidden_layers: 2, hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, intermediate_size: 64, vocab_size: 64, max_position_embeddings: 32, sliding_window: 4 } },
  // Mixtures of experts, narrowed to fit a dev machine (Mixtral 8x7B is 47B parameters, OLMoE-1B-7B
  // 6.9B): each keeps its model's routing (8 experts, top 2; 64 experts, top 8), its expert width
  // relative to d_model (3.5x; 0.5x), its head layout and vocabulary, at d_model 512 and 8 / 6 layers.
  { id: 'moe-mixtral-proportions-0.2b', hf: { model_type: 'mixtral', num_hidden_layers: 8, hidden_size: 512, num_attention_heads: 8, num_key_value_heads: 2, intermediate_size: 1792, num_local_experts: 8, num_experts_per_tok: 2, vocab_size: 32000, max_position_embeddings: 2048, rms_norm_eps: 1e-5, hidden_act: 'silu', tie_word_embeddings: false, rope_theta: 1000000 }, tiny: { num_hidden_layers: 1, hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 64, vocab_size: 64, max_position_embeddings: 32 } },
  { id: 'moe-olmoe-proportions-0.2b', hf: { model_type: 'olmoe', num_hidden_layers: 6, hidden_size: 512, num_attention_heads: 16, num_key_value_heads: 16, intermediate_size: 256, num_experts: 64, num_experts_per_tok: 8, norm_topk_prob: false, vocab_size: 50304, max_position_embeddings: 2048, rms_norm_eps: 1e-5, hidden_act: 'silu', tie_word_embeddings: false, rope_theta: 10000 }, tiny: { num_hidden_layers: 1, hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 4, intermediate_size: 16, num_experts: 8, vocab_size: 64, max_position_embeddings: 32 } },
];

const TARGET_RSS_RATIO = 1.25;
/**
 * Rough peaks (x fp32 weight bytes) used to refuse a run the free memory cannot hold: MechLens
 * about 1.2x (a tied embedding is held once), with a margin; TransformerLens 3.0x from fp32 weights on GPT-2-XL, and more than 3.8x from bf16 ones
 * (transformers upcasts to float32 while it loads; killed for memory at 23.9 GB on a 24 GB
 * machine).
 */
const NEED_FACTOR = { mechlens: 1.5, transformer_lens: { float32: 3.2, bfloat16: 4.2, float16: 4.2 } as Record<string, number> } as const;

const t00 = performance.now();
/** Progress on stderr: which run, and how long the group has been going. */
const log = (msg: string): void => void process.stderr.write(`scale ${round((performance.now() - t00) / 1000)}s: ${msg}\n`);

/**
 * Folder of a family's checkpoints: named by a hash of its config, never by the family's name
 * (TransformerLens's config conversion takes a hard-coded branch for paths containing "llama"
 * or "gemma" and would not read config.json).
 */
function folderOf(hf: Record<string, unknown>, tag: string): string {
  return path.join(BENCH_DIR, 'scale', `${tag}-${createHash('sha256').update(JSON.stringify(hf)).digest('hex').slice(0, 12)}`);
}

function memAvailable(): number {
  const m = /MemAvailable:\s+(\d+) kB/.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : os.freemem();
}

function weightBytes(folder: string): number {
  return fs.readdirSync(folder).filter((f) => f.endsWith('.safetensors')).reduce((n, f) => n + fs.statSync(path.join(folder, f)).size, 0);
}

/** Whether MechLens's loader takes this family: it loads a tiny checkpoint of it. */
function probe(python: string, f: Family): { ok: true } | { ok: false; reason: string } {
  const hf = { ...f.hf, ...f.tiny };
  const out = folderOf(hf, 'probe');
  makeCheckpoint(python, hf, out, ['float32'], 1);
  try {
    loadModelFolder(path.join(out, 'float32'));
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: (e instanceof Error ? e.message : String(e)).split('\n')[0]! };
  }
}

function runMechLens(folder: string, reps: number): Record<string, unknown> {
  // The engine worker's environment (its malloc settings), as the extension's forked engine gets it.
  const env = { ...process.env, ...ENGINE_PROCESS_ENV };
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'scaleChild.ts'), folder, String(reps)], { cwd: ROOT, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 << 20 });
  if (r.status !== 0) return { error: `MechLens child failed (exit ${r.status ?? r.signal}): ${(r.stderr ?? '').trim().split('\n').slice(0, 3).join(' | ')}` };
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

async function runTransformerLens(python: string, folder: string, reps: number): Promise<Record<string, unknown>> {
  const tl = new PyPeer(python);
  try {
    const tokens = randomTokens(1, 128, 50257); // the same ids as scaleChild.ts (below every family's vocabulary)
    const load = await tl.request('load', { folder, processing: 'default', first_tokens: tokens });
    const fwd: number[] = [];
    const rwc: number[] = [];
    for (let i = 0; i < reps; i++) {
      fwd.push(...((await tl.request('forward', { tokens, reps: 1 }))['ms'] as number[]));
      rwc.push(...((await tl.request('run_with_cache', { tokens, reps: 1 }))['ms'] as number[]));
    }
    const rss = await tl.request('rss');
    return {
      load_to_first_result_ms: load['load_to_first_result_ms'],
      forward_1x128_ms: fwd,
      run_with_cache_1x128_ms: rwc,
      peak_rss_mb: Math.round((rss['rss_peak'] as number) / 1e6),
      transformer_lens_version: load['transformer_lens_version'],
    };
  } catch (e) {
    return { error: (e instanceof Error ? e.message : String(e)).split('\n')[0] };
  } finally {
    await tl.close();
  }
}

function flag(name: string): string | undefined {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a?.slice(name.length + 3);
}

export async function benchScale(): Promise<Record<string, unknown>> {
  const py = findOraclePython();
  if ('skip' in py) return { bench: 'scale', skipped: py.skip, pass: null };
  const only = flag('only')?.split(',');
  const dtypes = flag('dtypes')?.split(',') ?? ['float32', 'bfloat16'];
  const reps = Number(flag('reps') ?? 2);
  const sides = flag('sides')?.split(',') ?? ['mechlens', 'transformer_lens'];
  const badSide = sides.find((x) => x !== 'mechlens' && x !== 'transformer_lens');
  if (badSide !== undefined || sides.length === 0) throw new Error(`--sides=${flag('sides')}: give mechlens, transformer_lens or both, comma-separated`);
  const t0 = performance.now();
  const families: Record<string, unknown>[] = [];
  const failed: string[] = [];
  for (const f of FAMILIES) {
    if (only && !only.includes(f.id)) continue;
    const p = probe(py.python, f);
    if (!p.ok) {
      families.push({ family: f.id, supported: false, status: `not supported yet: MechLens cannot load this family (${p.reason})` });
      continue;
    }
    const base = folderOf(f.hf, f.id.replace(/llama|gemma/gi, 'm'));
    log(`${f.id}: checkpoints`);
    const made = makeCheckpoint(py.python, f.hf, base, dtypes, 1);
    const fp32Bytes = weightBytes(path.join(base, 'float32'));
    const entry: Record<string, unknown> = { family: f.id, supported: true, checkpoint: path.relative(ROOT, base), made: made['made'], fp32_weight_mb: Math.round(fp32Bytes / 1e6) };
    const ml: Record<string, unknown>[] = [];
    const tl: Record<string, unknown>[] = [];
    for (const [k, dtype] of dtypes.entries()) {
      const folder = path.join(base, dtype);
      // Alternate which side goes first, dtype by dtype.
      const order = ((k % 2 === 0 ? ['transformer_lens', 'mechlens'] : ['mechlens', 'transformer_lens']) as ('mechlens' | 'transformer_lens')[]).filter((x) => sides.includes(x));
      const per: Record<string, unknown> = { weight_mb: Math.round(weightBytes(folder) / 1e6) };
      for (const side of order) {
        const need = (side === 'mechlens' ? NEED_FACTOR.mechlens : NEED_FACTOR.transformer_lens[dtype] ?? 4.2) * fp32Bytes;
        const avail = memAvailable();
        let r: Record<string, unknown>;
        if (avail < need) r = { skipped: `needs about ${round(need / 1e9, 1)} GB, ${round(avail / 1e9, 1)} GB available` };
        else {
          log(`${f.id} ${dtype} ${side}`);
          r = side === 'mechlens' ? runMechLens(folder, reps) : await runTransformerLens(py.python, folder, reps);
        }
        log(`${f.id} ${dtype} ${side}: ${JSON.stringify(r)}`);
        if (typeof r['peak_rss_mb'] === 'number') r['peak_rss_vs_fp32_weights'] = round((r['peak_rss_mb'] * 1e6) / fp32Bytes, 3);
        per[side] = r;
        (side === 'mechlens' ? ml : tl).push(r);
      }
      entry[dtype] = per;
    }
    const pooled = (rs: Record<string, unknown>[], k: string) => median(rs.flatMap((r) => (r[k] as number[] | undefined) ?? []));
    const checks: Record<string, boolean> = {};
    for (const k of ['forward_1x128_ms', 'run_with_cache_1x128_ms']) {
      const a = pooled(ml, k);
      const b = pooled(tl, k);
      const name = k.replace(/_ms$/, '');
      entry[`mechlens_${k}`] = round(a);
      entry[`transformer_lens_${k}`] = round(b);
      entry[`${name}_ratio`] = round(a / b, 3);
      if (Number.isFinite(a / b)) checks[`${f.id}: ${name}_ratio<=1.0`] = a / b <= 1.0;
    }
    const worstRss = Math.max(...ml.map((r) => (r['peak_rss_vs_fp32_weights'] as number | undefined) ?? NaN).filter(Number.isFinite));
    entry['mechlens_peak_rss_vs_fp32_weights_max'] = Number.isFinite(worstRss) ? worstRss : null;
    if (Number.isFinite(worstRss)) checks[`${f.id}: peak_rss<=${TARGET_RSS_RATIO}x_fp32_weights`] = worstRss <= TARGET_RSS_RATIO;
    // A run this machine has no memory for is a note (entry[dtype][side].skipped), not a failure.
    for (const r of [...ml, ...tl]) if (r['error']) checks[`${f.id}: every run completed`] = false;
    entry['failed'] = Object.entries(checks).filter(([, ok]) => !ok).map(([c]) => c);
    entry['pass'] = Object.values(checks).every(Boolean) && Object.keys(checks).length > 0;
    failed.push(...(entry['failed'] as string[]));
    families.push(entry);
  }
  const measured = families.filter((e) => e['supported']);
  return {
    bench: 'scale',
    note: 'random checkpoints of the real shapes; default processing on both sides; each side in its own process, one at a time; 2 threads each; ratios are MechLens / TransformerLens',
    dtypes,
    reps,
    sides,
    families,
    target_peak_rss_vs_fp32_weights: TARGET_RSS_RATIO,
    target_time_ratio: 1.0,
    failed,
    pass: measured.length > 0 ? measured.every((e) => e['pass']) : null,
    wall_s: round((performance.now() - t0) / 1000, 1),
  };
}

// `node --import tsx bench/scale.ts [--only=...]` runs this group alone.
if (require.main === module) {
  void benchScale().then((r) => process.stdout.write(JSON.stringify(r) + '\n'));
}
