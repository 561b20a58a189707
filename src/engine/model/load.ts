/**
 * Model loading: a local folder, the local Hugging Face cache, or the Hugging Face hub.
 *
 * Returns UNPROCESSED params (TransformerLens processing 'none'); folding and centering are the
 * caller's business. Hub downloads write the same cache layout as huggingface_hub, so models that
 * Python already downloaded are found here and ours are found by Python:
 *   <cache>/models--ORG--NAME/blobs/<etag>                  file contents, named by etag
 *   <cache>/models--ORG--NAME/snapshots/<commit>/<file>     relative symlink to ../../blobs/<etag>
 *   <cache>/models--ORG--NAME/refs/<revision>               the commit hash the revision points to
 * A snapshot is only linked once every file it needs is downloaded and verified, so a failed or
 * interrupted download never leaves a half-populated snapshot that later loads would trust.
 * Partial blobs stay as blobs/<etag>.incomplete and are resumed with an HTTP Range request.
 *
 * Uses node:http/https rather than fetch: VS Code's extension host patches those modules for
 * proxy support, and they give exact control over redirects, Range and socket timeouts.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { F32 } from '../tensor/tensor.js';
import type { HookedTransformerConfig } from './config.js';
import { checkConfigAgainstWeights } from './checkDims.js';
import type { StateDict } from './hf.js';
import { familyOf, supportedFamilies, type ArchFamily } from '../arch/index.js';
import type { Params } from './params.js';
import { SafetensorsFile } from './safetensors.js';
import { isTransformerLensConfigJson, readTransformerLensFolder } from './tlFormat.js';

export interface LoadProgress {
  /** Repo-relative file name, e.g. 'model.safetensors'. */
  file: string;
  /** Bytes on disk so far (includes bytes resumed from an earlier, interrupted download). */
  loaded: number;
  /** Expected size in bytes, when the server said. */
  total: number | null;
}

export interface LoadOptions {
  /** Hugging Face hub cache folder; default resolveHfCacheDir(). */
  cacheDir?: string;
  /** Hub base URL; default $HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Branch, tag or commit hash; default 'main'. */
  revision?: string;
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
  /** false: only the local folder or cache are used, never the network. */
  allowDownload?: boolean;
}

export interface LoadResult {
  cfg: HookedTransformerConfig;
  /** TransformerLens 'none' params. */
  params: Params;
  /** For display: the absolute folder, or the hub id (with @revision unless main). */
  source: string;
  /** Absolute paths of the files used or relevant (config, weights, tokenizer files present). */
  files: string[];
}

const CONFIG = 'config.json';
const WEIGHTS = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';
/** Reported in `files` when present; the tokenizer reads them (vocab.json with `chars` = char-level model). */
const SIDE_FILES = ['vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];
const FOLDER_HELP =
  `A model folder contains ${CONFIG} (a Hugging Face config of a supported family: ${supportedFamilies()}) and ${WEIGHTS}, ` +
  `or ${INDEX} plus the shard files its weight_map names.`;
const DEFAULT_ENDPOINT = 'https://huggingface.co';
const SOCKET_TIMEOUT_MS = 30_000;
const MAX_REDIRECTS = 10;
const MAX_ATTEMPTS = 4;

export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
}

// ---------------------------------------------------------------------------------------------
// Entry point

/** Loads a model from a local folder or a Hugging Face model id (cache first, then the hub). */
export async function loadModel(spec: string, opts: LoadOptions = {}): Promise<LoadResult> {
  const s = spec.trim();
  if (s === '') throw new ModelLoadError('no model given: pass a folder path or a Hugging Face model id such as gpt2');
  opts.signal?.throwIfAborted();
  const local = path.resolve(expandHome(s));
  const st = statOrNull(local);
  if (st?.isDirectory()) return loadModelFolder(local);
  if (st?.isFile()) {
    // Pointing at a file inside a model folder is a common slip; accept the known ones.
    if ([CONFIG, WEIGHTS, INDEX].includes(path.basename(local))) return loadModelFolder(path.dirname(local));
    throw new ModelLoadError(`${local} is a file; pass the folder that holds it. ${FOLDER_HELP}`);
  }
  if (looksLikePath(s) || !isHfModelId(s)) {
    throw new ModelLoadError(
      `model folder ${local} does not exist` +
        (isHfModelId(s) ? '' : ` (and "${s}" is not a Hugging Face model id such as gpt2 or org/name)`) + '. ' + FOLDER_HELP,
    );
  }
  return loadHubModel(s, opts);
}

/** True for strings shaped like a hub repo id: `name` or `org/name` ([A-Za-z0-9._-], no `--` or `..`). */
export function isHfModelId(s: string): boolean {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(\/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$/.test(s)) return false;
  return !s.includes('--') && !s.includes('..') && !s.split('/').some((p) => p.endsWith('.') || p.endsWith('-'));
}

function looksLikePath(s: string): boolean {
  return path.isAbsolute(s) || s.startsWith('.') || s.startsWith('~') || s.includes('\\') || s.split('/').length > 2;
}

