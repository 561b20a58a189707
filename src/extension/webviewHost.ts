/**
 * What every MechLens webview (panels and the Predictions view) shares on the host side: the
 * HTML shell with a strict CSP (nonce'd script, styles from the extension only), the resource
 * roots (dist/ and media/ only), and one RpcEndpoint over postMessage answering the webview's
 * requests of src/protocol/webview.ts: its current state, saving an exported file, copying text.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as crypto from 'node:crypto';
import { RpcEndpoint } from '../protocol/rpc.js';
import type { WireMessage } from '../protocol/ipc.js';
import { WebviewNotifications, WebviewRequests, type PanelState, type SaveFileParams } from '../protocol/webview.js';

export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
  return {
    enableScripts: true,
    enableCommandUris: false,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist'), vscode.Uri.joinPath(extensionUri, 'media')],
  };
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The shell the webview bundle (dist/webview/main.js) renders into. `data-view` tells the bundle
 * where it is ('panel' or 'predictions'); it then pulls its state with webview/state/get.
 */
export function webviewHtml(webview: vscode.Webview, extensionUri: vscode.Uri, opts: { title: string; view: 'panel' | 'predictions' }): string {
  const nonce = crypto.randomBytes(16).toString('base64');
  const script = vscode.Uri.joinPath(extensionUri, 'dist', 'webview', 'main.js');
  const css = vscode.Uri.joinPath(extensionUri, 'media', 'mechlens.css');
  const csp = [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${webview.cspSource} 'nonce-${nonce}'`,
    `img-src ${webview.cspSource} data:`,
    `font-src ${webview.cspSource}`,
  ].join('; ');
  // Without the bundle (a build that skipped it) say so instead of showing an empty page.
  const bundleMissing = !fs.existsSync(script.fsPath);
  const fallback = bundleMissing
    ? '<p class="mechlens-missing">The MechLens webview bundle (dist/webview/main.js) is missing: run <code>npm run build</code> and reopen this panel.</p>'
    : '<p class="mechlens-boot">Loading…</p>';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${webview.asWebviewUri(css).toString()}" nonce="${nonce}">
<title>${escapeHtml(opts.title)}</title>
</head>
<body data-view="${opts.view}">
<div id="app">${fallback}</div>
${bundleMissing ? '' : `<script nonce="${nonce}" src="${webview.asWebviewUri(script).toString()}"></script>`}
</body>
</html>`;
}

const FILTERS: Record<SaveFileParams['format'], Record<string, string[]>> = {
  png: { 'PNG image': ['png'] },
  svg: { 'SVG image': ['svg'] },
  csv: { CSV: ['csv'] },
  json: { JSON: ['json'] },
};

export interface WebviewConnection extends vscode.Disposable {
  readonly rpc: RpcEndpoint;
  /** Pushes a complete snapshot (the webview also pulls one when it loads). */
  push(state: PanelState): void;
  /** Tells the webview which saved run it shows (it keeps it for a window reload). */
  pushRunId(runId: string | undefined, locked?: boolean): void;
}

/**
 * Connects a webview: answers its requests with `getState()` and the host services, and pushes
 * snapshots. `defaultFolder` is where save dialogs open.
 */
export function connectWebview(
  webview: vscode.Webview,
  getState: () => PanelState,
  opts: { defaultFolder: () => vscode.Uri | undefined; log: vscode.LogOutputChannel; onSelectHead?: (layer: number, head: number) => void; onRunId?: () => { runId: string | undefined; locked: boolean } },
): WebviewConnection {
  const subscriptions: vscode.Disposable[] = [];
  let open = true;
  const rpc = new RpcEndpoint({
    post: (m: WireMessage) => {
      // postMessage rejects when the webview is gone: nothing to deliver then.
      if (open) void Promise.resolve(webview.postMessage(m)).catch(() => undefined);
    },
    onMessage: (fn) => {
      const d = webview.onDidReceiveMessage(fn);
      subscriptions.push(d);
      return () => d.dispose();
    },
  });
  rpc.onRequest(WebviewRequests.getState, () => getState());
  rpc.onRequest(WebviewRequests.getRunId, () => {
    const r = opts.onRunId?.();
    return { runId: r?.runId ?? null, locked: r?.locked ?? false };
  });
  rpc.onRequest(WebviewRequests.copyText, async (p) => {
    await vscode.env.clipboard.writeText(String(p.text));
  });
  rpc.onRequest(WebviewRequests.saveFile, async (p) => {
    const format = p.format in FILTERS ? p.format : 'json';
    const name = String(p.suggestedName || `mechlens.${format}`).replace(/[\\/:*?"<>|]/g, '_');
    const folder = opts.defaultFolder();
    const target = await vscode.window.showSaveDialog({
      ...(folder ? { defaultUri: vscode.Uri.joinPath(folder, name) } : {}),
      filters: FILTERS[format],
      title: `Save ${name}`,
    });
    if (!target) return null;
    const bytes = format === 'png' ? Buffer.from(p.content, 'base64') : Buffer.from(p.content, 'utf8');
    await vscode.workspace.fs.writeFile(target, bytes);
    opts.log.info(`saved ${target.fsPath} (${bytes.length} bytes)`);
    return target.fsPath;
  });
  subscriptions.push({
    dispose: rpc.onNotification(WebviewNotifications.selectHead, (p) => opts.onSelectHead?.(p.layer, p.head)),
  });
  return {
    rpc,
    push: (state) => rpc.notify(WebviewNotifications.setState, state),
    pushRunId: (runId, locked) => rpc.notify(WebviewNotifications.setRunId, { runId: runId ?? null, locked: locked ?? false }),
    dispose: () => {
      open = false;
      rpc.dispose('the webview was closed');
      for (const d of subscriptions) d.dispose();
    },
  };
}
