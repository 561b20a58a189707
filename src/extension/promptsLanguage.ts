/**
 * Editor support for `.prompts` files: one parse per document version (shared by CodeLens,
 * diagnostics, commands and the Predictions view), CodeLenses above each prompt, diagnostics
 * (syntax at once; tokenizer-aware checks once a model is loaded) and quick fixes.
 */
import * as vscode from 'vscode';
import { parsePromptsFile, type ParsedPrompts, type PromptsFix, type PromptsProblem, type Span } from '../engine/prompts/promptsFile.js';
import { textsToMeasure, tokenProblems, type TokenMeasure } from '../engine/prompts/tokenChecks.js';
import { EngineRequests } from '../protocol/engine.js';
import type { EngineHost } from './engineHost.js';
import { PROMPTS_LANGUAGE_ID } from './promptTarget.js';
import { Debouncer, LatestOnly, errorMessage, isCancellation } from './latest.js';
import { modelLabel } from './states.js';

const TYPING_DEBOUNCE_MS = 250;

/** The argument CodeLenses pass to the panel commands. */
export interface PromptLensArg {
  uri: string;
  line: number;
}

export function isPromptLensArg(x: unknown): x is PromptLensArg {
  return typeof x === 'object' && x !== null && typeof (x as PromptLensArg).uri === 'string' && typeof (x as PromptLensArg).line === 'number';
}

export const spanToRange = (s: Span): vscode.Range => new vscode.Range(s.line, s.start, s.line, s.end);

/** Parses of open `.prompts` documents, cached by version. */
export class PromptsDocuments {
  private readonly cache = new Map<string, { version: number; parsed: ParsedPrompts }>();

  parse(doc: vscode.TextDocument): ParsedPrompts {
    const key = doc.uri.toString();
    const hit = this.cache.get(key);
    if (hit && hit.version === doc.version) return hit.parsed;
    const parsed = parsePromptsFile(doc.getText());
    this.cache.set(key, { version: doc.version, parsed });
    return parsed;
  }

  parsedIfPrompts(doc: vscode.TextDocument): ParsedPrompts | undefined {
    return doc.languageId === PROMPTS_LANGUAGE_ID ? this.parse(doc) : undefined;
  }

  forget(doc: vscode.TextDocument): void {
    this.cache.delete(doc.uri.toString());
  }
}

export class PromptsCodeLensProvider implements vscode.CodeLensProvider {
  private readonly emitter = new vscode.EventEmitter<void>();
  readonly onDidChangeCodeLenses = this.emitter.event;

  constructor(private readonly docs: PromptsDocuments) {}

  refresh(): void {
    this.emitter.fire();
  }

  provideCodeLenses(doc: vscode.TextDocument): vscode.CodeLens[] {
    const lenses: vscode.CodeLens[] = [];
    for (const e of this.docs.parse(doc).prompts) {
      const range = new vscode.Range(e.line, e.span.start, e.line, e.span.end);
      const arg: PromptLensArg = { uri: doc.uri.toString(), line: e.line };
      const target = e.answer ? `${JSON.stringify(e.answer.text)}${e.wrong ? ` − ${JSON.stringify(e.wrong.text)}` : ''}` : 'the top prediction';
      lenses.push(
        new vscode.CodeLens(range, { title: 'Inspect', command: 'mechlens.inspectPrompt', arguments: [arg], tooltip: 'Top-k next tokens, the answer\'s rank and per-token loss (test_prompt)' }),
        new vscode.CodeLens(range, { title: 'Attention', command: 'mechlens.showAttention', arguments: [arg], tooltip: 'Attention patterns of every layer and head' }),
        new vscode.CodeLens(range, { title: 'Logit lens', command: 'mechlens.showAttribution', arguments: [arg], tooltip: `Logit lens over the layers, with direct logit attribution per layer and head, toward ${target}` }),
      );
    }
    return lenses;
  }

  dispose(): void {
    this.emitter.dispose();
  }
}

/**
 * Diagnostics of `.prompts` documents. Syntax problems come from the parser; tokenizer-aware ones
 * (answer of several tokens, prompt longer than n_ctx, clean/corrupted length mismatch) are added
 * when a model is loaded; they never load one themselves.
 */
export class PromptsDiagnostics implements vscode.Disposable {
  readonly collection = vscode.languages.createDiagnosticCollection('mechlens-prompts');
  /** Problems (with their fixes) behind the current diagnostics, per document. */
  private readonly problems = new Map<string, PromptsProblem[]>();
  private readonly pending = new Map<string, { debouncer: Debouncer; latest: LatestOnly }>();
  private readonly subscriptions: vscode.Disposable[] = [];
  private readonly docsUri: vscode.Uri;

  constructor(private readonly docs: PromptsDocuments, private readonly host: EngineHost, extensionUri: vscode.Uri, private readonly log: vscode.LogOutputChannel) {
    this.docsUri = vscode.Uri.joinPath(extensionUri, 'docs', 'prompts-format.md');
    this.subscriptions.push(
      this.collection,
      vscode.workspace.onDidOpenTextDocument((d) => this.schedule(d, 0)),
      vscode.workspace.onDidChangeTextDocument((e) => this.schedule(e.document, TYPING_DEBOUNCE_MS)),
      vscode.workspace.onDidCloseTextDocument((d) => this.clear(d)),
      // Tokenizer-aware checks depend on the model: recheck every open file when it changes.
      host.onDidChangeState((s) => {
        if (s.kind === 'ready' || s.kind === 'idle') for (const d of vscode.workspace.textDocuments) this.schedule(d, 0);
      }),
    );
    for (const d of vscode.workspace.textDocuments) this.schedule(d, 0);
  }

