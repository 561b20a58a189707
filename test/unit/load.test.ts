/**
 * loadModel: local folders (single file, transformer.-prefixed, sharded), the Hugging Face cache
 * layout, and downloads from a fake hub on 127.0.0.1 that answers with the hub's headers.
 * Nothing here touches the network beyond 127.0.0.1 or the user's real HF cache: HF_ENDPOINT and
 * HF_HUB_CACHE are pointed at a dead local port and a temp folder for the whole file.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { maxAbsDiff, type F32 } from '../../src/engine/tensor/tensor.js';
import { readSafetensors, writeSafetensors } from '../../src/engine/model/safetensors.js';
import { unembedDims, untieUnembed } from '../../src/engine/model/unembed.js';
import {
  hfCacheSnapshot,
  hfRepoCacheDir,
  loadModel,
  resolveHfCacheDir,
  type LoadProgress,
} from '../../src/engine/model/load.js';

// An oracle fixture saved without the transformer. prefix, as the hub's gpt2 is; its expected.safetensors
// holds TransformerLens's converted params.
const FIXTURE = path.join(__dirname, '..', 'fixtures', 'gpt2-noprefix-gelu');
const SLM = path.resolve(__dirname, '..', '..', '..', 'shared', 'models', 'slm4096');
const CONFIG_BYTES = fs.readFileSync(path.join(FIXTURE, 'config.json'));
const MODEL_BYTES = fs.readFileSync(path.join(FIXTURE, 'model.safetensors'));
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sha1 = (b: Buffer | string): string => createHash('sha1').update(b).digest('hex');

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-load-'));
let dirCounter = 0;
const tmpDir = (name: string): string => fs.mkdtempSync(path.join(tmpRoot, `${dirCounter++}-${name}-`));

const ENV_KEYS = ['HF_ENDPOINT', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_HOME', 'XDG_CACHE_HOME'] as const;
const savedEnv = new Map<string, string | undefined>(ENV_KEYS.map((k) => [k, process.env[k]]));
before(() => {
  // Safety net: any code path that forgets its options still stays on this machine and in tmp.
  process.env['HF_ENDPOINT'] = 'http://127.0.0.1:9';
  process.env['HF_HUB_CACHE'] = tmpDir('default-cache');
  delete process.env['HUGGINGFACE_HUB_CACHE'];
});
after(() => {
  for (const [k, v] of savedEnv) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  fs.rmSync(tmpRoot, { recursive: true, force: true });
});

/** Runs fn with env vars set (undefined = unset), restoring them afterwards. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T> | T): Promise<T> {
  const old = new Map(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of old) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

let expectedCache: Map<string, F32> | null = null;
/** TransformerLens's 'none' params for the fixture. */
function expectedParams(): Map<string, F32> {
  if (expectedCache === null) {
    expectedCache = new Map();
    for (const [k, v] of readSafetensors(path.join(FIXTURE, 'expected.safetensors'))) {
      if (k.startsWith('none/params/')) expectedCache.set(k.slice('none/params/'.length), v);
    }
  }
  return expectedCache;
}

function assertFixtureParams(tiedOrNot: Map<string, F32>): void {
  // The tied fixture's W_U is kept as factors of W_E (model/unembed.ts): compared as the W_U they stand for.
  const params = untieUnembed(tiedOrNot);
  const want = expectedParams();
  assert.deepEqual([...params.keys()].sort(), [...want.keys()].sort());
  let worst = 0;
  let worstName = '';
  for (const [k, w] of want) {
    const d = maxAbsDiff(params.get(k)!, w);
    if (!(d <= worst)) {
      worst = d;
      worstName = k;
    }
  }
  assert.ok(worst <= 1e-6, `max abs diff ${worst} at ${worstName}`);
}

