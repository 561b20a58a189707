/**
 * The shipped entry (src/webview/main.ts) as one esbuild IIFE, run inside jsdom with a stubbed
 * acquireVsCodeApi(): it registers the toolkit, asks for its state, renders it with toolkit
 * controls, and re-renders on a state notification. Also keeps an eye on the bundle size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { build } from 'esbuild';
import { JSDOM, VirtualConsole } from 'jsdom';
import type { WireMessage } from '../../../src/protocol/ipc.js';
import { MOCK_HEATMAP, MOCK_INSPECT } from '../../../src/webview/mocks.js';

async function bundle(): Promise<string> {
  const res = await build({
    entryPoints: [path.join(__dirname, '../../../src/webview/main.ts')],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    logLevel: 'silent',
  });
  const out = res.outputFiles[0];
  assert.ok(out);
  return out.text;
}

test('main.ts bundle: handshake, render with toolkit controls, re-render on notification', async () => {
  const js = await bundle();
  assert.ok(js.length < 400 * 1024, `bundle is ${(js.length / 1024).toFixed(0)} KiB`);
  assert.ok(!/onnxruntime|tfjs/.test(js), 'no engine runtime in the webview bundle');

  const errors: string[] = [];
  const vc = new VirtualConsole();
  vc.on('jsdomError', (e: Error) => {
    if (!/Not implemented/.test(e.message)) errors.push(e.message);
  });
  vc.on('error', (...a: unknown[]) => errors.push(a.map(String).join(' ')));
  const dom = new JSDOM('<!DOCTYPE html><html><head></head><body class="vscode-dark"><div id="app"></div></body></html>', { runScripts: 'outside-only', pretendToBeVisual: true, virtualConsole: vc });
  const win = dom.window;
  const posted: WireMessage[] = [];
  (win as unknown as { acquireVsCodeApi: () => unknown }).acquireVsCodeApi = () => ({
    postMessage: (m: WireMessage) => posted.push(m),
    getState: () => undefined,
    setState: () => undefined,
  });
  win.eval(js);
  const req = posted.find((m) => m.kind === 'request' && m.method === 'webview/state/get');
  assert.ok(req && req.kind === 'request');
  win.dispatchEvent(new win.MessageEvent('message', { data: { kind: 'response', id: req.id, ok: true, result: MOCK_HEATMAP } }));
  await new Promise((r) => setTimeout(r, 20));
  const root = win.document.getElementById('app');
  assert.equal(root?.dataset.kind, 'heatmap');
  // The toolkit is registered in the bundle: toolbar buttons are <vscode-button>s.
  assert.ok(win.customElements.get('vscode-button'), 'vscode-button registered');
  assert.equal(root?.querySelectorAll('vscode-button').length, 12);
  win.dispatchEvent(new win.MessageEvent('message', { data: { kind: 'notification', method: 'webview/state/set', params: MOCK_INSPECT } }));
  assert.equal(root?.dataset.kind, 'inspect');
  assert.deepEqual(errors, []);
  win.close();
});
