/**
 * Parser of MechLens `.prompts` files (language id `mechlens-prompts`; the format is documented
 * in docs/prompts-format.md). Pure TypeScript with no `vscode` import, so the CLI, the tests and
 * the extension share one reading of a file.
 *
 * One entry per line:
 *
 *     # a comment (only at the start of a line)
 *     When John and Mary went to the shops, John gave the bag to
 *     When John and Mary went to the shops, John gave the bag to -> " Mary"
 *     When John and Mary went to the shops, John gave the bag to -> " Mary" | " John"
 *     CLEAN PROMPT => CORRUPTED PROMPT -> " Mary" | " John"
 *     "a prompt with -> or => or a trailing space " -> "x"
 *
 * Every problem is reported per line with a span (0-based line, UTF-16 columns as VS Code counts
 * them, end exclusive), so the editor can underline exactly the offending text; a line with an
 * error yields no entry (it is never run with half-understood input), a warning keeps the entry.
 */

/** A range on one line: 0-based line, columns in UTF-16 code units, `end` exclusive. */
export interface Span {
  line: number;
  start: number;
  end: number;
}

/** A piece of text of an entry (prompt, corrupted prompt or answer) and where it is written. */
export interface PromptText {
  /** The value (quotes removed and escapes decoded for quoted text; bare text is trimmed). */
  text: string;
  /** Where it is written, quotes included when quoted. */
  span: Span;
  quoted: boolean;
}

export interface PromptEntry {
  /** 0-based line of the entry. */
  line: number;
  /** From the first character of the prompt to the end of the last answer (no trailing comment). */
  span: Span;
  /** The (clean) prompt. */
  prompt: PromptText;
  /** The corrupted prompt of a `CLEAN => CORRUPTED` pair (activation patching's counterfactual). */
  corrupted?: PromptText;
  /** The expected next token, e.g. " Mary" (a leading space is part of most word tokens). */
  answer?: PromptText;
  /** The wrong answer the logit difference is taken against, e.g. " John". */
  wrong?: PromptText;
}

export type PromptsProblemCode =
  | 'empty-prompt'
  | 'empty-corrupted'
  | 'unterminated-string'
  | 'bad-escape'
  | 'missing-answer'
  | 'unquoted-answer'
  | 'empty-answer'
  | 'too-many-answers'
  | 'repeated-separator'
  | 'unexpected-text'
  | 'same-answers'
  // Tokenizer-aware checks (see tokenChecks.ts): they need a loaded model.
  | 'answer-not-one-token'
  | 'prompt-too-long'
  | 'cannot-tokenize'
  | 'length-mismatch';

export interface PromptsFix {
  title: string;
  span: Span;
  newText: string;
}

export interface PromptsProblem {
  span: Span;
  severity: 'error' | 'warning';
  code: PromptsProblemCode;
  /** One or two sentences: what is wrong and how to write it instead. */
  message: string;
  /** A mechanical fix, when there is an obvious one (the editor offers it as a quick fix). */
  fix?: PromptsFix;
}

export interface ParsedPrompts {
  /** Entries in line order. */
  prompts: PromptEntry[];
  /** Problems in line order. */
  problems: PromptsProblem[];
}

export interface ParsedLine {
  /** Absent for blank lines, comments, and lines with an error. */
  entry?: PromptEntry;
  problems: PromptsProblem[];
}

/** Splits like VS Code does (\n, \r\n or \r); a leading BOM is not part of the first line. */
export function splitLines(text: string): string[] {
  return text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
}

export function parsePromptsFile(text: string): ParsedPrompts {
  const prompts: PromptEntry[] = [];
  const problems: PromptsProblem[] = [];
  splitLines(text).forEach((src, line) => {
    const r = parsePromptLine(src, line);
    if (r.entry) prompts.push(r.entry);
    problems.push(...r.problems);
  });
  return { prompts, problems };
}

