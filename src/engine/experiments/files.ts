/**
 * The files an experiment names (prompts files, texts for neuron activations, training texts).
 *
 * Experiment files travel in repositories, so running someone else's file must not read the
 * user's other files into a run and its shareable report. Every path an experiment names is
 * therefore confined: it is relative, it resolves (lexically and through symbolic links) inside
 * the experiment's root folder (the workspace folder in VS Code, the experiment's own folder or
 * `--root` in the CLI), it is a regular file, and it is at most MAX_TEXT_FILE_BYTES long.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Largest text file an experiment may name (prompts, texts, corpora). */
export const MAX_TEXT_FILE_BYTES = 32 * 1024 * 1024;


/** A file reader for the parser: text, null when missing/unreadable, or a rule it breaks. */
export interface FileReader {
  read(file: string): string | null | { error: string };
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * The lexical rules (no file system access): `name` must be relative and, resolved against
 * `baseDir` (the experiment file's folder), stay inside `root`. Returns the resolved path or the
 * rule broken.
 */
export function confinePath(root: string, baseDir: string, name: string): { path: string } | { path: string; error: string } {
  const resolved = path.resolve(baseDir, name);
  if (path.isAbsolute(name) || /^[A-Za-z]:[\\/]/.test(name)) {
    return { path: resolved, error: `${JSON.stringify(name)} is an absolute path: an experiment may name only files inside its folder ${root}, by a relative path` };
  }
  if (!inside(path.resolve(root), resolved)) {
    return { path: resolved, error: `${JSON.stringify(name)} leaves the experiment's folder ${root}: an experiment may name only files inside it (in the CLI, --root widens the folder)` };
  }
  return { path: resolved };
}

/**
 * Reads an absolute path that confinePath accepted, under the file-system rules: no symbolic
 * link out of `root`, a regular file (not a device, FIFO or folder: /dev/zero would never end),
 * and at most `maxBytes`, read through one descriptor with a bound so that a file growing while
 * it is read cannot exceed it. Null when the file does not exist or cannot be read.
 */
export function readConfinedText(root: string, file: string, maxBytes = MAX_TEXT_FILE_BYTES): string | null | { error: string } {
  const shown = path.relative(root, file) || file;
  let real: string;
  let realRoot: string;
  try {
    realRoot = fs.realpathSync(root);
    real = fs.realpathSync(file);
  } catch {
    return null;
  }
  if (!inside(realRoot, real)) return { error: `${JSON.stringify(shown)} is a symbolic link to ${real}, outside the experiment's folder ${root}: an experiment may name only files inside it` };
  let fd: number;
  try {
    fd = fs.openSync(real, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch {
    return null;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return { error: `${JSON.stringify(shown)} is not a regular file (${st.isDirectory() ? 'a folder' : 'a device, pipe or socket'}): name a text file` };
    if (st.size > maxBytes) return { error: `${JSON.stringify(shown)} is ${st.size} bytes; a file named by an experiment may have at most ${maxBytes} bytes: use a smaller file` };
    const buf = Buffer.alloc(st.size + 1);
    let n = 0;
    for (;;) {
      const r = fs.readSync(fd, buf, n, buf.length - n, n);
      if (r === 0) break;
      n += r;
      if (n >= buf.length) return { error: `${JSON.stringify(shown)} changed while it was read: try again` };
    }
    return buf.subarray(0, n).toString('utf8');
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/** The default reader of files named by an experiment whose root folder is `root`. */
export function confinedReader(root: string): FileReader {
  return { read: (file) => readConfinedText(root, file) };
}

/** Where an experiment's named files are looked up and under which folder they must stay. */
export interface NamedFiles {
  root: string;
  dir: string;
  reader: FileReader;
}

/**
 * Reads a file an experiment names, as written in the file (`name`): every rule applied, and the
 * outcome said in one sentence the parser turns into a located diagnostic.
 */
export function readNamedFile(ctx: NamedFiles, name: string, what: string): { path: string; text: string } | { path: string; error: string; code: 'file-outside' | 'file' } {
  const c = confinePath(ctx.root, ctx.dir, name);
  if ('error' in c) return { path: c.path, error: c.error, code: 'file-outside' };
  const r = ctx.reader.read(c.path);
  if (r === null) return { path: c.path, error: `cannot read ${what} ${c.path}`, code: 'file' };
  if (typeof r === 'object') return { path: c.path, error: r.error, code: 'file-outside' };
  return { path: c.path, text: r };
}
