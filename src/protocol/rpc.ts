/**
 * One transport for every boundary (engine worker, webviews): a typed request/response endpoint
 * over any message channel with post/onMessage. Guarantees:
 *  - every request gets exactly one answer: a result, an error, or a rejection when the endpoint
 *    is disposed or the channel closes (pending requests never hang);
 *  - cancellation crosses the wire: aborting the caller's signal sends `cancel`, and the handler
 *    on the other side sees its own AbortSignal fire;
 *  - handler exceptions become error replies, never uncaught exceptions on the other side.
 */
import { RemoteError, isWireMessage, type NotificationType, type RequestType, type WireError, type WireMessage } from './ipc.js';

export interface Channel {
  post(msg: WireMessage): void;
  /** Registers the receiver; returns an unsubscribe function. */
  onMessage(fn: (msg: unknown) => void): () => void;
}

export interface HandlerContext {
  signal: AbortSignal;
  /** The id of the request being handled (progress notifications carry it). */
  requestId: number;
}

type Handler = (params: unknown, ctx: HandlerContext) => Promise<unknown> | unknown;

/** Errors thrown by handlers with this class are reported as 'invalid' (bad input), not 'internal'. */
export class InvalidRequestError extends Error {}

export class RpcEndpoint {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; cleanup: () => void }>();
  private readonly handlers = new Map<string, Handler>();
  private readonly notificationHandlers = new Map<string, ((p: unknown) => void)[]>();
  private readonly running = new Map<number, AbortController>();
  private readonly unsubscribe: () => void;
  private disposed = false;

  constructor(private readonly channel: Channel, private readonly classifyError: (e: unknown) => WireError['code'] = defaultClassify) {
    this.unsubscribe = channel.onMessage((m) => this.receive(m));
  }

  onRequest<P, R>(type: RequestType<P, R>, handler: (params: P, ctx: HandlerContext) => Promise<R> | R): void {
    this.handlers.set(type.method, handler as Handler);
  }

  onNotification<P>(type: NotificationType<P>, handler: (params: P) => void): () => void {
    const list = this.notificationHandlers.get(type.method) ?? [];
    list.push(handler as (p: unknown) => void);
    this.notificationHandlers.set(type.method, list);
    return () => {
      const l = this.notificationHandlers.get(type.method);
      if (l) this.notificationHandlers.set(type.method, l.filter((h) => h !== handler));
    };
  }

  notify<P>(type: NotificationType<P>, params: P): void {
    if (!this.disposed) this.channel.post({ kind: 'notification', method: type.method, params });
  }

  /** Sends a request; the promise settles exactly once. Returns the id too, for progress routing. */
  requestWithId<P, R>(type: RequestType<P, R>, params: P, signal?: AbortSignal): { id: number; result: Promise<R> } {
    const id = this.nextId++;
    if (this.disposed) return { id, result: Promise.reject(new RemoteError('the connection is closed', 'disposed')) };
    if (signal?.aborted) return { id, result: Promise.reject(new RemoteError('cancelled', 'cancelled')) };
    const result = new Promise<R>((resolve, reject) => {
      const onAbort = () => this.channel.post({ kind: 'cancel', id });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, cleanup: () => signal?.removeEventListener('abort', onAbort) });
      try {
        this.channel.post({ kind: 'request', id, method: type.method, params });
      } catch (e) {
        this.settle(id, false, { message: `could not send ${type.method}: ${(e as Error).message}`, code: 'internal' });
      }
    });
    return { id, result };
  }

  request<P, R>(type: RequestType<P, R>, params: P, signal?: AbortSignal): Promise<R> {
    return this.requestWithId(type, params, signal).result;
  }

  private settle(id: number, ok: boolean, payload: unknown): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.cleanup();
    if (ok) p.resolve(payload);
    else {
      const e = payload as WireError;
      p.reject(new RemoteError(e.message, e.code));
    }
  }

  private receive(raw: unknown): void {
    if (!isWireMessage(raw)) return;
    const m = raw;
    switch (m.kind) {
      case 'response':
        if (m.ok) this.settle(m.id, true, m.result);
        else this.settle(m.id, false, m.error);
        return;
      case 'cancel':
        this.running.get(m.id)?.abort();
        return;
      case 'notification':
        for (const h of this.notificationHandlers.get(m.method) ?? []) {
          try {
            h(m.params);
          } catch {
            /* a failing listener must not break the transport */
          }
        }
        return;
      case 'request':
        void this.handle(m.id, m.method, m.params);
        return;
    }
  }

  private async handle(id: number, method: string, params: unknown): Promise<void> {
    const h = this.handlers.get(method);
    if (!h) {
      this.reply({ kind: 'response', id, ok: false, error: { message: `no handler for ${method}`, code: 'internal' } });
      return;
    }
    const ac = new AbortController();
    this.running.set(id, ac);
    try {
      const result = await h(params, { signal: ac.signal, requestId: id });
      this.reply({ kind: 'response', id, ok: true, result });
    } catch (e) {
      const code = ac.signal.aborted ? 'cancelled' : this.classifyError(e);
      const message = code === 'cancelled' ? 'cancelled' : e instanceof Error ? e.message : String(e);
      this.reply({ kind: 'response', id, ok: false, error: { message, code } });
    } finally {
      this.running.delete(id);
    }
  }

  private reply(m: WireMessage): void {
    if (this.disposed) return;
    try {
      this.channel.post(m);
    } catch (e) {
      // The result could not be cloned (a bug): still answer, with the reason.
      if (m.kind === 'response' && m.ok) {
        this.channel.post({ kind: 'response', id: m.id, ok: false, error: { message: `result could not be sent: ${(e as Error).message}`, code: 'internal' } });
      }
    }
  }

  /** Rejects every pending request with `reason` (e.g. the worker died) and stops handling. */
  dispose(reason = 'the connection was closed'): void {
    if (this.disposed) return;
    this.disposed = true;
    this.unsubscribe();
    for (const ac of this.running.values()) ac.abort();
    for (const id of [...this.pending.keys()]) this.settle(id, false, { message: reason, code: 'disposed' });
  }

  get isDisposed(): boolean {
    return this.disposed;
  }
}

function defaultClassify(e: unknown): WireError['code'] {
  return e instanceof InvalidRequestError ? 'invalid' : 'internal';
}
