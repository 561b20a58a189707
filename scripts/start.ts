/**
 * `npm start`: build MechLens, then open a copy of the samples workspace (.vscode-test/start/) in a
 * real VS Code with the extension loaded from this working tree.
 *
 *   - Desktop VS Code (`code` on PATH): `code --wait --extensionDevelopmentPath=<repo> samples`
 *     (an Extension Development Host window; this command returns when the window closes).
 *   - Otherwise (headless machines, containers): code-server@4.100.3 (= VS Code 1.100.3, installed
 *     once into .vscode-test/), MechLens installed by symlink, served on 127.0.0.1:<port>; the URL
 *     is printed and the server runs until Ctrl-C. Only loopback is bound and auth is off: forward
 *     the port (ssh -L) to use it from another machine.
 *
 * Options: --code-server (even when `code` exists), --port N (a taken port is replaced by a free
 * one, with a message; --strict-port fails instead), --no-build. Env: MECHLENS_PORT.
 * code-server's profile (settings, open editors) persists in .vscode-test/start/ between runs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { CACHE_DIR, REPO_ROOT, SAMPLES_DIR, SkipError, buildExtension, extensionId, extensionVersion, log, prepareWorkspace, which, type RunDirs } from './vscode/common';
import { ensureCodeServer } from './vscode/install';
import { launchCodeServer, workbenchUrl } from './vscode/launch';

interface Args {
  codeServer: boolean;
  port?: number;
  strictPort: boolean;
  build: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { codeServer: false, strictPort: false, build: true };
  const envPort = process.env.MECHLENS_PORT;
  if (envPort) a.port = Number(envPort);
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    if (x === '--code-server') a.codeServer = true;
    else if (x === '--strict-port') a.strictPort = true;
    else if (x === '--no-build') a.build = false;
    else if (x === '--port' || x.startsWith('--port=')) a.port = Number(x.includes('=') ? x.split('=')[1] : argv[++i]);
    else if (x === '--help' || x === '-h') {
      console.log('usage: npm start [-- --code-server] [--port N] [--strict-port] [--no-build]');
      process.exit(0);
    } else throw new Error(`unknown option ${x} (try --help)`);
  }
  if (a.port !== undefined && !(Number.isInteger(a.port) && a.port > 0 && a.port < 65536)) throw new Error(`--port must be 1..65535, got ${a.port}`);
  return a;
}

/** The desktop CLI, not code-server's (which also answers to `code` in some images). */
function desktopCode(): string | null {
  const p = which('code');
  if (!p) return null;
  try {
    if (fs.realpathSync(p).includes('code-server')) return null;
  } catch {
    /* dangling link: treat as absent */
    return null;
  }
  return p;
}

/**
 * The workspace npm start opens: a copy of samples/ under .vscode-test/start/ (made once, then
 * only missing files are added), so runs (.mechlens/) and edits never land in the source tree.
 */
function startWorkspace(): string {
  const ws = prepareWorkspace(startDirs(), { keepExisting: true });
  log(`workspace: ${path.relative(process.cwd(), ws)} (a copy of ${path.relative(process.cwd(), SAMPLES_DIR)}; delete it to start afresh)`);
  return ws;
}

function openInDesktop(code: string): Promise<number> {
  const ws = startWorkspace();
  log(`opening ${ws} in VS Code with MechLens (${code})`);
  const child = spawn(code, ['--wait', '--new-window', `--extensionDevelopmentPath=${REPO_ROOT}`, ws], { stdio: 'inherit' });
  return new Promise((resolve) => {
    child.on('exit', (c) => resolve(c ?? 0));
    child.on('error', (e) => {
      console.error(`could not run ${code}: ${e.message}`);
      resolve(1);
    });
  });
}

/** A persistent profile for npm start (tests use throwaway ones). */
function startDirs(): RunDirs {
  const root = path.join(CACHE_DIR, 'start');
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

async function serveWithCodeServer(args: Args): Promise<number> {
  const install = ensureCodeServer();
  const dirs = startDirs();
  // (Re)link this working tree as the installed extension; drop links of other versions.
  for (const f of fs.readdirSync(dirs.extensions)) if (f.startsWith(`${extensionId()}-`)) fs.rmSync(path.join(dirs.extensions, f), { force: true, recursive: false });
  fs.symlinkSync(REPO_ROOT, path.join(dirs.extensions, `${extensionId()}-${extensionVersion()}`), 'dir');

  // Ctrl-C: launch.ts's exit hook kills code-server's process group; say so first (registered
  // before that hook, so it runs first).
  process.once('SIGINT', () => console.log('\nstopping code-server…'));
  const server = await launchCodeServer({
    install,
    dirs,
    ...(args.port !== undefined ? { port: args.port } : {}),
    strictPort: args.strictPort,
    logFile: path.join(dirs.root, 'code-server.log'),
  });
  if (args.port !== undefined && server.port !== args.port) log(`port ${args.port} was in use: serving on ${server.port} instead`);
  const url = workbenchUrl(server, startWorkspace());
  console.log(`\n  MechLens is running in VS Code (code-server) at:\n\n    ${url}\n\n  Open it in a browser. Logs: ${path.relative(process.cwd(), server.logFile)}. Press Ctrl-C to stop.\n`);
  const code = await server.exited;
  console.error(`code-server exited by itself (code ${code}); see ${server.logFile}`);
  return code ?? 1;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.build) buildExtension();
  if (!fs.existsSync(path.join(REPO_ROOT, 'dist', 'extension.js'))) throw new Error('dist/extension.js does not exist: `npm run build` produced no extension');
  const code = args.codeServer ? null : desktopCode();
  if (code) return openInDesktop(code);
  log('no desktop `code` command: serving VS Code in the browser with code-server');
  return serveWithCodeServer(args);
}

main().then(
  (c) => process.exit(c),
  (e: unknown) => {
    if (e instanceof SkipError) console.error(`\nnpm start cannot open VS Code here: ${e.message}\n  Install VS Code (the \`code\` command) or run as root so code-server's prerequisites can be installed.\n`);
    else console.error(`\nnpm start failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
