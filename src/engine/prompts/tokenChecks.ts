/**
 * Tokenizer-aware checks of a parsed `.prompts` file: problems that depend on the loaded model
 * (an answer that is several tokens, a prompt longer than the context, clean and corrupted
 * prompts of different token lengths). The token counts come from the engine
 * (`engine/tokens/measure`); this module only turns them into per-line problems, so it is pure
 * and shared by the editor and the CLI.
 */
import type { PromptEntry, PromptsProblem } from './promptsFile.js';

export interface TokenMeasure {
  /** Number of tokens (BOS included for prompts when the model prepends one). */
  count: number;
  /** Each token's text, as to_str_tokens shows it. */
  strTokens: string[];
  /** Why the text cannot be tokenized (e.g. a character outside a character model's vocabulary). */
  error?: string;
}

export interface ModelForChecks {
  /** Shown in messages, e.g. 'gpt2' or 'builtin:toy'. */
  name: string;
  n_ctx: number;
}

/** The texts to measure for `entries`: prompts with BOS, answers without (deduplicated). */
export function textsToMeasure(entries: readonly PromptEntry[]): { prompts: string[]; answers: string[] } {
  const prompts = new Set<string>();
  const answers = new Set<string>();
  for (const e of entries) {
    prompts.add(e.prompt.text);
    if (e.corrupted) prompts.add(e.corrupted.text);
    if (e.answer) answers.add(e.answer.text);
    if (e.wrong) answers.add(e.wrong.text);
  }
  return { prompts: [...prompts], answers: [...answers] };
}

const showTokens = (m: TokenMeasure, max = 8): string => {
  const shown = m.strTokens.slice(0, max).map((t) => JSON.stringify(t)).join(', ');
  return m.strTokens.length > max ? `${shown}, …` : shown;
};

/**
 * Problems of `entries` for `model`, given measurements of every text from textsToMeasure (a
 * text missing from the maps is skipped: it was edited since it was measured).
 */
export function tokenProblems(
  entries: readonly PromptEntry[],
  prompts: ReadonlyMap<string, TokenMeasure>,
  answers: ReadonlyMap<string, TokenMeasure>,
  model: ModelForChecks,
): PromptsProblem[] {
  const out: PromptsProblem[] = [];
  for (const e of entries) {
    const clean = prompts.get(e.prompt.text);
    const corr = e.corrupted ? prompts.get(e.corrupted.text) : undefined;
    for (const [m, t, what] of [[clean, e.prompt, 'prompt'], [corr, e.corrupted, 'corrupted prompt']] as const) {
      if (m?.error !== undefined && t) {
        out.push({ span: t.span, severity: 'error', code: 'cannot-tokenize', message: `${model.name} cannot tokenize this ${what}: ${m.error}` });
      } else if (m && t && m.count > model.n_ctx) {
        out.push({
          span: t.span,
          severity: 'error',
          code: 'prompt-too-long',
          message: `this ${what} is ${m.count} tokens for ${model.name}, longer than its context of ${model.n_ctx} tokens (n_ctx); shorten it`,
        });
      }
    }
    if (clean && corr && e.corrupted && clean.error === undefined && corr.error === undefined && clean.count !== corr.count) {
      out.push({
        span: e.corrupted.span,
        severity: 'warning',
        code: 'length-mismatch',
        message: `the clean prompt is ${clean.count} tokens and the corrupted one ${corr.count} for ${model.name}: activation patching compares position by position, so both need the same number of tokens`,
      });
    }
    for (const [t, what] of [[e.answer, 'answer'], [e.wrong, 'wrong answer']] as const) {
      const m = t ? answers.get(t.text) : undefined;
      if (!t || !m || m.count === 1) continue;
      if (m.error !== undefined) {
        out.push({ span: t.span, severity: 'error', code: 'cannot-tokenize', message: `${model.name} cannot tokenize the ${what}: ${m.error}` });
        continue;
      }
      const first = m.strTokens[0];
      out.push({
        span: t.span,
        severity: 'warning',
        code: 'answer-not-one-token',
        message:
          `the ${what} ${JSON.stringify(t.text)} is ${m.count} tokens for ${model.name} (${showTokens(m)}), but ranks, probabilities and logit attribution are about one next token. ` +
          (first !== undefined ? `Use a single token, e.g. its first one ${JSON.stringify(first)}, or a model whose tokenizer has it as one token.` : 'Use a single token.'),
        ...(first !== undefined && m.count > 1 ? { fix: { title: `Use the first token ${JSON.stringify(first)}`, span: t.span, newText: JSON.stringify(first) } } : {}),
      });
    }
  }
  return out.sort((a, b) => a.span.line - b.span.line || a.span.start - b.span.start);
}
