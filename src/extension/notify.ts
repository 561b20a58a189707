/**
 * How failures reach the user: one notification with the reason and the actions that can fix it
 * (a model that does not load offers Select Model / Open Settings). Cancellations are silent.
 */
import * as vscode from 'vscode';
import { errorMessage, isCancellation } from './latest.js';
import { ModelLoadError } from './engineHost.js';

export function notifyError(title: string, e: unknown, log: vscode.LogOutputChannel): void {
  if (isCancellation(e)) return;
  const message = errorMessage(e);
  log.error(`${title}: ${message}`);
  if (e instanceof ModelLoadError) {
    void vscode.window.showErrorMessage(`MechLens could not load the model "${e.spec}": ${message}`, 'Select Model', 'Open Settings', 'Show Log').then((c) => {
      if (c === 'Select Model') void vscode.commands.executeCommand('mechlens.selectModel');
      if (c === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'mechlens.model');
      if (c === 'Show Log') log.show();
    });
    return;
  }
  void vscode.window.showErrorMessage(`${title}: ${message}`, 'Show Log').then((c) => c === 'Show Log' && log.show());
}

/** Messages that panels show for a model failure name the model, not just the reason. */
export function describeError(e: unknown): string {
  return e instanceof ModelLoadError ? `Could not load the model "${e.spec}": ${e.message}` : errorMessage(e);
}

/**
 * Registers a command whose failures reach the user as notifyError does (titled with the command
 * id), instead of as VS Code's generic "command failed": every MechLens command goes through it.
 */
export function registerReportingCommand(id: string, fn: (...args: unknown[]) => unknown, log: vscode.LogOutputChannel): vscode.Disposable {
  return vscode.commands.registerCommand(id, async (...args: unknown[]) => {
    try {
      return await fn(...args);
    } catch (e) {
      notifyError(`MechLens (${id})`, e, log);
      return undefined;
    }
  });
}
