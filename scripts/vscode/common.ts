/**
 * Shared plumbing for the real-VS-Code harness (integration tests, e2e tests, `npm start`):
 * where things are cached, isolated per-run folders, free ports, process groups, and the
 * "skip loudly" convention.
 *
 * Why a skip type: on a machine without root (no apt-get) or without network access to the npm
 * registry, code-server or Chromium cannot be obtained. The test commands then print a banner that
 * says exactly what was skipped and why, and exit 0, so a laptop without root is not "red". Set
 * MECHLENS_REQUIRE_VSCODE=1 (CI) to turn every skip into a failure instead.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import { pathToFileURL } from 'node:url';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** code-server 4.100.3 bundles VS Code 1.100.3 and runs on Node 20 (ENVIRONMENT.md). */
export const CODE_SERVER_VERSION = '4.100.3';

/** Git-ignored cache shared by all runs: code-server's npm install (~70 s) is done once. */
export const CACHE_DIR = process.env.MECHLENS_VSCODE_CACHE ? path.resolve(process.env.MECHLENS_VSCODE_CACHE) : path.join(REPO_ROOT, '.vscode-test');

export const ARTIFACTS_DIR = path.join(REPO_ROOT, 'test-artifacts');

/** Publisher.name from package.json: the id VS Code gives the extension. */
export function extensionId(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { publisher: string; name: string; version: string };
  return `${pkg.publisher}.${pkg.name}`;
}

export function extensionVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Thrown when a prerequisite cannot be obtained on this machine; runners turn it into a loud skip. */
export class SkipError extends Error {
  constructor(readonly what: string, readonly why: string) {
    super(`${what}: ${why}`);
    this.name = 'SkipError';
  }
}

export const requireVscode = (): boolean => process.env.MECHLENS_REQUIRE_VSCODE === '1' || process.env.MECHLENS_REQUIRE_VSCODE === 'true';

/** Prints the skip banner and exits 0, or exits 1 when MECHLENS_REQUIRE_VSCODE is set. */
export function reportSkip(suite: string, err: SkipError): never {
  const bar = '!'.repeat(78);
  const strict = requireVscode();
  console.error(`\n${bar}\n!! ${suite} ${strict ? 'FAILED (MECHLENS_REQUIRE_VSCODE=1 forbids skipping)' : 'SKIPPED — nothing was tested'}\n!! what:  ${err.what}\n!! why:   ${err.why}\n!! fix:   run as root on Debian/Ubuntu with access to the npm registry, or install\n!!        chromium + code-server@${CODE_SERVER_VERSION} yourself (see scripts/vscode/install.ts).\n${bar}\n`);
  process.exit(strict ? 1 : 0);
}

export function log(msg: string): void {
  const t = new Date().toISOString().slice(11, 23);
  console.log(`[mechlens ${t}] ${msg}`);
}

/** A port that was free a moment ago (the OS picks it); callers retry if it is taken by then. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/**
 * A fresh folder for one run: XDG dirs, TMPDIR, code-server's user-data and extensions dirs, and
 * a Chromium profile. Nothing from the user's own VS Code or browser can leak in, and two runs
 * side by side never share state.
 */
export interface RunDirs {
  root: string;
  xdgConfig: string;
  xdgData: string;
  xdgCache: string;
  tmp: string;
  userData: string;
  extensions: string;
  chromeProfile: string;
}

export function makeRunDirs(prefix = 'mechlens-run-'): RunDirs {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const d = (name: string): string => {
    const p = path.join(root, name);
    fs.mkdirSync(p, { recursive: true });
    return p;
  };
  return {
    root,
    xdgConfig: d('xdg-config'),
    xdgData: d('xdg-data'),
    xdgCache: d('xdg-cache'),
    tmp: d('tmp'),
    userData: d('user-data'),
    extensions: d('extensions'),
    chromeProfile: d('chrome-profile'),
  };
}

/** Environment for child processes of one run: its own XDG/TMP dirs, no inherited VS Code IPC. */
export function isolatedEnv(dirs: RunDirs, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // A VS Code terminal exports these; a child code-server would otherwise try to talk to the parent.
  for (const k of Object.keys(env)) if (k.startsWith('VSCODE_') || k === 'ELECTRON_RUN_AS_NODE') delete env[k];
  return {
    ...env,
    XDG_CONFIG_HOME: dirs.xdgConfig,
    XDG_DATA_HOME: dirs.xdgData,
    XDG_CACHE_HOME: dirs.xdgCache,
    XDG_RUNTIME_DIR: dirs.tmp,
    TMPDIR: dirs.tmp,
    ...extra,
  };
}

