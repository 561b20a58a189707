/**
 * What a component emitter needs from the graph it writes into: the builder, the config, a way
 * to name a parameter (a weight input, or a trainable value in the training graph) and a way to
 * expose a value as a TransformerLens hook (which may also apply an intervention). The inference
 * segments (graph/segments.ts) implement it; every component is written once against it.
 */
import type { HookedTransformerConfig } from '../../model/config.js';
import type { OutputName } from '../../hooks/hooks.js';
import type { GraphBuilder } from '../builder.js';

export interface Emitter {
  readonly g: GraphBuilder;
  readonly cfg: HookedTransformerConfig;
  /** A parameter by TransformerLens name, optionally viewed with other dims (same bytes). */
  w(name: string, dims?: readonly number[]): string;
  /** Names `value` as the hook (after any intervention there) and returns the hooked value. */
  hook(name: OutputName, value: string): string;
  /** Whether a hook's value is needed (lets a component skip extra outputs); default: all are. */
  wants?(name: string): boolean;
  /**
   * LayerNorm as onnx LayerNormalization (one kernel whose saved inverse std feeds autodiff's
   * explicit backward rule) instead of the element-wise chain: the training graph's choice.
   */
  fusedLayerNorm?: boolean;
}

/** The value as hook `name`, or as is when `plain` (values after a lastPos slice are not hooks). */
export function hookOr(e: Emitter, plain: boolean, name: string, value: string): string {
  return plain ? value : e.hook(name as OutputName, value);
}

/** End index meaning "to the end" in an ONNX Slice. */
export const SLICE_END = Number.MAX_SAFE_INTEGER;

/** [batch, pos, ...] -> [batch, 1, ...]: the last position. */
export function lastPosition(g: GraphBuilder, x: string): string {
  return g.op('Slice', [x, g.constI64([-1]), g.constI64([SLICE_END]), g.constI64([1])]);
}

/** int64 [1]: the size of axis `axis` of x. */
export function dimOf(g: GraphBuilder, x: string, axis: number): string {
  return g.op('Slice', [g.op('Shape', [x]), g.constI64([axis]), g.constI64([axis + 1])]);
}
