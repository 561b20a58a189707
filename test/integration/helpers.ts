/**
 * Helpers for the integration suite (runs inside the extension host, see index.ts).
 *
 * The extension's test surface is what activate() returns, `MechLensApi` of
 * src/extension/extension.ts: { engine: { request(type, params), ensureModel(), state },
 * panels: PanelSnapshot[] (title, kind, complete state), predictions, runsDir }. engine.request
 * takes the typed descriptors of src/protocol/engine.ts, exactly like EngineClient.request.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import { EngineRequests, type ModelInfo } from '../../src/protocol/engine';
import type { MechLensApi } from '../../src/extension/extension';
import type { PanelSnapshot } from '../../src/extension/panels';

export type { MechLensApi, PanelSnapshot };

/** A line in the launcher's output (console.log of the extension host goes elsewhere). */
export function note(line: string): void {
  const file = process.env.MECHLENS_TEST_REPORT;
  if (file) fs.appendFileSync(file, `      · ${line}\n`);
  else console.log(`      · ${line}`);
}

export function mechlensExtension(): vscode.Extension<MechLensApi> {
  const ext = vscode.extensions.all.find((e) => (e.packageJSON as { name?: string }).name === 'mechlens');
  assert.ok(ext, `the MechLens extension is not loaded; extensions seen: ${vscode.extensions.all.map((e) => e.id).filter((id) => !id.startsWith('vscode.')).join(', ') || '(only built-ins)'}`);
  return ext as vscode.Extension<MechLensApi>;
}

let apiPromise: Promise<MechLensApi> | undefined;
/** Activates MechLens (once) and returns its test API, asserting the planned fields exist. */
export function api(): Promise<MechLensApi> {
  return (apiPromise ??= (async () => {
    const ext = mechlensExtension();
    const exports = await ext.activate();
    assert.ok(exports && typeof exports === 'object', `activate() must return the test API object, got ${String(exports)}`);
    assert.equal(typeof exports.engine?.request, 'function', 'activate() result must have engine.request(type, params)');
    assert.ok(Array.isArray(exports.panels), 'activate() result must have `panels` (an array of panel snapshots)');
    assert.ok('runsDir' in exports, 'activate() result must have runsDir');
    return exports;
  })());
}

/** Waits until the model the settings name has been loaded by the engine; returns its info. */
export async function loadedModel(timeoutMs = 60_000): Promise<ModelInfo> {
  const a = await api();
  await a.engine.ensureModel();
  return waitFor(async () => (await a.engine.request(EngineRequests.modelInfo, {})) ?? undefined, timeoutMs, 'the engine never reported a loaded model (engine/model/info stayed null)');
}

export async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: string, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (e) {
      lastErr = e;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms: ${what}${lastErr ? ` (last error: ${lastErr instanceof Error ? lastErr.message : String(lastErr)})` : ''}`);
}

export function describePanels(a: MechLensApi): string {
  const ps = a.panels;
  return ps.length ? ps.map((p) => `"${p.title}" (${p.kind}${p.kind === 'error' || p.kind === 'loading' ? `: ${(p.state as { message: string }).message}` : ''})`).join(', ') : '(none)';
}

/** Waits for a panel whose title and state match; returns it. */
export function waitForPanel(a: MechLensApi, match: (p: PanelSnapshot) => boolean, what: string, timeoutMs = 60_000): Promise<PanelSnapshot> {
  return waitFor(() => a.panels.find(match), timeoutMs, `${what}; panels: ${describePanels(a)}`);
}

/** Webview tabs as the workbench shows them (independent of the extension's own bookkeeping). */
export function webviewTabs(): vscode.Tab[] {
  return vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((t) => t.input instanceof vscode.TabInputWebview);
}

export async function closeAllEditors(): Promise<void> {
  await vscode.commands.executeCommand('workbench.action.closeAllEditors');
}

/** The contributed command whose title matches, e.g. "Inspect Prompt". */
export function commandByTitle(title: RegExp): { command: string; title: string; category?: string } {
  const cmds = ((mechlensExtension().packageJSON as { contributes?: { commands?: { command: string; title: string; category?: string }[] } }).contributes?.commands ?? []);
  const c = cmds.find((x) => title.test(x.title) || title.test(`${x.category ?? ''}: ${x.title}`));
  assert.ok(c, `package.json contributes no command titled ${title}; commands: ${cmds.map((x) => `${x.command} "${x.title}"`).join(', ') || '(none)'}`);
  return c;
}

export function workspaceRoot(): vscode.Uri {
  const f = vscode.workspace.workspaceFolders?.[0];
  assert.ok(f, 'no workspace folder is open (the runner opens a copy of samples/)');
  return f.uri;
}

export async function samplePromptFiles(): Promise<vscode.Uri[]> {
  const files = await vscode.workspace.findFiles('**/*.prompts');
  assert.ok(files.length > 0, 'samples/ contains no *.prompts file');
  return files.sort((x, y) => (x.path.endsWith('/basics.prompts') ? -1 : y.path.endsWith('/basics.prompts') ? 1 : x.path.localeCompare(y.path)));
}

/**
 * Lines of a .prompts file that hold a prompt: not blank and not a comment (`#` or `//`).
 * This is the documented format of samples/*.prompts; if the extension grows directives, this is
 * the one place to teach.
 */
export function promptLines(doc: vscode.TextDocument): number[] {
  const lines: number[] = [];
  for (let i = 0; i < doc.lineCount; i++) {
    const t = doc.lineAt(i).text.trim();
    if (t && !t.startsWith('#') && !t.startsWith('//')) lines.push(i);
  }
  return lines;
}

/** Records error/warning messages shown through `vscode.window` while `fn` runs (and after, until stop()). */
export class MessageSpy {
  readonly messages: { level: 'error' | 'warning' | 'info'; text: string }[] = [];
  private readonly restore: (() => void)[] = [];
  constructor() {
    // Test modules inside the extension's folder get the extension's own `vscode` API object, so
    // wrapping these functions observes the messages MechLens shows (then shows them as usual).
    const w = vscode.window as unknown as Record<string, unknown>;
    for (const [name, level] of [['showErrorMessage', 'error'], ['showWarningMessage', 'warning'], ['showInformationMessage', 'info']] as const) {
      const orig = w[name] as (...args: unknown[]) => unknown;
      w[name] = (...args: unknown[]) => {
        this.messages.push({ level, text: String(args[0]) });
        return orig.apply(vscode.window, args);
      };
      this.restore.push(() => (w[name] = orig));
    }
  }
  stop(): void {
    for (const r of this.restore.splice(0)) r();
  }
  text(): string {
    return this.messages.map((m) => `${m.level}: ${m.text}`).join(' | ') || '(no messages)';
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, `length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
