/**
 * TransformerLens beside MechLens in one bench run: finds the oracle's Python (oracle/setup.sh,
 * or MECHLENS_ORACLE_PYTHON), builds random checkpoints with oracle/peer_bench.py, and drives its
 * JSON-lines server (one request per line on its stdin, one answer per line on its stdout; its
 * stderr is passed through with a prefix only when a request fails).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';
import { createInterface } from 'node:readline';

export const ROOT = path.resolve(__dirname, '..');
export const BENCH_DIR = path.join(ROOT, '.bench');
const SCRIPT = path.join(ROOT, 'oracle', 'peer_bench.py');

/** The oracle's python, or the reason there is none (then the group prints a skip line). */
export function findOraclePython(): { python: string } | { skip: string } {
  const env = process.env['MECHLENS_ORACLE_PYTHON'];
  if (env) return { python: env };
  const r = spawnSync('bash', [path.join(ROOT, 'oracle', 'setup.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = (r.stdout ?? '').trim().split('\n');
  if (r.status === 0 && lines.at(-1)) return { python: lines.at(-1)! };
  const why = (r.stderr ?? '').trim().split('\n').at(-1) || (r.error ? String(r.error) : `oracle/setup.sh exited with ${r.status}`);
  return { skip: `TransformerLens is not available (${why}); install Python 3.11 with venv and run bash oracle/setup.sh` };
}

/**
 * A seeded random Hugging Face checkpoint made by transformers (reused when its stamp matches):
 * returns `${out}/${dtype}` for each dtype.
 */
export function makeCheckpoint(python: string, hfConfig: Record<string, unknown>, out: string, dtypes: string[], seed: number): Record<string, unknown> {
  const r = spawnSync(python, [SCRIPT, 'make', '--config', JSON.stringify(hfConfig), '--out', out, '--dtypes', dtypes.join(','), '--seed', String(seed)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`oracle/peer_bench.py make failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').slice(-5).join(' | ')}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

export type PyAnswer = Record<string, unknown> & { ok?: boolean; error?: string };

/** The TransformerLens server, one request at a time. */
export class PyPeer {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  private stderrTail: string[] = [];
  readonly ready: Promise<PyAnswer>;

  constructor(python: string, env: Record<string, string> = {}) {
    this.child = spawn(python, [SCRIPT, 'serve'], { env: { ...process.env, HF_HUB_OFFLINE: '1', PEER_THREADS: '2', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d: string) => {
      this.stderrTail.push(...d.split('\n'));
      if (this.stderrTail.length > 40) this.stderrTail = this.stderrTail.slice(-40);
    });
    // A server that died (e.g. killed for memory) closes its stdin: the next request reports
    // it through `next`, so the pipe's own error is not an unhandled event.
    this.child.stdin.on('error', () => undefined);
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
    this.ready = this.next('start');
  }

  private async next(what: string): Promise<PyAnswer> {
    const r = await this.lines.next();
    if (r.done) throw new Error(`TransformerLens server ended during ${what}${this.child.signalCode ? ` (killed by ${this.child.signalCode}, e.g. out of memory)` : ''}: ${this.stderrTail.filter(Boolean).slice(-8).join(' | ')}`);
    return JSON.parse(r.value) as PyAnswer;
  }

  async request(cmd: string, args: Record<string, unknown> = {}): Promise<PyAnswer> {
    await this.ready;
    this.child.stdin.write(JSON.stringify({ cmd, ...args }) + '\n');
    const a = await this.next(cmd);
    if (a.ok === false) throw new Error(`TransformerLens ${cmd} failed: ${a.error}\n${this.stderrTail.filter(Boolean).slice(-12).join('\n')}`);
    return a;
  }

  /** Ends the server and waits for it to exit. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const done = new Promise<void>((res) => this.child.once('exit', () => res()));
    this.child.stdin.end(JSON.stringify({ cmd: 'exit' }) + '\n');
    await done;
  }
}

// The shared statistics, re-exported for the groups that import them from here.
export { median, round } from './stats.js';

/** Peak resident set size of this process, bytes. */
export const nodePeakRss = (): number => process.resourceUsage().maxRSS * 1024;
