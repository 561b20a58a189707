/// <reference types="mocha" />
/**
 * Smoke: the harness itself works (a real VS Code, the samples workspace, MechLens loaded as the
 * extension under development). If these fail, nothing below is meaningful.
 */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { mechlensExtension, note, workspaceRoot } from './helpers';

describe('smoke: the real VS Code host', () => {
  it('is a real VS Code 1.100 extension host', () => {
    assert.match(vscode.version, /^1\.\d+\.\d+/);
    note(`VS Code ${vscode.version}, app ${vscode.env.appName}, host ${vscode.env.appHost}`);
  });

  it('opened a copy of samples/ as the workspace', () => {
    const root = workspaceRoot();
    assert.equal(root.path.split('/').pop(), 'samples');
    if (process.env.MECHLENS_TEST_WORKSPACE) assert.equal(root.fsPath, process.env.MECHLENS_TEST_WORKSPACE);
  });

  it('lists MechLens among the extensions, loaded from this working tree', () => {
    const ext = mechlensExtension();
    const others = vscode.extensions.all.filter((e) => !e.id.startsWith('vscode.')).map((e) => e.id);
    note(`non-built-in extensions: ${others.join(', ')}`);
    if (process.env.MECHLENS_REPO_ROOT) assert.equal(ext.extensionUri.fsPath, process.env.MECHLENS_REPO_ROOT);
    assert.equal(ext.extensionKind, vscode.ExtensionKind.Workspace);
  });
});
