/**
 * SAEs from a hub release repository (one folder per hook), through the same cache and download
 * machinery as models, against a hub on 127.0.0.1 that serves a fixture SAE.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { FIXTURES_ROOT } from '../helpers/oracle.js';
import { loadSae, parseSaeRef } from '../../src/engine/sae/load.js';
import { loadSaeFolder } from '../../src/engine/sae/sae.js';

const SRC = path.join(FIXTURES_ROOT, 'saes', 'rms-gqa-gated', 'jumprelu-mlp-post-0');
const FOLDER = 'blocks.0.mlp.hook_post';
const REPO = 'tiny-org/tiny-saes';
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-sae-hub-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
const sha = (alg: string, b: Buffer) => crypto.createHash(alg).update(b).digest('hex');

/** /<repo>/resolve/<rev>/<path>: JSON files directly, safetensors as LFS (302 to /cdn/<sha256>). */
async function startHub(files: Map<string, Buffer>): Promise<{ endpoint: string; gets: string[]; close: () => Promise<void> }> {
  const commit = sha('sha1', Buffer.from('sae-commit'));
  const gets: string[] = [];
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(req.url ?? '');
    if (url.startsWith('/cdn/')) {
      const body = [...files.values()].find((b) => sha('sha256', b) === url.slice(5));
      if (!body) return void res.writeHead(404).end();
      gets.push(url);
      res.writeHead(200, { 'Content-Length': String(body.length) });
      return void res.end(body);
    }
    const m = /^\/(.+?\/.+?)\/resolve\/([^/]+)\/(.+)$/.exec(url);
    const body = m && m[1] === REPO ? files.get(m[3]!) : undefined;
    if (!body) {
      res.writeHead(404, { 'X-Error-Code': m && m[1] === REPO ? 'EntryNotFound' : 'RepoNotFound', 'X-Repo-Commit': commit });
      return void res.end('not found');
    }
    if (m![3]!.endsWith('.safetensors')) {
      res.writeHead(302, { Location: `/cdn/${sha('sha256', body)}`, 'X-Repo-Commit': commit, 'X-Linked-Etag': `"${sha('sha256', body)}"`, 'X-Linked-Size': String(body.length), 'Content-Length': '0' });
      return void res.end();
    }
    if (req.method === 'GET') gets.push(url);
    res.writeHead(200, { 'X-Repo-Commit': commit, ETag: `"${sha('sha1', body)}"`, 'Content-Length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    gets,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

test('parseSaeRef: org/name/<folder with dots>', () => {
  assert.deepEqual(parseSaeRef('org/rel/blocks.8.hook_resid_pre'), { repo: 'org/rel', folder: 'blocks.8.hook_resid_pre' });
  assert.deepEqual(parseSaeRef('org/rel/layer_8/width_16k'), { repo: 'org/rel', folder: 'layer_8/width_16k' });
  assert.equal(parseSaeRef('org/rel/../x'), null);
  assert.equal(parseSaeRef('single'), null);
});

test('a release folder is downloaded into the hub cache, then loaded from it offline', async () => {
  const files = new Map<string, Buffer>();
  for (const f of ['cfg.json', 'sae_weights.safetensors', 'sparsity.safetensors']) files.set(`${FOLDER}/${f}`, fs.readFileSync(path.join(SRC, f)));
  const hub = await startHub(files);
  const cacheDir = path.join(tmpRoot, 'cache');
  try {
    const got = await loadSae(`${REPO}/${FOLDER}`, { cacheDir, endpoint: hub.endpoint });
    const want = loadSaeFolder(SRC);
    assert.equal(got.cfg.architecture, 'jumprelu');
    assert.deepEqual([...got.weights.W_enc.data], [...want.weights.W_enc.data]);
    assert.deepEqual([...got.sparsity!.data], [...want.sparsity!.data]);
    assert.equal(got.source, `${REPO}/${FOLDER}`);
    assert.ok(fs.existsSync(path.join(cacheDir, 'models--tiny-org--tiny-saes', 'snapshots')), 'the hub cache layout');
    const n = hub.gets.length;
    const again = await loadSae(`${REPO}/${FOLDER}`, { cacheDir, endpoint: hub.endpoint, allowDownload: false });
    assert.equal(hub.gets.length, n, 'the second load reads the cache');
    assert.deepEqual([...again.weights.W_dec.data], [...want.weights.W_dec.data]);
    await assert.rejects(loadSae(`${REPO}/blocks.9.hook_resid_post`, { cacheDir, endpoint: hub.endpoint }), /has no blocks\.9\.hook_resid_post\/cfg\.json/);
    await assert.rejects(loadSae(`${REPO}/blocks.9.hook_resid_post`, { cacheDir, allowDownload: false }), /is not in the Hugging Face cache .* downloading is turned off/);
  } finally {
    await hub.close();
  }
});

test('no such local folder and not a release reference: a clear error', async () => {
  await assert.rejects(loadSae('./no/such/sae'), /SAE folder .* does not exist/);
  await assert.rejects(loadSae(''), /no SAE given/);
});
