/**
 * The commands of package.json's "contributes.commands", and the panel tasks behind the first
 * three: Inspect (test_prompt), Attention (every blocks.L.attn.hook_pattern) and Logit
 * Attribution (engine/analysis/attribution). Each resolves its prompt(s) from a CodeLens argument
 * or the active editor's selection / line, opens (or reuses) a panel, and saves the result as a run.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineRequests, type ModelInfo, type SaeInfo } from '../protocol/engine.js';
import { newRunId, type RunInputs, type RunKind, type RunRecord } from '../protocol/runs.js';
import type { InspectState, PanelState } from '../protocol/webview.js';
import { entryAtLine } from '../engine/prompts/promptsFile.js';
import type { EngineHost } from './engineHost.js';
import type { PanelManager, PanelTaskResult } from './panels.js';
import type { RunStore } from './runStore.js';
import { HooksTree, RunsTree } from './treeViews.js';
import { isPromptLensArg, type PromptsDocuments } from './promptsLanguage.js';
import { promptsFromSelection, requestFromEntry, type PromptRequest } from './promptTarget.js';
import { attentionState, attributionState, inspectState, loadingState, modelLabel, panelTitle, runRecord, sameLengthPrompts, type PanelKind } from './states.js';
import { DEFAULT_MODEL } from './settings.js';
import { notifyError, registerReportingCommand } from './notify.js';
import { errorMessage, isCancellation } from './latest.js';

export interface Services {
  host: EngineHost;
  panels: PanelManager;
  docs: PromptsDocuments;
  runStore: () => RunStore | undefined;
  runsTree: RunsTree;
  log: vscode.LogOutputChannel;
  options: () => { prependBos: boolean; topK: number };
  version: string;
}

interface Target {
  prompts: PromptRequest[];
  file?: string;
}

/** The prompts a command acts on, or undefined after telling the user why there are none. */
async function resolveTarget(arg: unknown, s: Services): Promise<Target | undefined> {
  const fail = (message: string): undefined => {
    void vscode.window.showWarningMessage(`MechLens: ${message}`);
    return undefined;
  };
  if (isPromptLensArg(arg)) {
    const uri = vscode.Uri.parse(arg.uri);
    const doc = await vscode.workspace.openTextDocument(uri);
    const entry = entryAtLine(s.docs.parse(doc), arg.line);
    if (!entry) return fail(`line ${arg.line + 1} of ${vscode.workspace.asRelativePath(uri)} no longer holds a prompt`);
    return { prompts: [requestFromEntry(entry)], file: uri.fsPath };
  }
  // From the editor context menu VS Code passes the document's URI; the selection is the editor's.
  const editor = arg instanceof vscode.Uri ? (vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === arg.toString()) ?? vscode.window.activeTextEditor) : vscode.window.activeTextEditor;
  if (!editor) return fail('open a file and select a prompt, or put the cursor on a line of text');
  const doc = editor.document;
  const r = promptsFromSelection({ languageId: doc.languageId, text: doc.getText() }, editor.selection, s.docs.parsedIfPrompts(doc));
  if (!r.ok) return fail(r.message);
  return { prompts: r.prompts, file: doc.uri.scheme === 'file' ? doc.uri.fsPath : doc.uri.toString() };
}

function inputsOf(t: Target, prompts: PromptRequest[]): RunInputs {
  const first = prompts[0]!;
  const inputs: RunInputs = { prompts: prompts.map((p) => p.prompt) };
  if (first.answer !== undefined) inputs.answer = first.answer;
  if (first.wrong !== undefined) inputs.wrong = first.wrong;
  if (prompts.some((p) => p.corrupted !== undefined)) inputs.corrupted = prompts.map((p) => p.corrupted ?? '');
  if (t.file) inputs.source = { file: t.file, line: first.line };
  return inputs;
}

