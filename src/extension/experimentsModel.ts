/**
 * The pure parts of the experiments feature (no `vscode`, unit-tested in plain node):
 *  - where the CodeLenses of an *.experiment.json go, from the positioned JSON parse;
 *  - the analyses "MechLens: Run Analysis…" offers for a prompt (with its corrupted prompt and
 *    answers) of a .prompts file, and the in-memory experiment that runs one;
 *  - finding the last run of an experiment file, and wording problems for messages.
 * Only json.ts of the engine is imported (it has no dependencies), so the extension bundle stays
 * free of the engine.
 */
import * as path from 'node:path';
import { LineIndex, parseJsonWithPositions, type JsonNode, type Range } from '../engine/experiments/json.js';
import type { ExperimentDiagnostic, ProcessingMode, DeviceChoice } from '../protocol/engine.js';
import type { RunRecord } from '../protocol/runs.js';

export const EXPERIMENT_SUFFIX = '.experiment.json';

export function isExperimentFile(file: string): boolean {
  return file.endsWith(EXPERIMENT_SUFFIX);
}

export interface AnalysisOutline {
  /** Index in "analyses". */
  index: number;
  /** The analysis's "kind" when it is a string. */
  kind: string | null;
  title: string | null;
  /** The analysis object's text (its first line carries the "Run this analysis" lens). */
  range: Range;
}

export interface ExperimentOutline {
  /** The root object's range: the top lenses go on its first line. */
  top: Range;
  title: string | null;
  /** The root's "kind": "train" files belong to the training feature, not to this one. */
  kind: string | null;
  /** The "prompts" (or "groups") key: problems found in a prompts file are summarised there. */
  prompts: Range;
  analyses: AnalysisOutline[];
  /** The text is not valid JSON (only the top lenses are offered; Run reports the error). */
  syntaxError: boolean;
}

const str = (n: JsonNode | undefined): string | null => (n?.type === 'string' ? n.value : null);
const prop = (n: JsonNode, key: string): JsonNode | undefined => (n.type === 'object' ? n.properties.find((p) => p.key === key)?.value : undefined);

/** The lens positions of an experiment file's text. */
export function experimentOutline(text: string): ExperimentOutline {
  const lines = new LineIndex(text);
  let root: JsonNode;
  try {
    root = parseJsonWithPositions(text);
  } catch {
    const zero = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
    return { top: zero, title: null, kind: null, prompts: zero, analyses: [], syntaxError: true };
  }
  const top = lines.range(root.offset, root.type === 'object' ? 1 : root.length);
  const list = prop(root, 'analyses');
  const analyses: AnalysisOutline[] =
    list?.type === 'array'
      ? list.items.map((item, index) => ({ index, kind: str(prop(item, 'kind')), title: str(prop(item, 'title')), range: lines.range(item.offset, item.length) }))
      : [];
  const key = root.type === 'object' ? root.properties.find((p) => p.key === 'prompts' || p.key === 'groups')?.keyNode : undefined;
  return { top, title: str(prop(root, 'title')), kind: str(prop(root, 'kind')), prompts: key ? lines.range(key.offset, key.length) : top, analyses, syntaxError: false };
}

/** A short name of an analysis for quick picks: '#3 patch_heads (z)' and its title. */
export function analysisLabel(a: Pick<AnalysisOutline, 'index' | 'kind' | 'title'>, spec?: Record<string, unknown>): { label: string; description: string } {
  const extra = spec ? (['hook', 'activation', 'layer', 'mode', 'pattern'] as const).map((k) => spec[k]).filter((v) => typeof v === 'string' || typeof v === 'number') : [];
  return { label: `${a.kind ?? '(no kind)'}${extra.length ? ` (${extra.join(', ')})` : ''}`, description: `#${a.index}${a.title ? ` · ${a.title}` : ''}` };
}

// ---------------------------------------------------------------------------------------------
// Analyses of a prompt (a .prompts line or selection)

/** A prompt as promptTarget.ts gives it. */
export interface PromptLike {
  prompt: string;
  corrupted?: string;
  answer?: string;
  wrong?: string;
}

/** What a choice asks the user for before it runs. */
export type PromptInput = 'head' | 'heads' | 'neuron' | 'subject';

export interface PromptAnalysisChoice {
  id: string;
  label: string;
  detail: string;
  /** answers: every prompt has an answer and a wrong answer; corrupted: every prompt has a corrupted prompt. */
  needs: ('answers' | 'corrupted')[];
  input?: PromptInput;
}

