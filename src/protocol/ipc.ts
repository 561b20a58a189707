/**
 * Typed IPC descriptors shared by every transport (engine worker <-> extension host <-> webviews).
 * A request type is a `scope/noun/verb` method string plus phantom params/result types; a
 * notification has params only. Every request is answered by exactly one response: a result or
 * an error (errors travel as replies, never as thrown exceptions across the boundary).
 */
export interface RequestType<P, R> {
  readonly method: string;
  readonly _p?: P;
  readonly _r?: R;
}
export interface NotificationType<P> {
  readonly method: string;
  readonly _p?: P;
}

export function requestType<P, R>(method: string): RequestType<P, R> {
  return { method };
}
export function notificationType<P>(method: string): NotificationType<P> {
  return { method };
}

export type ParamsOf<T> = T extends RequestType<infer P, unknown> ? P : T extends NotificationType<infer P> ? P : never;
export type ResultOf<T> = T extends RequestType<unknown, infer R> ? R : never;

/** Wire messages. `id` correlates a request with its response; cancel names the request id. */
export type WireMessage =
  | { kind: 'request'; id: number; method: string; params: unknown }
  | { kind: 'response'; id: number; ok: true; result: unknown }
  | { kind: 'response'; id: number; ok: false; error: WireError }
  | { kind: 'notification'; method: string; params: unknown }
  | { kind: 'cancel'; id: number };

export interface WireError {
  message: string;
  /** 'cancelled' when the request was cancelled; 'invalid' for bad input; 'internal' otherwise. */
  code: 'cancelled' | 'invalid' | 'internal' | 'disposed';
}

export function isWireMessage(m: unknown): m is WireMessage {
  if (typeof m !== 'object' || m === null) return false;
  const k = (m as { kind?: unknown }).kind;
  return k === 'request' || k === 'response' || k === 'notification' || k === 'cancel';
}

/** The error a caller sees when its request failed on the other side. */
export class RemoteError extends Error {
  constructor(message: string, readonly code: WireError['code']) {
    super(message);
    this.name = code === 'cancelled' ? 'CancelledError' : 'RemoteError';
  }
}