function saver(s: Services, kind: RunKind, title: string, info: ModelInfo): (state: PanelState, inputs: RunInputs) => Promise<RunRecord | undefined> {
  return async (state, inputs) => {
    const store = s.runStore();
    if (!store) return undefined;
    const rec = runRecord({ id: newRunId(kind), kind, title, createdAt: new Date(), info, engineVersion: s.version, inputs, state });
    await store.save(rec);
    s.runsTree.refresh();
    return rec;
  };
}

async function openPanel(kind: PanelKind, arg: unknown, s: Services): Promise<void> {
  const t = await resolveTarget(arg, s);
  if (!t) return;
  // Inspect and attribution are about one prompt; attention averages several.
  const prompts = kind === 'attention' ? t.prompts : t.prompts.slice(0, 1);
  if (kind !== 'attention' && t.prompts.length > 1) {
    void vscode.window.showInformationMessage(`MechLens: ${t.prompts.length} prompts are selected; showing the first.`);
  }
  const title = panelTitle(kind, prompts.map((p) => p.prompt));
  const key = `${kind}:${JSON.stringify(prompts.map((p) => [p.prompt, p.answer, p.wrong]))}`;
  const panel = s.panels.open(key, title, { kind: 'loading', title, message: 'Starting…' });
  const inputs = inputsOf(t, prompts);
  const task = kind === 'inspect' ? inspectTask : kind === 'attention' ? attentionTask : attributionTask;
  await panel.run(title, s.host.model ? 'Running the model…' : `Loading ${s.host.settings.model}…`, async (signal) => {
    const info = await s.host.ensureModel({ interactive: true });
    const state = await task(s, prompts, info, signal);
    const save = saver(s, kind, title, info);
    return { state, run: { inputs, save: (st: PanelState) => save(st, inputs) } } satisfies PanelTaskResult;
  });
}

/**
 * Fails with a message a user can act on when a prompt cannot be tokenized or is longer than the
 * context (the engine would say so too, in terms of its API).
 */
async function checkPrompts(s: Services, texts: string[], info: ModelInfo, signal: AbortSignal): Promise<void> {
  const m = await s.host.request(EngineRequests.measureTokens, { texts, prependBos: s.options().prependBos }, signal);
  m.items.forEach((it, i) => {
    const which = texts.length > 1 ? `prompt ${i + 1} (${JSON.stringify(texts[i]!.slice(0, 30))}…)` : 'the prompt';
    if (it.error !== undefined) throw new Error(`${info.cfg.model_name} cannot tokenize ${which}: ${it.error}`);
    if (it.count > m.n_ctx) throw new Error(`${which} is ${it.count} tokens${s.options().prependBos ? ' (BOS included)' : ''}, longer than the context of ${info.cfg.model_name} (n_ctx = ${m.n_ctx} tokens); shorten it`);
  });
}

async function inspectTask(s: Services, prompts: PromptRequest[], info: ModelInfo, signal: AbortSignal): Promise<PanelState> {
  const p = prompts[0]!;
  const { prependBos, topK } = s.options();
  await checkPrompts(s, [p.prompt], info, signal);
  let answer = p.answer;
  let wrong = p.wrong;
  if (answer !== undefined) {
    // A multi-token answer would fail test_prompt as a whole: show the prompt without it instead.
    const texts = wrong !== undefined ? [answer, wrong] : [answer];
    const m = await s.host.request(EngineRequests.measureTokens, { texts, prependBos: false }, signal);
    const bad = m.items.map((it, i) => ({ it, text: texts[i]! })).filter(({ it }) => it.count !== 1);
    if (bad.length > 0) {
      const why = bad.map(({ it, text }) => (it.error ? `${JSON.stringify(text)}: ${it.error}` : `${JSON.stringify(text)} is ${it.count} tokens`)).join('; ');
      void vscode.window.showWarningMessage(`MechLens: the answer is not one token for ${info.cfg.model_name} (${why}); showing the predictions without it.`);
      answer = undefined;
      wrong = undefined;
    }
  }
  const base = { prompt: p.prompt, prependBos, k: topK };
  const result = await s.host.request(EngineRequests.testPrompt, answer !== undefined ? { ...base, answer } : base, signal);
  let wrongInfo: { token: number; str: string; logit: number } | undefined;
  if (wrong !== undefined) {
    const w = await s.host.request(EngineRequests.testPrompt, { ...base, k: 1, answer: wrong }, signal);
    if (w.answer) wrongInfo = { token: w.answer.token, str: w.answer.str, logit: w.answer.logit };
  }
  const st = inspectState(modelLabel(info), p.prompt, result, wrongInfo);
  return withFeatures(s, st, p.prompt, signal);
}

