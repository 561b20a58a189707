/**
 * The results panel's state (ExperimentState, src/protocol/webview.ts) of a saved run. The engine
 * writes it into run.json (src/engine/experiments/store.ts); this module keeps it a size the
 * panel and the Runs view can afford, and reads runs written before that format. Pure (no
 * `vscode`, no engine code: types only), unit-tested in plain node.
 *
 * Size: a heatmap (or an exact/estimate pair) with more cells than a panel should carry, or past
 * the budget of the whole state, is replaced by a 'ref' block: where results.json holds it
 * (`results[i].blocks[j]`, the same numbers), its shape, range and largest cells. The HTML
 * report still draws it in full.
 */
import type { ExperimentBlock, ExperimentSection, ExperimentState, HeatmapData, PanelState } from './webview.js';
import type { RunRecord } from './runs.js';

export const RUN_RESULTS_FILE = 'results.json';

export interface StateLimits {
  /** Cells of one heatmap above which it is referenced, not inlined. Default 250 000. */
  maxHeatmapCells?: number;
  /** Cells of all inlined heatmaps together. Default 1 500 000 (about 15 MB of JSON). */
  cellBudget?: number;
}

export const DEFAULT_MAX_HEATMAP_CELLS = 250_000;
export const DEFAULT_CELL_BUDGET = 1_500_000;

const num = (v: unknown): number => (typeof v === 'number' ? v : NaN);
const cellsOf = (h: HeatmapData): number => h.values.length * (h.values[0]?.length ?? 0);

/** Range and the five cells of largest |value| of a heatmap (null/NaN cells skipped). */
export function heatmapSummary(h: HeatmapData): Extract<ExperimentBlock, { type: 'ref' }>['summary'] {
  let min = Infinity, max = -Infinity;
  const top: { row: string; col: string; value: number }[] = [];
  h.values.forEach((r, i) => r.forEach((raw, j) => {
    const v = num(raw);
    if (!Number.isFinite(v)) return;
    min = Math.min(min, v);
    max = Math.max(max, v);
    if (top.length < 5 || Math.abs(v) > Math.abs(top[top.length - 1]!.value)) {
      top.push({ row: h.rowLabels[i] ?? String(i), col: h.colLabels[j] ?? String(j), value: v });
      top.sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
      if (top.length > 5) top.pop();
    }
  }));
  return { min: Number.isFinite(min) ? min : null, max: Number.isFinite(max) ? max : null, top };
}

function refOf(h: HeatmapData, where: string): ExperimentBlock {
  return { type: 'ref', title: h.title, rowAxis: h.rowAxis, colAxis: h.colAxis, valueLabel: h.valueLabel, rows: h.values.length, cols: h.values[0]?.length ?? 0, file: RUN_RESULTS_FILE, path: where, summary: heatmapSummary(h) };
}

/**
 * The state with heatmaps beyond the limits replaced by references into results.json. Sections
 * are the run's results in order (store.ts writes one per result), so section i, block j is
 * `results[i].blocks[j]` there. Returns the same object when nothing had to change.
 */
export function limitState(st: ExperimentState, limits: StateLimits = {}): ExperimentState {
  const maxCells = limits.maxHeatmapCells ?? DEFAULT_MAX_HEATMAP_CELLS;
  const budget = limits.cellBudget ?? DEFAULT_CELL_BUDGET;
  let used = 0;
  let changed = false;
  const fits = (n: number, largest: number) => largest <= maxCells && used + n <= budget;
  const sections = st.sections.map((s, si): ExperimentSection => {
    const blocks = s.blocks.map((b, bi): ExperimentBlock => {
      const at = `results[${si}].blocks[${bi}]`;
      if (b.type === 'heatmap') {
        const n = cellsOf(b.data);
        if (fits(n, n)) {
          used += n;
          return b;
        }
        changed = true;
        return refOf(b.data, `${at}.data`);
      }
      if (b.type === 'compare') {
        const [a, c] = [cellsOf(b.exact), cellsOf(b.estimate)];
        if (fits(a + c, Math.max(a, c))) {
          used += a + c;
          return b;
        }
        changed = true;
        return refOf(b.exact, `${at}.exact`);
      }
      return b;
    });
    return blocks.some((b, i) => b !== s.blocks[i]) ? { ...s, blocks } : s;
  });
  return changed ? { ...st, sections } : st;
}

/**
 * The experiment panel state of a run record: its own when it has one; a run written before the
 * engine wrote experiment states ('heatmap' state) becomes one section of its heatmaps.
 */
export function experimentStateOf(rec: RunRecord, runDir: string, limits: StateLimits = {}): ExperimentState | null {
  const s: PanelState = rec.state;
  if (s.kind === 'experiment') return limitState(s, limits);
  if (s.kind !== 'heatmap' || rec.kind !== 'experiment') return null;
  const legacy: ExperimentState = {
    kind: 'experiment',
    title: rec.title,
    model: s.model,
    description: s.description,
    metric: typeof rec.inputs['metric'] === 'string' ? rec.inputs['metric'] : 'logit_diff',
    run: { id: rec.id, dir: runDir, createdAt: rec.createdAt, elapsedMs: 0, cancelled: rec.inputs['cancelled'] === true },
    sections: [{ index: 0, kind: 'heatmaps', group: null, title: 'Results', elapsedMs: 0, blocks: s.heatmaps.map((data) => ({ type: 'heatmap', data })) }],
  };
  if (typeof rec.inputs['experiment'] === 'string') legacy.file = rec.inputs['experiment'];
  return limitState(legacy, limits);
}

/**
 * The state with every 'ref' block put back from results.json (`{ results: [{ blocks }] }`), for
 * the HTML report, which draws everything. Refs whose block is not there stay refs.
 */
export function expandRefs(st: ExperimentState, results: unknown): ExperimentState {
  const rs = (results as { results?: { blocks?: unknown }[] } | null)?.results;
  if (!Array.isArray(rs)) return st;
  let changed = false;
  const sections = st.sections.map((s) => ({
    ...s,
    blocks: s.blocks.map((b) => {
      if (b.type !== 'ref') return b;
      const m = /^results\[(\d+)\]\.blocks\[(\d+)\]/.exec(b.path);
      const orig = m ? (rs[Number(m[1])]?.blocks as ExperimentBlock[] | undefined)?.[Number(m[2])] : undefined;
      if (!orig || (orig.type !== 'heatmap' && orig.type !== 'compare')) return b;
      changed = true;
      return orig;
    }),
  }));
  return changed ? { ...st, sections } : st;
}

/** Checks met / in all, over every section. */
export function checkTotals(st: ExperimentState): { met: number; total: number } {
  const all = st.sections.flatMap((s) => s.checks ?? []);
  return { met: all.filter((c) => c.ok).length, total: all.length };
}

/** The first block of a section of `kind` that shows a heatmap (for tests and "reveal"). */
export function firstHeatmap(st: ExperimentState, kind: string): HeatmapData | null {
  for (const s of st.sections) {
    if (s.kind !== kind) continue;
    for (const b of s.blocks) {
      if (b.type === 'heatmap') return b.data;
      if (b.type === 'compare') return b.exact;
    }
  }
  return null;
}