export function removeRunDirs(dirs: RunDirs): void {
  if (process.env.MECHLENS_KEEP_RUN_DIRS === '1') {
    log(`kept run folder ${dirs.root} (MECHLENS_KEEP_RUN_DIRS=1)`);
    return;
  }
  fs.rmSync(dirs.root, { recursive: true, force: true, maxRetries: 3 });
}

/** Kills a whole process group (code-server and its extension hosts / Chromium and its renderers). */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

export async function killGroupAndWait(pid: number | undefined, graceMs = 3000): Promise<void> {
  if (!pid) return;
  killGroup(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!groupAlive(pid)) return;
    await sleep(100);
  }
  killGroup(pid, 'SIGKILL');
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function which(cmd: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  const out = r.stdout.trim();
  return r.status === 0 && out ? out : null;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Runs the repo's `npm run build` (esbuild.mjs) unless told not to; the suites test dist/. */
export function buildExtension(): void {
  if (process.env.MECHLENS_SKIP_BUILD === '1') {
    log('MECHLENS_SKIP_BUILD=1: testing dist/ as it is');
    return;
  }
  if (!fs.existsSync(path.join(REPO_ROOT, 'esbuild.mjs'))) {
    log('esbuild.mjs does not exist yet: nothing to build (tests will report the missing extension)');
    return;
  }
  log('building the extension (npm run build)');
  const t0 = Date.now();
  const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: REPO_ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`npm run build failed with exit code ${r.status}`);
  log(`built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/** Wraps a runner's main: skips print a banner and exit 0, real failures exit 1. */
export function runMain(suite: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (err instanceof SkipError) reportSkip(suite, err);
      console.error(`\n${suite} FAILED:`, err instanceof Error ? (err.stack ?? err.message) : err);
      process.exit(1);
    },
  );
}

export const SAMPLES_DIR = path.join(REPO_ROOT, 'samples');

/**
 * A copy of samples/ inside the run folder, opened as the workspace: tests change settings and
 * open files, and must never leave traces (.vscode/settings.json, runs) in the repo. The folder
 * keeps the name `samples` so the explorer shows what a user sees.
 */
export function prepareWorkspace(dirs: RunDirs, opts: { keepExisting?: boolean } = {}): string {
  const ws = path.join(dirs.root, 'workspace', 'samples');
  fs.mkdirSync(ws, { recursive: true });
  if (!fs.existsSync(SAMPLES_DIR)) return ws;
  // keepExisting (npm start): copy only what is missing, so a user's edits and runs survive restarts.
  fs.cpSync(SAMPLES_DIR, ws, { recursive: true, force: !opts.keepExisting, errorOnExist: false });
  // The samples name their schema relative to the repository ("../schemas/…"); the copy lives
  // elsewhere, so point it at the repository's schema folder (same line count, same content otherwise).
  const schemas = pathToFileURL(path.join(REPO_ROOT, 'schemas')).href;
  for (const f of fs.readdirSync(ws)) {
    if (!f.endsWith('.experiment.json')) continue;
    const file = path.join(ws, f);
    const text = fs.readFileSync(file, 'utf8');
    const fixed = text.replace(/("\$schema"\s*:\s*")\.\.\/schemas\//, `$1${schemas}/`);
    if (fixed !== text) fs.writeFileSync(file, fixed);
  }
  return ws;
}

/** Copies a run's logs (code-server, extension hosts) into test-artifacts/ for a failure report. */
export function collectLogs(dirs: RunDirs, name: string): string {
  const dest = path.join(ARTIFACTS_DIR, `${name}-logs`);
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(dest, { recursive: true });
  const walk = (dir: string): void => {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && (e.name.endsWith('.log') || e.name.endsWith('.txt'))) {
        const rel = path.relative(dirs.root, p).replace(/[\\/]/g, '__');
        fs.copyFileSync(p, path.join(dest, rel));
      }
    }
  };
  // user-data holds the extension-host and server logs; the run root holds code-server's output.
  walk(dirs.userData);
  for (const f of fs.readdirSync(dirs.root)) {
    const p = path.join(dirs.root, f);
    if (fs.statSync(p).isFile()) fs.copyFileSync(p, path.join(dest, f));
  }
  return dest;
}
