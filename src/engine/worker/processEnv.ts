/**
 * Environment for the engine's own process (the forked worker, and the scale bench's child that
 * stands for it). glibc's malloc serves allocations under its mmap threshold from heaps it rarely
 * gives back; its default threshold rises to 32 MB once large blocks are freed, so onnxruntime's
 * per-run activations and outputs and the JS copies of hook caches (1-4 MB each for a 1-2B model)
 * stay resident after each run, beside the next run's. A fixed 1 MB threshold maps each such
 * block on its own and unmaps it when freed: measured on a 4-layer Pythia-1.4B-wide model, peak
 * RSS over four every-hook runs 1349 vs 1383 MB, after the first forward 1099 vs 1139 MB.
 * Ignored where the C library is not glibc.
 */
export const ENGINE_PROCESS_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: String(1 << 20) };
