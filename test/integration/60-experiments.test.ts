/// <reference types="mocha" />
/**
 * Experiment files in a real VS Code: samples/toy-patching.experiment.json (the built-in model,
 * offline) gets its CodeLenses where the engine's parser locates the analyses; its Run lens runs
 * it in the engine worker, saves .mechlens/runs/<id>/ and shows the results panel; the patching
 * heatmaps hold exactly the engine's own sweeps (engine/analysis/analyze, asked for separately
 * here); the run re-opens from the Runs view and "Open Last Result", and exports as HTML. A bad
 * experiment file gets diagnostics at its line and column and runs nothing.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { EngineRequests } from '../../src/protocol/engine';
import type { ExperimentState, HeatmapData } from '../../src/protocol/webview';
import type { RunRecord } from '../../src/protocol/runs';
import { parseExperiment } from '../../src/engine/experiments/parse';
import { hfCacheSnapshot } from '../../src/engine/model/load';
import { parsePromptsFile } from '../../src/engine/prompts/promptsFile';
import type { ExperimentRunOutcome } from '../../src/extension/experiments';
import { MessageSpy, api, closeAllEditors, describePanels, loadedModel, maxAbsDiff, note, waitFor, waitForPanel, workspaceRoot } from './helpers';

const SAMPLE = 'toy-patching.experiment.json';

function sweepOf(st: ExperimentState, kind: string): HeatmapData {
  const s = st.sections.find((x) => x.kind === kind);
  assert.ok(s, `no ${kind} section: ${st.sections.map((x) => x.kind).join(', ')}`);
  for (const b of s.blocks) {
    if (b.type === 'compare') return b.exact;
    if (b.type === 'heatmap') return b.data;
  }
  assert.fail(`the ${kind} section has no heatmap: ${s.blocks.map((b) => b.type).join(', ')}`);
}

describe('Experiments', function () {
  this.timeout(180_000);
  let doc: vscode.TextDocument;
  let file: string;
  let outcome: ExperimentRunOutcome;
  let state: ExperimentState;

  before(async () => {
    await loadedModel(90_000);
    await closeAllEditors();
    file = path.join(workspaceRoot().fsPath, SAMPLE);
    assert.ok(fs.existsSync(file), `${SAMPLE} is not in the workspace copy of samples/`);
    doc = await vscode.workspace.openTextDocument(file);
    await vscode.window.showTextDocument(doc);
  });
  after(closeAllEditors);

  it('opens as JSON with no problems, and its CodeLenses sit where the engine locates the analyses', async () => {
    assert.equal(doc.languageId, 'json');
    const x = parseExperiment(doc.getText(), file).experiment;
    assert.ok(x, 'the sample parses');
    const lenses = await waitFor(async () => {
      const ls = ((await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', doc.uri, 100)) ?? []).filter((l) => l.command?.command.startsWith('mechlens.'));
      return ls.length >= 3 + x.analyses.length ? ls : undefined;
    }, 30_000, 'the experiment CodeLenses');
    const top = lenses.filter((l) => l.range.start.line === 0).map((l) => l.command!.title);
    assert.deepEqual(top, ['Run', 'Run one analysis', 'Open last result']);
    const each = lenses.filter((l) => l.command!.title === 'Run this analysis');
    assert.deepEqual(each.map((l) => l.range.start.line), x.analyses.map((a) => a.at.range.start.line));
    assert.deepEqual(each.map((l) => (l.command!.arguments?.[0] as { index: number }).index), x.analyses.map((a) => a.index));
    const registered = new Set(await vscode.commands.getCommands(true));
    for (const l of lenses) assert.ok(registered.has(l.command!.command), l.command!.command);
    // The engine's checks (static, then with the model) find nothing: no diagnostics after they ran.
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(vscode.languages.getDiagnostics(doc.uri).map((d) => d.message), []);
    note(`${lenses.length} lenses; analyses on lines ${each.map((l) => l.range.start.line + 1).join(', ')}`);
  });

  it("gets completion from the experiment schema (package.json's jsonValidation)", async () => {
    const text = doc.getText();
    const labelsAt = async (offset: number): Promise<string[]> => {
      const list = await vscode.commands.executeCommand<vscode.CompletionList>('vscode.executeCompletionItemProvider', doc.uri, doc.positionAt(offset));
      // Word-based suggestions (kind Text) come from any file; the schema's are values and properties.
      return (list?.items ?? []).filter((i) => i.kind !== vscode.CompletionItemKind.Text).map((i) => (typeof i.label === 'string' ? i.label : i.label.label).replace(/"/g, ''));
    };
    // Inside the value of the first analysis's "kind", and at the start of a key of the root object.
    const kindAt = text.indexOf('"kind": "logit_diff"') + '"kind": "'.length;
    const keyAt = text.indexOf('"metric"') + 1;
    let last: string[][] = [];
    await waitFor(async () => {
      last = [await labelsAt(kindAt), await labelsAt(keyAt)];
      // Kinds that fit the analysis as written (no other required field), and root keys not yet used.
      return last[0]!.includes('head_scores') && last[1]!.includes('prependBos') ? true : undefined;
    }, 30_000, 'JSON completion from schemas/experiment.schema.json').catch((e: Error) => {
      throw new Error(`${e.message}; kind completions: ${last[0]?.join(', ')}; key completions: ${last[1]?.join(', ')}`);
    });
    note(`completions: kind ${last[0]!.slice(0, 6).join(', ')}…; keys ${last[1]!.slice(0, 6).join(', ')}…`);
    for (const k of ['logit_diff', 'layer_dla', 'logit_lens', 'test_prompt']) assert.ok(last[0]!.includes(k), `${k} in ${last[0]!.join(', ')}`);
    for (const k of ['groups', 'prependBos']) assert.ok(last[1]!.includes(k), `${k} in ${last[1]!.join(', ')}`);
    assert.ok(!last[1]!.includes('title'), 'keys already in the object are not offered again');
  });

  it('Run (the lens) saves a run folder and shows the results panel', async () => {
    const a = await api();
    const lenses = (await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', doc.uri, 100)) ?? [];
    const run = lenses.find((l) => l.command?.title === 'Run');
    assert.ok(run?.command);
    const t0 = Date.now();
    outcome = (await vscode.commands.executeCommand<ExperimentRunOutcome>(run.command.command, ...(run.command.arguments ?? [])))!;
    assert.ok(outcome?.ran, `nothing ran: ${outcome?.message} ${JSON.stringify(outcome?.diagnostics)}`);
    note(`run ${outcome.runId} in ${Date.now() - t0} ms`);
    assert.ok(a.runsDir);
    assert.equal(path.dirname(outcome.runDir!), a.runsDir);
    for (const f of ['run.json', 'results.json', 'experiment.json']) assert.ok(fs.existsSync(path.join(outcome.runDir!, f)), `${f} in ${outcome.runDir}`);
    const panel = await waitForPanel(a, (p) => p.kind === 'experiment' && p.runId === outcome.runId, `the results panel of ${outcome.runId}`);
    state = panel.state as ExperimentState;
    const x = parseExperiment(doc.getText(), file).experiment!;
    assert.deepEqual(state.sections.map((s) => s.kind), x.analyses.map((a2) => a2.spec.kind));
    assert.equal(state.file, file);
    assert.equal(state.run?.id, outcome.runId);
    const rec = JSON.parse(fs.readFileSync(path.join(outcome.runDir!, 'run.json'), 'utf8')) as RunRecord;
    assert.equal(rec.kind, 'experiment');
    assert.deepEqual(JSON.parse(JSON.stringify(state)), JSON.parse(JSON.stringify(rec.state)), 'the panel shows run.json\'s state');
    note(`panel "${panel.title}": ${state.sections.map((s) => `${s.kind}[${s.blocks.map((b) => b.type).join('+')}]`).join(', ')}`);
  });

  it("its patching heatmaps are the engine's own sweeps (layer × tok_i, layer × head)", async () => {
    assert.ok(state, 'no results (previous test failed)');
    const a = await api();
    const x = parseExperiment(doc.getText(), file).experiment!;
    const ps = x.groups[0]!.prompts;
    const clean = await a.engine.request(EngineRequests.tokenize, { texts: ps.map((p) => p.prompt), prependBos: true });
    const corrupted = await a.engine.request(EngineRequests.tokenize, { texts: ps.map((p) => p.corrupted!), prependBos: true });
    const ans = await a.engine.request(EngineRequests.tokenize, { texts: ps.flatMap((p) => [p.answer!, p.wrong!]), prependBos: false });
    const answers = ps.map((_, i): [number, number] => [ans.tokens[2 * i]![0]!, ans.tokens[2 * i + 1]![0]!]);
    const ref = await a.engine.request(EngineRequests.analyze, { tokens: clean.tokens, corrupted_tokens: corrupted.tokens, answers });

    const resid = sweepOf(state, 'patch');
    assert.deepEqual(resid.colLabels, clean.strTokens[0]!.map((t, i) => `${t}_${i}`), 'positions labelled tok_i');
    assert.deepEqual(resid.rowLabels, ref.resid_pre_patching.map((_, l) => String(l)));
    const d1 = maxAbsDiff(resid.values.flat(), ref.resid_pre_patching.flat());
    const heads = sweepOf(state, 'patch_heads');
    assert.deepEqual([heads.rowAxis, heads.colAxis], ['layer', 'head']);
    const d2 = maxAbsDiff(heads.values.flat(), ref.head_z_patching.flat());
    note(`max |panel − engine| resid_pre ${d1.toExponential(2)}, head z ${d2.toExponential(2)} (${resid.values.length}×${resid.colLabels.length}, ${heads.values.length}×${heads.colLabels.length})`);
    assert.ok(d1 <= 1e-5, `resid_pre patching differs by ${d1}`);
    assert.ok(d2 <= 1e-5, `head z patching differs by ${d2}`);
    // Attribution patching sits beside the exact sweep, same layout.
    const cmp = state.sections.find((s) => s.kind === 'patch')!.blocks.find((b) => b.type === 'compare');
    assert.ok(cmp && cmp.type === 'compare');
    assert.deepEqual([cmp.estimate.values.length, cmp.estimate.colLabels.length], [resid.values.length, resid.colLabels.length]);
  });

  it('re-opens from the Runs view and "Open Last Result" without recomputing; exports an HTML report', async () => {
    assert.ok(outcome?.runId, 'no run (previous test failed)');
    const a = await api();
    await vscode.commands.executeCommand('mechlens.openRun', outcome.runId);
    // The Runs view opens a run in a panel titled as the run (the Run command's is 'MechLens: …').
    const reopened = await waitForPanel(a, (p) => p.title === state.title && p.runId === outcome.runId && p.kind === 'experiment', 'the run re-opened from the Runs view');
    assert.deepEqual(JSON.parse(JSON.stringify(reopened.state)), JSON.parse(JSON.stringify(state)));
    const id = await vscode.commands.executeCommand<string>('mechlens.openLastResult', { uri: doc.uri.toString() });
    assert.equal(id, outcome.runId);
    const out = path.join(path.dirname(outcome.runDir!), 'it-report.html');
    const written = await vscode.commands.executeCommand<string>('mechlens.exportReport', { runDir: outcome.runDir, out });
    assert.equal(written, out);
    const html = fs.readFileSync(out, 'utf8');
    assert.match(html, /^<!DOCTYPE html>/);
    assert.ok(html.includes(`<title>${state.title} — MechLens report</title>`), 'the report is titled like the experiment');
    assert.ok((html.match(/<svg/g) ?? []).length >= 4, 'the report draws the heatmaps');
    fs.rmSync(out);
  });

  it('"Run this analysis" runs only that analysis', async () => {
    const a = await api();
    const lenses = (await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', doc.uri, 100)) ?? [];
    const lens = lenses.filter((l) => l.command?.title === 'Run this analysis')[2]!;
    const r = (await vscode.commands.executeCommand<ExperimentRunOutcome>(lens.command!.command, ...(lens.command!.arguments ?? [])))!;
    assert.ok(r.ran);
    const p = await waitForPanel(a, (x) => x.kind === 'experiment' && x.runId === r.runId, 'the one-analysis panel');
    assert.deepEqual((p.state as ExperimentState).sections.map((s) => s.index), [2]);
  });

  it('"Run Analysis…" on a .prompts line with a clean => corrupted pair runs the patching sweeps on it', async () => {
    const a = await api();
    const pdoc = await vscode.workspace.openTextDocument(path.join(workspaceRoot().fsPath, 'basics.prompts'));
    const entry = parsePromptsFile(pdoc.getText()).prompts.find((e) => e.corrupted && e.answer && e.wrong);
    assert.ok(entry, 'basics.prompts has a clean => corrupted pair with answers');
    const editor = await vscode.window.showTextDocument(pdoc);
    editor.selection = new vscode.Selection(entry.line, 0, entry.line, 0);
    // The user picks "Activation patching sweeps" in the quick pick.
    const w = vscode.window as unknown as Record<string, unknown>;
    const orig = w['showQuickPick'];
    let offered: string[] = [];
    w['showQuickPick'] = async (items: readonly vscode.QuickPickItem[]) => {
      offered = items.map((i) => i.label);
      return items.find((i) => i.label === 'Activation patching sweeps');
    };
    let r: ExperimentRunOutcome;
    try {
      r = (await vscode.commands.executeCommand<ExperimentRunOutcome>('mechlens.runAnalysis'))!;
    } finally {
      w['showQuickPick'] = orig;
    }
    note(`offered: ${offered.join(' · ')}`);
    assert.deepEqual(offered.slice(0, 3), ['Logit difference', 'Direct logit attribution', 'Logit lens']);
    assert.ok(r.ran, `nothing ran: ${r.message}`);
    const p = await waitForPanel(a, (x) => x.kind === 'experiment' && x.runId === r.runId, 'the prompt analysis panel');
    const st = p.state as ExperimentState;
    // resid_pre, attn_out (and mlp_out unless the model is attention-only, as builtin:default is), heads.
    const attnOnly = (await a.engine.ensureModel()).cfg.attn_only;
    assert.deepEqual(st.sections.map((x) => x.kind), attnOnly ? ['patch', 'patch', 'patch_heads'] : ['patch', 'patch', 'patch', 'patch_heads']);
    const tok = (texts: string[], bos: boolean) => a.engine.request(EngineRequests.tokenize, { texts, prependBos: bos });
    const [clean, corr, ans] = await Promise.all([tok([entry.prompt.text], true), tok([entry.corrupted!.text], true), tok([entry.answer!.text, entry.wrong!.text], false)]);
    const ref = await a.engine.request(EngineRequests.analyze, { tokens: clean.tokens, corrupted_tokens: corr.tokens, answers: [[ans.tokens[0]![0]!, ans.tokens[1]![0]!]] });
    const d = maxAbsDiff(sweepOf(st, 'patch').values.flat(), ref.resid_pre_patching.flat());
    assert.ok(d <= 1e-5, `resid_pre of the prompt differs from the engine's by ${d}`);
  });

  it('a GPT-2 sample offline without GPT-2 in the Hugging Face cache: a clear error at "model", and no run', async function () {
    if (hfCacheSnapshot('gpt2') !== null) this.skip(); // GPT-2 is cached here: it would simply run
    const a = await api();
    const src = JSON.parse(fs.readFileSync(path.join(workspaceRoot().fsPath, 'contractions-re-they.experiment.json'), 'utf8')) as { model: Record<string, unknown> };
    src.model = { ...src.model, offline: true };
    const f = path.join(workspaceRoot().fsPath, 'it-gpt2-offline.experiment.json');
    fs.writeFileSync(f, JSON.stringify(src, null, 2));
    const spy = new MessageSpy();
    try {
      const gdoc = await vscode.workspace.openTextDocument(f);
      await vscode.window.showTextDocument(gdoc);
      const d = await waitFor(() => vscode.languages.getDiagnostics(gdoc.uri).find((x) => x.source === 'MechLens' && x.severity === vscode.DiagnosticSeverity.Error), 30_000, 'the model diagnostic');
      note(`diagnostic at ${d.range.start.line + 1}:${d.range.start.character + 1}: ${d.message}`);
      assert.match(gdoc.getText(d.range), /^\{\s*"name": "gpt2"/);
      assert.match(d.message, /gpt2 is not available offline: it is not in the Hugging Face cache .*"offline": true in this file.*huggingface-cli download gpt2/);
      const r = (await vscode.commands.executeCommand<ExperimentRunOutcome>('mechlens.runExperiment', { uri: gdoc.uri.toString() }))!;
      assert.equal(r.ran, false);
      assert.match(r.message ?? '', /was not run: the model "gpt2" cannot be loaded: .*not in the Hugging Face cache/);
      await waitFor(() => spy.messages.some((m) => m.level === 'error' && /cannot be loaded/.test(m.text)) || undefined, 5000, `an error notification; got ${spy.text()}`);
      assert.ok(!a.panels.some((p) => p.kind === 'experiment' && (p.state as ExperimentState).file === f), 'no results panel');
    } finally {
      spy.stop();
      fs.rmSync(f, { force: true });
    }
  });

  it('a bad experiment file: diagnostics at the offending text, and Run runs nothing', async () => {
    const a = await api();
    const bad = path.join(workspaceRoot().fsPath, 'it-bad.experiment.json');
    const text = JSON.stringify({
      title: 'Bad',
      model: 'builtin:default',
      prompts: [{ prompt: 'the cat sat on the mat', corrupted: 'the dog sat on the mat', answer: 'ab', wrong: 'o' }],
      // A schema problem (analysis 0) beside model problems: all show at once.
      analyses: [{ kind: 'logit_diff', bogus: 1 }, { kind: 'ablation', hooks: ['blocks.0.hook_nope'] }],
    }, null, 2);
    fs.writeFileSync(bad, text);
    const spy = new MessageSpy();
    try {
      const bdoc = await vscode.workspace.openTextDocument(bad);
      await vscode.window.showTextDocument(bdoc);
      const diags = await waitFor(() => {
        const ds = vscode.languages.getDiagnostics(bdoc.uri).filter((d) => d.source === 'MechLens');
        return ds.length >= 2 ? ds : undefined;
      }, 60_000, 'MechLens diagnostics of it-bad.experiment.json');
      const textAt = (d: vscode.Diagnostic) => bdoc.getText(d.range);
      const codes = diags.map((d) => (typeof d.code === 'object' ? String(d.code.value) : String(d.code)));
      note(`diagnostics: ${diags.map((d) => `${d.range.start.line + 1}:${d.range.start.character + 1} ${textAt(d)} ${d.message}`).join(' | ')}`);
      const multi = diags[codes.indexOf('multi-token-answer')];
      assert.ok(multi, `no multi-token-answer diagnostic: ${codes.join(', ')}`);
      assert.equal(textAt(multi), '"ab"');
      assert.equal(multi.severity, vscode.DiagnosticSeverity.Error);
      const hook = diags[codes.indexOf('unknown-hook')];
      assert.ok(hook, `no unknown-hook diagnostic: ${codes.join(', ')}`);
      assert.equal(textAt(hook), '"blocks.0.hook_nope"');
      // The unknown property is reported once, by MechLens or by VS Code's JSON validator (which
      // reads the same schema), never by both; and no place has two diagnostics.
      const bogusAt = bdoc.positionAt(text.indexOf('"bogus"'));
      const everyone = await waitFor(() => {
        const all = vscode.languages.getDiagnostics(bdoc.uri);
        return all.some((d) => d.range.start.line === bogusAt.line) ? all : undefined;
      }, 30_000, 'a diagnostic at "bogus"');
      await new Promise((r) => setTimeout(r, 1500)); // let the JSON validator and the re-filter settle
      const settled = vscode.languages.getDiagnostics(bdoc.uri);
      note(`all sources: ${settled.map((d) => `${d.source ?? '?'} ${d.range.start.line + 1}:${d.range.start.character + 1} ${d.message}`).join(' | ')}`);
      assert.equal(settled.filter((d) => d.range.start.line === bogusAt.line).length, 1, `one diagnostic at "bogus" (had ${everyone.length} in all)`);
      const places = settled.map((d) => `${d.range.start.line}:${d.range.start.character}`);
      assert.equal(new Set(places).size, places.length, 'each place once');

      const before = fs.existsSync(a.runsDir!) ? fs.readdirSync(a.runsDir!).length : 0;
      const r = (await vscode.commands.executeCommand<ExperimentRunOutcome>('mechlens.runExperiment', { uri: bdoc.uri.toString() }))!;
      assert.equal(r.ran, false);
      assert.match(r.message ?? '', /it-bad\.experiment\.json was not run: 3 errors/);
      assert.equal(fs.readdirSync(a.runsDir!).length, before, 'no run folder');
      await waitFor(() => spy.messages.some((m) => m.level === 'error' && /was not run/.test(m.text)) || undefined, 5000, `an error notification; got ${spy.text()}`);
      const p = await waitForPanel(a, (x) => x.title.includes('Bad') && x.kind === 'error', `the error panel; ${describePanels(a)}`);
      assert.match((p.state as { message: string }).message, /Nothing was run[\s\S]*single token/);
    } finally {
      spy.stop();
      fs.rmSync(bad, { force: true });
    }
  });
});
