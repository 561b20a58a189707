/**
 * Saved runs: every panel MechLens opens (and every experiment) is stored as one JSON file,
 * `<workspace>/.mechlens/runs/<id>/run.json`, holding the complete panel snapshot, so the Runs
 * view re-opens it exactly as it was without recomputing. Other files a run produces (figures,
 * tensors) go next to run.json in the same folder.
 *
 * Plain data only (this module is shared by the extension, the CLI and experiment runners).
 */
import { checkRunFile } from './runFiles.js';
import type { PanelState } from './webview.js';
import type { ProcessingMode } from './engine.js';

/** Folder of the runs, relative to the workspace folder. */
export const RUNS_DIR = '.mechlens/runs';
export const RUN_FILE = 'run.json';

/** Panels of the extension; experiment runners may use kinds of their own (e.g. 'patching'). */
export type RunKind = 'inspect' | 'attention' | 'attribution' | (string & {});

export interface RunModelRef {
  /** What was asked for: a folder, a Hugging Face id or 'builtin:…'. */
  spec: string;
  /** cfg.model_name of the loaded model. */
  name: string;
  processing: ProcessingMode;
}

/** What the run was computed from, enough to run it again. */
export interface RunInputs {
  /** The prompts (one for inspect and attribution; one or more for attention). */
  prompts: string[];
  answer?: string;
  wrong?: string;
  /** Corrupted prompts, aligned with `prompts`, for patching experiments. */
  corrupted?: string[];
  /** Where the prompt came from, when it came from a file. */
  source?: { file: string; line: number };
  /** Anything else a kind needs (plain JSON). */
  [key: string]: unknown;
}

export interface RunRecord {
  /** Also the folder name: `<ISO time with - for :>-<kind>-<4 hex>`, so names sort by time. */
  id: string;
  kind: RunKind;
  /** The panel title, e.g. 'MechLens: Attention — When John and Mary…'. */
  title: string;
  /** ISO 8601, UTC. */
  createdAt: string;
  model: RunModelRef;
  /** package.json version of the extension (or CLI) that produced it. */
  engineVersion: string;
  inputs: RunInputs;
  /** The complete snapshot the panel shows. */
  state: PanelState;
}

/** A fresh run id for `kind` at `date`: sortable, safe as a folder name on every OS. */
export function newRunId(kind: string, date: Date = new Date(), random: () => number = Math.random): string {
  const stamp = date.toISOString().replace(/[:.]/g, '-');
  const safeKind = kind.replace(/[^A-Za-z0-9_-]/g, '_') || 'run';
  const tag = Math.floor(random() * 0x10000).toString(16).padStart(4, '0');
  return `${stamp}-${safeKind}-${tag}`;
}

/** Validates a parsed run.json; returns the reason it is not a run record, or null. */
export function runRecordProblem(x: unknown): string | null {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return 'not a JSON object';
  const r = x as Record<string, unknown>;
  for (const k of ['id', 'kind', 'title', 'createdAt', 'engineVersion'] as const) {
    if (typeof r[k] !== 'string') return `"${k}" must be a string`;
  }
  if (Number.isNaN(Date.parse(r.createdAt as string))) return '"createdAt" must be an ISO date';
  const m = r.model as Record<string, unknown> | null;
  if (typeof m !== 'object' || m === null || typeof m.spec !== 'string' || typeof m.name !== 'string') return '"model" must be {spec, name, processing}';
  const inputs = r.inputs as Record<string, unknown> | null;
  if (typeof inputs !== 'object' || inputs === null || !Array.isArray(inputs.prompts)) return '"inputs" must be an object with "prompts"';
  const s = r.state as Record<string, unknown> | null;
  if (typeof s !== 'object' || s === null || typeof s.kind !== 'string') return '"state" must be a panel state with a "kind"';
  // Deeper: every field a reader relies on, located (runFiles.ts); unknown blocks are not errors.
  return checkRunFile(x).errors[0] ?? null;
}

export function isRunRecord(x: unknown): x is RunRecord {
  return runRecordProblem(x) === null;
}
