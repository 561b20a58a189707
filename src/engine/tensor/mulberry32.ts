/**
 * mulberry32: a tiny seeded uniform PRNG in [0, 1), for reproducible random tokens, toy weights and
 * noise (one uint32 of state). The trainer uses its own checkpointable Rng (training/rng.ts).
 */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