/** In the order the issue lists them. */
export const PROMPT_ANALYSES: readonly PromptAnalysisChoice[] = [
  { id: 'logit_diff', label: 'Logit difference', detail: 'logit(answer) − logit(wrong) at the last position, clean and corrupted', needs: ['answers'] },
  { id: 'dla', label: 'Direct logit attribution', detail: 'each layer\'s and each head\'s direct contribution to the logit difference', needs: ['answers'] },
  { id: 'logit_lens', label: 'Logit lens', detail: 'the logit difference read from the residual stream after every sublayer', needs: ['answers'] },
  { id: 'attention', label: 'Attention patterns', detail: 'the heads with the largest ± direct logit attribution (or heads you name)', needs: [] },
  { id: 'head_scores', label: 'Head scores', detail: 'previous-token, duplicate-token and induction scores of every head (repeated random tokens)', needs: [] },
  { id: 'circuits', label: 'Circuits of a head', detail: 'full QK and OV circuits of one head on the prompt\'s tokens, and its copying score', needs: [], input: 'head' },
  { id: 'neuron_activations', label: 'Neuron activations', detail: 'one neuron\'s activation on every token of the prompt (neuroscope)', needs: [], input: 'neuron' },
  { id: 'ablation', label: 'Ablation', detail: 'the loss with every hook ablated in turn (zero-ablated; mean over the prompts when several)', needs: [] },
  { id: 'patching', label: 'Activation patching sweeps', detail: 'resid_pre / attn_out / mlp_out by layer × position and head outputs by layer × head, with attribution patching beside', needs: ['answers', 'corrupted'] },
  { id: 'causal_trace', label: 'Causal tracing', detail: 'noise the subject\'s tokens, restore each state at each position (ROME)', needs: [], input: 'subject' },
  { id: 'path_patch', label: 'Path patching', detail: 'each sender head\'s direct effect on the logits (clean → corrupted)', needs: ['answers', 'corrupted'] },
];

/** Why `choice` cannot run on these prompts, or null when it can. */
export function whyNot(choice: PromptAnalysisChoice, prompts: readonly PromptLike[]): string | null {
  if (choice.needs.includes('answers') && prompts.some((p) => p.answer === undefined || p.wrong === undefined)) return 'needs an answer and a wrong answer: -> " answer" | " wrong"';
  if (choice.needs.includes('corrupted') && prompts.some((p) => p.corrupted === undefined)) return 'needs a corrupted prompt: CLEAN => CORRUPTED';
  return null;
}

/** "L1H0" / "l1h0" / "1.0" -> "L1H0"; several separated by commas or spaces. */
export function parseHeads(s: string): string[] | { error: string } {
  const parts = s.split(/[\s,]+/).filter(Boolean);
  if (parts.length === 0) return { error: 'write a head as L{layer}H{head}, e.g. L1H0' };
  const out: string[] = [];
  for (const p of parts) {
    const m = /^L?(\d+)(?:H|\.)(\d+)$/i.exec(p);
    if (!m) return { error: `${JSON.stringify(p)} is not a head: write L{layer}H{head}, e.g. L1H0` };
    out.push(`L${Number(m[1])}H${Number(m[2])}`);
  }
  return out;
}

/** "L0N7" / "0.7" -> { layer: 0, neuron: 7 }. */
export function parseNeuron(s: string): { layer: number; neuron: number } | { error: string } {
  const m = /^\s*L?(\d+)(?:N|\.)(\d+)\s*$/i.exec(s);
  return m ? { layer: Number(m[1]), neuron: Number(m[2]) } : { error: 'write a neuron as L{layer}N{neuron}, e.g. L0N7' };
}

export interface AdhocModel {
  /** What the engine loads (a resolved folder, a Hugging Face id or builtin:…). */
  name: string;
  processing: ProcessingMode;
  device: DeviceChoice;
  /** Downloads are off. */
  offline: boolean;
}

/**
 * The experiment (as the JSON of an *.experiment.json) that runs `choice` on `prompts` with the
 * settings' model. `input` is the answer to the choice's question (head, neuron, subject).
 */
