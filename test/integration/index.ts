/**
 * Mocha entry loaded by VS Code's extension host as `extensionTestsPath`: VS Code calls run() and
 * reports success or failure of the returned promise back to the launcher (codeAutomationExit
 * in code-server, the process exit code with @vscode/test-electron).
 *
 * The extension host's stdout is not the launcher's, so a small reporter appends every line to
 * $MECHLENS_TEST_REPORT (streamed by scripts/vscode/run-integration.ts) as well as the console.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Mocha from 'mocha';

const { EVENT_RUN_END, EVENT_SUITE_BEGIN, EVENT_TEST_FAIL, EVENT_TEST_PASS, EVENT_TEST_PENDING } = Mocha.Runner.constants;

function out(line: string): void {
  console.log(line);
  const file = process.env.MECHLENS_TEST_REPORT;
  if (file) fs.appendFileSync(file, line + '\n');
}

class LineReporter {
  constructor(runner: Mocha.Runner) {
    let depth = 0;
    const started = Date.now();
    const failures: { title: string; err: Error }[] = [];
    let passes = 0;
    let pending = 0;
    runner.on(EVENT_SUITE_BEGIN, (s: Mocha.Suite) => {
      depth = s.titlePath().length;
      if (s.title) out(`${'  '.repeat(depth)}${s.title}`);
    });
    runner.on(EVENT_TEST_PASS, (t: Mocha.Test) => {
      passes++;
      out(`${'  '.repeat(depth + 1)}✓ ${t.title} (${t.duration ?? 0} ms)`);
    });
    runner.on(EVENT_TEST_PENDING, (t: Mocha.Test) => {
      pending++;
      out(`${'  '.repeat(depth + 1)}- ${t.title} (pending)`);
    });
    runner.on(EVENT_TEST_FAIL, (t: Mocha.Test, err: Error) => {
      failures.push({ title: t.fullTitle(), err });
      out(`${'  '.repeat(depth + 1)}✗ ${failures.length}) ${t.title}`);
    });
    runner.once(EVENT_RUN_END, () => {
      out('');
      out(`  ${passes} passing, ${failures.length} failing, ${pending} pending (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      failures.forEach((f, i) => {
        out('');
        out(`  ${i + 1}) ${f.title}`);
        out(`     ${(f.err.stack ?? f.err.message).split('\n').slice(0, 14).join('\n     ')}`);
      });
    });
  }
}

export function run(): Promise<void> {
  const mocha = new Mocha({
    ui: 'bdd',
    color: false,
    // The first model load compiles ONNX sessions; individual tests set longer timeouts where needed.
    timeout: 60_000,
    reporter: LineReporter as unknown as Mocha.ReporterConstructor,
  });
  if (process.env.MECHLENS_IT_GREP) mocha.grep(process.env.MECHLENS_IT_GREP);
  // Alphabetical order is the run order; files are independent, smoke comes first by name.
  for (const f of fs.readdirSync(__dirname).filter((n) => n.endsWith('.test.js')).sort()) mocha.addFile(path.join(__dirname, f));
  return new Promise((resolve, reject) => {
    try {
      mocha.run((failures) => (failures > 0 ? reject(new Error(`${failures} integration test(s) failed`)) : resolve()));
    } catch (e) {
      reject(e instanceof Error ? e : new Error(String(e)));
    }
  });
}
