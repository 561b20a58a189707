/**
 * Runs the `mechlens` command in-process (src/engine/cli.ts's main) and captures what it writes:
 * its result (io.out), stdout and stderr, with the exit code it would return.
 */
import { main } from '../../src/engine/cli.js';

export async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const err: string[] = [];
  let out = '';
  const writeErr = process.stderr.write.bind(process.stderr);
  const writeOut = process.stdout.write.bind(process.stdout);
  process.stderr.write = ((s: string | Uint8Array) => (err.push(String(s)), true)) as typeof process.stderr.write;
  process.stdout.write = ((s: string | Uint8Array) => ((out += String(s)), true)) as typeof process.stdout.write;
  try {
    const code = await main(args, { out: (t) => void (out += t) });
    return { code, out, err: err.join('') };
  } finally {
    process.stderr.write = writeErr;
    process.stdout.write = writeOut;
  }
}

/**
 * As runCli, but process.stdout stays the test reporter's: the command's result (io.out) comes
 * back as `stdout`, and what it writes to stderr as `stderr`.
 */
export async function runCliResult(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const writeErr = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((c: string | Uint8Array) => ((stderr += String(c)), true)) as typeof process.stderr.write;
  try {
    const code = await main(args, { out: (t) => void (stdout += t) });
    return { code, stdout, stderr };
  } finally {
    process.stderr.write = writeErr;
  }
}
