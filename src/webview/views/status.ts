/** Error and loading states. */
import type { ErrorState, LoadingState } from '../../protocol/webview.js';
import type { ViewContext } from '../context.js';
import { h } from '../dom.js';
import { progressRing } from '../ui/controls.js';

export function renderError(st: ErrorState, ctx: ViewContext): HTMLElement {
  const { doc } = ctx;
  return h(doc, 'div', { class: 'ml-view ml-state ml-error', role: 'alert' }, h(doc, 'div', { class: 'ml-state-icon', 'aria-hidden': 'true' }, '!'), h(doc, 'div', undefined, h(doc, 'h1', undefined, st.title), h(doc, 'pre', { class: 'ml-message' }, st.message)));
}

export function renderLoading(st: LoadingState, ctx: ViewContext): HTMLElement {
  const { doc } = ctx;
  return h(doc, 'div', { class: 'ml-view ml-state ml-loading', 'aria-busy': 'true' }, progressRing(doc), h(doc, 'div', undefined, h(doc, 'h1', undefined, st.title), h(doc, 'p', { class: 'ml-message' }, st.message)));
}
