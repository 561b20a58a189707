/**
 * Obtains what the real-VS-Code tests need, from nothing, offline except for the npm registry and
 * Debian's apt (the only things this workplace and most CI runners reach):
 *   - Chromium, ripgrep and libkrb5-dev from apt (as root), and
 *   - code-server@4.100.3 (= VS Code 1.100.3) from npm into the git-ignored cache .vscode-test/.
 *
 * code-server's install is fragile offline; the three tricks (ENVIRONMENT.md):
 *   1. its postinstall refuses to run as root unless `unsafe-perm` is set; npm 11 dropped the CLI
 *      flag but still honours npm_config_unsafe_perm=true;
 *   2. it runs `npx node-gyp`, which would prompt; npm_config_yes=true answers;
 *   3. @vscode/ripgrep downloads rg from GitHub unless its cache folder under $TMPDIR already holds
 *      the release tarball, so we put Debian's /usr/bin/rg into a tarball of that name first.
 * The install goes into a staging folder and is renamed into place only when complete, so an
 * interrupted install is never mistaken for a good one.
 *
 * Usage: `npm run setup:vscode` (also called by the test runners and `npm start`).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { CACHE_DIR, CODE_SERVER_VERSION, SkipError, isRoot, log, runMain, which } from './common';

/** @vscode/ripgrep version code-server 4.100.3 pulls in, and the rg release it would download. */
const RIPGREP_PKG_VERSIONS = ['1.15.11', '1.15.10', '1.15.9', '1.15.14'];
const RIPGREP_ASSET = 'ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz';

export interface CodeServerInstall {
  /** Folder with node_modules/code-server. */
  dir: string;
  /** code-server's JS entry; run it with this Node (code-server 4.100 needs Node 20). */
  entry: string;
}

export function codeServerDir(): string {
  return path.join(CACHE_DIR, `code-server-${CODE_SERVER_VERSION}`);
}

