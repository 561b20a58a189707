/**
 * Starts an isolated code-server (a real VS Code 1.100.3 served to a browser) for one run.
 *
 * Isolation: its own user-data-dir, extensions-dir, XDG_* and TMPDIR (RunDirs), user settings that
 * switch off telemetry, workspace trust, update checks and the welcome page, a free port on
 * 127.0.0.1, and its own process group (spawned detached = setsid) so stop() takes down the
 * server together with every extension host and pty it started, also when a test times out.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import type { CodeServerInstall } from './install';
import { REPO_ROOT, extensionId, extensionVersion, freePort, isolatedEnv, killGroupAndWait, log, portIsFree, sleep, type RunDirs } from './common';

/** User settings for a quiet, deterministic workbench. */
export const BASE_SETTINGS: Record<string, unknown> = {
  'telemetry.telemetryLevel': 'off',
  'security.workspace.trust.enabled': false,
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'window.restoreWindows': 'none',
  'git.enabled': false,
  'git.openRepositoryInParentFolders': 'never',
  'editor.codeLens': true,
  'chat.commandCenter.enabled': false,
  'chat.disableAIFeatures': true,
  'github.copilot.enable': { '*': false },
};

export interface LaunchOptions {
  install: CodeServerInstall;
  dirs: RunDirs;
  /** Port to use; default a free one. With `strictPort` false a taken port is replaced by a free one. */
  port?: number;
  strictPort?: boolean;
  /** Extra user settings (merged over BASE_SETTINGS). */
  settings?: Record<string, unknown>;
  /** Extra environment for code-server and therefore for its extension hosts. */
  env?: Record<string, string>;
  /** Where to write code-server's stdout/stderr. */
  logFile?: string;
  /** Echo code-server's output to our stdout as it comes (npm start). */
  echo?: boolean;
  readyTimeoutMs?: number;
}

export interface CodeServer {
  url: string;
  port: number;
  pid: number;
  logFile: string;
  /** Last lines code-server printed, for failure messages. */
  tail(): string;
  /** Kills the whole process group; idempotent. */
  stop(): Promise<void>;
  /** Resolves when the server process exits on its own. */
  exited: Promise<number | null>;
}

export function writeUserSettings(dirs: RunDirs, settings: Record<string, unknown>): void {
  const userDir = path.join(dirs.userData, 'User');
  fs.mkdirSync(userDir, { recursive: true });
  fs.writeFileSync(path.join(userDir, 'settings.json'), JSON.stringify({ ...BASE_SETTINGS, ...settings }, null, 2));
}

/**
 * Installs the working tree as an extension by symlink (what a user gets after installing the
 * .vsix, without packaging ~100 MB of onnxruntime binaries for every test run).
 */
export function linkExtension(dirs: RunDirs): string {
  const target = path.join(dirs.extensions, `${extensionId()}-${extensionVersion()}`);
  fs.symlinkSync(REPO_ROOT, target, 'dir');
  return target;
}

export function healthz(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}

/** Every group we started, so an exit/signal anywhere in the runner still kills them. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = (): void => {
    for (const pid of liveGroups) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

async function startOnce(opts: LaunchOptions, port: number): Promise<CodeServer | 'port-in-use'> {
  const { install, dirs } = opts;
  // Another server on this port would answer /healthz for us: check first, and below require our
  // own child to say it listens.
  if (!(await portIsFree(port))) return 'port-in-use';
  const logFile = opts.logFile ?? path.join(dirs.root, 'code-server.log');
  const out = fs.createWriteStream(logFile, { flags: 'a' });
  const args = [
    install.entry,
    '--bind-addr', `127.0.0.1:${port}`,
    '--auth', 'none',
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--user-data-dir', dirs.userData,
    '--extensions-dir', dirs.extensions,
  ];
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: dirs.root,
    env: isolatedEnv(dirs, opts.env ?? {}),
    detached: true, // setsid: its own process group, killed as a whole in stop()
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid!;
  liveGroups.add(pid);
  installExitHook();
  let tailBuf = '';
  const onData = (b: Buffer): void => {
    out.write(b);
    tailBuf = (tailBuf + b.toString()).slice(-6000);
    if (opts.echo) process.stdout.write(b);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    exitCode = code;
    resolve(code);
  }));

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await killGroupAndWait(pid);
    liveGroups.delete(pid);
    out.end();
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    if (exitCode !== undefined) {
      await stop();
      if (/EADDRINUSE|address already in use/i.test(tailBuf)) return 'port-in-use';
      throw new Error(`code-server exited with code ${exitCode} before it was ready. Last output:\n${tailBuf}`);
    }
    if (/HTTP server listening on/.test(tailBuf) && (await healthz(port))) {
      return { url: `http://127.0.0.1:${port}`, port, pid, logFile, tail: () => tailBuf, stop, exited };
    }
    await sleep(200);
  }
  await stop();
  throw new Error(`code-server did not answer /healthz on port ${port} within ${opts.readyTimeoutMs ?? 60_000} ms. Last output:\n${tailBuf}`);
}

/** Starts code-server; a port found taken (a race, or the user's choice) is replaced by a free one. */
export async function launchCodeServer(opts: LaunchOptions): Promise<CodeServer> {
  writeUserSettings(opts.dirs, opts.settings ?? {});
  let port = opts.port ?? (await freePort());
  for (let attempt = 0; attempt < 5; attempt++) {
    const t0 = Date.now();
    const r = await startOnce(opts, port);
    if (r !== 'port-in-use') {
      log(`code-server ready at ${r.url} in ${((Date.now() - t0) / 1000).toFixed(1)} s (pid group ${r.pid})`);
      return r;
    }
    if (opts.strictPort) throw new Error(`port ${port} is already in use`);
    const next = await freePort();
    log(`port ${port} is in use; trying ${next}`);
    port = next;
  }
  throw new Error('could not find a free port for code-server after 5 attempts');
}

/** The workbench URL for a folder, optionally with VS Code's development/test payload. */
export function workbenchUrl(server: CodeServer, folder: string, payload?: [string, string][]): string {
  // Slashes stay readable in the printed URL; everything else is encoded.
  let url = `${server.url}/?folder=${encodeURIComponent(folder).replace(/%2F/g, '/')}`;
  if (payload) url += `&payload=${encodeURIComponent(JSON.stringify(payload))}`;
  return url;
}

/** A path on the server machine as the workbench's remote authority sees it. */
export function remoteUri(server: CodeServer, absPath: string): string {
  return `vscode-remote://127.0.0.1:${server.port}${absPath}`;
}
