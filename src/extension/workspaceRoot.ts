/**
 * Where experiments may read and whether they may run at all.
 *
 * The folder an experiment's named files must stay inside (src/engine/experiments/files.ts):
 * the workspace folder that holds the experiment, or, for a file outside every workspace
 * folder, the experiment's own folder.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';

export function experimentRoot(file: string): string {
  return vscode.workspace.getWorkspaceFolder(vscode.Uri.file(file))?.uri.fsPath ?? path.dirname(file);
}

/**
 * Experiment files travel in repositories and name files to read and models to load: in a
 * workspace the user has not trusted, they are checked and shown but never run.
 */
export function trustedToRun(): boolean {
  if (vscode.workspace.isTrusted) return true;
  void vscode.window.showErrorMessage('MechLens: experiments do not run in an untrusted workspace (they read the files they name and load models). Trust this workspace (Manage Workspace Trust) to run them.');
  return false;
}
