/**
 * The runs of a workspace on disk: `<runsDir>/<id>/run.json` (src/protocol/runs.ts). Pure Node
 * (no `vscode`), so it is unit-tested and usable by the CLI. Writes are atomic (temp file +
 * rename): the Runs view watches the folder and must never read half a file.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { RUN_FILE, runRecordProblem, type RunRecord } from '../protocol/runs.js';

/** Written first by an experiment run (engine/experiments/store.ts); without run.json it marks an incomplete run. */
export const PROGRESS_FILE = 'progress.json';
/** A folder with neither file, untouched this long, is debris of a run killed at its start: removed. */
export const DEBRIS_GRACE_MS = 10 * 60 * 1000;

export interface RunListing {
  id: string;
  /** Path of run.json. */
  file: string;
  record?: RunRecord;
  /** Why run.json could not be used (unreadable, not JSON, not a run record). */
  problem?: string;
  /** A run that was killed or interrupted: what it was running and how far it got (resumable). */
  incomplete?: { experiment: string; startedAt: string; done: number; total: number };
}

export class RunStore {
  constructor(readonly dir: string) {}

  fileOf(id: string): string {
    if (!/^[A-Za-z0-9._-]+$/.test(id) || id === '.' || id === '..') throw new Error(`invalid run id ${JSON.stringify(id)}`);
    return path.join(this.dir, id, RUN_FILE);
  }

  async save(record: RunRecord): Promise<string> {
    const file = this.fileOf(record.id);
    await fs.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(record, null, 1) + '\n', 'utf8');
    await fs.rename(tmp, file);
    return file;
  }

  async read(id: string): Promise<RunRecord> {
    const file = this.fileOf(id);
    let parsed: unknown;
    try {
      parsed = JSON.parse(await fs.readFile(file, 'utf8'));
    } catch (e) {
      throw new Error(`cannot read run ${id}: ${(e as Error).message}`);
    }
    const problem = runRecordProblem(parsed);
    if (problem) throw new Error(`${file} is not a MechLens run: ${problem}`);
    return parsed as RunRecord;
  }

  /** Every run folder, newest first (by createdAt, else by id); broken ones carry a problem. */
  async list(): Promise<RunListing[]> {
    let names: string[];
    try {
      names = (await fs.readdir(this.dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out = await Promise.all(
      names.map(async (id): Promise<RunListing | null> => {
        const file = path.join(this.dir, id, RUN_FILE);
        let text: string;
        try {
          text = await fs.readFile(file, 'utf8');
        } catch {
          return this.unfinished(id, file);
        }
        try {
          const parsed: unknown = JSON.parse(text);
          const problem = runRecordProblem(parsed);
          return problem ? { id, file, problem } : { id, file, record: parsed as RunRecord };
        } catch (e) {
          return { id, file, problem: `not valid JSON: ${(e as Error).message}` };
        }
      }),
    );
    const time = (r: RunListing) => (r.record ? Date.parse(r.record.createdAt) : r.incomplete ? Date.parse(r.incomplete.startedAt) || 0 : 0);
    return out.filter((r): r is RunListing => r !== null).sort((a, b) => time(b) - time(a) || b.id.localeCompare(a.id));
  }

  /**
   * A folder without run.json: an incomplete run (progress.json; finished analyses in parts/), a
   * run being started right now (left alone), or debris of a run killed before it wrote anything,
   * removed once it is older than DEBRIS_GRACE_MS.
   */
  private async unfinished(id: string, file: string, now = Date.now()): Promise<RunListing | null> {
    const dir = path.join(this.dir, id);
    try {
      const p = JSON.parse(await fs.readFile(path.join(dir, PROGRESS_FILE), 'utf8')) as { experiment?: unknown; startedAt?: unknown; total?: unknown };
      let done = 0;
      try {
        done = (await fs.readdir(path.join(dir, 'parts'))).filter((n) => /^\d+-\d+\.json$/.test(n)).length;
      } catch { /* none finished */ }
      return { id, file, incomplete: { experiment: String(p.experiment ?? ''), startedAt: String(p.startedAt ?? ''), done, total: Number(p.total ?? 0) } };
    } catch { /* no (readable) progress.json */ }
    try {
      const st = await fs.stat(dir);
      if (now - st.mtimeMs > DEBRIS_GRACE_MS) await fs.rm(dir, { recursive: true, force: true });
    } catch { /* gone already */ }
    return null;
  }

  async delete(id: string): Promise<void> {
    await fs.rm(path.dirname(this.fileOf(id)), { recursive: true, force: true });
  }
}
