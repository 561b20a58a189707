/**
 * A jsdom document for webview tests. Components take the Document explicitly, so nothing is
 * installed on globalThis. jsdom has no canvas: getContext() returns null (its "not
 * implemented" report is silenced here) and components skip drawing, which is what we test.
 */
import { JSDOM, VirtualConsole } from 'jsdom';
import { PAPER_THEME, type ChartTheme } from '../../../src/webview/colors.js';
import type { HostActions, ViewContext } from '../../../src/webview/context.js';
import { memoryUiStore } from '../../../src/webview/context.js';
import { Disposables } from '../../../src/webview/dom.js';
import type { SaveFileParams } from '../../../src/protocol/webview.js';

export function makeDom(bodyClass = 'vscode-light'): JSDOM {
  const vc = new VirtualConsole();
  vc.on('jsdomError', (e: Error) => {
    if (!/Not implemented/.test(e.message)) console.error(e);
  });
  return new JSDOM(`<!DOCTYPE html><html><head></head><body class="${bodyClass}"><div id="app"></div></body></html>`, { virtualConsole: vc, pretendToBeVisual: true });
}

export interface FakeHost extends HostActions {
  saved: SaveFileParams[];
  copied: string[];
  selected: { layer: number; head: number }[];
}

export function fakeHost(): FakeHost {
  const h: FakeHost = {
    saved: [],
    copied: [],
    selected: [],
    saveFile: async (p) => {
      h.saved.push(p);
      return `/tmp/${p.suggestedName}`;
    },
    copyText: async (text) => {
      h.copied.push(text);
    },
    selectHead: (layer, head) => {
      h.selected.push({ layer, head });
    },
  };
  return h;
}

export function makeCtx(doc: Document, theme: ChartTheme = PAPER_THEME): ViewContext & { host: FakeHost; ui: ReturnType<typeof memoryUiStore> } {
  return { doc, host: fakeHost(), ui: memoryUiStore(), theme, disposables: new Disposables() };
}

/** Lets pending promise callbacks run. */
export function flush(ms = 0): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function texts(root: ParentNode, selector: string): string[] {
  return [...root.querySelectorAll(selector)].map((e) => (e.textContent ?? '').trim());
}
