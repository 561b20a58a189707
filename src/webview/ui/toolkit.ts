/**
 * Registers the @vscode/webview-ui-toolkit web components MechLens uses, and only those
 * (the toolkit is deprecated upstream; everything else reaches it through ./controls.ts, so
 * replacing it means replacing this file and the toolkit branches in controls.ts).
 * Imported only by the browser entry (main.ts): tests and the jsdom run use the native fallbacks.
 */
import { provideVSCodeDesignSystem, vsCodeButton, vsCodeCheckbox, vsCodeProgressRing } from '@vscode/webview-ui-toolkit';

let registered = false;

export function registerToolkit(): void {
  if (registered) return;
  registered = true;
  // controls.dropdown() renders a native <select> until vsCodeDropdown()/vsCodeOption() are added here.
  provideVSCodeDesignSystem().register(vsCodeButton(), vsCodeCheckbox(), vsCodeProgressRing());
}
