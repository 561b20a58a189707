/**
 * The only place views get form controls from. Each builder returns a toolkit web component
 * (<vscode-button>, <vscode-checkbox>, ...) when ui/toolkit.ts has registered it, and a styled
 * native element otherwise (jsdom tests, or after a future swap away from the deprecated
 * toolkit). Callers only see `HTMLElement` plus typed callbacks, never toolkit classes.
 */
import { h } from '../dom.js';

function hasElement(doc: Document, tag: string): boolean {
  return doc.defaultView?.customElements?.get(tag) !== undefined;
}

export interface ButtonProps {
  label: string;
  /** Hover text / accessible description. */
  title?: string;
  /** Default 'secondary' (toolbars); 'primary' for the one main action. */
  appearance?: 'primary' | 'secondary';
  disabled?: boolean;
  onClick: () => void;
}

export function button(doc: Document, p: ButtonProps): HTMLElement {
  const appearance = p.appearance ?? 'secondary';
  const el = hasElement(doc, 'vscode-button')
    ? h(doc, 'vscode-button' as 'div', { appearance, title: p.title, disabled: p.disabled })
    : h(doc, 'button', { type: 'button', class: `ml-button ml-button-${appearance}`, title: p.title, disabled: p.disabled });
  el.textContent = p.label;
  el.addEventListener('click', () => {
    if (!el.hasAttribute('disabled')) p.onClick();
  });
  return el;
}

export interface CheckboxProps {
  label: string;
  checked: boolean;
  title?: string;
  onChange: (checked: boolean) => void;
}

export function checkbox(doc: Document, p: CheckboxProps): HTMLElement {
  if (hasElement(doc, 'vscode-checkbox')) {
    const el = h(doc, 'vscode-checkbox' as 'div', { title: p.title, checked: p.checked });
    el.textContent = p.label;
    (el as unknown as { checked: boolean }).checked = p.checked;
    el.addEventListener('change', () => p.onChange(Boolean((el as unknown as { checked: boolean }).checked)));
    return el;
  }
  const input = h(doc, 'input', { type: 'checkbox' });
  input.checked = p.checked;
  input.addEventListener('change', () => p.onChange(input.checked));
  return h(doc, 'label', { class: 'ml-checkbox', title: p.title }, input, ' ', p.label);
}

export interface DropdownOption {
  value: string;
  label: string;
}

export interface DropdownProps {
  options: DropdownOption[];
  value: string;
  title?: string;
  onChange: (value: string) => void;
}

export function dropdown(doc: Document, p: DropdownProps): HTMLElement {
  if (hasElement(doc, 'vscode-dropdown')) {
    const el = h(doc, 'vscode-dropdown' as 'div', { title: p.title });
    for (const o of p.options) {
      const opt = h(doc, 'vscode-option' as 'div', { value: o.value, selected: o.value === p.value });
      opt.textContent = o.label;
      el.appendChild(opt);
    }
    el.addEventListener('change', () => p.onChange(String((el as unknown as { value: string }).value)));
    return el;
  }
  const sel = h(doc, 'select', { class: 'ml-select', title: p.title });
  for (const o of p.options) sel.appendChild(h(doc, 'option', { value: o.value, selected: o.value === p.value }, o.label));
  sel.value = p.value;
  sel.addEventListener('change', () => p.onChange(sel.value));
  return sel;
}

/** An indeterminate progress indicator (loading states). */
export function progressRing(doc: Document): HTMLElement {
  if (hasElement(doc, 'vscode-progress-ring')) return h(doc, 'vscode-progress-ring' as 'div', { class: 'ml-progress', 'aria-label': 'Loading' });
  return h(doc, 'div', { class: 'ml-progress ml-spinner', role: 'progressbar', 'aria-label': 'Loading' });
}
