/** Pieces every panel shares: the header line and titled sections. */
import { type Child, h } from '../dom.js';

/** `<header>` with the panel title, the model as a badge, and optional extra items on the right. */
export function panelHeader(doc: Document, title: string, model: string | null, ...extra: Child[]): HTMLElement {
  return h(doc, 'header', { class: 'ml-header' }, h(doc, 'h1', undefined, title), model ? h(doc, 'span', { class: 'ml-badge', title: 'model' }, model) : null, h(doc, 'span', { class: 'ml-spacer' }), ...extra);
}

/** A titled section; `note` is a muted line under the title. */
export function section(doc: Document, title: string, note: string | null, ...children: Child[]): HTMLElement {
  return h(doc, 'section', { class: 'ml-section' }, h(doc, 'h2', undefined, title), note ? h(doc, 'p', { class: 'ml-note' }, note) : null, ...children);
}

/** A label/value pair for stat cards. */
export function stat(doc: Document, label: string, value: Child, title?: string): HTMLElement {
  return h(doc, 'div', { class: 'ml-stat', title }, h(doc, 'div', { class: 'ml-stat-label' }, label), h(doc, 'div', { class: 'ml-stat-value' }, value));
}

/** The prompt text in the editor font, whitespace preserved. */
export function promptText(doc: Document, prompt: string): HTMLElement {
  return h(doc, 'div', { class: 'ml-prompt', title: 'prompt' }, prompt);
}
