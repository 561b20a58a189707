/**
 * The extension's side of the engine: one EngineClient (a child process running
 * dist/engineWorker.js, so inference never blocks the extension host), the model the settings
 * name (loaded lazily, with a cancellable progress notification), and recovery when the worker
 * dies: pending requests reject (EngineClient does that), the user is told, the worker restarts
 * automatically once and reloads the model; a second death soon after waits for "Restart".
 */
import * as vscode from 'vscode';
import { EngineClient } from '../engine/worker/client.js';
import { EngineRequests, type ModelInfo, type ProgressParams } from '../protocol/engine.js';
import type { ParamsOf, RequestType, ResultOf } from '../protocol/ipc.js';
import { loadParams, settingsKey, type EngineSettings } from './settings.js';
import { errorMessage, isCancellation } from './latest.js';

export type EngineHostState =
  | { kind: 'idle'; spec: string }
  | { kind: 'loading'; spec: string }
  | { kind: 'ready'; spec: string; info: ModelInfo }
  | { kind: 'error'; spec: string; message: string }
  | { kind: 'stopped'; spec: string; message: string };

/** The configured model could not be loaded; `message` is the engine's reason. */
export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
  constructor(readonly spec: string, message: string) {
    super(message);
  }
}

/** A second death within this window is not restarted automatically (it would likely loop). */
const AUTO_RESTART_WINDOW_MS = 2 * 60_000;

export interface EngineHostOptions {
  workerPath: string;
  /** Passed to the worker (tests start the TypeScript sources through a loader with it). */
  workerData?: unknown;
  settings: () => EngineSettings;
  log: vscode.LogOutputChannel;
}

export class EngineHost implements vscode.Disposable {
  private client: EngineClient | undefined;
  private info: ModelInfo | undefined;
  private loadedKey: string | undefined;
  private loading: { key: string; promise: Promise<ModelInfo>; abort: AbortController } | undefined;
  private failedKey: string | undefined;
  private _state: EngineHostState;
  private lastAutoRestart = 0;
  private disposed = false;
  /** Set when the model should come back after a restart (one was loaded or loading). */
  private wantModel = false;
  private readonly emitter = new vscode.EventEmitter<EngineHostState>();
  readonly onDidChangeState = this.emitter.event;
  /** Worker deaths so far (tests read it through the API). */
  crashes = 0;

  constructor(private readonly opts: EngineHostOptions) {
    this._state = { kind: 'idle', spec: opts.settings().model };
  }

  get state(): EngineHostState {
    return this._state;
  }

  /** The engine process's id while it runs (tests kill it to prove the window survives). */
  get pid(): number | undefined {
    return this.client?.alive ? this.client.pid : undefined;
  }

  get settings(): EngineSettings {
    return this.opts.settings();
  }

  /** The loaded model if it matches the settings; never starts a load. */
  get model(): ModelInfo | undefined {
    return this.info && this.loadedKey === settingsKey(this.settings) && this.client?.alive ? this.info : undefined;
  }

  private setState(s: EngineHostState): void {
    this._state = s;
    this.emitter.fire(s);
  }

  private ensureClient(): EngineClient {
    if (this.disposed) throw new Error('the MechLens extension is shutting down');
    if (this.client?.alive) return this.client;
    const client = new EngineClient({ workerPath: this.opts.workerPath, workerData: this.opts.workerData });
    client.onDidExit((reason) => this.onWorkerExit(client, reason));
    this.client = client;
    this.opts.log.info(`engine process ${client.pid ?? '?'} started (${this.opts.workerPath})`);
    return client;
  }