/** SAE ids the worker gave out, per SAE spec (the worker forgets them when it loads another model). */
const saeIds = new Map<string, { model: ModelInfo | undefined; id: string; info: SaeInfo }>();

/**
 * Adds the features tab when the setting mechlens.sae names an SAE: its top features on every
 * token. An SAE that cannot be read is said in the tab; Inspect itself still shows.
 */
/** The SAE of the setting mechlens.sae, loaded in the engine for the current model (once). */
async function ensureSae(s: Services, spec: string, signal: AbortSignal): Promise<{ id: string; info: SaeInfo }> {
  // A new model (or a restarted engine) is a new ModelInfo object: load the SAE again for it.
  const model = s.host.model;
  let known = saeIds.get(spec);
  if (!known || known.model !== model) {
    const resolved = inWorkspace(spec);
    const info = await s.host.request(EngineRequests.saeLoad, { sae: resolved, allowDownload: s.host.settings.allowDownload }, signal);
    known = { model, id: info.id, info };
    saeIds.set(spec, known);
  }
  return known;
}

/** A path relative to the workspace folder when it exists there; else as given (absolute, hub id). */
function inWorkspace(p: string): string {
  const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  return root && !path.isAbsolute(p) && fs.existsSync(path.join(root, p)) ? path.join(root, p) : p;
}

const saeSetting = (): string => (vscode.workspace.getConfiguration('mechlens').get<string>('sae') ?? '').trim();

async function withFeatures(s: Services, st: InspectState, prompt: string, signal: AbortSignal): Promise<InspectState> {
  const spec = saeSetting();
  if (!spec) return st;
  try {
    const known = await ensureSae(s, spec, signal);
    const r = await s.host.request(EngineRequests.saeFeatures, { saeId: known.id, texts: [prompt], prependBos: s.options().prependBos, top: 8 }, signal);
    return {
      ...st,
      features: { sae: spec, architecture: known.info.architecture, hook: known.info.hookIn, d_sae: known.info.d_sae, strTokens: r.strTokens[0]!, top: r.top[0]!, acts: r.acts[0]!, l0: r.l0[0]!, explainedVariance: r.explainedVariance[0]! },
    };
  } catch (e) {
    if (isCancellation(e)) throw e;
    saeIds.delete(spec);
    return { ...st, featuresError: `The SAE of the setting mechlens.sae (${spec}) could not be read: ${errorMessage(e)}` };
  }
}

async function attentionTask(s: Services, prompts: PromptRequest[], info: ModelInfo, signal: AbortSignal): Promise<PanelState> {
  const texts = prompts.map((p) => p.prompt);
  await checkPrompts(s, texts, info, signal);
  const tok = await s.host.request(EngineRequests.tokenize, { texts, prependBos: s.options().prependBos }, signal);
  const { kept, skipped } = sameLengthPrompts(texts, tok.tokens);
  if (skipped.length > 0) {
    void vscode.window.showWarningMessage(
      `MechLens: the mean attention pattern needs prompts of one token length; ${skipped.length} of ${texts.length} prompts differ from the first (${tok.tokens[0]!.length} tokens) and were left out.`,
    );
  }
  const names = Array.from({ length: info.cfg.n_layers }, (_, l) => `blocks.${l}.attn.hook_pattern`);
  const r = await s.host.request(EngineRequests.runWithCache, { tokens: kept.map((i) => tok.tokens[i]!), names }, signal);
  return attentionState(modelLabel(info), kept.map((i) => texts[i]!), tok.strTokens[kept[0]!]!, r.cache, info.cfg.n_layers, info.cfg.n_heads);
}

