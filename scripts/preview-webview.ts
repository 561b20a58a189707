/**
 * Preview of every MechLens webview outside VS Code.
 *
 *   node --import tsx scripts/preview-webview.ts [--out /tmp/mechlens-preview] [--screenshots]
 *
 * Bundles src/webview/main.ts with esbuild's JS API (the same IIFE the extension ships), and
 * writes one page per mock state and theme, <state>-<light|dark>.html, whose stubbed
 * acquireVsCodeApi() answers `webview/state/get` with the mock (and logs save/copy requests).
 * The pages set the VS Code theme variables themselves and carry a CSP like the real panels'
 * (nonce'd scripts, no inline style attributes in markup), so CSP mistakes show up here too.
 * The `<meta property="csp-nonce">` is what the toolkit (FAST) reads to nonce the one <style>
 * element it creates (a :focus-visible feature test); real panels need it as well.
 *
 * --screenshots drives /usr/bin/chromium through playwright-core: a full-page PNG per page,
 * plus hover shots (heatmap cell, attention token, line chart), and it prints any console
 * errors or CSP violations.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build } from 'esbuild';
import { MOCK_STATES } from '../src/webview/mocks.js';

const args = process.argv.slice(2);
const outIdx = args.indexOf('--out');
const OUT = outIdx >= 0 && args[outIdx + 1] ? path.resolve(args[outIdx + 1] ?? '') : '/tmp/mechlens-preview';
const ROOT = path.resolve(__dirname, '..');
const NONCE = 'mechlensPreviewNonce';

/** VS Code "Light Modern" / "Dark Modern" values of the variables MechLens and the toolkit read. */
const THEMES: Record<'light' | 'dark', { bodyClass: string; vars: Record<string, string> }> = {
  light: {
    bodyClass: 'vscode-light',
    vars: {
      'editor-background': '#ffffff',
      'editor-foreground': '#3b3b3b',
      foreground: '#3b3b3b',
      descriptionForeground: '#6f6f6f',
      focusBorder: '#005fb8',
      'panel-border': '#e5e5e5',
      'badge-background': '#cccccc',
      'badge-foreground': '#3b3b3b',
      'button-background': '#005fb8',
      'button-foreground': '#ffffff',
      'button-hoverBackground': '#0258a8',
      'button-border': '#0000001a',
      'button-secondaryBackground': '#e5e5e5',
      'button-secondaryForeground': '#3b3b3b',
      'button-secondaryHoverBackground': '#cccccc',
      'textCodeBlock-background': '#f2f2f2',
      'editorHoverWidget-background': '#f8f8f8',
      'editorHoverWidget-foreground': '#3b3b3b',
      'editorHoverWidget-border': '#c8c8c8',
      'charts-lines': 'rgba(97, 97, 97, 0.35)',
      'charts-blue': '#1a85ff',
      'charts-red': '#e51400',
      'charts-green': '#388a34',
      'list-hoverBackground': '#f2f2f2',
      'editor-selectionHighlightBackground': '#add6ff80',
      'dropdown-background': '#ffffff',
      'dropdown-foreground': '#3b3b3b',
      'dropdown-border': '#cecece',
      'checkbox-background': '#f8f8f8',
      'checkbox-border': '#cecece',
      'checkbox-foreground': '#3b3b3b',
      'progressBar-background': '#005fb8',
      errorForeground: '#f85149',
      'inputValidation-errorBackground': '#f2dede',
      'font-family': 'system-ui, -apple-system, "Segoe UI", Ubuntu, "Droid Sans", sans-serif',
      'font-size': '13px',
      'font-weight': 'normal',
      'editor-font-family': '"DejaVu Sans Mono", Menlo, Consolas, monospace',
    },
  },
  dark: {
    bodyClass: 'vscode-dark',
    vars: {
      'editor-background': '#1f1f1f',
      'editor-foreground': '#cccccc',
      foreground: '#cccccc',
      descriptionForeground: '#9d9d9d',
      focusBorder: '#0078d4',
      'panel-border': '#2b2b2b',
      'badge-background': '#616161',
      'badge-foreground': '#f8f8f8',
      'button-background': '#0078d4',
      'button-foreground': '#ffffff',
      'button-hoverBackground': '#026ec1',
      'button-border': '#ffffff12',
      'button-secondaryBackground': '#313131',
      'button-secondaryForeground': '#cccccc',
      'button-secondaryHoverBackground': '#3c3c3c',
      'textCodeBlock-background': '#2b2b2b',
      'editorHoverWidget-background': '#202020',
      'editorHoverWidget-foreground': '#cccccc',
      'editorHoverWidget-border': '#454545',
      'charts-lines': 'rgba(204, 204, 204, 0.25)',
      'charts-blue': '#3794ff',
      'charts-red': '#f14c4c',
      'charts-green': '#89d185',
      'list-hoverBackground': '#2a2d2e',
      'editor-selectionHighlightBackground': '#add6ff26',
      'dropdown-background': '#313131',
      'dropdown-foreground': '#cccccc',
      'dropdown-border': '#3c3c3c',
      'checkbox-background': '#313131',
      'checkbox-border': '#3c3c3c',
      'checkbox-foreground': '#cccccc',
      'progressBar-background': '#0078d4',
      errorForeground: '#f85149',
      'inputValidation-errorBackground': '#5a1d1d',
      'font-family': 'system-ui, -apple-system, "Segoe UI", Ubuntu, "Droid Sans", sans-serif',
      'font-size': '13px',
      'font-weight': 'normal',
      'editor-font-family': '"DejaVu Sans Mono", Menlo, Consolas, monospace',
    },
  },
};

