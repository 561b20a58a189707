/**
 * The state handshake of app.ts with a fake acquireVsCodeApi(): request `webview/state/get` ->
 * render; `webview/state/set` notifications re-render; UI selections persist through
 * vscode.setState; save/copy requests travel through the typed RPC.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { JSDOM } from 'jsdom';
import type { WireMessage } from '../../../src/protocol/ipc.js';
import type { PanelState } from '../../../src/protocol/webview.js';
import { App, type PersistedState, type VsCodeApi, startApp } from '../../../src/webview/app.js';
import { MOCK_ATTENTION, MOCK_HEATMAP, MOCK_INSPECT, MOCK_TOPK } from '../../../src/webview/mocks.js';
import { flush, makeDom } from './jsdomEnv.js';

interface FakeVsCode extends VsCodeApi {
  posted: WireMessage[];
  saved: unknown;
}

function fakeVsCode(initial?: unknown): FakeVsCode {
  const api: FakeVsCode = {
    posted: [],
    saved: initial,
    postMessage: (m) => {
      // postMessage structurally clones: the webview must only send plain data.
      api.posted.push(structuredClone(m) as WireMessage);
    },
    getState: () => api.saved,
    setState: (s) => {
      api.saved = structuredClone(s);
      return s;
    },
  };
  return api;
}

/** Delivers a message to the webview as the host would (a window 'message' event). */
function deliver(dom: JSDOM, data: WireMessage): void {
  dom.window.dispatchEvent(new dom.window.MessageEvent('message', { data }));
}

function requests(api: FakeVsCode, method: string) {
  return api.posted.filter((m): m is Extract<WireMessage, { kind: 'request' }> => m.kind === 'request' && m.method === method);
}

function boot(initial?: unknown) {
  const dom = makeDom();
  const root = dom.window.document.getElementById('app');
  assert.ok(root);
  const vscode = fakeVsCode(initial);
  const app = startApp({ vscode, root });
  return { dom, root, vscode, app };
}

function answerGetState(dom: JSDOM, vscode: FakeVsCode, state: PanelState): void {
  const req = requests(vscode, 'webview/state/get')[0];
  assert.ok(req, 'the webview asked for its state');
  deliver(dom, { kind: 'response', id: req.id, ok: true, result: state });
}

test('on load: requests the state, shows loading until it arrives, then renders it', async () => {
  const { dom, root, vscode, app } = boot();
  assert.equal(requests(vscode, 'webview/state/get').length, 1);
  assert.equal(root.dataset.kind, 'loading');
  assert.ok(root.querySelector('.ml-progress'));
  answerGetState(dom, vscode, MOCK_INSPECT);
  await app.ready;
  assert.equal(root.dataset.kind, 'inspect');
  assert.equal(root.querySelector('h1')?.textContent, 'Inspect prompt');
  assert.equal(app.state, MOCK_INSPECT);
  app.dispose();
});

test('webview/state/set notifications replace the view with the new snapshot', async () => {
  const { dom, root, vscode, app } = boot();
  answerGetState(dom, vscode, MOCK_INSPECT);
  await app.ready;
  deliver(dom, { kind: 'notification', method: 'webview/state/set', params: MOCK_TOPK });
  assert.equal(root.dataset.kind, 'topk');
  assert.ok(root.querySelector('.ml-topk-view'));
  deliver(dom, { kind: 'notification', method: 'webview/state/set', params: { kind: 'error', title: 'Engine crashed', message: 'worker exited with code 1' } });
  assert.equal(root.querySelector('.ml-error h1')?.textContent, 'Engine crashed');
  app.dispose();
});

test('a notification that arrives before the answer wins (the answer is older)', async () => {
  const { dom, root, vscode, app } = boot();
  deliver(dom, { kind: 'notification', method: 'webview/state/set', params: MOCK_TOPK });
  answerGetState(dom, vscode, MOCK_INSPECT);
  await app.ready;
  assert.equal(root.dataset.kind, 'topk');
  app.dispose();
});

test('a failed state request shows an error state', async () => {
  const { dom, root, vscode, app } = boot();
  const req = requests(vscode, 'webview/state/get')[0];
  assert.ok(req);
  deliver(dom, { kind: 'response', id: req.id, ok: false, error: { message: 'no panel for this webview', code: 'internal' } });
  await app.ready;
  assert.equal(root.dataset.kind, 'error');
  assert.match(root.textContent ?? '', /Could not get the panel state/);
  assert.match(root.textContent ?? '', /no panel for this webview/);
  app.dispose();
});

