/**
 * Which prompt(s) a command acts on, from a document and its selection. Pure (no `vscode`), so
 * the rules are unit-tested:
 *  - in a `.prompts` file, the entries on the selected lines (or the cursor's line), with their
 *    answers and corrupted prompts; a line with a syntax error names that error;
 *  - in any other file, the selected text as one prompt, or the cursor's line (trimmed) when
 *    nothing is selected.
 */
import { parsePromptsFile, splitLines, type ParsedPrompts, type PromptEntry } from '../engine/prompts/promptsFile.js';

export const PROMPTS_LANGUAGE_ID = 'mechlens-prompts';

export interface PromptRequest {
  prompt: string;
  answer?: string;
  wrong?: string;
  corrupted?: string;
  /** 0-based line in the source document. */
  line: number;
}

export interface SelectionLike {
  start: { line: number; character: number };
  end: { line: number; character: number };
}

export interface DocumentLike {
  languageId: string;
  text: string;
}

export type PromptTarget = { ok: true; prompts: PromptRequest[] } | { ok: false; message: string };

export function requestFromEntry(e: PromptEntry): PromptRequest {
  const r: PromptRequest = { prompt: e.prompt.text, line: e.line };
  if (e.answer) r.answer = e.answer.text;
  if (e.wrong) r.wrong = e.wrong.text;
  if (e.corrupted) r.corrupted = e.corrupted.text;
  return r;
}

/** The text between two positions of `lines` (VS Code positions: line, UTF-16 character). */
function textBetween(lines: readonly string[], sel: SelectionLike): string {
  const { start, end } = sel;
  if (start.line === end.line) return (lines[start.line] ?? '').slice(start.character, end.character);
  const parts = [(lines[start.line] ?? '').slice(start.character)];
  for (let l = start.line + 1; l < end.line; l++) parts.push(lines[l] ?? '');
  parts.push((lines[end.line] ?? '').slice(0, end.character));
  return parts.join('\n');
}

const isEmpty = (s: SelectionLike): boolean => s.start.line === s.end.line && s.start.character === s.end.character;

export function promptsFromSelection(doc: DocumentLike, sel: SelectionLike, parsed?: ParsedPrompts): PromptTarget {
  const lines = splitLines(doc.text);
  if (doc.languageId === PROMPTS_LANGUAGE_ID) {
    const p = parsed ?? parsePromptsFile(doc.text);
    // A selection ending at column 0 of a line does not include that line (as VS Code's line commands).
    const last = !isEmpty(sel) && sel.end.character === 0 && sel.end.line > sel.start.line ? sel.end.line - 1 : sel.end.line;
    const entries = p.prompts.filter((e) => e.line >= sel.start.line && e.line <= last);
    if (entries.length > 0) return { ok: true, prompts: entries.map(requestFromEntry) };
    const problem = p.problems.find((x) => x.severity === 'error' && x.span.line >= sel.start.line && x.span.line <= last);
    if (problem) return { ok: false, message: `line ${problem.span.line + 1}: ${problem.message}` };
    return { ok: false, message: isEmpty(sel) ? 'there is no prompt on this line: put the cursor on a prompt line (lines starting with # are comments)' : 'the selection holds no prompt line' };
  }
  const text = isEmpty(sel) ? (lines[sel.start.line] ?? '').trim() : textBetween(lines, sel);
  if (text.trim() === '') {
    return { ok: false, message: isEmpty(sel) ? 'the prompt is empty: select some text, or put the cursor on a line with text' : 'the selected text is empty (only whitespace)' };
  }
  return { ok: true, prompts: [{ prompt: text, line: sel.start.line }] };
}

/**
 * The prompt for live predictions at the cursor: the entry on the cursor's line in a `.prompts`
 * file; elsewhere the selection, or the cursor's line up to the cursor (what the model would
 * continue while typing). null when there is nothing to predict from.
 */
export function predictionPromptAt(doc: DocumentLike, sel: SelectionLike, parsed?: ParsedPrompts): { prompt: string; answer?: string } | null {
  if (doc.languageId === PROMPTS_LANGUAGE_ID) {
    const p = parsed ?? parsePromptsFile(doc.text);
    const e = p.prompts.find((x) => x.line === sel.end.line);
    if (!e) return null;
    return e.answer ? { prompt: e.prompt.text, answer: e.answer.text } : { prompt: e.prompt.text };
  }
  const lines = splitLines(doc.text);
  const text = isEmpty(sel) ? (lines[sel.start.line] ?? '').slice(0, sel.start.character).trimStart() : textBetween(lines, sel);
  return text.trim() === '' ? null : { prompt: text };
}
