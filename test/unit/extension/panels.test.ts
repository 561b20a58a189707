/**
 * Panel placement and reuse (src/extension/panels.ts) against a vscode stand-in: one results
 * column, a later result of a kind replaces the earlier panel unless it is locked or still
 * computing, and a window reload reopens the run a panel showed.
 */
import { test, beforeEach } from 'node:test';
import * as assert from 'node:assert/strict';
import * as mock from './vscodeMock.js';
mock.install();
import type { PanelManager as PanelManagerT } from '../../../src/extension/panels.js';
import type { PanelState } from '../../../src/protocol/webview.js';
import type { RunRecord } from '../../../src/protocol/runs.js';

// Loaded after install() so its `import 'vscode'` gets the stand-in.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { PanelManager, slotOf } = require('../../../src/extension/panels.js') as typeof import('../../../src/extension/panels.js');

const log = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined, trace: () => undefined } as never;
const extensionUri = mock.Uri.file('/ext') as never;
const error = (title: string, message = 'x'): PanelState => ({ kind: 'error', title, message });
const loading = (title: string): PanelState => ({ kind: 'loading', title, message: 'Running…' });

let panels: PanelManagerT;
beforeEach(() => {
  mock.panels.length = 0;
  panels = new PanelManager(extensionUri, log, () => undefined);
});

/** The runId notifications the host sent to a panel's webview. */
const runIdsSent = (p: mock.FakeWebviewPanel): unknown[] =>
  p.posted.filter((m) => (m as { method?: string }).method === 'webview/run/set').map((m) => (m as { params: { runId: unknown } }).params.runId);

test('keys map to slots by their kind prefix', () => {
  assert.equal(slotOf('inspect:["a"]'), 'inspect');
  assert.equal(slotOf('experiment:/w/x.experiment.json#2'), 'experiment');
  assert.equal(slotOf('run:abc'), 'run');
});

test('a later Inspect replaces the earlier Inspect panel: one panel, retitled, showing the new result', () => {
  const a = panels.open('inspect:a', 'MechLens: Inspect — a', error('a'));
  a.runId = 'inspect-1';
  const b = panels.open('inspect:b', 'MechLens: Inspect — b', error('b'));
  assert.equal(b, a, 'the same panel object');
  assert.equal(mock.panels.length, 1, 'no second webview panel');
  assert.equal(mock.panels[0]!.title, 'MechLens: Inspect — b');
  const snap = panels.list();
  assert.equal(snap.length, 1);
  assert.equal(snap[0]!.title, 'MechLens: Inspect — b');
  assert.equal(snap[0]!.runId, undefined, 'the old run id is dropped');
  assert.deepEqual(runIdsSent(mock.panels[0]!), ['inspect-1', null], 'the webview is told, so that a reload does not reopen the old run');
  panels.setLock(true, a.id);
  const last = mock.panels[0]!.posted.at(-1) as { params: unknown };
  assert.deepEqual(last.params, { runId: null, locked: true }, 'and keeps the lock for a reload');
});

test('results of other kinds open in the same results column, not a new column each', () => {
  panels.open('inspect:a', 'Inspect', error('a'));
  mock.panels[0]!.viewColumn = 3; // the user moved it
  panels.open('attention:a', 'Attention', error('a'));
  panels.open('attribution:a', 'Logit lens', error('a'));
  assert.equal(mock.panels.length, 3);
  assert.deepEqual(
    mock.panels.map((p) => p.viewColumn),
    [3, 3, 3],
  );
});

test('a locked panel is kept: the next result of its kind opens a new panel; unlocking makes it reusable again', () => {
  const a = panels.open('inspect:a', 'Inspect a', error('a'));
  assert.equal(panels.setLock(true)?.id, a.id, 'the focused panel is locked');
  assert.equal(mock.panels[0]!.title, '🔒 Inspect a', 'the title shows the lock');
  assert.equal(panels.list()[0]!.title, 'Inspect a', 'the snapshot title stays the plain title');
  const b = panels.open('inspect:b', 'Inspect b', error('b'));
  assert.notEqual(b.id, a.id);
  assert.equal(mock.panels.length, 2);
  assert.equal(mock.panels[0]!.title, '🔒 Inspect a', 'the locked panel still shows a');
  panels.setLock(false, a.id);
  assert.equal(mock.panels[0]!.title, 'Inspect a');
  // Two unlocked Inspect panels now: the next Inspect takes one of them, not a third.
  panels.open('inspect:c', 'Inspect c', error('c'));
  assert.equal(mock.panels.length, 2);
});

test('a panel that is still computing is not taken over', () => {
  panels.open('inspect:a', 'Inspect a', loading('a'));
  panels.open('inspect:b', 'Inspect b', error('b'));
  assert.equal(mock.panels.length, 2);
});

test('the same key reveals its panel instead of opening another', () => {
  const a = panels.open('attention:a', 'A', error('a'));
  panels.open('inspect:x', 'X', error('x'));
  assert.equal(panels.open('attention:a', 'A', error('a')), a);
  assert.equal(mock.panels.length, 2);
  assert.equal(mock.panels[0]!.active, true);
});

test('setLock without a focused panel answers undefined', () => {
  assert.equal(panels.setLock(true), undefined);
});

test('after a window reload a panel reopens the run it showed, or says why it cannot', async () => {
  const rec = { id: 'inspect-7', title: 'MechLens: Inspect — hi', state: error('MechLens: Inspect — hi', 'the saved state') } as unknown as RunRecord;
  const read = (id: string): Promise<RunRecord> => (id === rec.id ? Promise.resolve(rec) : Promise.reject(new Error(`no run ${id}`)));

  await panels.restore(mock.window.createWebviewPanel('mechlens.panel', 'MechLens: Inspect — hi', { viewColumn: 2 }) as never, { runId: 'inspect-7', locked: true }, read);
  await panels.restore(mock.window.createWebviewPanel('mechlens.panel', 'Gone', { viewColumn: 2 }) as never, { runId: 'deleted-1' }, read);
  await panels.restore(mock.window.createWebviewPanel('mechlens.panel', 'Busy', { viewColumn: 2 }) as never, undefined, read);
  await panels.restore(mock.window.createWebviewPanel('mechlens.panel', 'Odd', { viewColumn: 2 }) as never, { runId: '../../etc/passwd' }, read);

  const [ok, gone, busy, odd] = panels.list();
  assert.equal(ok!.runId, 'inspect-7');
  assert.deepEqual(ok!.state, rec.state);
  assert.equal(ok!.locked, true, 'a locked panel stays locked across the reload');
  assert.equal(gone!.kind, 'error');
  assert.match((gone!.state as { message: string }).message, /run deleted-1, which can no longer be read \(no run deleted-1\)/);
  assert.match((busy!.state as { message: string }).message, /still computing .* when the window reloaded/);
  assert.equal(odd!.kind, 'error', 'a run id that is not a plain name is not read');
  assert.equal(odd!.runId, undefined);
  // The restored run panel is locked: the next re-opened run opens a panel of its own.
  panels.openRun({ ...rec, id: 'inspect-8', title: 'Other' } as unknown as RunRecord);
  assert.equal(panels.list().length, 5);
});

test('after every panel is closed the next opens beside the editor, not in a column remembered from before', () => {
  panels.open('inspect:a', 'Inspect a', error('a'));
  mock.panels[0]!.viewColumn = 1; // e.g. "Close All Editors" left it in the editor's column
  mock.panels[0]!.dispose();
  panels.open('attention:b', 'Attention b', error('b'));
  assert.equal(mock.panels[1]!.viewColumn, 2, 'beside the editor');
});
