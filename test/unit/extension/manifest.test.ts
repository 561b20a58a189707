/**
 * package.json's contributions match the code: every contributed command is registered and every
 * registered command contributed, menus and views name real ids, the language files exist.
 * (The real-VS-Code suite checks the running extension; this catches drift in plain node.)
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.join(__dirname, '..', '..', '..');
interface Manifest {
  main: string;
  activationEvents: string[];
  scripts: Record<string, string>;
  contributes: {
    commands: { command: string; title: string }[];
    menus: Record<string, { command: string }[]>;
    languages: { id: string; extensions: string[]; configuration: string }[];
    grammars: { language: string; path: string; scopeName: string }[];
    views: Record<string, { id: string; name: string; type?: string }[]>;
    viewsContainers: { activitybar: { id: string; title: string }[] };
    configuration: { properties: Record<string, { default: unknown }> };
  };
}
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as Manifest;
const extSrc = fs.readdirSync(path.join(root, 'src', 'extension')).filter((f) => f.endsWith('.ts')).map((f) => fs.readFileSync(path.join(root, 'src', 'extension', f), 'utf8')).join('\n');

test('every contributed command is registered, and every registered command contributed', () => {
  const contributed = pkg.contributes.commands.map((c) => c.command).sort();
  const registered = [...extSrc.matchAll(/reg\('(mechlens\.[A-Za-z.]+)'/g)].map((m) => m[1]!).sort();
  assert.deepEqual(registered, contributed);
  for (const c of pkg.contributes.commands) assert.match(c.title, /^MechLens: /, `${c.command} title`);
  for (const [menu, items] of Object.entries(pkg.contributes.menus)) {
    for (const it of items) assert.ok(contributed.includes(it.command), `${menu} names ${it.command}`);
  }
  const ctx = pkg.contributes.menus['editor/context']!.map((m) => m.command);
  assert.ok(ctx.includes('mechlens.inspectPrompt'));
});

test('views are in the MechLens container and their ids are used by the code', () => {
  const c = pkg.contributes.viewsContainers.activitybar.find((x) => x.title === 'MechLens');
  assert.ok(c);
  const views = pkg.contributes.views[c.id]!;
  assert.deepEqual(views.map((v) => v.name), ['Model', 'Hook Points', 'Runs', 'Predictions']);
  assert.equal(views.find((v) => v.name === 'Predictions')?.type, 'webview');
  for (const v of views) assert.ok(extSrc.includes(`'${v.id}'`), `${v.id} is not used in src/extension`);
});

test('language, grammar and settings', () => {
  const lang = pkg.contributes.languages.find((l) => l.id === 'mechlens-prompts')!;
  assert.deepEqual(lang.extensions, ['.prompts']);
  const conf = JSON.parse(fs.readFileSync(path.join(root, lang.configuration), 'utf8')) as { comments: { lineComment: string } };
  assert.equal(conf.comments.lineComment, '#');
  const g = pkg.contributes.grammars.find((x) => x.language === 'mechlens-prompts')!;
  const grammar = JSON.parse(fs.readFileSync(path.join(root, g.path), 'utf8')) as { scopeName: string };
  assert.equal(grammar.scopeName, g.scopeName);
  assert.ok(pkg.activationEvents.includes('onLanguage:mechlens-prompts'));
  assert.equal(pkg.main, './dist/extension.js');
  const props = pkg.contributes.configuration.properties;
  assert.equal(props['mechlens.model']?.default, 'builtin:default');
  assert.equal(props['mechlens.processing']?.default, 'default');
  assert.equal(props['mechlens.device']?.default, 'auto');
  assert.equal(typeof props['mechlens.allowDownload']?.default, 'boolean');
  assert.equal(pkg.scripts.build, 'node esbuild.mjs');
  assert.match(pkg.scripts.package ?? '', /vsce package --target linux-x64/);
});