/** The fixture's tensors split over two shards plus an index, as HF writes sharded checkpoints. */
function shardedFiles(prefix = ''): Map<string, Buffer> {
  const sd = readSafetensors(path.join(FIXTURE, 'model.safetensors'));
  const names = [...sd.keys()];
  const half = Math.ceil(names.length / 2);
  const work = tmpDir('shard-build');
  const out = new Map<string, Buffer>();
  const weightMap: Record<string, string> = {};
  let total = 0;
  [names.slice(0, half), names.slice(half)].forEach((part, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    const m = new Map<string, F32>();
    for (const n of part) {
      m.set(prefix + n, sd.get(n)!);
      weightMap[prefix + n] = file;
      total += sd.get(n)!.data.byteLength;
    }
    writeSafetensors(path.join(work, file), m, { format: 'pt' });
    out.set(file, fs.readFileSync(path.join(work, file)));
  });
  out.set('model.safetensors.index.json', Buffer.from(JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)));
  return out;
}

function writeFolder(files: Map<string, Buffer>): string {
  const dir = tmpDir('folder');
  for (const [name, body] of files) fs.writeFileSync(path.join(dir, name), body);
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Local folders

test('loads the fixture folder to TransformerLens none params', async () => {
  const r = await loadModel(FIXTURE);
  assert.equal(r.source, FIXTURE);
  assert.equal(r.cfg.n_layers, 2);
  assert.equal(r.cfg.model_name, 'gpt2-noprefix-gelu');
  assert.deepEqual(r.files, ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'].map((f) => path.join(FIXTURE, f)));
  assertFixtureParams(r.params);
  // A path to a file inside the folder is accepted too.
  const viaFile = await loadModel(path.join(FIXTURE, 'model.safetensors'));
  assert.equal(viaFile.source, FIXTURE);
});

test('a folder whose keys carry the transformer. prefix (and an lm_head)', async () => {
  const sd = readSafetensors(path.join(FIXTURE, 'model.safetensors'));
  const prefixed = new Map<string, F32>();
  for (const [k, v] of sd) prefixed.set(`transformer.${k}`, v);
  prefixed.set('lm_head.weight', sd.get('wte.weight')!);
  const dir = tmpDir('prefixed');
  fs.copyFileSync(path.join(FIXTURE, 'config.json'), path.join(dir, 'config.json'));
  writeSafetensors(path.join(dir, 'model.safetensors'), prefixed);
  assertFixtureParams((await loadModel(dir)).params);
});

test('a sharded folder (two shards + model.safetensors.index.json)', async () => {
  const files = shardedFiles('transformer.');
  files.set('config.json', CONFIG_BYTES);
  const dir = writeFolder(files);
  const r = await loadModel(dir);
  assertFixtureParams(r.params);
  assert.deepEqual(r.files.map((f) => path.basename(f)), [
    'config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors',
  ]);
  // A shard that the index names but that is missing.
  fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
  await assert.rejects(loadModel(dir), /names shard file\(s\) that are missing: model-00002-of-00002\.safetensors/);
});

test('folder errors name the folder and what a model folder contains', async () => {
  const empty = tmpDir('empty');
  await assert.rejects(loadModel(empty), (e: Error) => {
    assert.ok(e.message.includes(empty), e.message);
    assert.match(e.message, /config\.json is missing\. A model folder contains config\.json .* and model\.safetensors/);
    return true;
  });
  const noWeights = tmpDir('noweights');
  fs.writeFileSync(path.join(noWeights, 'config.json'), CONFIG_BYTES);
  fs.writeFileSync(path.join(noWeights, 'pytorch_model.bin'), 'pickle');
  await assert.rejects(loadModel(noWeights), /has config\.json but no model\.safetensors or model\.safetensors\.index\.json\. It has pytorch_model\.bin, but MechLens reads only safetensors/);
  await assert.rejects(loadModel(path.join(empty, 'missing', 'sub')), /model folder .*missing.sub does not exist/);
  const broken = tmpDir('broken');
  fs.writeFileSync(path.join(broken, 'config.json'), CONFIG_BYTES);
  fs.writeFileSync(path.join(broken, 'model.safetensors'), MODEL_BYTES.subarray(0, 1000));
  await assert.rejects(loadModel(broken), (e: Error) => e.message.includes(broken) && /truncated/.test(e.message));
});

test('the real slm4096 character-level model loads (vocab.json reported in files)', { skip: fs.existsSync(SLM) ? false : `${SLM} is absent` }, async () => {
  const r = await loadModel(SLM);
  assert.equal(r.cfg.n_layers, 4);
  assert.equal(r.cfg.d_vocab, 54);
  assert.equal(r.cfg.act_fn, 'gelu');
  assert.ok(r.files.includes(path.join(SLM, 'vocab.json')));
  assert.deepEqual(r.params.get('blocks.3.attn.W_Q')!.dims, [4, 64, 16]);
  assert.deepEqual(unembedDims(r.params), [64, 54]);
  assert.equal(untieUnembed(r.params).size, 2 + 16 * 4 + 2 + 2); // embed+pos, 16 per block, ln_final, unembed
});

// ---------------------------------------------------------------------------------------------
// Hugging Face cache

/** Writes a model into a cache folder the way huggingface_hub does (blobs + relative symlinks + refs). */
function seedCache(cacheDir: string, id: string, files: Map<string, Buffer>, commit: string, ref = 'main'): string {
  const repo = hfRepoCacheDir(id, cacheDir);
  const snap = path.join(repo, 'snapshots', commit);
  fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
  fs.mkdirSync(snap, { recursive: true });
  fs.mkdirSync(path.join(repo, 'refs'), { recursive: true });
  for (const [name, body] of files) {
    const etag = name.endsWith('.safetensors') ? sha256(body) : sha1(body);
    fs.writeFileSync(path.join(repo, 'blobs', etag), body);
    fs.symlinkSync(path.join('..', '..', 'blobs', etag), path.join(snap, name));
  }
  fs.writeFileSync(path.join(repo, 'refs', ref), commit);
  return snap;
}

const fixtureRepo = (): Map<string, Buffer> => new Map([['config.json', CONFIG_BYTES], ['model.safetensors', MODEL_BYTES]]);

test('HF cache: HF_HOME/hub and HF_HUB_CACHE are searched; symlinked snapshots load without the network', async () => {
  const home = tmpDir('hf-home');
  const commit = sha1('commit-a');
  const snap = seedCache(path.join(home, 'hub'), 'test-org/tiny', fixtureRepo(), commit);
  await withEnv({ HF_HOME: home, HF_HUB_CACHE: undefined, HUGGINGFACE_HUB_CACHE: undefined, HF_ENDPOINT: 'http://127.0.0.1:9' }, async () => {
    assert.equal(resolveHfCacheDir(), path.join(home, 'hub'));
    assert.equal(hfCacheSnapshot('test-org/tiny', 'main'), snap);
    assert.equal(hfCacheSnapshot('test-org/tiny', commit), snap);
    assert.equal(hfCacheSnapshot('test-org/other', 'main'), null);
    const r = await loadModel('test-org/tiny', { allowDownload: false });
    assert.equal(r.source, 'test-org/tiny');
    assert.equal(r.cfg.model_name, 'test-org/tiny');
    assert.deepEqual(r.files, [path.join(snap, 'config.json'), path.join(snap, 'model.safetensors')]);
    assertFixtureParams(r.params);
  });
  // HF_HUB_CACHE wins over HF_HOME.
  const hubCache = tmpDir('hub-cache');
  const snap2 = seedCache(hubCache, 'tiny', fixtureRepo(), sha1('commit-b'));
  await withEnv({ HF_HOME: home, HF_HUB_CACHE: hubCache }, async () => {
    assert.equal(resolveHfCacheDir(), hubCache);
    assert.equal(hfCacheSnapshot('tiny'), snap2);
    assertFixtureParams((await loadModel('tiny', { allowDownload: false })).params);
    // A sharded snapshot with one dangling shard link is not complete.
    const files = shardedFiles();
    files.set('config.json', CONFIG_BYTES);
    const snap3 = seedCache(hubCache, 'org/sharded', files, sha1('commit-c'));
    assert.equal(hfCacheSnapshot('org/sharded'), snap3);
    fs.rmSync(path.join(hfRepoCacheDir('org/sharded', hubCache), 'blobs', sha256(files.get('model-00002-of-00002.safetensors')!)));
    assert.equal(hfCacheSnapshot('org/sharded'), null);
  });
  // Defaults: XDG_CACHE_HOME/huggingface/hub, then ~/.cache/huggingface/hub.
  await withEnv({ HF_HOME: undefined, HF_HUB_CACHE: undefined, XDG_CACHE_HOME: '/x/cache' }, () => {
    assert.equal(resolveHfCacheDir(), path.resolve('/x/cache/huggingface/hub'));
  });
  await withEnv({ HF_HOME: undefined, HF_HUB_CACHE: undefined, XDG_CACHE_HOME: undefined }, () => {
    assert.equal(resolveHfCacheDir(), path.join(os.homedir(), '.cache', 'huggingface', 'hub'));
  });
});

test('not cached and allowDownload: false: clear error naming the cache path searched', async () => {
  const cacheDir = tmpDir('empty-cache');
  await assert.rejects(loadModel('org/absent', { cacheDir, allowDownload: false }), (e: Error) => {
    assert.ok(e.message.includes(path.join(cacheDir, 'models--org--absent')), e.message);
    assert.match(e.message, /not in the Hugging Face cache .* downloading is turned off/);
    return true;
  });
});

// ---------------------------------------------------------------------------------------------
// Fake hub

interface HubOptions {
  /** Cut the first CDN response halfway through (headers promise the full length). */
  cutFirst?: boolean;
  /** Answer Range requests with 200 and the whole file. */
  ignoreRange?: boolean;
  /** Flip one byte of every CDN body. */
  corrupt?: boolean;
  /** Redirect to an absolute CDN URL instead of a relative one. */
  absoluteRedirect?: boolean;
}

interface SeenRequest {
  method: string;
  url: string;
  range: string | undefined;
  status: number;
}

/** A hub on 127.0.0.1: /<id>/resolve/<rev>/<file>; *.safetensors are LFS (302 to /cdn/<sha256>). */
class FakeHub {
  readonly requests: SeenRequest[] = [];
  readonly commit = sha1('fake-commit');
  private server: http.Server | null = null;
  private cdnGets = 0;
  endpoint = '';

  constructor(readonly repos: Map<string, Map<string, Buffer>>, readonly opts: HubOptions = {}) {}

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = null;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private record(req: http.IncomingMessage, status: number): void {
    this.requests.push({ method: req.method ?? '', url: req.url ?? '', range: req.headers.range, status });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? '';
    if (url.startsWith('/cdn/')) return this.cdn(req, res, url.slice('/cdn/'.length));
    const m = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(url);
    const repo = m ? this.repos.get(m[1]!) : undefined;
    if (!m || !repo) {
      this.record(req, 404);
      res.writeHead(404, { 'X-Error-Code': 'RepoNotFound', 'Content-Type': 'text/plain' });
      res.end('Repository not found');
      return;
    }
    const file = decodeURIComponent(m[3]!);
    const body = repo.get(file);
    if (!body) {
      this.record(req, 404);
      res.writeHead(404, { 'X-Error-Code': 'EntryNotFound', 'X-Repo-Commit': this.commit });
      res.end('Entry not found');
      return;
    }
    if (file.endsWith('.safetensors')) {
      const sha = sha256(body);
      const loc = this.opts.absoluteRedirect ? `${this.endpoint}/cdn/${sha}` : `/cdn/${sha}`;
      this.record(req, 302);
      res.writeHead(302, {
        Location: loc,
        'X-Repo-Commit': this.commit,
        'X-Linked-Etag': `"${sha}"`,
        'X-Linked-Size': String(body.length),
        ETag: `"${sha1(body)}"`,
        'Content-Length': '0',
      });
      res.end();
      return;
    }
    this.record(req, 200);
    res.writeHead(200, { 'X-Repo-Commit': this.commit, ETag: `"${sha1(body)}"`, 'Content-Length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private cdn(req: http.IncomingMessage, res: http.ServerResponse, sha: string): void {
    let body: Buffer | undefined;
    for (const files of this.repos.values()) for (const b of files.values()) if (sha256(b) === sha) body = b;
    if (!body) {
      this.record(req, 404);
      res.writeHead(404).end();
      return;
    }
    if (this.opts.corrupt) {
      body = Buffer.from(body);
      const mid = body.length >> 1;
      body[mid] = body[mid]! ^ 0xff;
    }
    const first = this.cdnGets++ === 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !this.opts.ignoreRange) {
      const start = Number(range[1]);
      this.record(req, 206);
      res.writeHead(206, { 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}`, 'Content-Length': String(body.length - start) });
      res.end(body.subarray(start));
      return;
    }
    this.record(req, 200);
    res.writeHead(200, { 'Content-Length': String(body.length), ETag: `"${sha}"` });
    if (first && this.opts.cutFirst) {
      // Send half, then drop the connection: the client sees a premature end of body.
      res.write(body.subarray(0, body.length >> 1), () => res.socket?.destroy());
      return;
    }
    res.end(body);
  }
}

async function withHub<T>(repos: Map<string, Map<string, Buffer>>, opts: HubOptions, fn: (hub: FakeHub) => Promise<T>): Promise<T> {
  const hub = await new FakeHub(repos, opts).start();
  try {
    return await fn(hub);
  } finally {
    await hub.close();
  }
}

const cdnGets = (hub: FakeHub): SeenRequest[] => hub.requests.filter((r) => r.method === 'GET' && r.url.startsWith('/cdn/'));

/** Every file (not folder) under dir, relative, '/'-separated. */
function listTree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => !fs.statSync(path.join(dir, f)).isDirectory() || fs.lstatSync(path.join(dir, f)).isSymbolicLink())
    .map((f) => f.split(path.sep).join('/'))
    .sort();
}

test('download: hub headers, 302 to the CDN, huggingface_hub cache layout, progress; then loads offline from the cache', async () => {
  const cacheDir = tmpDir('dl-cache');
  await withHub(new Map([['tiny-org/tiny-gpt2', fixtureRepo()]]), {}, async (hub) => {
    const progress: LoadProgress[] = [];
    // Endpoint and cache from the environment, as a user would configure them.
    const r = await withEnv({ HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cacheDir }, () =>
      loadModel('tiny-org/tiny-gpt2', { onProgress: (p) => progress.push({ ...p }) }));
    assertFixtureParams(r.params);
    assert.equal(r.source, 'tiny-org/tiny-gpt2');

    const repo = path.join(cacheDir, 'models--tiny-org--tiny-gpt2');
    const sha = sha256(MODEL_BYTES);
    assert.deepEqual(listTree(repo), [
      `blobs/${sha}`, `blobs/${sha1(CONFIG_BYTES)}`,
      'refs/main', `snapshots/${hub.commit}/config.json`, `snapshots/${hub.commit}/model.safetensors`,
    ].sort());
    assert.equal(fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8'), hub.commit);
    const link = path.join(repo, 'snapshots', hub.commit, 'model.safetensors');
    assert.equal(fs.readlinkSync(link), path.join('..', '..', 'blobs', sha));
    assert.deepEqual(fs.readFileSync(link), MODEL_BYTES);
    assert.deepEqual(r.files, [path.join(repo, 'snapshots', hub.commit, 'config.json'), link]);

    // Requests: metadata first (HEAD), then the files; later files are fetched at the resolved commit.
    assert.deepEqual(hub.requests.filter((q) => q.method === 'HEAD').map((q) => q.url), [
      '/tiny-org/tiny-gpt2/resolve/main/config.json', `/tiny-org/tiny-gpt2/resolve/${hub.commit}/model.safetensors`,
    ]);
    assert.equal(cdnGets(hub).length, 1);

    const mp = progress.filter((p) => p.file === 'model.safetensors');
    assert.ok(mp.length >= 2, 'progress reported at start and end');
    assert.equal(mp[0]!.loaded, 0);
    assert.deepEqual(mp.at(-1), { file: 'model.safetensors', loaded: MODEL_BYTES.length, total: MODEL_BYTES.length });
    for (let i = 1; i < mp.length; i++) assert.ok(mp[i]!.loaded >= mp[i - 1]!.loaded, 'progress never goes back');
    assert.deepEqual(progress.filter((p) => p.file === 'config.json').at(-1), { file: 'config.json', loaded: CONFIG_BYTES.length, total: CONFIG_BYTES.length });

    // Second load: served from the cache, no request at all.
    const before = hub.requests.length;
    const again = await loadModel('tiny-org/tiny-gpt2', { cacheDir, endpoint: hub.endpoint });
    assert.equal(hub.requests.length, before);
    assertFixtureParams(again.params);
  });
});

test('download resumes an interrupted transfer with Range; the blob is byte-identical', async () => {
  const cacheDir = tmpDir('resume-cache');
  await withHub(new Map([['tiny-gpt2', fixtureRepo()]]), { cutFirst: true, absoluteRedirect: true }, async (hub) => {
    const progress: LoadProgress[] = [];
    const r = await loadModel('tiny-gpt2', { cacheDir, endpoint: hub.endpoint, onProgress: (p) => progress.push({ ...p }) });
    assertFixtureParams(r.params);
    const gets = cdnGets(hub);
    assert.equal(gets.length, 2, JSON.stringify(hub.requests));
    assert.equal(gets[0]!.range, undefined);
    const m = /^bytes=(\d+)-$/.exec(gets[1]!.range ?? '');
    assert.ok(m, `second request carries Range, got ${gets[1]!.range}`);
    const resumedAt = Number(m[1]);
    assert.ok(resumedAt > 0 && resumedAt <= MODEL_BYTES.length / 2, `resumed at ${resumedAt}`);
    assert.equal(gets[1]!.status, 206);
    const blob = path.join(hfRepoCacheDir('tiny-gpt2', cacheDir), 'blobs', sha256(MODEL_BYTES));
    assert.deepEqual(fs.readFileSync(blob), MODEL_BYTES);
    assert.ok(!fs.existsSync(`${blob}.incomplete`));
    // The resumed attempt reports progress from where it resumed.
    assert.ok(progress.some((p) => p.file === 'model.safetensors' && p.loaded === resumedAt));
  });
});

test('resume against a server that ignores Range (200): starts over, still byte-identical', async () => {
  const cacheDir = tmpDir('norange-cache');
  await withHub(new Map([['tiny-gpt2', fixtureRepo()]]), { cutFirst: true, ignoreRange: true }, async (hub) => {
    assertFixtureParams((await loadModel('tiny-gpt2', { cacheDir, endpoint: hub.endpoint })).params);
    const gets = cdnGets(hub);
    assert.equal(gets.length, 2);
    assert.match(gets[1]!.range ?? '', /^bytes=\d+-$/);
    assert.equal(gets[1]!.status, 200);
    const blob = path.join(hfRepoCacheDir('tiny-gpt2', cacheDir), 'blobs', sha256(MODEL_BYTES));
    assert.deepEqual(fs.readFileSync(blob), MODEL_BYTES);
  });
});

test('a partial blob left by an earlier run is resumed by the next load', async () => {
  const cacheDir = tmpDir('partial-cache');
  const blobs = path.join(hfRepoCacheDir('tiny-gpt2', cacheDir), 'blobs');
  fs.mkdirSync(blobs, { recursive: true });
  fs.writeFileSync(path.join(blobs, `${sha256(MODEL_BYTES)}.incomplete`), MODEL_BYTES.subarray(0, 1000));
  await withHub(new Map([['tiny-gpt2', fixtureRepo()]]), {}, async (hub) => {
    assertFixtureParams((await loadModel('tiny-gpt2', { cacheDir, endpoint: hub.endpoint })).params);
    assert.deepEqual(cdnGets(hub).map((g) => g.range), ['bytes=1000-']);
    assert.deepEqual(fs.readFileSync(path.join(blobs, sha256(MODEL_BYTES))), MODEL_BYTES);
  });
});

test('integrity failure: corrupted bytes are refused, nothing is left under snapshots', async () => {
  const cacheDir = tmpDir('corrupt-cache');
  await withHub(new Map([['tiny-gpt2', fixtureRepo()]]), { corrupt: true }, async (hub) => {
    await assert.rejects(loadModel('tiny-gpt2', { cacheDir, endpoint: hub.endpoint }), (e: Error) => {
      assert.match(e.message, /integrity check failed for model\.safetensors of tiny-gpt2 .*expected [0-9a-f]{64}/);
      return true;
    });
    const repo = hfRepoCacheDir('tiny-gpt2', cacheDir);
    assert.deepEqual(listTree(path.join(repo, 'snapshots')), []);
    assert.ok(!fs.existsSync(path.join(repo, 'refs', 'main')));
    assert.deepEqual(listTree(path.join(repo, 'blobs')).filter((f) => f.includes(sha256(MODEL_BYTES))), [], 'no corrupt blob or .incomplete kept');
  });
});

test('a sharded repo (model.safetensors 404s): index and shards are downloaded and linked', async () => {
  const cacheDir = tmpDir('shard-cache');
  const files = shardedFiles();
  files.set('config.json', CONFIG_BYTES);
  await withHub(new Map([['org/sharded', files]]), {}, async (hub) => {
    const r = await loadModel('org/sharded', { cacheDir, endpoint: hub.endpoint });
    assertFixtureParams(r.params);
    const snap = path.join(hfRepoCacheDir('org/sharded', cacheDir), 'snapshots', hub.commit);
    assert.deepEqual(listTree(snap), [
      'config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json',
    ]);
    assert.equal(hfCacheSnapshot('org/sharded', 'main', cacheDir), snap);
  });
});

test('unknown model id: "model X not found on <endpoint>"', async () => {
  const cacheDir = tmpDir('404-cache');
  await withHub(new Map([['tiny-gpt2', fixtureRepo()]]), {}, async (hub) => {
    await assert.rejects(loadModel('nobody/nothing', { cacheDir, endpoint: hub.endpoint }), (e: Error) => {
      assert.ok(e.message.includes(`model nobody/nothing not found on ${hub.endpoint}`), e.message);
      return true;
    });
    assert.ok(!fs.existsSync(hfRepoCacheDir('nobody/nothing', cacheDir)), 'nothing written for a missing model');
  });
});

test('offline (connection refused): clear error naming the cache path searched', async () => {
  const cacheDir = tmpDir('offline-cache');
  // A port that was just free: start a server to get one, then close it.
  const dead = await new FakeHub(new Map()).start();
  const endpoint = dead.endpoint;
  await dead.close();
  await assert.rejects(loadModel('org/model', { cacheDir, endpoint }), (e: Error) => {
    assert.ok(e.message.includes(path.join(cacheDir, 'models--org--model')), e.message);
    assert.match(e.message, /unreachable \(.*ECONNREFUSED.*\)/);
    return true;
  });
});

test('abort via signal stops the download and keeps nothing under snapshots', async () => {
  const cacheDir = tmpDir('abort-cache');
  await withHub(new Map([['tiny-gpt2', fixtureRepo()]]), {}, async (hub) => {
    const ac = new AbortController();
    const p = loadModel('tiny-gpt2', {
      cacheDir,
      endpoint: hub.endpoint,
      signal: ac.signal,
      onProgress: (q) => {
        if (q.file === 'model.safetensors') ac.abort();
      },
    });
    await assert.rejects(p, (e: Error) => e.name === 'AbortError');
    assert.deepEqual(listTree(path.join(hfRepoCacheDir('tiny-gpt2', cacheDir), 'snapshots')), []);
  });
});

test('two concurrent loads of the same model share one transfer', async () => {
  const cacheDir = tmpDir('concurrent-cache');
  await withHub(new Map([['tiny-gpt2', fixtureRepo()]]), {}, async (hub) => {
    const [a, b] = await Promise.all([
      loadModel('tiny-gpt2', { cacheDir, endpoint: hub.endpoint }),
      loadModel('tiny-gpt2', { cacheDir, endpoint: hub.endpoint }),
    ]);
    assertFixtureParams(a.params);
    assertFixtureParams(b.params);
    assert.equal(cdnGets(hub).length, 1);
  });
});
