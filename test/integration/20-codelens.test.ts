/// <reference types="mocha" />
/**
 * CodeLens: every prompt line of every samples/*.prompts file gets exactly three lenses
 * (Inspect · Attention · Logit …), each bound to a registered MechLens command with the
 * document and line as its argument. Asked through VS Code's own provider command, so this is
 * what the editor renders.
 */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { api, promptLines, samplePromptFiles, note } from './helpers';

/** The lens row the issue promises, left to right: Inspect · Attention · Logit lens (the third
 * opens the logit-lens and direct-logit-attribution panel). */
const EXPECTED_TITLES = [/^Inspect$/, /^Attention$/, /^Logit lens$/];

describe('CodeLens on samples/*.prompts', function () {
  this.timeout(60_000);

  it('gives 3 lenses (Inspect, Attention, Logit …) on each prompt line, and none elsewhere', async () => {
    await api();
    const registered = new Set(await vscode.commands.getCommands(true));
    for (const uri of await samplePromptFiles()) {
      const doc = await vscode.workspace.openTextDocument(uri);
      const name = vscode.workspace.asRelativePath(uri);
      assert.equal(doc.languageId, 'mechlens-prompts', `${name} opens as ${doc.languageId}`);
      const lenses = (await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', uri, 100)) ?? [];
      const ours = lenses.filter((l) => l.command?.command.startsWith('mechlens.'));
      const byLine = new Map<number, vscode.CodeLens[]>();
      for (const l of ours) byLine.set(l.range.start.line, [...(byLine.get(l.range.start.line) ?? []), l]);
      const expectedLines = promptLines(doc);
      assert.ok(expectedLines.length > 0, `${name} has no prompt lines`);
      assert.deepEqual([...byLine.keys()].sort((x, y) => x - y), expectedLines, `${name}: lines with lenses vs prompt lines (0-based)`);
      for (const [line, ls] of byLine) {
        const titles = ls.map((l) => l.command!.title);
        assert.equal(ls.length, 3, `${name}:${line + 1} has ${ls.length} lenses: ${JSON.stringify(titles)}`);
        EXPECTED_TITLES.forEach((re, i) => assert.match(titles[i]!, re, `${name}:${line + 1} lens ${i + 1}: ${JSON.stringify(titles)}`));
        for (const l of ls) {
          assert.ok(registered.has(l.command!.command), `lens "${l.command!.title}" runs unregistered command ${l.command!.command}`);
          // The lens names its line, so the command runs that prompt even if the cursor is elsewhere.
          const arg = l.command!.arguments?.[0] as { line?: unknown } | undefined;
          assert.equal(arg?.line, line, `lens "${l.command!.title}" on line ${line + 1} must carry its line, got ${JSON.stringify(l.command!.arguments)}`);
        }
      }
      note(`${name}: ${byLine.size} prompt lines × 3 lenses`);
    }
  });
});
