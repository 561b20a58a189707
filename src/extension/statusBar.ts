/**
 * The status-bar item: which model MechLens uses and whether it is loading, ready or broken.
 * Clicking it opens "MechLens: Select Model".
 */
import * as vscode from 'vscode';
import type { EngineHost, EngineHostState } from './engineHost.js';

export class ModelStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('mechlens.model', vscode.StatusBarAlignment.Right, 100);
  private readonly sub: vscode.Disposable;

  constructor(host: EngineHost) {
    this.item.name = 'MechLens Model';
    this.item.command = 'mechlens.selectModel';
    this.sub = host.onDidChangeState((s) => this.render(s));
    this.render(host.state);
    this.item.show();
  }

  private render(s: EngineHostState): void {
    const it = this.item;
    it.backgroundColor = undefined;
    switch (s.kind) {
      case 'idle':
        it.text = `$(circuit-board) ${s.spec}`;
        it.tooltip = `MechLens model: ${s.spec} (loaded on first use). Click to select another.`;
        break;
      case 'loading':
        it.text = `$(loading~spin) ${s.spec}`;
        it.tooltip = `MechLens: loading ${s.spec}…`;
        break;
      case 'ready': {
        const c = s.info.cfg;
        it.text = `$(circuit-board) ${c.model_name}`;
        it.tooltip = new vscode.MarkdownString(
          `**MechLens: ${c.model_name}** ready\n\n${c.n_layers} layers × ${c.n_heads} heads, d_model ${c.d_model}, n_ctx ${c.n_ctx}\n\n` +
            `${s.info.device} · processing ${s.info.processing} · ${(s.info.paramBytes / 1e6).toFixed(1)} MB\n\nClick to select another model.`,
        );
        break;
      }
      case 'error':
        it.text = `$(error) ${s.spec}`;
        it.tooltip = `MechLens could not load ${s.spec}: ${s.message}\nClick to select another model.`;
        it.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
        break;
      case 'stopped':
        it.text = '$(debug-disconnect) MechLens stopped';
        it.tooltip = `${s.message}. Run "MechLens: Restart Engine".`;
        it.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
        break;
    }
    // A screen reader hears the state, not the icon names.
    it.accessibilityInformation = { label: `MechLens model ${s.spec}: ${s.kind}` };
  }

  dispose(): void {
    this.sub.dispose();
    this.item.dispose();
  }
}