function installed(dir: string): CodeServerInstall | null {
  const entry = path.join(dir, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  return fs.existsSync(path.join(dir, '.complete')) && fs.existsSync(entry) ? { dir, entry } : null;
}

export function findChromium(): string | null {
  const env = process.env.MECHLENS_CHROMIUM ?? process.env.CHROMIUM_PATH;
  if (env && fs.existsSync(env)) return env;
  for (const p of ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable']) {
    if (fs.existsSync(p)) return p;
  }
  return null;
}

function aptInstall(pkgs: string[], reason: string): void {
  if (!which('apt-get')) throw new SkipError(`apt packages ${pkgs.join(' ')}`, `${reason}, and this machine has no apt-get`);
  if (!isRoot()) throw new SkipError(`apt packages ${pkgs.join(' ')}`, `${reason}; installing them needs root (run: sudo apt-get install -y ${pkgs.join(' ')})`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log(`apt-get install -y ${pkgs.join(' ')} (${reason})`);
  const t0 = Date.now();
  // update first: a CI image's package lists are usually empty or stale.
  const up = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  if (up.status !== 0) throw new SkipError(`apt packages ${pkgs.join(' ')}`, `apt-get update failed (exit ${up.status}); is Debian's mirror reachable?`);
  // With recommends: chromium's fonts come that way, and screenshots need them.
  const r = spawnSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: ['ignore', 'ignore', 'inherit'], env });
  if (r.status !== 0) throw new SkipError(`apt packages ${pkgs.join(' ')}`, `apt-get install failed (exit ${r.status})`);
  log(`apt done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

/** Chromium for Playwright; ripgrep and Kerberos headers for code-server's native modules. */
export function ensureSystemPackages(opts: { chromium: boolean; buildDeps: boolean }): void {
  const missing: string[] = [];
  if (opts.chromium && !findChromium()) missing.push('chromium');
  if (opts.buildDeps && !which('rg')) missing.push('ripgrep');
  // kerberos (a code-server dependency) builds from source and needs krb5-config/gssapi headers.
  if (opts.buildDeps && !which('krb5-config')) missing.push('libkrb5-dev');
  if (missing.length) aptInstall(missing, `missing ${missing.join(', ')}`);
}

/** Seeds @vscode/ripgrep's download cache with Debian's rg so its postinstall never hits GitHub. */
function seedRipgrepCache(tmpDir: string): void {
  const rg = which('rg');
  if (!rg) throw new SkipError('ripgrep', 'code-server needs rg and none is installed (apt-get install ripgrep)');
  const stage = fs.mkdtempSync(path.join(tmpDir, 'rg-'));
  fs.copyFileSync(rg, path.join(stage, 'rg'));
  fs.chmodSync(path.join(stage, 'rg'), 0o755);
  for (const v of RIPGREP_PKG_VERSIONS) {
    const cache = path.join(tmpDir, `vscode-ripgrep-cache-${v}`);
    fs.mkdirSync(cache, { recursive: true });
    const r = spawnSync('tar', ['-czf', path.join(cache, RIPGREP_ASSET), '-C', stage, 'rg']);
    if (r.status !== 0) throw new Error(`could not create the ripgrep tarball: ${r.stderr.toString()}`);
  }
}

/**
 * A lock folder so that two runs starting together on a clean machine install once; the second
 * waits and then finds the install. A lock whose owner process is gone is taken over.
 */
function withInstallLock<T>(fn: () => T): T {
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const lock = path.join(CACHE_DIR, '.install.lock');
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      let owner = 0;
      try {
        owner = Number(fs.readFileSync(path.join(lock, 'pid'), 'utf8')) || 0;
      } catch {
        /* just created: its pid follows in a moment */
      }
      const young = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? 0) < 10_000;
      if ((!owner && !young) || (owner && !alive(owner))) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`another install (pid ${owner}) holds ${lock} for over 10 minutes`);
      log(`waiting for the code-server install of pid ${owner}`);
      spawnSync('sleep', ['2']);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Installs code-server into the cache (once); returns where it is. */
export function ensureCodeServer(): CodeServerInstall {
  const have = installed(codeServerDir());
  if (have) return have;
  return withInstallLock(installCodeServer);
}

function installCodeServer(): CodeServerInstall {
  const dir = codeServerDir();
  const have = installed(dir); // installed by the run we waited for
  if (have) return have;
  if (!which('npm')) throw new SkipError(`code-server@${CODE_SERVER_VERSION}`, 'npm is not on PATH');
  ensureSystemPackages({ chromium: false, buildDeps: true });

  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const stage = fs.mkdtempSync(path.join(CACHE_DIR, `.staging-code-server-`));
  const tmp = path.join(stage, '.tmp');
  fs.mkdirSync(tmp);
  // Its own package.json makes this folder npm's project root, so the repo's .npmrc and lockfile
  // stay out of it.
  fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify({ name: 'mechlens-vscode-cache', private: true }, null, 2));
  seedRipgrepCache(tmp);

  log(`installing code-server@${CODE_SERVER_VERSION} into ${path.relative(process.cwd(), dir) || dir} (about 70 s; once)`);
  const t0 = Date.now();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TMPDIR: tmp,
    npm_config_unsafe_perm: 'true',
    npm_config_yes: 'true',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
    npm_config_update_notifier: 'false',
  };
  const r = spawnSync('npm', ['install', '--no-save', '--no-package-lock', '--loglevel=error', `code-server@${CODE_SERVER_VERSION}`], {
    cwd: stage,
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const entry = path.join(stage, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  if (r.status !== 0 || !fs.existsSync(entry)) {
    fs.rmSync(stage, { recursive: true, force: true });
    throw new SkipError(`code-server@${CODE_SERVER_VERSION}`, `npm install failed (exit ${r.status}); is the npm registry reachable and are python3/make/g++ installed?`);
  }
  const rgBin = findRipgrepBinary(path.join(stage, 'node_modules', 'code-server'));
  if (!rgBin) log('warning: no bundled rg found under code-server; text search inside the workbench may not work');
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.writeFileSync(path.join(stage, '.complete'), `${new Date().toISOString()} node ${process.version}\n`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(stage, dir);
  log(`code-server installed in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return installed(dir)!;
}

function findRipgrepBinary(root: string): string | null {
  const r = spawnSync('find', [root, '-path', '*@vscode/ripgrep/bin/rg', '-type', 'f'], { encoding: 'utf8' });
  return r.stdout.split('\n').find(Boolean) ?? null;
}

/** Everything the suites need: Chromium plus code-server. */
export function ensureAll(): { codeServer: CodeServerInstall; chromium: string } {
  if (os.platform() !== 'linux') throw new SkipError('code-server + Chromium harness', `only Linux is supported by this harness (this is ${os.platform()}); use scripts/vscode/run-test-electron.ts`);
  // One apt pass for everything missing (apt-get update alone takes seconds on a clean CI image).
  ensureSystemPackages({ chromium: true, buildDeps: !installed(codeServerDir()) });
  const codeServer = ensureCodeServer();
  const chromium = findChromium();
  if (!chromium) throw new SkipError('Chromium', 'not found after install; set MECHLENS_CHROMIUM to its path');
  return { codeServer, chromium };
}

if (require.main === module) {
  runMain('setup:vscode', async () => {
    const { codeServer, chromium } = ensureAll();
    log(`code-server: ${codeServer.entry}`);
    log(`chromium:    ${chromium}`);
    return 0;
  });
}
