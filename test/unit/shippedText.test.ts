/**
 * Shipped text (code, comments, JSON-schema descriptions shown on hover, UI strings, docs,
 * samples) names a study by its content ("the contraction-circuit study", "the
 * no-positional-embedding experiment"), never by the project's internal numbering.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const SHIPPED = ['src', 'schemas', 'docs', 'samples', 'media', 'scripts', 'bench', 'bin', 'README.md', 'package.json'];
const TEXT = /\.(ts|mts|js|mjs|json|md|prompts|css|html|svg|txt)$/;
// "seed 004", "seed-001", "seed001", "issue 5", "Issue-2", "issue #5", "the seed's", "the seeds'".
const INTERNAL = /\bseed[\s_-]?0\d\d|\bissues?[\s#-]*\d+\b|\bthe seeds?'s?(?=\s)|\bseeds'/i;

function* files(p: string): Generator<string> {
  const st = fs.statSync(p);
  if (st.isFile()) {
    if (TEXT.test(p)) yield p;
    return;
  }
  for (const e of fs.readdirSync(p)) if (e !== 'node_modules') yield* files(path.join(p, e));
}

test('shipped text never refers to studies or tasks by internal number ("seed 004", "issue 5")', () => {
  const hits: string[] = [];
  for (const top of SHIPPED) {
    const p = path.join(ROOT, top);
    if (!fs.existsSync(p)) continue;
    for (const f of files(p)) {
      fs.readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
        const m = INTERNAL.exec(line);
        if (m) hits.push(`${path.relative(ROOT, f)}:${i + 1}: "${m[0]}" in ${line.trim().slice(0, 120)}`);
      });
    }
  }
  assert.deepEqual(hits, [], `name the study by its content instead:\n${hits.join('\n')}`);
});

test('tests, scripts and benchmarks reach the shared models through ../shared from the repository root, never an absolute path', () => {
  const hits: string[] = [];
  for (const top of ['test', 'scripts', 'bench', 'src']) {
    for (const f of files(path.join(ROOT, top))) {
      fs.readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
        if (/['"`]\/(work|home|root|tmp)\/[^'"`]*shared/.test(line)) hits.push(`${path.relative(ROOT, f)}:${i + 1}: ${line.trim().slice(0, 120)}`);
      });
    }
  }
  assert.deepEqual(hits, [], hits.join('\n'));
});