/** The stub VS Code API: answers requests like the host would, logs what the webview sends. */
function stubScript(stateJson: string): string {
  return `
window.__mechlensLog = [];
window.acquireVsCodeApi = () => {
  let saved = undefined;
  const STATE = ${stateJson};
  window.__mechlensState = STATE;
  const reply = (id, result) => setTimeout(() => window.postMessage({ kind: 'response', id, ok: true, result }, '*'), 5);
  return {
    postMessage(m) {
      window.__mechlensLog.push(m);
      if (m.kind !== 'request') { console.log('[webview -> host]', m.method, JSON.stringify(m.params)); return; }
      if (m.method === 'webview/state/get') reply(m.id, STATE);
      else if (m.method === 'webview/file/save') { console.log('[save]', m.params.suggestedName, m.params.format, m.params.content.length + ' chars'); reply(m.id, '/tmp/' + m.params.suggestedName); }
      else if (m.method === 'webview/clipboard/copy') { console.log('[copy]', m.params.text.slice(0, 80)); reply(m.id, null); }
      else setTimeout(() => window.postMessage({ kind: 'response', id: m.id, ok: false, error: { message: 'no handler ' + m.method, code: 'internal' } }, '*'), 5);
    },
    getState() { return saved; },
    setState(s) { saved = s; return s; },
  };
};`;
}

