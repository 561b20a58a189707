/**
 * Interventions are plain, serialisable data (they travel over the worker and protocol
 * boundaries and are stored in experiment results). The backend compiles the *structure* of a
 * plan (which hooks, which kind) into the ONNX graph, and feeds its *values* (masks, patch
 * sources, vectors, factors) as graph inputs at run time, so one compiled session serves every
 * plan of the same structure (e.g. all cells of a patching sweep).
 *
 * Every intervention edits a hook value h (TransformerLens axis order) as
 *     h' = M ? target : h
 * where M is a 0/1 mask broadcast over h selecting the indexed entries, and target is:
 *   patch: the same hook from another run (a cache), supplied as a tensor of h's full shape;
 *   zero:  0;
 *   mean:  the mean of h over the batch (over: 'batch'), or a supplied mean of shape h without batch;
 *   add:   h + vector, the vector broadcast along h's last axis (e.g. a d_model direction);
 *   scale: factor * h.
 */
import type { F32 } from '../tensor/tensor.js';
import type { HookName, SaeHookName } from '../hooks/hooks.js';

/**
 * Which entries an intervention touches, by axis name of the hook (see hooks.ts):
 * batch, pos, head_index, query_pos, key_pos, d_mlp (neurons), d_model, d_head, d_sae (the
 * features of an SAE spliced in the run, at its hook_sae_acts_pre / hook_sae_acts_post), and a
 * mixture of experts' router axes: expert, batch_pos (batch and pos flattened), top_k.
 * An absent or null axis means "all". Negative positions count from the end (TransformerLens style).
 */
export type InterventionIndex = Partial<Record<'batch' | 'pos' | 'head_index' | 'query_pos' | 'key_pos' | 'd_mlp' | 'd_model' | 'd_head' | 'd_sae' | 'expert' | 'batch_pos' | 'top_k', readonly number[] | null>>;

interface Base {
  /** A model hook, or a hook of an SAE spliced in the same run (`<hook>.hook_sae_acts_post`). */
  hook: HookName | SaeHookName;
  index?: InterventionIndex;
  /**
   * A dense 0/1 mask instead of `index`, broadcastable to the hook's shape (each dim 1 or the
   * hook's size). Batched sweeps use it to patch a different cell in each batch row.
   */
  mask?: F32;
}

export type Intervention =
  | (Base & { kind: 'patch'; source: F32 })
  | (Base & { kind: 'zero' })
  | (Base & { kind: 'mean'; over: 'batch' } )
  | (Base & { kind: 'mean'; over: 'supplied'; mean: F32 })
  | (Base & { kind: 'add'; vector: F32 })
  | (Base & { kind: 'scale'; factor: number });

export type InterventionKind = Intervention['kind'];

export function describeIntervention(iv: Intervention): string {
  const idx = iv.index ? Object.entries(iv.index).filter(([, v]) => v != null).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ') : '';
  return `${iv.kind}${iv.kind === 'mean' ? `(${iv.over})` : ''} at ${iv.hook}${idx ? ` [${idx}]` : ''}`;
}