  problemsOf(uri: vscode.Uri): readonly PromptsProblem[] {
    return this.problems.get(uri.toString()) ?? [];
  }

  /** delay 0: now (open, model change); otherwise debounced (typing). */
  private schedule(doc: vscode.TextDocument, delay: number): void {
    if (doc.languageId !== PROMPTS_LANGUAGE_ID) {
      if (this.problems.has(doc.uri.toString())) this.clear(doc);
      return;
    }
    const key = doc.uri.toString();
    let p = this.pending.get(key);
    if (!p) {
      const latest = new LatestOnly();
      p = { latest, debouncer: new Debouncer(TYPING_DEBOUNCE_MS, () => void this.check(doc, latest)) };
      this.pending.set(key, p);
    }
    if (delay === 0) {
      p.debouncer.dispose();
      void this.check(doc, p.latest);
    } else {
      p.debouncer.trigger();
    }
  }

  private publish(doc: vscode.TextDocument, problems: PromptsProblem[]): void {
    this.problems.set(doc.uri.toString(), problems);
    this.collection.set(doc.uri, problems.map((p) => this.toDiagnostic(p)));
  }

  private toDiagnostic(p: PromptsProblem): vscode.Diagnostic {
    const d = new vscode.Diagnostic(spanToRange(p.span), p.message, p.severity === 'error' ? vscode.DiagnosticSeverity.Error : vscode.DiagnosticSeverity.Warning);
    d.source = 'MechLens';
    // The code links to the format's documentation: the "quick explanation" behind each message.
    d.code = { value: p.code, target: this.docsUri };
    return d;
  }

  async check(doc: vscode.TextDocument, latest: LatestOnly): Promise<void> {
    const signal = latest.next();
    if (doc.isClosed) return;
    const parsed = this.docs.parse(doc);
    const version = doc.version;
    this.publish(doc, parsed.problems);
    const info = this.host.model;
    if (!info || parsed.prompts.length === 0) return;
    try {
      const { prompts, answers } = textsToMeasure(parsed.prompts);
      const [mp, ma] = await Promise.all([
        this.host.request(EngineRequests.measureTokens, { texts: prompts, prependBos: true }, signal),
        this.host.request(EngineRequests.measureTokens, { texts: answers, prependBos: false }, signal),
      ]);
      if (!latest.isLatest(signal) || doc.isClosed || doc.version !== version) return;
      const toMap = (texts: string[], items: TokenMeasure[]) => new Map(texts.map((t, i) => [t, items[i]!] as const));
      const extra = tokenProblems(parsed.prompts, toMap(prompts, mp.items), toMap(answers, ma.items), { name: modelLabel(info), n_ctx: mp.n_ctx });
      this.publish(doc, [...parsed.problems, ...extra].sort((a, b) => a.span.line - b.span.line || a.span.start - b.span.start));
    } catch (e) {
      if (!isCancellation(e)) this.log.warn(`token checks of ${doc.uri.fsPath} failed: ${errorMessage(e)}`);
    }
  }

  private clear(doc: vscode.TextDocument): void {
    const key = doc.uri.toString();
    const p = this.pending.get(key);
    p?.debouncer.dispose();
    p?.latest.cancel();
    this.pending.delete(key);
    this.problems.delete(key);
    this.collection.delete(doc.uri);
    this.docs.forget(doc);
  }

  dispose(): void {
    for (const p of this.pending.values()) {
      p.debouncer.dispose();
      p.latest.cancel();
    }
    this.pending.clear();
    for (const s of this.subscriptions) s.dispose();
  }
}

/** Quick fixes for the problems that carry one (unquoted answer, multi-token answer). */
export class PromptsCodeActions implements vscode.CodeActionProvider {
  static readonly kinds = [vscode.CodeActionKind.QuickFix];

  constructor(private readonly diagnostics: PromptsDiagnostics) {}

  provideCodeActions(doc: vscode.TextDocument, range: vscode.Range | vscode.Selection, ctx: vscode.CodeActionContext): vscode.CodeAction[] {
    const out: vscode.CodeAction[] = [];
    for (const p of this.diagnostics.problemsOf(doc.uri)) {
      if (!p.fix) continue;
      const r = spanToRange(p.span);
      if (!r.intersection(range) && !ctx.diagnostics.some((d) => d.range.isEqual(r))) continue;
      out.push(this.action(doc, p, p.fix, ctx.diagnostics.find((d) => d.range.isEqual(r))));
    }
    return out;
  }

  private action(doc: vscode.TextDocument, p: PromptsProblem, fix: PromptsFix, diag: vscode.Diagnostic | undefined): vscode.CodeAction {
    const a = new vscode.CodeAction(fix.title, vscode.CodeActionKind.QuickFix);
    a.edit = new vscode.WorkspaceEdit();
    a.edit.replace(doc.uri, spanToRange(fix.span), fix.newText);
    a.isPreferred = p.code === 'unquoted-answer';
    if (diag) a.diagnostics = [diag];
    return a;
  }
}
