/**
 * The `mechlens.*` settings as one typed value, and how a `mechlens.model` value becomes what the
 * engine loads. Pure (no `vscode`): the extension reads the raw values and passes them here.
 */
import * as path from 'node:path';
import type { DeviceChoice, LoadModelParams, ProcessingMode } from '../protocol/engine.js';

export const DEFAULT_MODEL = 'builtin:default';

export interface EngineSettings {
  /** As written in the setting. */
  model: string;
  /** What the engine is asked to load (paths resolved). */
  resolvedModel: string;
  processing: ProcessingMode;
  device: DeviceChoice;
  allowDownload: boolean;
}

const PROCESSING: readonly ProcessingMode[] = ['none', 'default', 'default+refactor'];
const DEVICES: readonly DeviceChoice[] = ['auto', 'cpu', 'cuda'];

/**
 * Resolves a model setting: `${workspaceFolder}` and a leading `~` are expanded, and a relative
 * path (starting with ./ or ../, or naming an existing folder under the workspace) is taken
 * relative to the workspace folder. Hugging Face ids ('gpt2', 'org/name') and 'builtin:…' are
 * kept as they are.
 */
export function resolveModelSpec(spec: string, workspaceFolder: string | undefined, home: string, exists: (p: string) => boolean = () => false): string {
  let s = spec.trim();
  if (s === '') return DEFAULT_MODEL;
  if (s.startsWith('builtin:')) return s;
  if (workspaceFolder) s = s.replace(/\$\{workspaceFolder\}/g, workspaceFolder);
  if (s === '~' || s.startsWith('~/')) s = path.join(home, s.slice(1));
  if (path.isAbsolute(s)) return s;
  if (workspaceFolder && (s.startsWith('./') || s.startsWith('../') || s.startsWith('.\\') || s.startsWith('..\\') || exists(path.join(workspaceFolder, s)))) {
    return path.join(workspaceFolder, s);
  }
  return s;
}

export function readSettings(get: <T>(key: string) => T | undefined, workspaceFolder: string | undefined, home: string, exists?: (p: string) => boolean): EngineSettings {
  const model = (get<string>('model') ?? DEFAULT_MODEL).trim() || DEFAULT_MODEL;
  const processing = get<string>('processing');
  const device = get<string>('device');
  return {
    model,
    resolvedModel: resolveModelSpec(model, workspaceFolder, home, exists),
    processing: PROCESSING.includes(processing as ProcessingMode) ? (processing as ProcessingMode) : 'default',
    device: DEVICES.includes(device as DeviceChoice) ? (device as DeviceChoice) : 'auto',
    allowDownload: get<boolean>('allowDownload') ?? true,
  };
}

/** What makes a loaded model stale: a change of any of these reloads it. */
export function settingsKey(s: EngineSettings): string {
  return JSON.stringify([s.resolvedModel, s.processing, s.device]);
}

export function loadParams(s: EngineSettings): LoadModelParams {
  return { model: s.resolvedModel, processing: s.processing, device: s.device, allowDownload: s.allowDownload };
}