async function attributionTask(s: Services, prompts: PromptRequest[], info: ModelInfo, signal: AbortSignal): Promise<PanelState> {
  const p = prompts[0]!;
  const params = { prompt: p.prompt, prependBos: s.options().prependBos, ...(p.answer !== undefined ? { answer: p.answer } : {}), ...(p.wrong !== undefined ? { wrong: p.wrong } : {}) };
  const r = await s.host.request(EngineRequests.attribution, params, signal);
  const st = attributionState(modelLabel(info), p.prompt, r);
  const spec = saeSetting();
  // Feature DLA needs a logit difference: an answer and a wrong answer.
  if (!spec || p.answer === undefined || p.wrong === undefined) return st;
  try {
    const sae = await ensureSae(s, spec, signal);
    const d = await s.host.request(EngineRequests.saeFeatureDla, { saeId: sae.id, texts: [p.prompt], answers: [[p.answer, p.wrong]], prependBos: s.options().prependBos }, signal);
    return { ...st, featureDla: { sae: spec, hook: sae.info.hookOut, features: d.features, values: d.values, bias: d.bias, error: d.error, total: d.total } };
  } catch (e) {
    if (isCancellation(e)) throw e;
    return { ...st, featureDlaError: `The SAE of the setting mechlens.sae (${spec}) could not attribute: ${errorMessage(e)}` };
  }
}

interface ModelPick extends vscode.QuickPickItem {
  value?: string;
  action?: 'folder' | 'enter';
}

async function selectModel(s: Services): Promise<void> {
  const current = s.host.settings.model;
  const known: ModelPick[] = [
    { label: DEFAULT_MODEL, description: 'built-in model, works offline', value: DEFAULT_MODEL },
    { label: 'builtin:toy', description: 'tiny untrained character model (for trying the views)', value: 'builtin:toy' },
    { label: 'gpt2', description: 'GPT-2 small from Hugging Face (downloaded once, about 550 MB)', value: 'gpt2' },
  ];
  if (!known.some((k) => k.value === current)) known.unshift({ label: current, description: 'current setting', value: current });
  for (const k of known) if (k.value === current) k.description = `${k.description ?? ''} (current)`.trim();
  const items: ModelPick[] = [
    ...known,
    { label: '', kind: vscode.QuickPickItemKind.Separator },
    { label: '$(folder-opened) Choose a local model folder…', action: 'folder' },
    { label: '$(edit) Enter a Hugging Face id or a path…', action: 'enter' },
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'MechLens: Select Model', placeHolder: `Current: ${current}` });
  if (!pick) return;
  let value = pick.value;
  if (pick.action === 'folder') {
    const uri = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, canSelectMany: false, openLabel: 'Use this model folder', title: 'A folder with config.json and model.safetensors' });
    value = uri?.[0]?.fsPath;
  } else if (pick.action === 'enter') {
    value = await vscode.window.showInputBox({
      title: 'MechLens: model',
      prompt: 'A Hugging Face id (gpt2, EleutherAI/pythia-70m…), a folder path, or builtin:default',
      value: current,
      validateInput: (v) => (v.trim() === '' ? 'Enter a model id or a path' : undefined),
    });
  }
  if (!value) return;
  const cfg = vscode.workspace.getConfiguration('mechlens');
  const target = vscode.workspace.workspaceFolders?.length ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
  await cfg.update('model', value.trim(), target);
  // Selecting a model is a request to use it: load it now (a settings change alone stays lazy).
  try {
    await s.host.ensureModel({ interactive: true });
  } catch (e) {
    notifyError('MechLens: Select Model', e, s.log);
  }
}