function page(name: string, theme: 'light' | 'dark', stateJson: string): string {
  const t = THEMES[theme];
  const vars = Object.entries(t.vars)
    .map(([k, v]) => `  --vscode-${k}: ${v};`)
    .join('\n');
  // Like the real panel: scripts need the nonce, styles come from files or the nonce'd block.
  const csp = `default-src 'none'; img-src data: file:; font-src file:; style-src file: 'nonce-${NONCE}'; script-src 'nonce-${NONCE}' file:;`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<meta property="csp-nonce" content="${NONCE}">
<title>MechLens preview: ${name} (${theme})</title>
<style nonce="${NONCE}">
html {
${vars}
}
</style>
<link rel="stylesheet" href="mechlens.css">
</head>
<body class="${t.bodyClass}">
<div id="app"></div>
<script nonce="${NONCE}">${stubScript(stateJson)}</script>
<script nonce="${NONCE}" src="main.js"></script>
</body>
</html>
`;
}

async function screenshots(pages: { file: string; name: string; theme: string }[]): Promise<void> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  try {
    for (const p of pages) {
      const narrow = p.name.startsWith('topk');
      const ctx = await browser.newContext({ viewport: { width: narrow ? 360 : 1200, height: 900 }, deviceScaleFactor: 1 });
      const pg = await ctx.newPage();
      const problems: string[] = [];
      pg.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
      });
      pg.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      await pg.addInitScript(() => document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.sourceFile}:${e.lineNumber}`)));
      await pg.goto(`file://${p.file}`);
      await pg.waitForTimeout(400);
      const shot = p.file.replace(/\.html$/, '.png');
      await pg.screenshot({ path: shot, fullPage: true });
      console.log(`${shot}${problems.length ? `\n  ${problems.join('\n  ')}` : ''}`);
      // Hover states.
      if (p.name === 'heatmap' || p.name === 'attribution' || p.name === 'attention') {
        const canvas = pg.locator('canvas.ml-heatmap-canvas').first();
        const box = await canvas.boundingBox();
        if (box) {
          const pos = p.name === 'attention' ? { x: box.width * 0.45, y: box.height * 0.5 } : { x: box.width * 0.3, y: box.height * 0.45 };
          await canvas.hover({ position: pos });
          await pg.waitForTimeout(100);
          // The figure holds the canvas, the hover box and the tooltip.
          await pg.locator('.ml-heatmap').first().screenshot({ path: p.file.replace(/\.html$/, '-hover.png') });
        }
      }
      if (p.name === 'attention') {
        const tok = pg.locator('.ml-attn-tokens .ml-token').last();
        await tok.scrollIntoViewIfNeeded();
        await tok.hover();
        await pg.waitForTimeout(100);
        await pg.screenshot({ path: p.file.replace(/\.html$/, '-tokens.png'), fullPage: false });
      }
      if (p.name === 'attribution') {
        const svg = pg.locator('svg.ml-svg').first();
        await svg.scrollIntoViewIfNeeded();
        const box = await svg.boundingBox();
        if (box) {
          await pg.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.3);
          await pg.waitForTimeout(100);
          await pg.screenshot({ path: p.file.replace(/\.html$/, '-lens.png'), fullPage: false });
        }
      }
      // A narrow editor column: labels must thin or rotate, never overlap.
      if (['heatmap', 'attribution', 'attention', 'inspect'].includes(p.name) && p.theme === 'light') {
        await pg.setViewportSize({ width: 640, height: 900 });
        await pg.waitForTimeout(300);
        await pg.screenshot({ path: p.file.replace(/\.html$/, '-narrow.png'), fullPage: true });
      }
      await ctx.close();
    }
  } finally {
    await browser.close();
  }
}

async function main(): Promise<void> {
  fs.mkdirSync(OUT, { recursive: true });
  const res = await build({
    entryPoints: [path.join(ROOT, 'src/webview/main.ts')],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    logLevel: 'warning',
  });
  const js = res.outputFiles[0];
  if (!js) throw new Error('esbuild produced no output');
  fs.writeFileSync(path.join(OUT, 'main.js'), js.contents);
  fs.copyFileSync(path.join(ROOT, 'media/mechlens.css'), path.join(OUT, 'mechlens.css'));
  console.log(`bundle: ${(js.contents.length / 1024).toFixed(1)} KiB minified`);

  const pages: { file: string; name: string; theme: string }[] = [];
  const links: string[] = [];
  for (const [name, state] of Object.entries(MOCK_STATES)) {
    // '<' escaped so a token like '</script>' in a mock cannot end the script element.
    const json = JSON.stringify(state).replace(/</g, '\\u003c');
    for (const theme of ['light', 'dark'] as const) {
      const file = path.join(OUT, `${name}-${theme}.html`);
      fs.writeFileSync(file, page(name, theme, json));
      pages.push({ file, name, theme });
      links.push(`<li><a href="${name}-${theme}.html">${name} (${theme})</a></li>`);
    }
  }
  fs.writeFileSync(path.join(OUT, 'index.html'), `<!DOCTYPE html><meta charset="UTF-8"><title>MechLens previews</title><ul>${links.join('')}</ul>\n`);
  console.log(`wrote ${pages.length} pages to ${OUT}`);
  if (args.includes('--screenshots')) await screenshots(pages);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