  /** Like request, with the worker's progress notifications for it routed to `onProgress`. */
  requestWithProgress<T extends RequestType<unknown, unknown>>(type: T, params: ParamsOf<T>, onProgress: (p: ProgressParams) => void, signal?: AbortSignal): Promise<ResultOf<T>> {
    try {
      return this.ensureClient().requestWithProgress(type, params, onProgress, signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** A raw request to the worker (starting it if needed); no model is loaded for it. */
  request<T extends RequestType<unknown, unknown>>(type: T, params: ParamsOf<T>, signal?: AbortSignal): Promise<ResultOf<T>> {
    try {
      return this.ensureClient().request(type, params, signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * The model of the current settings, loading it if needed. `interactive` callers (commands)
   * retry a load that failed before; live views and diagnostics do not, so a broken setting does
   * not reload on every keystroke.
   */
  ensureModel(opts: { interactive: boolean }): Promise<ModelInfo> {
    const s = this.settings;
    const key = settingsKey(s);
    const ready = this.model;
    if (ready) {
      // E.g. a setting put back after a failed load: the worker kept this model all along.
      if (this._state.kind !== 'ready') this.setState({ kind: 'ready', spec: s.model, info: ready });
      return Promise.resolve(ready);
    }
    if (this.loading?.key === key) return this.loading.promise;
    if (!opts.interactive) {
      if (this._state.kind === 'error' && this.failedKey === key) return Promise.reject(new ModelLoadError(s.model, this._state.message));
      if (this._state.kind === 'stopped') return Promise.reject(new Error(`${this._state.message}; run "MechLens: Restart Engine"`));
    }
    return this.startLoad(s);
  }

  /** Loads the configured model now (again), cancelling any load in progress. */
  reload(): Promise<ModelInfo> {
    return this.startLoad(this.settings);
  }

  /** ensureModel, then the request: what panels and views use. */
  async run<T extends RequestType<unknown, unknown>>(type: T, params: ParamsOf<T>, signal: AbortSignal | undefined, opts: { interactive: boolean }): Promise<ResultOf<T>> {
    await this.ensureModel(opts);
    if (signal?.aborted) throw Object.assign(new Error('cancelled'), { code: 'cancelled' });
    return this.request(type, params, signal);
  }

  private startLoad(s: EngineSettings): Promise<ModelInfo> {
    const key = settingsKey(s);
    this.loading?.abort.abort();
    const abort = new AbortController();
    let client: EngineClient;
    try {
      client = this.ensureClient();
    } catch (e) {
      return Promise.reject(e);
    }
    this.wantModel = true;
    this.setState({ kind: 'loading', spec: s.model });
    this.opts.log.info(`loading model ${s.resolvedModel} (processing ${s.processing}, device ${s.device})`);
    const promise = Promise.resolve(
      vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `MechLens: loading ${s.model}`, cancellable: true },
        async (progress, token) => {
          const sub = token.onCancellationRequested(() => abort.abort());
          let done = 0;
          try {
            return await client.requestWithProgress(
              EngineRequests.loadModel,
              loadParams(s),
              (p) => {
                // Fractions are per step (e.g. per file downloaded): report the growth only.
                const inc = p.fraction !== undefined ? Math.max(0, Math.round(p.fraction * 100) - done) : undefined;
                if (inc !== undefined) done += inc;
                progress.report({ message: p.message, ...(inc !== undefined ? { increment: inc } : {}) });
                if (p.fraction === undefined || p.fraction >= 1) done = 0;
              },
              abort.signal,
            );
          } finally {
            sub.dispose();
          }
        },
      ),
    );
    const current = () => this.loading?.promise === tracked;
    const tracked: Promise<ModelInfo> = promise.then(
      (info) => {
        if (current()) {
          this.loading = undefined;
          this.info = info;
          this.loadedKey = key;
          this.failedKey = undefined;
          this.opts.log.info(`loaded ${info.cfg.model_name} from ${info.source} in ${Math.round(info.loadMs)} ms on ${info.device}`);
          this.setState({ kind: 'ready', spec: s.model, info });
        }
        return info;
      },
      (e: unknown) => {
        if (current()) {
          this.loading = undefined;
          if (isCancellation(e)) {
            this.opts.log.info(`loading ${s.model} was cancelled`);
            this.wantModel = this.info !== undefined;
            this.setState(this.model ? { kind: 'ready', spec: s.model, info: this.model } : { kind: 'idle', spec: s.model });
          } else {
            this.failedKey = key;
            this.opts.log.error(`loading ${s.model} failed: ${errorMessage(e)}`);
            this.setState({ kind: 'error', spec: s.model, message: errorMessage(e) });
          }
        }
        if (isCancellation(e)) throw Object.assign(new Error('cancelled'), { code: 'cancelled' });
        throw new ModelLoadError(s.model, errorMessage(e));
      },
    );
    this.loading = { key, promise: tracked, abort };
    return tracked;
  }

  private onWorkerExit(client: EngineClient, reason: string): void {
    if (this.disposed || client !== this.client) return;
    this.crashes++;
    this.client = undefined;
    this.info = undefined;
    this.loadedKey = undefined;
    // The load (if any) rejects by itself with the reason; it is no longer ours to track.
    this.loading = undefined;
    this.opts.log.error(`engine process died: ${reason}`);
    const now = Date.now();
    const auto = now - this.lastAutoRestart > AUTO_RESTART_WINDOW_MS;
    const spec = this.settings.model;
    if (auto) {
      this.lastAutoRestart = now;
      this.setState({ kind: 'idle', spec });
      const reloading = this.wantModel;
      void vscode.window
        .showWarningMessage(
          `The MechLens engine stopped (${reason}). It was restarted${reloading ? ` and ${spec} is loading again` : ''}; what was running when it stopped failed.`,
          'Show Log',
        )
        .then((c) => c === 'Show Log' && this.opts.log.show());
      try {
        this.ensureClient();
      } catch {
        return;
      }
      if (reloading) void this.ensureModel({ interactive: true }).catch(() => undefined);
    } else {
      const message = `the MechLens engine stopped again (${reason})`;
      this.setState({ kind: 'stopped', spec, message });
      void vscode.window.showErrorMessage(`The MechLens engine stopped again (${reason}) and was not restarted automatically.`, 'Restart', 'Show Log').then((c) => {
        if (c === 'Restart') void vscode.commands.executeCommand('mechlens.restartEngine');
        if (c === 'Show Log') this.opts.log.show();
      });
    }
  }

  /** Stops the worker and starts a fresh one; the model comes back if one was wanted. */
  async restart(): Promise<void> {
    const old = this.client;
    this.client = undefined;
    this.info = undefined;
    this.loadedKey = undefined;
    this.loading?.abort.abort();
    this.loading = undefined;
    this.failedKey = undefined;
    this.lastAutoRestart = 0;
    await old?.dispose();
    this.opts.log.info('engine restarted by the user');
    this.ensureClient();
    this.setState({ kind: 'idle', spec: this.settings.model });
    if (this.wantModel) await this.ensureModel({ interactive: true });
  }

  /** After a settings change: reload if a model was loaded, loading or failed; else stay lazy. */
  onSettingsChanged(): Promise<ModelInfo> | undefined {
    const s = this.settings;
    const ready = this.model;
    if (ready) {
      // Back to the model the worker still holds (a failed load keeps the previous one).
      this.loading?.abort.abort();
      this.loading = undefined;
      this.setState({ kind: 'ready', spec: s.model, info: ready });
      return undefined;
    }
    if (this.wantModel || this._state.kind === 'error' || this.loading) return this.startLoad(s);
    this.setState({ kind: 'idle', spec: s.model });
    return undefined;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.loading?.abort.abort();
    void this.client?.dispose();
    this.client = undefined;
    this.emitter.dispose();
  }
}