async function loadModel(s: Services): Promise<void> {
  try {
    const info = await s.host.reload();
    void vscode.window.showInformationMessage(
      `MechLens: ${info.cfg.model_name} is loaded (${info.cfg.n_layers} layers × ${info.cfg.n_heads} heads, ${info.device}, ${(info.loadMs / 1000).toFixed(1)} s).`,
    );
  } catch (e) {
    notifyError('MechLens: Load Model', e, s.log);
  }
}

async function openRun(arg: unknown, s: Services): Promise<void> {
  const id = RunsTree.runId(arg);
  const store = s.runStore();
  if (!id || !store) {
    void vscode.window.showWarningMessage('MechLens: pick a run in the Runs view.');
    return;
  }
  try {
    s.panels.openRun(await store.read(id));
  } catch (e) {
    notifyError('MechLens: Open Run', e, s.log);
  }
}

/** Locks the active panel (later results of its kind open elsewhere) or unlocks it. */
function togglePanelLock(s: Services, lock: boolean, id?: number): void {
  const p = s.panels.setLock(lock, id);
  if (!p) {
    void vscode.window.showInformationMessage('MechLens: focus a MechLens panel to lock or unlock it.');
    return;
  }
  vscode.window.setStatusBarMessage(p.locked ? `$(lock) MechLens: "${p.title}" is locked; new results open beside it.` : `$(unlock) MechLens: "${p.title}" is unlocked; the next result of its kind replaces it.`, 5000);
}

/**
 * A feature's dashboard over a corpus (`arg.corpus`, else the setting mechlens.saeCorpus, else a
 * text file the user picks): top-activating contexts, histogram, logit effect. Closing the panel
 * cancels it.
 */
async function featureDashboard(arg: unknown, s: Services): Promise<void> {
  const a = (typeof arg === 'object' && arg !== null ? arg : {}) as { feature?: unknown; corpus?: unknown };
  const spec = saeSetting();
  if (!spec) {
    void vscode.window.showWarningMessage('MechLens: set mechlens.sae to an SAE (a folder in SAELens\'s format) first; its features then show on Inspect.');
    return;
  }
  let feature = typeof a.feature === 'number' ? a.feature : undefined;
  if (feature === undefined) {
    const typed = await vscode.window.showInputBox({ title: 'MechLens: Feature Dashboard', prompt: `A feature of ${spec}`, validateInput: (v) => (/^\d+$/.test(v.trim()) ? undefined : 'a feature index: 0, 1, 2, …') });
    if (typed === undefined) return;
    feature = Number(typed.trim());
  }
  let corpus = typeof a.corpus === 'string' && a.corpus ? a.corpus : (vscode.workspace.getConfiguration('mechlens').get<string>('saeCorpus') ?? '').trim();
  if (!corpus) {
    const picked = await vscode.window.showOpenDialog({ title: 'A text corpus for the feature dashboard', canSelectMany: false, ...(vscode.workspace.workspaceFolders?.[0] ? { defaultUri: vscode.workspace.workspaceFolders[0].uri } : {}) });
    if (!picked?.[0]) return;
    corpus = picked[0].fsPath;
  }
  const file = inWorkspace(corpus);
  const f = feature;
  const title = `MechLens: Feature #${f} — ${path.basename(spec)}`;
  const panel = s.panels.open(`feature:${spec}#${f}#${file}`, title, { kind: 'loading', title, message: 'Starting…' });
  await panel.run(title, `Reading ${path.basename(file)} for feature #${f} (up to 50,000 tokens; close the panel to cancel)…`, async (signal) => {
    const info = await s.host.ensureModel({ interactive: true });
    const sae = await ensureSae(s, spec, signal);
    if (!Number.isInteger(f) || f < 0 || f >= sae.info.d_sae) throw new Error(`feature ${f} does not exist: ${spec} has features 0..${sae.info.d_sae - 1}`);
    // The worker streams the corpus and reports how far it is: the panel shows it (close it to cancel).
    const result = await s.host.requestWithProgress(
      EngineRequests.saeDashboard,
      { saeId: sae.id, feature: f, corpus: { file: path.resolve(file) }, prependBos: s.options().prependBos },
      (p) => panel.setState(loadingState(title, `Feature #${f} over ${path.basename(file)}: ${p.message}${p.fraction !== undefined ? ` (${Math.round(p.fraction * 100)}%)` : ''}. Close the panel to cancel.`)),
      signal,
    );
    return { state: { kind: 'feature', model: modelLabel(info), sae: spec, architecture: sae.info.architecture, hook: sae.info.hookIn, corpus: path.basename(file), result } };
  });
}