test('inconsistent data renders an error instead of breaking the webview', async () => {
  const { dom, root, vscode, app } = boot();
  answerGetState(dom, vscode, { ...MOCK_ATTENTION, nLayers: 3 });
  await app.ready;
  assert.equal(root.dataset.kind, 'attention');
  assert.match(root.querySelector('.ml-error')?.textContent ?? '', /patterns has 12 layers, expected nLayers = 3/);
  app.dispose();
});

test('selecting a head notifies the host and persists through vscode.setState across reloads', async () => {
  const first = boot();
  answerGetState(first.dom, first.vscode, MOCK_ATTENTION);
  await first.app.ready;
  first.root.querySelector('.ml-thumb[data-layer="9"][data-head="6"]')?.dispatchEvent(new first.dom.window.MouseEvent('click'));
  const note = first.vscode.posted.find((m) => m.kind === 'notification' && m.method === 'webview/head/select');
  assert.deepEqual(note, { kind: 'notification', method: 'webview/head/select', params: { layer: 9, head: 6 } });
  const persisted = first.vscode.saved as PersistedState;
  assert.deepEqual(persisted.ui.attention, { layer: 9, head: 6, reverse: false, pinned: null });
  first.app.dispose();

  // The panel is re-created (hidden and shown): VS Code hands back the saved state.
  const second = boot(persisted);
  answerGetState(second.dom, second.vscode, MOCK_ATTENTION);
  await second.app.ready;
  assert.ok(second.root.querySelector('.ml-thumb[data-layer="9"][data-head="6"]')?.classList.contains('ml-selected'));
  // A new snapshot of the same kind keeps the selection too.
  deliver(second.dom, { kind: 'notification', method: 'webview/state/set', params: MOCK_ATTENTION });
  assert.match(second.root.querySelector('.ml-heatmap-title')?.textContent ?? '', /^L9H6/);
  second.app.dispose();
});

test('garbage in getState() is ignored', async () => {
  const { dom, root, vscode, app } = boot({ v: 99, junk: true });
  answerGetState(dom, vscode, MOCK_ATTENTION);
  await app.ready;
  assert.ok(root.querySelector('.ml-thumb[data-layer="0"][data-head="0"]')?.classList.contains('ml-selected'));
  app.dispose();
});

test('export buttons send webview/file/save and webview/clipboard/copy requests and show the result', async () => {
  const { dom, root, vscode, app } = boot();
  answerGetState(dom, vscode, MOCK_HEATMAP);
  await app.ready;
  const fig = root.querySelector('.ml-heatmap');
  const btn = (label: string) => [...(fig?.querySelectorAll('button') ?? [])].find((b) => b.textContent === label);
  btn('SVG')?.dispatchEvent(new dom.window.MouseEvent('click'));
  const save = requests(vscode, 'webview/file/save')[0];
  assert.ok(save);
  const params = save.params as { suggestedName: string; format: string; content: string };
  assert.equal(params.format, 'svg');
  assert.match(params.content, /^<\?xml/);
  deliver(dom, { kind: 'response', id: save.id, ok: true, result: '/home/me/fig.svg' });
  await flush(1);
  assert.equal(fig?.querySelector('.ml-status')?.textContent, 'Saved /home/me/fig.svg');

  btn('CSV')?.dispatchEvent(new dom.window.MouseEvent('click'));
  const copy = requests(vscode, 'webview/clipboard/copy')[0];
  assert.ok(copy);
  assert.match((copy.params as { text: string }).text, /^layer\/position,/);
  deliver(dom, { kind: 'response', id: copy.id, ok: false, error: { message: 'clipboard unavailable', code: 'internal' } });
  await flush(1);
  assert.equal(fig?.querySelector('.ml-status')?.textContent, 'Copying failed: clipboard unavailable');
  app.dispose();
});

test('a theme change (body class) re-renders so canvases pick up the new colours', async () => {
  const { dom, root, vscode, app } = boot();
  answerGetState(dom, vscode, MOCK_HEATMAP);
  await app.ready;
  const before = root.firstElementChild;
  dom.window.document.body.className = 'vscode-dark';
  await flush(1);
  assert.notEqual(root.firstElementChild, before);
  assert.equal(root.dataset.kind, 'heatmap');
  app.dispose();
});

test('after dispose, messages are ignored and nothing throws', async () => {
  const { dom, root, vscode, app } = boot();
  answerGetState(dom, vscode, MOCK_INSPECT);
  await app.ready;
  app.dispose();
  assert.ok(app instanceof App);
  deliver(dom, { kind: 'notification', method: 'webview/state/set', params: MOCK_TOPK });
  assert.equal(root.dataset.kind, 'inspect');
});
