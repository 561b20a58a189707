/**
 * The client side of the engine: starts the engine in a child process of its own (not a worker
 * thread: onnxruntime's native allocations are not bounded by V8's per-worker heap limits, and a
 * native abort in a worker thread ends the whole extension host), exposes the typed requests over
 * the process's IPC channel, and makes failures visible instead of silent: if the process exits,
 * crashes or is killed, every pending request rejects with the reason and `onDidExit` fires, so
 * the host can report and restart.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { RpcEndpoint } from '../../protocol/rpc.js';
import { EngineNotifications, EngineRequests, type ProgressParams } from '../../protocol/engine.js';
import type { ParamsOf, RequestType, ResultOf, WireMessage } from '../../protocol/ipc.js';
import { ENGINE_PROCESS_ENV } from './processEnv.js';

export interface EngineClientOptions {
  /** The worker script; default: engineWorker.js next to this bundle. */
  workerPath?: string;
  /** Extra Node flags for the worker (tests run the TypeScript source with ['--import', 'tsx']). */
  execArgv?: string[];
  /** Passed to the process as JSON in MECHLENS_ENGINE_DATA (tests use it to name a TypeScript entry). */
  workerData?: unknown;
  /** JS heap limit (MB); the model's weights live outside the JS heap in typed arrays. */
  maxOldGenerationSizeMb?: number;
}

/** Why the engine process ended, in words a user can act on. */
export function exitReason(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal === 'SIGKILL') return 'the MechLens engine process was killed (SIGKILL: out of memory, or killed by the system or a user)';
  if (signal) return `the MechLens engine process ended on ${signal}`;
  if (code === 0) return 'the MechLens engine stopped';
  if (code === 134) return 'the MechLens engine process aborted (code 134: a native crash, often out of memory in onnxruntime)';
  return `the MechLens engine exited with code ${code}`;
}

export class EngineClient {
  private readonly child: ChildProcess;
  private readonly rpc: RpcEndpoint;
  private readonly exitListeners: ((reason: string) => void)[] = [];
  private exited = false;
  private readonly done: Promise<void>;

  constructor(opts: EngineClientOptions = {}) {
    const workerPath = opts.workerPath ?? path.join(__dirname, 'engineWorker.js');
    const execArgv = [...(opts.execArgv ?? []), ...(opts.maxOldGenerationSizeMb ? [`--max-old-space-size=${opts.maxOldGenerationSizeMb}`] : [])];
    // 'advanced' serialization (structured clone) carries the typed arrays of tensor payloads.
    this.child = fork(workerPath, [], {
      execArgv,
      serialization: 'advanced',
      // stderr is passed through, and its tail kept: an uncaught error's message names the crash.
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      env: { ...process.env, ...ENGINE_PROCESS_ENV, MECHLENS_ENGINE_DATA: JSON.stringify(opts.workerData ?? null) },
    });
    this.rpc = new RpcEndpoint({
      post: (m: WireMessage) => {
        if (this.child.connected) this.child.send(m);
      },
      onMessage: (fn) => {
        this.child.on('message', fn);
        return () => this.child.off('message', fn);
      },
    });
    const fail = (reason: string) => {
      if (this.exited) return;
      this.exited = true;
      this.rpc.dispose(reason);
      for (const l of this.exitListeners) l(reason);
    };
    let tail = '';
    this.child.stderr?.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      tail = (tail + chunk.toString('utf8')).slice(-4096);
    });
    this.done = new Promise((resolve) => this.child.once('close', () => resolve()));
    this.child.on('error', (e) => fail(`the MechLens engine process failed: ${e.message}`));
    // 'close' (not 'exit'): stderr is complete by then.
    this.child.on('close', (code, signal) => {
      const thrown = code !== 0 && signal === null ? [...tail.matchAll(/^(?:Uncaught )?\w*Error: (.+)$/gm)].at(-1)?.[1] : undefined;
      fail(thrown ? `the MechLens engine crashed: ${thrown}` : exitReason(code, signal));
    });
  }

  /** The engine process's id (tests kill it to prove the host survives). */
  get pid(): number | undefined {
    return this.child.pid;
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
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
    await this.done;
  }
}

export { EngineRequests };