async function deleteRun(arg: unknown, s: Services): Promise<void> {
  const id = RunsTree.runId(arg);
  const store = s.runStore();
  if (!id || !store) return;
  const ok = await vscode.window.showWarningMessage(`Delete the run ${id} and its folder?`, { modal: true }, 'Delete');
  if (ok !== 'Delete') return;
  try {
    await store.delete(id);
  } catch (e) {
    notifyError('MechLens: Delete Run', e, s.log);
  }
  s.runsTree.refresh();
}

async function revealRun(arg: unknown, s: Services): Promise<void> {
  const id = RunsTree.runId(arg);
  const store = s.runStore();
  if (!id || !store) return;
  await vscode.window.showTextDocument(vscode.Uri.file(store.fileOf(id)), { preview: true });
}

export function registerCommands(s: Services): vscode.Disposable[] {
  // Panel buttons: Inspect's "Open dashboard" on an SAE feature.
  s.panels.actionHandler = async (a) => {
    if (a.action !== 'sae.dashboard') throw new Error(`unknown panel action ${a.action}`);
    await vscode.commands.executeCommand('mechlens.featureDashboard', { feature: a.feature });
  };
  const reg = (id: string, fn: (...args: unknown[]) => unknown): vscode.Disposable => registerReportingCommand(id, fn, s.log);
  return [
    reg('mechlens.inspectPrompt', (arg) => openPanel('inspect', arg, s)),
    reg('mechlens.showAttention', (arg) => openPanel('attention', arg, s)),
    reg('mechlens.showAttribution', (arg) => openPanel('attribution', arg, s)),
    reg('mechlens.loadModel', () => loadModel(s)),
    reg('mechlens.selectModel', () => selectModel(s)),
    reg('mechlens.restartEngine', async () => {
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'MechLens: restarting the engine' }, () => s.host.restart());
    }),
    reg('mechlens.openRun', (arg) => openRun(arg, s)),
    reg('mechlens.featureDashboard', (arg) => featureDashboard(arg, s)),
    reg('mechlens.lockPanel', (id) => togglePanelLock(s, true, typeof id === 'number' ? id : undefined)),
    reg('mechlens.unlockPanel', (id) => togglePanelLock(s, false, typeof id === 'number' ? id : undefined)),
    reg('mechlens.deleteRun', (arg) => deleteRun(arg, s)),
    reg('mechlens.revealRun', (arg) => revealRun(arg, s)),
    reg('mechlens.refreshRuns', () => s.runsTree.refresh()),
    reg('mechlens.copyHookName', async (arg) => {
      const name = arg instanceof vscode.TreeItem || (typeof arg === 'object' && arg !== null) ? HooksTree.hookName(arg as vscode.TreeItem) : undefined;
      if (!name) return;
      await vscode.env.clipboard.writeText(name);
      vscode.window.setStatusBarMessage(`Copied ${name}`, 2000);
    }),
    reg('mechlens.showLog', () => s.log.show()),
  ];
}