export function promptExperiment(choice: PromptAnalysisChoice, prompts: readonly PromptLike[], model: AdhocModel, opts: { prependBos: boolean; input?: string; source?: string; attnOnly?: boolean }): Record<string, unknown> {
  const answers = prompts.every((p) => p.answer !== undefined && p.wrong !== undefined);
  const heads = (): string[] => {
    const r = parseHeads(opts.input ?? '');
    if (!Array.isArray(r)) throw new Error(r.error);
    return r;
  };
  let analyses: Record<string, unknown>[];
  switch (choice.id) {
    case 'logit_diff': analyses = [{ kind: 'logit_diff' }]; break;
    case 'dla': analyses = [{ kind: 'layer_dla' }, { kind: 'head_dla', top: 5 }]; break;
    case 'logit_lens': analyses = [{ kind: 'logit_lens' }]; break;
    case 'attention': analyses = [opts.input ? { kind: 'attention', heads: heads() } : { kind: 'attention', heads: answers ? 'top_dla' : heads(), top: 3 }]; break;
    case 'head_scores': analyses = [{ kind: 'head_scores' }]; break;
    case 'circuits': analyses = [{ kind: 'circuits', heads: heads().slice(0, 4) }]; break;
    case 'neuron_activations': {
      const n = parseNeuron(opts.input ?? '');
      if ('error' in n) throw new Error(n.error);
      analyses = prompts.map((p) => ({ kind: 'neuron_activations', layer: n.layer, neuron: n.neuron, text: p.prompt }));
      break;
    }
    // The mean over one prompt is the prompt itself (no effect): zero-ablate a single prompt.
    case 'ablation': analyses = [{ kind: 'ablation', ablation: prompts.length > 1 ? 'mean' : 'zero' }]; break;
    case 'patching':
      analyses = [
        { kind: 'patch', hook: 'resid_pre', attribution: true },
        { kind: 'patch', hook: 'attn_out', attribution: true },
        // An attention-only model (the built-in one) has no MLPs to patch.
        ...(opts.attnOnly ? [] : [{ kind: 'patch', hook: 'mlp_out', attribution: true }]),
        { kind: 'patch_heads', activation: 'z', attribution: true },
      ];
      break;
    case 'causal_trace': {
      const subject = (opts.input ?? '').trim();
      if (!subject) throw new Error('name the subject: a run of words of the prompt, e.g. "The Eiffel Tower"');
      analyses = [{ kind: 'causal_trace', subject: opts.input }];
      break;
    }
    case 'path_patch': analyses = [{ kind: 'path_patch', receivers: 'logits' }]; break;
    default: throw new Error(`unknown analysis ${choice.id}`);
  }
  const first = prompts[0]?.prompt ?? '';
  const short = first.replace(/\s+/g, ' ').trim();
  return {
    title: `${choice.label} — ${short.length > 48 ? `${short.slice(0, 47)}…` : short}${prompts.length > 1 ? ` (+${prompts.length - 1})` : ''}`,
    description: `${choice.detail}.${opts.source ? ` Prompts from ${opts.source}.` : ''}`,
    model: { name: model.name, processing: model.processing, device: model.device, offline: model.offline },
    prependBos: opts.prependBos,
    prompts: prompts.map((p) => ({ prompt: p.prompt, ...(p.corrupted !== undefined ? { corrupted: p.corrupted } : {}), ...(p.answer !== undefined ? { answer: p.answer } : {}), ...(p.wrong !== undefined ? { wrong: p.wrong } : {}) })),
    metric: 'logit_diff',
    normalize: true,
    analyses,
  };
}

/**
 * Where an in-memory experiment of a .prompts file "lives" (nothing is written there): next to
 * the prompts, so relative names would resolve as for a file beside it.
 */
export function promptExperimentPath(promptsFile: string): string {
  return path.join(path.dirname(promptsFile), `${path.basename(promptsFile).replace(/\.prompts$/, '')}.prompt-analysis${EXPERIMENT_SUFFIX}`);
}

// ---------------------------------------------------------------------------------------------
// Runs and messages

/** The newest run of `file` among run records (newest first, as RunStore.list sorts them). */
export function lastRunOf<T extends { record?: RunRecord }>(runs: readonly T[], file: string): T | undefined {
  const want = path.resolve(file);
  return runs.find((r) => r.record?.kind === 'experiment' && typeof r.record.inputs['experiment'] === 'string' && path.resolve(r.record.inputs['experiment']) === want);
}

/** "file:line:col" (1-based) of a diagnostic, relative to `base` when inside it. */
export function diagnosticWhere(d: Pick<ExperimentDiagnostic, 'file' | 'range'>, base?: string): string {
  const rel = base && !path.relative(base, d.file).startsWith('..') ? path.relative(base, d.file) : path.basename(d.file);
  return `${rel}:${d.range.start.line + 1}:${d.range.start.character + 1}`;
}

/** The message when an experiment does not run because of errors. */
export function errorsMessage(name: string, diagnostics: readonly ExperimentDiagnostic[], base?: string): string {
  const errors = diagnostics.filter((d) => d.severity === 'error');
  const first = errors[0];
  if (!first) return `${name} has no errors`;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more problem${errors.length > 2 ? 's' : ''}, see Problems)` : '';
  return `${name} was not run: ${errors.length} error${errors.length === 1 ? '' : 's'}. ${diagnosticWhere(first, base)}: ${first.message}${more}`;
}

/** The model-load diagnostic, when that is why nothing ran. */
export function modelProblem(diagnostics: readonly ExperimentDiagnostic[]): ExperimentDiagnostic | undefined {
  return diagnostics.find((d) => d.severity === 'error' && (d.code === 'model-load' || d.code === 'model-unavailable'));
}
