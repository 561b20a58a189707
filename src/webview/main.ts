/**
 * Browser entry of every MechLens webview (bundled as an IIFE into dist/webview/main.js).
 * The host page provides <div id="app"> and a CSP with a nonce; everything else is in app.ts.
 */
import { type VsCodeApi, startApp } from './app.js';
import { registerToolkit } from './ui/toolkit.js';

declare const acquireVsCodeApi: () => VsCodeApi;

registerToolkit();
const root = document.getElementById('app') ?? document.body.appendChild(document.createElement('div'));
startApp({ vscode: acquireVsCodeApi(), root });
