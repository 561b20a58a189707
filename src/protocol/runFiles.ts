/**
 * Checks a run folder's run.json before anything reads it: a damaged or hand-edited run must give
 * located messages (file, field, what was expected) instead of JavaScript errors such as
 * "s.replace is not a function", and a block that cannot be shown (unknown type, malformed
 * fields) is skipped with a word rather than dropped silently.
 */

/** What a value must be. Objects list required (`req`) and optional (`opt`) fields. */
type Shape =
  | 'string'
  | 'number'
  | 'number|null'
  | 'boolean'
  | 'string|number|null'
  | { arr: Shape }
  | { obj: Record<string, Shape>; opt?: Record<string, Shape> };

const str = 'string' as const;
const num = 'number' as const;
const numOrNull = 'number|null' as const;
const cell = 'string|number|null' as const;

const heatmapData: Shape = {
  obj: { title: str, rowAxis: str, colAxis: str, rowLabels: { arr: str }, colLabels: { arr: str }, values: { arr: { arr: numOrNull } }, valueLabel: str },
  opt: { zmax: numOrNull, zmin: numOrNull },
};

/** The fields each block type needs to be drawn (src/protocol/webview.ts ExperimentBlock). */
const BLOCKS: Record<string, Shape> = {
  heatmap: { obj: { data: heatmapData } },
  compare: { obj: { exact: heatmapData, estimate: heatmapData } },
  bars: { obj: { title: str, labels: { arr: str }, values: { arr: numOrNull }, valueLabel: str } },
  line: { obj: { title: str, labels: { arr: str }, values: { arr: numOrNull }, xAxis: str, yAxis: str } },
  topk: { obj: { title: str, strTokens: { arr: str }, entries: { arr: { obj: { str: str, prob: num } } } } },
  table: { obj: { title: str, columns: { arr: str }, rows: { arr: { arr: cell } } } },
  tokens: { obj: { title: str, tokens: { arr: str }, values: { arr: numOrNull }, valueLabel: str } },
  stats: { obj: { items: { arr: { obj: { label: str, value: cell } } } } },
  ref: { obj: { title: str, rowAxis: str, colAxis: str, valueLabel: str, rows: num, cols: num, file: str, path: str, summary: { obj: { top: { arr: { obj: { row: str, col: str, value: num } } } } } } },
};

export const KNOWN_BLOCK_TYPES: readonly string[] = Object.keys(BLOCKS);

const RECORD: Shape = {
  obj: {
    id: str,
    kind: str,
    title: str,
    createdAt: str,
    engineVersion: str,
    model: { obj: { spec: str, name: str, processing: str } },
    inputs: { obj: { prompts: { arr: str } } },
    state: { obj: { kind: str } },
  },
};

const EXPERIMENT_STATE: Shape = {
  obj: { title: str, model: str, description: str, metric: str, sections: { arr: { obj: { title: str, blocks: { arr: { obj: { type: str } } } } } } },
  opt: { run: { obj: { id: str, createdAt: str, elapsedMs: num, cancelled: 'boolean' } } },
};

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

function expected(s: Shape): string {
  if (typeof s === 'string') return s === 'number|null' ? 'a number or null' : s === 'string|number|null' ? 'a string, number or null' : `a ${s}`;
  return 'arr' in s ? `an array of ${expected(s.arr).replace(/^an? /, '')}s` : 'an object';
}

const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** Every place where `v` does not have shape `s`, as "path: expected X, got Y" (at most `limit`). */
export function shapeProblems(v: unknown, s: Shape, at: string, out: string[] = [], limit = 20): string[] {
  if (out.length >= limit) return out;
  const bad = () => out.push(`${at}: expected ${expected(s)}, got ${describe(v)}`);
  if (typeof s === 'string') {
    const ok =
      s === 'string' ? typeof v === 'string'
      : s === 'number' ? typeof v === 'number'
      : s === 'boolean' ? typeof v === 'boolean'
      : s === 'number|null' ? typeof v === 'number' || v === null
      : typeof v === 'string' || typeof v === 'number' || v === null;
    if (!ok) bad();
    return out;
  }
  if ('arr' in s) {
    if (!Array.isArray(v)) bad();
    else for (let i = 0; i < v.length && out.length < limit; i++) shapeProblems(v[i], s.arr, `${at}[${i}]`, out, limit);
    return out;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    bad();
    return out;
  }
  for (const [k, ks] of Object.entries(s.obj)) {
    if (!own(v, k)) out.push(`${at}.${k}: missing (expected ${expected(ks)})`);
    else shapeProblems((v as Record<string, unknown>)[k], ks, `${at}.${k}`, out, limit);
  }
  for (const [k, ks] of Object.entries(s.opt ?? {})) {
    if (own(v, k) && (v as Record<string, unknown>)[k] !== undefined) shapeProblems((v as Record<string, unknown>)[k], ks, `${at}.${k}`, out, limit);
  }
  return out;
}

export interface RunFileCheck {
  /** Problems that make the run unreadable: the record itself is malformed. */
  errors: string[];
  /** Blocks that cannot be shown and are skipped: "state.sections[1].blocks[2]: …". */
  skipped: string[];
  /** The set of (section, block) indices to skip, as "s/b". */
  skip: Set<string>;
}

/** Checks a parsed run.json (paths start at the file's root, e.g. `state.sections[0].title`). */
export function checkRunFile(x: unknown): RunFileCheck {
  const errors = shapeProblems(x, RECORD, '');
  const out: RunFileCheck = { errors: errors.map((e) => e.replace(/^\./, '').replace(/^: /, 'the file: ')), skipped: [], skip: new Set() };
  if (out.errors.length) return out;
  const state = (x as { state: { kind: string } }).state;
  if (state.kind !== 'experiment') return out;
  out.errors.push(...shapeProblems(state, EXPERIMENT_STATE, 'state'));
  if (out.errors.length) return out;
  const sections = (state as unknown as { sections: { blocks: { type: string }[] }[] }).sections;
  sections.forEach((sec, i) =>
    sec.blocks.forEach((b, j) => {
      const where = `state.sections[${i}].blocks[${j}]`;
      const shape = own(BLOCKS, b.type) ? BLOCKS[b.type] : undefined;
      const why = shape === undefined ? [`${where}.type: unknown block type ${JSON.stringify(b.type)} (known: ${KNOWN_BLOCK_TYPES.join(', ')}); written by a newer MechLens?`] : shapeProblems(b, shape, where, [], 3);
      if (why.length) {
        out.skipped.push(...why);
        out.skip.add(`${i}/${j}`);
      }
    }),
  );
  return out;
}