function expandHome(p: string): string {
  if (p === '~') return os.homedir();
  if (p.startsWith('~/') || p.startsWith('~\\')) return path.join(os.homedir(), p.slice(2));
  return p;
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

const isFile = (p: string): boolean => statOrNull(p)?.isFile() ?? false;

// ---------------------------------------------------------------------------------------------
// Local folders

/** A lazy state dict over one or more safetensors files: each tensor is read when asked for. */
class SafetensorsStateDict implements StateDict {
  private readonly open: SafetensorsFile[] = [];
  private readonly where = new Map<string, SafetensorsFile>();
  /** Each get() reads the file again into a new buffer. */
  readonly fresh = true;

  constructor(shardPaths: string[], weightMap: Map<string, string> | null, folder: string) {
    try {
      const byShard = new Map<string, SafetensorsFile>();
      for (const p of shardPaths) {
        const f = SafetensorsFile.open(p);
        this.open.push(f);
        byShard.set(p, f);
        for (const name of f.names()) if (!this.where.has(name)) this.where.set(name, f);
      }
      if (weightMap) {
        for (const [tensor, shard] of weightMap) {
          const f = byShard.get(path.join(folder, shard));
          if (!f?.has(tensor)) throw new ModelLoadError(`${path.join(folder, INDEX)} says tensor ${tensor} is in ${shard}, but that shard has no such tensor`);
          this.where.set(tensor, f);
        }
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  keys(): Iterable<string> {
    return this.where.keys();
  }

  get(name: string): F32 | undefined {
    return this.where.get(name)?.readF32(name);
  }

  shapeOf(name: string): readonly number[] | undefined {
    return this.where.get(name)?.entries.get(name)?.shape;
  }

  readRows(name: string, rowLength: number, visit: (rows: Float32Array, firstRow: number) => void): void {
    const f = this.where.get(name);
    if (!f) throw new Error(`${name}: no such tensor in the checkpoint`);
    f.readRowsF32(name, rowLength, visit);
  }

  close(): void {
    for (const f of this.open) f.close();
    this.open.length = 0;
  }
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ModelLoadError(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ModelLoadError(`${what} ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** A file name from an index or the hub must stay inside its folder. */
function isSafeRelativeFile(f: string): boolean {
  if (f === '' || f.startsWith('/') || f.includes('\\') || /^[A-Za-z]:/.test(f)) return false;
  return f.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}

/** Parses model.safetensors.index.json into tensor name -> shard file (relative to its folder). */
function readIndex(indexPath: string): Map<string, string> {
  const j = readJson(indexPath, 'safetensors index');
  const wm = (j as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
    throw new ModelLoadError(`${indexPath} has no "weight_map" object (tensor name -> shard file)`);
  }
  const out = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof shard !== 'string' || !isSafeRelativeFile(shard)) {
      throw new ModelLoadError(`${indexPath}: weight_map entry for ${tensor} is not a file name inside the folder: ${JSON.stringify(shard)}`);
    }
    out.set(tensor, shard);
  }
  if (out.size === 0) throw new ModelLoadError(`${indexPath} has an empty weight_map`);
  return out;
}

const uniq = <T>(xs: Iterable<T>): T[] => [...new Set(xs)];

/** True when dir holds config.json and complete safetensors weights (every shard present). */
function isCompleteModelFolder(dir: string): boolean {
  if (!isFile(path.join(dir, CONFIG))) return false;
  if (isFile(path.join(dir, WEIGHTS))) return true;
  if (!isFile(path.join(dir, INDEX))) return false;
  try {
    return uniq(readIndex(path.join(dir, INDEX)).values()).every((s) => isFile(path.join(dir, s)));
  } catch {
    return false;
  }
}

/**
 * Loads a local model folder (config.json + model.safetensors, or a sharded index). Synchronous:
 * it is disk- and CPU-bound. modelName defaults to the folder's name.
 */
export function loadModelFolder(dir: string, modelName?: string): LoadResult {
  const folder = path.resolve(dir);
  const st = statOrNull(folder);
  if (!st) throw new ModelLoadError(`model folder ${folder} does not exist. ${FOLDER_HELP}`);
  if (!st.isDirectory()) throw new ModelLoadError(`${folder} is not a folder. ${FOLDER_HELP}`);
  const configPath = path.join(folder, CONFIG);
  if (!isFile(configPath)) throw new ModelLoadError(`${folder} is not a model folder: ${CONFIG} is missing. ${FOLDER_HELP}`);

  const files = [configPath];
  let shards: string[];
  let weightMap: Map<string, string> | null = null;
  if (isFile(path.join(folder, WEIGHTS))) {
    shards = [path.join(folder, WEIGHTS)];
  } else if (isFile(path.join(folder, INDEX))) {
    weightMap = readIndex(path.join(folder, INDEX));
    shards = uniq(weightMap.values()).map((s) => path.join(folder, s));
    const missing = shards.filter((s) => !isFile(s));
    if (missing.length > 0) {
      throw new ModelLoadError(`${folder}: ${INDEX} names shard file(s) that are missing: ${missing.map((m) => path.basename(m)).join(', ')}`);
    }
    files.push(path.join(folder, INDEX));
  } else {
    const other = ['pytorch_model.bin', 'model.bin', 'tf_model.h5', 'flax_model.msgpack'].filter((f) => isFile(path.join(folder, f)));
    const hint = other.length > 0 ? ` It has ${other.join(', ')}, but MechLens reads only safetensors weights (convert them with transformers' save_pretrained(safe_serialization=True)).` : '';
    throw new ModelLoadError(`${folder} is not a model folder: it has ${CONFIG} but no ${WEIGHTS} or ${INDEX}.${hint} ${FOLDER_HELP}`);
  }
  files.push(...shards);
  for (const f of SIDE_FILES) if (isFile(path.join(folder, f))) files.push(path.join(folder, f));

  const hfConfig = readJson(configPath, 'model config');
  if (typeof hfConfig !== 'object' || hfConfig === null || Array.isArray(hfConfig)) {
    throw new ModelLoadError(`${configPath} is not a JSON object`);
  }
  if (isTransformerLensConfigJson(hfConfig)) {
    // A TransformerLens-layout folder (written by training/, see model/tlFormat.ts); it keeps
    // its config's model_name.
    try {
      return { ...readTransformerLensFolder(folder, hfConfig, modelName), source: folder, files };
    } catch (e) {
      throw new ModelLoadError(`${folder}: ${(e as Error).message}`);
    }
  }
  // The family (arch/) says how its config and tensors map to TransformerLens's.
  let cfg: HookedTransformerConfig;
  let family: ArchFamily;
  try {
    family = familyOf(hfConfig as Record<string, unknown>);
    cfg = family.config(hfConfig as Record<string, unknown>, modelName ?? path.basename(folder));
  } catch (e) {
    throw new ModelLoadError(`${configPath}: ${(e as Error).message}`);
  }
  let sd: SafetensorsStateDict | null = null;
  try {
    sd = new SafetensorsStateDict(shards, weightMap, folder);
    checkConfigAgainstWeights(cfg, sd, configPath);
    return { cfg, params: family.weights(sd, cfg), source: folder, files };
  } catch (e) {
    if (e instanceof ModelLoadError) throw e;
    throw new ModelLoadError(`${folder}: ${(e as Error).message}`);
  } finally {
    sd?.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Hugging Face cache

/** The hub cache folder, as huggingface_hub resolves it: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function resolveHfCacheDir(): string {
  const env = process.env;
  if (env['HF_HUB_CACHE']) return path.resolve(expandHome(env['HF_HUB_CACHE']));
  // The older name, which huggingface_hub still honours.
  if (env['HUGGINGFACE_HUB_CACHE']) return path.resolve(expandHome(env['HUGGINGFACE_HUB_CACHE']));
  const xdg = env['XDG_CACHE_HOME'] ? expandHome(env['XDG_CACHE_HOME']) : path.join(os.homedir(), '.cache');
  const home = env['HF_HOME'] ? expandHome(env['HF_HOME']) : path.join(xdg, 'huggingface');
  return path.resolve(home, 'hub');
}

/** <cacheDir>/models--ORG--NAME for a model id. */
export function hfRepoCacheDir(id: string, cacheDir: string = resolveHfCacheDir()): string {
  return path.join(cacheDir, `models--${id.split('/').join('--')}`);
}

const COMMIT_RE = /^[0-9a-f]{40}$/;

function checkRevision(revision: string): void {
  if (!/^[A-Za-z0-9._/-]{1,256}$/.test(revision) || !isSafeRelativeFile(revision)) {
    throw new ModelLoadError(`invalid revision ${JSON.stringify(revision)}: use a branch, tag or commit hash`);
  }
}

/**
 * The snapshot folder of a cached model when it is complete (config.json and all safetensors
 * weights present), else null. revision is a branch/tag (looked up in refs/) or a commit hash.
 */
export function hfCacheSnapshot(id: string, revision = 'main', cacheDir: string = resolveHfCacheDir()): string | null {
  if (!isHfModelId(id)) return null;
  checkRevision(revision);
  const repo = hfRepoCacheDir(id, cacheDir);
  let commit: string | null = COMMIT_RE.test(revision) ? revision : null;
  if (commit === null) {
    try {
      commit = fs.readFileSync(path.join(repo, 'refs', ...revision.split('/')), 'utf8').trim();
    } catch {
      return null;
    }
  }
  if (!/^[A-Za-z0-9._-]+$/.test(commit) || /^\.+$/.test(commit)) return null;
  const snap = path.join(repo, 'snapshots', commit);
  return isCompleteModelFolder(snap) ? snap : null;
}

async function loadHubModel(id: string, opts: LoadOptions): Promise<LoadResult> {
  const revision = opts.revision ?? 'main';
  checkRevision(revision);
  const cacheDir = opts.cacheDir !== undefined ? path.resolve(expandHome(opts.cacheDir)) : resolveHfCacheDir();
  const repoDir = hfRepoCacheDir(id, cacheDir);
  const source = revision === 'main' ? id : `${id}@${revision}`;
  const cached = hfCacheSnapshot(id, revision, cacheDir);
  if (cached !== null) return { ...loadModelFolder(cached, id), source };
  if (opts.allowDownload === false) {
    throw new ModelLoadError(
      `model ${id} (revision ${revision}) is not in the Hugging Face cache (searched ${repoDir}) and downloading is turned off`,
    );
  }
  const endpoint = normalizeEndpoint(opts.endpoint ?? process.env['HF_ENDPOINT'] ?? DEFAULT_ENDPOINT);
  const snap = await downloadSnapshot({ id, revision, endpoint, repoDir, signal: opts.signal, onProgress: opts.onProgress });
  return { ...loadModelFolder(snap, id), source };
}

function normalizeEndpoint(e: string): string {
  let u: URL;
  try {
    u = new URL(e);
  } catch {
    throw new ModelLoadError(`Hugging Face endpoint ${JSON.stringify(e)} is not a valid URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ModelLoadError(`Hugging Face endpoint ${e} must be an http(s) URL`);
  return e.replace(/\/+$/, '');
}

// ---------------------------------------------------------------------------------------------
// HTTP

/** A failed transfer; retryable ones (connection drops, 5xx) are retried with a Range resume. */
class TransferError extends Error {
  constructor(message: string, readonly retryable: boolean, readonly code?: string) {
    super(message);
  }
}

const OFFLINE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN']);
const NETWORK_CODES = new Set([...OFFLINE_CODES, 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET']);

/** Wraps node's network errors as TransferError; leaves our own errors and aborts alone. */
function asTransferError(e: unknown, what: string): unknown {
  if (e instanceof TransferError || e instanceof ModelLoadError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err?.name === 'AbortError') return e;
  const code = err?.code;
  if ((code !== undefined && NETWORK_CODES.has(code)) || err?.message === 'aborted' || err?.message === 'socket hang up') {
    return new TransferError(`${what}: ${code ?? err.message}`, true, code);
  }
  return e;
}

function request(method: 'GET' | 'HEAD', url: URL, headers: Record<string, string>, signal?: AbortSignal): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : null;
    if (mod === null) {
      reject(new ModelLoadError(`cannot fetch ${url.href}: unsupported protocol ${url.protocol}`));
      return;
    }
    const req = mod.request(url, {
      method,
      // identity: Content-Length and Range must count the file's own bytes, not a compressed form.
      headers: { 'User-Agent': 'mechlens/0.1 (node)', 'Accept-Encoding': 'identity', ...headers },
      signal,
      timeout: SOCKET_TIMEOUT_MS,
    });
    req.on('timeout', () => {
      const err = new TransferError(`no data from ${url.host} for ${SOCKET_TIMEOUT_MS / 1000} s`, true, 'ETIMEDOUT');
      req.destroy(err);
    });
    req.on('response', resolve);
    req.on('error', (e) => reject(asTransferError(e, `request to ${url.host} failed`)));
    req.end();
  });
}

const header = (res: http.IncomingMessage, name: string): string | undefined => {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

const isRedirect = (s: number): boolean => s === 301 || s === 302 || s === 303 || s === 307 || s === 308;

function redirectTarget(res: http.IncomingMessage, from: URL): URL {
  const loc = header(res, 'location');
  if (!loc) throw new TransferError(`${from.href} answered ${res.statusCode} without a Location header`, false);
  // Location may be relative (the hub uses relative redirects for renamed repos).
  return new URL(loc, from);
}

/** GET following redirects (absolute and relative); extra headers (Range) are kept on every hop. */
async function getFollowing(url: URL, headers: Record<string, string>, signal?: AbortSignal): Promise<http.IncomingMessage> {
  let cur = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await request('GET', cur, headers, signal);
    const status = res.statusCode ?? 0;
    if (!isRedirect(status)) return res;
    res.resume();
    cur = redirectTarget(res, cur);
  }
  throw new TransferError(`too many redirects fetching ${url.href}`, false);
}

// ---------------------------------------------------------------------------------------------
// Hub download

interface DownloadCtx {
  id: string;
  revision: string;
  endpoint: string;
  repoDir: string;
  signal?: AbortSignal | undefined;
  onProgress?: ((p: LoadProgress) => void) | undefined;
}

interface FileMeta {
  file: string;
  /** Stable hub URL (not the CDN's signed one, which expires): every GET re-resolves it. */
  url: URL;
  commit: string;
  etag: string;
  size: number | null;
}

function resolveUrl(ctx: DownloadCtx, revision: string, file: string): URL {
  const f = file.split('/').map(encodeURIComponent).join('/');
  return new URL(`${ctx.endpoint}/${ctx.id}/resolve/${encodeURIComponent(revision)}/${f}`);
}

/** Names the blob file after the etag, as huggingface_hub does; anything path-like is neutralised. */
function blobName(etag: string): string {
  const name = etag.replace(/[^A-Za-z0-9._-]/g, '_');
  if (name === '' || /^\.+$/.test(name)) throw new ModelLoadError(`the hub sent an unusable ETag ${JSON.stringify(etag)}`);
  return name;
}

const cleanEtag = (e: string): string => e.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1');

const delay = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const t = setTimeout(done, ms);
    function done(): void {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort(): void {
      clearTimeout(t);
      reject(signal?.reason);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** Runs fn, retrying retryable TransferErrors with a short backoff; aborts are never retried. */
async function withRetries<T>(ctx: DownloadCtx, fn: () => Promise<T>, retryOffline: boolean): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      ctx.signal?.throwIfAborted();
      const te = e instanceof TransferError ? e : null;
      const offline = te?.code !== undefined && OFFLINE_CODES.has(te.code);
      if (te === null || !te.retryable || attempt >= MAX_ATTEMPTS || (offline && !retryOffline)) throw e;
      await delay(200 * attempt, ctx.signal);
    }
  }
}

/**
 * Metadata of one repo file (commit, etag, size) from a HEAD request. The hub answers LFS files
 * with a 302 to its CDN carrying X-Linked-Etag / X-Linked-Size; that redirect is not followed.
 * Returns null when the file does not exist in the repo.
 */
async function headFile(ctx: DownloadCtx, revision: string, file: string): Promise<FileMeta | null> {
  const url = resolveUrl(ctx, revision, file);
  return withRetries(ctx, async () => {
    let cur = url;
    let commit: string | undefined;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const res = await request('HEAD', cur, {}, ctx.signal);
      res.resume();
      const status = res.statusCode ?? 0;
      commit ??= header(res, 'x-repo-commit');
      const linkedEtag = header(res, 'x-linked-etag');
      if (isRedirect(status) && linkedEtag === undefined) {
        cur = redirectTarget(res, cur);
        continue;
      }
      if (status >= 200 && status < 400) {
        const etag = linkedEtag ?? header(res, 'etag');
        const sizeText = header(res, 'x-linked-size') ?? header(res, 'content-length');
        if (commit === undefined) {
          throw new ModelLoadError(`${ctx.endpoint} answered for ${file} without an X-Repo-Commit header; it does not look like a Hugging Face hub (check HF_ENDPOINT)`);
        }
        if (etag === undefined) throw new ModelLoadError(`${ctx.endpoint} answered for ${file} without an ETag; it does not look like a Hugging Face hub (check HF_ENDPOINT)`);
        commit = commit.trim();
        if (!/^[A-Za-z0-9._-]{1,128}$/.test(commit) || /^\.+$/.test(commit)) throw new ModelLoadError(`${ctx.endpoint} sent an unusable commit id ${JSON.stringify(commit)}`);
        const size = sizeText !== undefined && /^\d+$/.test(sizeText.trim()) ? Number(sizeText) : null;
        return { file, url, commit, etag: cleanEtag(etag), size };
      }
      throw hubStatusError(ctx, res, file, revision);
    }
    throw new TransferError(`too many redirects for ${url.href}`, false);
  }, false).catch((e: unknown) => {
    if (e instanceof NotFound) return null;
    throw e;
  });
}

class NotFound extends Error {}

/** Turns a hub error status into a clear error (or NotFound for a missing file in an existing repo). */
function hubStatusError(ctx: DownloadCtx, res: http.IncomingMessage, file: string, revision: string): Error {
  const status = res.statusCode ?? 0;
  const code = header(res, 'x-error-code');
  const where = `${ctx.endpoint}`;
  if (code === 'RepoNotFound' || (status === 401 && code === undefined)) {
    return new ModelLoadError(`model ${ctx.id} not found on ${where} (no such repository, or it is private)`);
  }
  if (code === 'RevisionNotFound') return new ModelLoadError(`revision ${revision} of model ${ctx.id} not found on ${where}`);
  if (code === 'GatedRepo' || status === 403) {
    return new ModelLoadError(`model ${ctx.id} on ${where} is gated or forbidden (HTTP ${status}); MechLens downloads public models only`);
  }
  if (code === 'EntryNotFound' || status === 404) return new NotFound(`${file} not found`);
  if (status === 429 || status >= 500) return new TransferError(`${where} answered HTTP ${status} for ${file} of ${ctx.id}`, true);
  return new ModelLoadError(`${where} answered HTTP ${status} for ${file} of ${ctx.id}`);
}

function statSize(p: string): number | null {
  try {
    return fs.statSync(p).size;
  } catch {
    return null;
  }
}

async function sha256File(p: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(fs.createReadStream(p), h);
  return h.digest('hex');
}

/** Makes a progress reporter that calls back at most every 256 KiB or 100 ms, and always at the end. */
function progressReporter(ctx: DownloadCtx, file: string, total: number | null): (loaded: number, force?: boolean) => void {
  let lastBytes = -1;
  let lastTime = 0;
  return (loaded, force = false) => {
    if (!ctx.onProgress) return;
    const now = Date.now();
    if (!force && lastBytes >= 0 && loaded - lastBytes < 256 * 1024 && now - lastTime < 100) return;
    lastBytes = loaded;
    lastTime = now;
    ctx.onProgress({ file, loaded, total });
  };
}

/** One GET into blobs/<etag>.incomplete, resuming from its current length when there is one. */
async function transferOnce(ctx: DownloadCtx, meta: FileMeta, incomplete: string): Promise<void> {
  let have = statSize(incomplete) ?? 0;
  if (meta.size !== null && have > meta.size) {
    fs.rmSync(incomplete, { force: true });
    have = 0;
  }
  if (meta.size !== null && have === meta.size && have > 0) return;
  const res = await getFollowing(meta.url, have > 0 ? { Range: `bytes=${have}-` } : {}, ctx.signal);
  const status = res.statusCode ?? 0;
  let flags: 'a' | 'w';
  if (status === 206) {
    const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header(res, 'content-range') ?? '');
    if (!m || Number(m[1]) !== have) {
      // Appending bytes from the wrong offset would corrupt the file: start over.
      res.destroy();
      fs.rmSync(incomplete, { force: true });
      throw new TransferError(`the server resumed ${meta.file} at the wrong offset (${header(res, 'content-range') ?? 'no Content-Range'})`, true);
    }
    flags = 'a';
  } else if (status === 200) {
    // The server ignored Range (or there was none): the body is the whole file.
    have = 0;
    flags = 'w';
  } else if (status === 416 && have > 0) {
    res.resume();
    fs.rmSync(incomplete, { force: true });
    throw new TransferError(`the server refused to resume ${meta.file}; starting over`, true);
  } else {
    res.resume();
    const err = hubStatusError(ctx, res, meta.file, meta.commit);
    if (err instanceof NotFound) throw new ModelLoadError(`${meta.file} of ${ctx.id} vanished from ${ctx.endpoint} during the download (HTTP ${status})`);
    throw err;
  }
  const lenText = header(res, 'content-length');
  const total = meta.size ?? (lenText !== undefined && /^\d+$/.test(lenText) ? have + Number(lenText) : null);
  const report = progressReporter(ctx, meta.file, total);
  let loaded = have;
  report(loaded, true);
  // Every chunk is written synchronously as the parser delivers it (flowing mode). Neither an
  // async iterator nor a piped write stream would do: when the connection drops, both discard
  // bytes they had buffered, which the resume would then fetch again, or (a whole small file
  // buffered) not resume at all. Sync writes of ~64 KB chunks into the page cache take microseconds.
  await new Promise<void>((resolve, reject) => {
    const fd = fs.openSync(incomplete, flags);
    let settled = false;
    const finish = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      ctx.signal?.removeEventListener('abort', onAbort);
      try { fs.closeSync(fd); } catch { /* already closed */ }
      if (ctx.signal?.aborted) reject(ctx.signal.reason);
      else if (err !== undefined) reject(asTransferError(err, `download of ${meta.file} was interrupted after ${loaded} bytes`));
      else resolve();
    };
    const onAbort = (): void => {
      res.destroy();
      finish();
    };
    // The progress callback may have aborted already (before this listener existed).
    if (ctx.signal?.aborted) {
      onAbort();
      return;
    }
    ctx.signal?.addEventListener('abort', onAbort, { once: true });
    res.on('data', (chunk: Buffer) => {
      if (settled) return;
      try {
        let off = 0;
        while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
      } catch (e) {
        res.destroy();
        finish(e);
        return;
      }
      loaded += chunk.length;
      report(loaded);
    });
    res.on('end', () => finish());
    res.on('error', (e) => finish(e));
    res.on('close', () => {
      if (!res.complete) finish(new TransferError(`connection closed after ${loaded} bytes of ${meta.file}`, true, 'ECONNRESET'));
    });
  });
  report(loaded, true);
  const got = statSize(incomplete) ?? 0;
  if (total !== null && got < total) throw new TransferError(`download of ${meta.file} ended after ${got} of ${total} bytes`, true);
}

/**
 * Downloads in flight in this process, by blob path: two loads of the same model (a double click)
 * share one transfer instead of appending to the same .incomplete file.
 */
const inFlight = new Map<string, Promise<string>>();

/** Ensures blobs/<etag> holds the verified file; returns its path. */
function ensureBlob(ctx: DownloadCtx, meta: FileMeta): Promise<string> {
  const blob = path.join(ctx.repoDir, 'blobs', blobName(meta.etag));
  const running = inFlight.get(blob);
  if (running) return running;
  const p = fetchBlob(ctx, meta, blob).finally(() => inFlight.delete(blob));
  inFlight.set(blob, p);
  return p;
}

async function fetchBlob(ctx: DownloadCtx, meta: FileMeta, blob: string): Promise<string> {
  const blobs = path.dirname(blob);
  const existing = statSize(blob);
  if (existing !== null && (meta.size === null || existing === meta.size)) return blob;
  if (existing !== null) fs.rmSync(blob, { force: true }); // wrong size: a damaged cache entry
  fs.mkdirSync(blobs, { recursive: true });
  const incomplete = `${blob}.incomplete`;
  try {
    await withRetries(ctx, () => transferOnce(ctx, meta, incomplete), true);
  } catch (e) {
    ctx.signal?.throwIfAborted();
    if (e instanceof TransferError) {
      throw new ModelLoadError(
        `downloading ${meta.file} of ${ctx.id} from ${ctx.endpoint} failed after ${MAX_ATTEMPTS} attempts: ${e.message}. ` +
          `The partial file ${incomplete} is kept and the next load resumes it.`,
      );
    }
    throw e;
  }
  const size = statSize(incomplete) ?? 0;
  if (meta.size !== null && size !== meta.size) {
    fs.rmSync(incomplete, { force: true });
    throw new ModelLoadError(`download of ${meta.file} of ${ctx.id} has ${size} bytes but the hub announced ${meta.size}; deleted it, try again`);
  }
  // An LFS etag is the file's sha256: check it, so that a corrupted transfer is never loaded or cached.
  if (/^[0-9a-f]{64}$/.test(meta.etag)) {
    const actual = await sha256File(incomplete);
    if (actual !== meta.etag) {
      fs.rmSync(incomplete, { force: true });
      throw new ModelLoadError(
        `integrity check failed for ${meta.file} of ${ctx.id} from ${ctx.endpoint}: sha256 is ${actual}, expected ${meta.etag}. ` +
          'The corrupted download was deleted; try again.',
      );
    }
  }
  fs.renameSync(incomplete, blob);
  return blob;
}

/** snapshots/<commit>/<file> -> relative symlink to the blob (a copy where symlinks are not allowed, e.g. Windows without developer mode). */
function linkSnapshot(repoDir: string, commit: string, file: string, blob: string): string {
  const dst = path.join(repoDir, 'snapshots', commit, ...file.split('/'));
  fs.mkdirSync(path.dirname(dst), { recursive: true });
  const lst = fs.lstatSync(dst, { throwIfNoEntry: false });
  if (lst !== undefined) {
    if (lst.isSymbolicLink() && path.resolve(path.dirname(dst), fs.readlinkSync(dst)) === blob) return dst;
    fs.rmSync(dst, { force: true });
  }
  try {
    fs.symlinkSync(path.relative(path.dirname(dst), blob), dst);
  } catch {
    fs.copyFileSync(blob, dst);
  }
  return dst;
}

/** refs/<revision> = commit, written via rename so a reader never sees a half-written hash. */
function writeRef(repoDir: string, revision: string, commit: string): void {
  if (revision === commit) return;
  const ref = path.join(repoDir, 'refs', ...revision.split('/'));
  fs.mkdirSync(path.dirname(ref), { recursive: true });
  const tmp = `${ref}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, commit);
  fs.renameSync(tmp, ref);
}

/** Downloads config.json and the safetensors weights of a hub model into the cache; returns the snapshot folder. */
async function downloadSnapshot(ctx: DownloadCtx): Promise<string> {
  let cfgMeta: FileMeta | null;
  try {
    cfgMeta = await headFile(ctx, ctx.revision, CONFIG);
  } catch (e) {
    ctx.signal?.throwIfAborted();
    if (e instanceof TransferError) {
      const offline = e.code !== undefined && OFFLINE_CODES.has(e.code);
      throw new ModelLoadError(
        `cannot download model ${ctx.id}: ${ctx.endpoint} ${offline ? 'is unreachable' : 'did not answer usefully'} (${e.message}), ` +
          `and the model is not in the Hugging Face cache (searched ${ctx.repoDir}). ` +
          'Connect to the network, set HF_ENDPOINT to a reachable mirror, or pass a local model folder.',
      );
    }
    throw e;
  }
  try {
    return await downloadFiles(ctx, cfgMeta);
  } catch (e) {
    ctx.signal?.throwIfAborted();
    if (e instanceof TransferError) throw new ModelLoadError(`downloading model ${ctx.id} from ${ctx.endpoint} failed: ${e.message}`);
    throw e;
  }
}

async function downloadFiles(ctx: DownloadCtx, cfgMeta: FileMeta | null): Promise<string> {
  if (cfgMeta === null) throw new ModelLoadError(`model ${ctx.id} not found on ${ctx.endpoint} (the repository has no ${CONFIG})`);
  const commit = cfgMeta.commit;
  const snapDir = path.join(ctx.repoDir, 'snapshots', commit);
  // Same commit cached under another ref (or refs/ lost): reuse it.
  if (isCompleteModelFolder(snapDir)) {
    writeRef(ctx.repoDir, ctx.revision, commit);
    return snapDir;
  }
  // Later files are fetched at the resolved commit so all files match even if the branch moves meanwhile.
  const metas: FileMeta[] = [cfgMeta];
  const single = await headFile(ctx, commit, WEIGHTS);
  if (single !== null) {
    metas.push(single);
  } else {
    const idx = await headFile(ctx, commit, INDEX);
    if (idx === null) {
      throw new ModelLoadError(`model ${ctx.id} on ${ctx.endpoint} has neither ${WEIGHTS} nor ${INDEX}; MechLens reads only safetensors weights`);
    }
    metas.push(idx);
    const weightMap = readIndex(await ensureBlob(ctx, idx));
    for (const shard of uniq(weightMap.values())) {
      const m = await headFile(ctx, commit, shard);
      if (m === null) throw new ModelLoadError(`model ${ctx.id} on ${ctx.endpoint}: ${INDEX} names shard ${shard}, which is not in the repository`);
      metas.push(m);
    }
  }
  const blobs: string[] = [];
  for (const m of metas) {
    ctx.signal?.throwIfAborted();
    blobs.push(await ensureBlob(ctx, m));
  }
  metas.forEach((m, i) => linkSnapshot(ctx.repoDir, commit, m.file, blobs[i]!));
  writeRef(ctx.repoDir, ctx.revision, commit);
  return snapDir;
}

// ---------------------------------------------------------------------------------------------
// Other repositories' files (SAE releases: one folder per hook)

export interface HubFilesOptions extends LoadOptions {
  /** What the files are, for errors ("SAE blocks.8.hook_resid_pre of org/release"). */
  what: string;
}

/**
 * Chosen files of a hub repository, from the cache when all `required` ones are there, else
 * downloaded into it with the model loader's machinery (HEAD for commit and etag, resumable
 * verified blob transfers, snapshot links, refs). `optional` files are fetched when the repository
 * has them. Returns the snapshot folder; the files keep their repository paths under it.
 */
export async function fetchHubFiles(id: string, required: readonly string[], optional: readonly string[], opts: HubFilesOptions): Promise<string> {
  if (!isHfModelId(id)) throw new ModelLoadError(`${JSON.stringify(id)} is not a Hugging Face repository id such as org/name`);
  for (const f of [...required, ...optional]) if (!isSafeRelativeFile(f)) throw new ModelLoadError(`${opts.what}: ${JSON.stringify(f)} is not a file path inside the repository`);
  const revision = opts.revision ?? 'main';
  checkRevision(revision);
  const cacheDir = opts.cacheDir !== undefined ? path.resolve(expandHome(opts.cacheDir)) : resolveHfCacheDir();
  const repoDir = hfRepoCacheDir(id, cacheDir);
  let commit: string | null = COMMIT_RE.test(revision) ? revision : null;
  if (commit === null) {
    try {
      commit = fs.readFileSync(path.join(repoDir, 'refs', ...revision.split('/')), 'utf8').trim();
    } catch {
      commit = null;
    }
  }
  if (commit !== null && /^[A-Za-z0-9._-]+$/.test(commit) && !/^\.+$/.test(commit)) {
    const snap = path.join(repoDir, 'snapshots', commit);
    if (required.every((f) => isFile(path.join(snap, ...f.split('/'))))) return snap;
  }
  if (opts.allowDownload === false) {
    throw new ModelLoadError(`${opts.what} (revision ${revision}) is not in the Hugging Face cache (searched ${repoDir}) and downloading is turned off`);
  }
  const endpoint = normalizeEndpoint(opts.endpoint ?? process.env['HF_ENDPOINT'] ?? DEFAULT_ENDPOINT);
  const ctx: DownloadCtx = { id, revision, endpoint, repoDir, signal: opts.signal, onProgress: opts.onProgress };
  try {
    const first = await headFile(ctx, revision, required[0]!);
    if (first === null) throw new ModelLoadError(`${opts.what}: ${id} on ${endpoint} has no ${required[0]} (check the repository and folder name)`);
    const metas: FileMeta[] = [first];
    for (const f of required.slice(1)) {
      const m = await headFile(ctx, first.commit, f);
      if (m === null) throw new ModelLoadError(`${opts.what}: ${id} on ${endpoint} has ${required[0]} but no ${f}`);
      metas.push(m);
    }
    for (const f of optional) {
      const m = await headFile(ctx, first.commit, f);
      if (m !== null) metas.push(m);
    }
    const blobs: string[] = [];
    for (const m of metas) {
      ctx.signal?.throwIfAborted();
      blobs.push(await ensureBlob(ctx, m));
    }
    metas.forEach((m, i) => linkSnapshot(repoDir, first.commit, m.file, blobs[i]!));
    writeRef(repoDir, revision, first.commit);
    return path.join(repoDir, 'snapshots', first.commit);
  } catch (e) {
    ctx.signal?.throwIfAborted();
    if (e instanceof TransferError) {
      const offline = e.code !== undefined && OFFLINE_CODES.has(e.code);
      throw new ModelLoadError(
        `cannot download ${opts.what}: ${endpoint} ${offline ? 'is unreachable' : 'failed'} (${e.message}), and it is not in the Hugging Face cache (searched ${repoDir}). ` +
          'Connect to the network, set HF_ENDPOINT to a reachable mirror, or pass a local folder.',
      );
    }
    throw e;
  }
}
