/**
 * The client side of the engine worker: starts the worker thread, exposes the typed requests,
 * and makes failures visible instead of silent: if the worker exits or crashes, every pending
 * request rejects with the reason and `onDidExit` fires, so the host can report and restart.
 */
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import { RpcEndpoint } from '../../protocol/rpc.js';
import { EngineNotifications, EngineRequests, type ProgressParams } from '../../protocol/engine.js';
import type { ParamsOf, RequestType, ResultOf, WireMessage } from '../../protocol/ipc.js';

export interface EngineClientOptions {
  /** The worker script; default: engineWorker.js next to this bundle. */
  workerPath?: string;
  /** Extra Node flags for the worker (tests run the TypeScript source with ['--import', 'tsx']). */
  execArgv?: string[];
  /** Passed to the worker as workerData (tests use it to name a TypeScript entry). */
  workerData?: unknown;
  /** Worker heap limit (MB); the model's weights live outside the JS heap in typed arrays. */
  maxOldGenerationSizeMb?: number;
}

export class EngineClient {
  private readonly worker: Worker;
  private readonly rpc: RpcEndpoint;
  private readonly exitListeners: ((reason: string) => void)[] = [];
  private exited = false;

  constructor(opts: EngineClientOptions = {}) {
    const workerPath = opts.workerPath ?? path.join(__dirname, 'engineWorker.js');
    this.worker = new Worker(workerPath, {
      execArgv: opts.execArgv ?? [],
      workerData: opts.workerData,
      resourceLimits: opts.maxOldGenerationSizeMb ? { maxOldGenerationSizeMb: opts.maxOldGenerationSizeMb } : undefined,
    });
    this.rpc = new RpcEndpoint({
      post: (m: WireMessage) => this.worker.postMessage(m),
      onMessage: (fn) => {
        this.worker.on('message', fn);
        return () => this.worker.off('message', fn);
      },
    });
    const fail = (reason: string) => {
      if (this.exited) return;
      this.exited = true;
      this.rpc.dispose(reason);
      for (const l of this.exitListeners) l(reason);
    };
    this.worker.on('error', (e) => fail(`the MechLens engine crashed: ${e.message}`));
    this.worker.on('exit', (code) => fail(code === 0 ? 'the MechLens engine stopped' : `the MechLens engine exited with code ${code}`));
  }

  request<T extends RequestType<unknown, unknown>>(type: T, params: ParamsOf<T>, signal?: AbortSignal): Promise<ResultOf<T>> {
    return this.rpc.request(type as RequestType<ParamsOf<T>, ResultOf<T>>, params, signal);
  }

  /** Like request, with progress notifications routed to `onProgress`. */
  requestWithProgress<T extends RequestType<unknown, unknown>>(type: T, params: ParamsOf<T>, onProgress: (p: ProgressParams) => void, signal?: AbortSignal): Promise<ResultOf<T>> {
    let myId = -1;
    const off = this.rpc.onNotification(EngineNotifications.progress, (p) => {
      if (p.requestId === myId) onProgress(p);
    });
    const { id, result } = this.rpc.requestWithId(type as RequestType<ParamsOf<T>, ResultOf<T>>, params, signal);
    myId = id;
    return result.finally(off);
  }

  onDidExit(fn: (reason: string) => void): void {
    this.exitListeners.push(fn);
  }

  get alive(): boolean {
    return !this.exited;
  }

  async dispose(): Promise<void> {
    this.rpc.dispose('the MechLens engine was shut down');
    this.exited = true;
    await this.worker.terminate();
  }
}

export { EngineRequests };
