/**
 * A config.json's sizes checked against the weights actually present, before anything is
 * allocated. Loops and buffers are sized from the config (every layer's parameter names, hook
 * tables, processing work), so `n_layer: 1000000000` used to hang with memory growing; the
 * safetensors headers, read first, say what the checkpoint really holds.
 *
 * Family-agnostic: it reads TransformerLens's config fields (cfg, after the family's conversion)
 * and the tensor names and shapes of any family's checkpoint (GPT-2 `h.N.`, Llama/Mistral
 * `layers.N.`, GPT-NeoX `layers.N.`, TransformerLens `blocks.N.`).
 */
import type { HookedTransformerConfig } from './config.js';
import type { StateDict } from './hf.js';

/** The layer index of a per-layer tensor name, or null for a global one. */
function layerOf(name: string): number | null {
  const m = /(?:^|\.)(?:h|layers|blocks|layer)\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}

/** Token embedding [d_vocab, d_model] under the names families use. */
const EMBED = /(?:^|\.)(?:wte|embed_tokens|embed_in|word_embeddings|embed\.W_E)(?:\.weight)?$/;

/**
 * Throws one Error naming every config field that the weights contradict: the field, its value,
 * and what the weights say. Reads only names and shapes (no tensor data).
 */
export function checkConfigAgainstWeights(cfg: HookedTransformerConfig, sd: StateDict, configFile = 'config.json'): void {
  const names = [...sd.keys()];
  const problems: string[] = [];
  let maxLayer = -1;
  for (const n of names) {
    const l = layerOf(n);
    if (l !== null && l > maxLayer) maxLayer = l;
  }
  const layers = maxLayer + 1;
  if (layers > 0 && cfg.n_layers !== layers) {
    problems.push(`n_layers is ${cfg.n_layers}, but the weights hold ${layers} layer${layers === 1 ? '' : 's'} (per-layer tensors numbered 0 to ${maxLayer})`);
  }
  const embed = names.find((n) => EMBED.test(n));
  const shape = embed !== undefined ? sd.shapeOf?.(embed) : undefined;
  if (embed !== undefined && shape && shape.length === 2) {
    const [rows, cols] = shape as [number, number];
    if (cfg.d_model !== cols) problems.push(`d_model is ${cfg.d_model}, but the token embedding ${embed} is [${rows}, ${cols}] (d_model ${cols})`);
    if (cfg.d_vocab > rows) problems.push(`d_vocab is ${cfg.d_vocab}, but the token embedding ${embed} has ${rows} rows`);
  }
  // Whatever the fields, the config may not imply far more parameters than the files hold.
  let held = 0;
  for (const n of names) held += (sd.shapeOf?.(n) ?? []).reduce((a, b) => a * b, 1);
  const mlp = cfg.d_mlp ?? 0;
  const perLayer = 4 * cfg.d_model * cfg.n_heads * cfg.d_head + 3 * cfg.d_model * mlp;
  const implied = cfg.n_layers * perLayer + cfg.d_vocab * cfg.d_model;
  if (!problems.length && held > 0 && implied > 8 * held + 1e6) {
    problems.push(`the sizes (n_layers ${cfg.n_layers}, d_model ${cfg.d_model}, n_heads ${cfg.n_heads}, d_head ${cfg.d_head}, d_mlp ${cfg.d_mlp}, d_vocab ${cfg.d_vocab}) imply about ${implied.toExponential(2)} parameters, but the weights hold ${held}`);
  }
  if (problems.length) throw new Error(`${configFile} does not match the weights: ${problems.join('; ')}. Fix ${configFile} to describe this checkpoint.`);
}