/** The entry written on `line`, if that line holds a valid one. */
export function entryAtLine(parsed: ParsedPrompts, line: number): PromptEntry | undefined {
  return parsed.prompts.find((p) => p.line === line);
}

/** Entries whose line lies in [fromLine, toLine] (inclusive), e.g. a multi-line selection. */
export function entriesInLines(parsed: ParsedPrompts, fromLine: number, toLine: number): PromptEntry[] {
  return parsed.prompts.filter((p) => p.line >= fromLine && p.line <= toLine);
}

class LineError extends Error {
  constructor(readonly problem: PromptsProblem) {
    super(problem.message);
  }
}

const ANSWER_HINT = 'answers are written in double quotes because their spaces matter: -> " Mary" | " John"';

/** Parses one line; never throws. */
export function parsePromptLine(src: string, line: number): ParsedLine {
  const sp = (start: number, end: number): Span => ({ line, start, end });
  const fail = (start: number, end: number, code: PromptsProblemCode, message: string, fix?: PromptsFix): never => {
    throw new LineError({ span: sp(start, Math.max(end, start + 1)), severity: 'error', code, message, ...(fix ? { fix } : {}) });
  };
  const len = src.length;
  const skipWs = (i: number): number => {
    while (i < len && (src[i] === ' ' || src[i] === '\t')) i++;
    return i;
  };
  const at = (i: number, tok: string): boolean => src.startsWith(tok, i);

  /** A JSON string literal starting at the quote at `i`. */
  const readQuoted = (i: number, what: string): { value: PromptText; next: number } => {
    let j = i + 1;
    while (j < len && src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
    if (j >= len) fail(i, len, 'unterminated-string', `the quoted ${what} has no closing quote (")`);
    const literal = src.slice(i, j + 1);
    let text: string;
    try {
      // A raw tab is easy to type and harmless: accept it although JSON would not.
      text = JSON.parse(literal.replace(/\t/g, '\\t')) as string;
    } catch {
      return fail(i, j + 1, 'bad-escape', `the quoted ${what} has an invalid escape: quoted text uses JSON escapes (\\" \\\\ \\n \\t \\u00e9)`);
    }
    return { value: { text, span: sp(i, j + 1), quoted: true }, next: j + 1 };
  };

  /** A prompt: quoted, or bare text up to the first of `stops` (trimmed). */
  const readPrompt = (i: number, stops: string[], what: string): { value: PromptText; next: number } => {
    if (src[i] === '"') return readQuoted(i, what);
    let j = len;
    for (const s of stops) {
      const k = src.indexOf(s, i);
      if (k >= 0 && k < j) j = k;
    }
    const text = src.slice(i, j).replace(/[ \t]+$/, '');
    return { value: { text, span: sp(i, i + text.length), quoted: false }, next: j };
  };

  /** The answer after the separator (`->` or `|`) that starts at `sep`. */
  const readAnswer = (sep: number, what: 'answer' | 'wrong answer'): { value: PromptText; next: number } => {
    const token = what === 'answer' ? '->' : '|';
    const i = skipWs(sep + token.length);
    if (i >= len || src[i] === '#') fail(sep, sep + token.length, 'missing-answer', `expected the ${what} after '${token}'; ${ANSWER_HINT}`);
    if (src[i] === '"') {
      const r = readQuoted(i, what);
      if (r.value.text === '') fail(r.value.span.start, r.value.span.end, 'empty-answer', `the ${what} is empty; ${ANSWER_HINT}`);
      return r;
    }
    // Unquoted: point at the word and offer the quoted form with the usual leading space.
    let j = i;
    while (j < len && src[j] !== '|' && src[j] !== '#') j++;
    const word = src.slice(i, j).trim();
    const end = i + src.slice(i, j).replace(/[ \t]+$/, '').length;
    return fail(i, end, 'unquoted-answer', `the ${what} must be quoted: ${ANSWER_HINT}. Most tokenizers attach the space before a word to it, so " ${word}" is usually meant.`, {
      title: `Quote the ${what} as ${JSON.stringify(' ' + word)}`,
      span: sp(i, end),
      newText: JSON.stringify(' ' + word),
    });
  };

  try {
    let i = skipWs(0);
    if (i >= len || src[i] === '#') return { problems: [] };
    const start = i;
    const problems: PromptsProblem[] = [];

    const p = readPrompt(i, ['=>', '->'], 'prompt');
    const prompt = p.value;
    if (prompt.text.trim() === '') {
      fail(start, prompt.quoted ? prompt.span.end : skipWs(p.next) + 2, 'empty-prompt', 'the prompt is empty: write the text the model should continue before any => or ->');
    }
    i = skipWs(p.next);
    let corrupted: PromptText | undefined;
    if (at(i, '=>')) {
      const arrow = i;
      i = skipWs(i + 2);
      const c = readPrompt(i, ['->', '=>'], 'corrupted prompt');
      corrupted = c.value;
      if (corrupted.text.trim() === '') fail(arrow, arrow + 2, 'empty-corrupted', "the corrupted prompt after '=>' is empty: write CLEAN => CORRUPTED");
      i = skipWs(c.next);
      if (at(i, '=>')) fail(i, i + 2, 'repeated-separator', "only one '=>' per line (CLEAN => CORRUPTED); quote a prompt that contains '=>'");
    }
    let answer: PromptText | undefined;
    let wrong: PromptText | undefined;
    if (at(i, '->')) {
      const a = readAnswer(i, 'answer');
      answer = a.value;
      i = skipWs(a.next);
      if (src[i] === '|') {
        const w = readAnswer(i, 'wrong answer');
        wrong = w.value;
        i = skipWs(w.next);
        if (src[i] === '|') fail(i, len, 'too-many-answers', 'one answer and one wrong answer at most: -> " Mary" | " John"');
      }
      if (at(i, '->')) fail(i, i + 2, 'repeated-separator', "only one '->' per line; quote a prompt that contains '->'");
    }
    if (i < len && src[i] !== '#') {
      const what = answer ? 'the answers' : corrupted ? 'the corrupted prompt' : 'the quoted prompt';
      fail(i, len, 'unexpected-text', `unexpected text after ${what}; put a comment on a line of its own (# …), and quote prompts that contain '->' or '=>'`);
    }
    if (answer && wrong && answer.text === wrong.text) {
      problems.push({ span: sp(answer.span.start, wrong.span.end), severity: 'warning', code: 'same-answers', message: 'the answer and the wrong answer are the same token, so their logit difference is always 0' });
    }
    const last = wrong ?? answer ?? corrupted ?? prompt;
    const entry: PromptEntry = { line, span: sp(start, last.span.end), prompt };
    if (corrupted) entry.corrupted = corrupted;
    if (answer) entry.answer = answer;
    if (wrong) entry.wrong = wrong;
    return { entry, problems };
  } catch (e) {
    if (e instanceof LineError) return { problems: [e.problem] };
    throw e;
  }
}

/**
 * Writes an entry back in canonical form (bare prompts when that reads back identically, quoted
 * otherwise). parsePromptLine(formatPromptEntry(x)) gives x's texts back.
 */
export function formatPromptEntry(e: { prompt: string; corrupted?: string; answer?: string; wrong?: string }): string {
  const promptText = (t: string): string => {
    const bare = t.trim() === t && t !== '' && !t.startsWith('"') && !t.startsWith('#') && !t.includes('->') && !t.includes('=>') && !/[\r\n]/.test(t);
    return bare ? t : JSON.stringify(t);
  };
  let s = promptText(e.prompt);
  if (e.corrupted !== undefined) s += ` => ${promptText(e.corrupted)}`;
  if (e.answer !== undefined) {
    s += ` -> ${JSON.stringify(e.answer)}`;
    if (e.wrong !== undefined) s += ` | ${JSON.stringify(e.wrong)}`;
  }
  return s;
}
