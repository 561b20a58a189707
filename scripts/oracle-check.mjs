// The oracle check as `npm test` runs it: proves the committed fixtures are TransformerLens's own
// output (oracle/check.sh regenerates them with TransformerLens and compares at 1e-6).
//
// It is cheap when nothing changed: a successful oracle/check.sh stamps a fingerprint of the
// oracle's sources and the oracle fixtures into .oracle-check.ok, and while that fingerprint
// holds this script only says so. Otherwise it runs oracle/check.sh when the oracle's venv is
// already built (about a minute). It never builds the venv itself (minutes, PyPI) and never
// fails for lack of Python, unless MECHLENS_REQUIRE_ORACLE=1 (CI sets it): then a missing
// Python is an error and the venv is built.
//
//   node scripts/oracle-check.mjs           check (or skip loudly)
//   node scripts/oracle-check.mjs --stamp   record the fingerprint (oracle/check.sh does, on success)
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = join(import.meta.dirname, '..');
const stampFile = join(root, '.oracle-check.ok');
const require = process.env.MECHLENS_REQUIRE_ORACLE === '1';

function walk(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (n === '__pycache__') return [];
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

/** Oracle fixture folders: an expected.json that names the TransformerLens version. */
function oracleFixtureDirs() {
  const fx = join(root, 'test', 'fixtures');
  return readdirSync(fx).map((n) => join(fx, n)).filter((d) => {
    const e = join(d, 'expected.json');
    return existsSync(e) && readFileSync(e, 'utf8').includes('"transformer_lens_version"');
  });
}

function fingerprint() {
  // What can change a fixture: the generators, their pins and scripts (not the README).
  const oracleSources = walk(join(root, 'oracle')).filter((f) => /\.(py|txt|sh)$/.test(f));
  const files = [...oracleSources, ...oracleFixtureDirs().flatMap(walk)].sort();
  const h = createHash('sha256');
  for (const f of files) h.update(relative(root, f)).update('\0').update(readFileSync(f)).update('\0');
  return h.digest('hex');
}

function loud(lines) {
  const bar = '!'.repeat(78);
  console.error(`\n${bar}\n${lines.map((l) => `!! ${l}`).join('\n')}\n${bar}\n`);
}

if (process.argv.includes('--stamp')) {
  writeFileSync(stampFile, `${fingerprint()}\n`);
  process.exit(0);
}

const fp = fingerprint();
if (existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === fp) {
  console.log('oracle: the fixtures were checked against TransformerLens as they are now (oracle/check.sh passed; .oracle-check.ok)');
  process.exit(0);
}

const python = spawnSync('python3', ['--version'], { encoding: 'utf8' });
if (python.status !== 0) {
  const why = 'python3 is not installed, so the fixtures were NOT regenerated with TransformerLens.';
  if (require) {
    loud(['ORACLE CHECK FAILED: ' + why, 'MECHLENS_REQUIRE_ORACLE=1 forbids skipping it. Install Python 3.11 with venv and pip.']);
    process.exit(1);
  }
  loud(['ORACLE CHECK SKIPPED: ' + why, 'The unit tests still compare MechLens with the committed TransformerLens outputs;', 'CI proves those are TransformerLens\'s (bash oracle/check.sh, MECHLENS_REQUIRE_ORACLE=1).']);
  process.exit(0);
}

const venv = process.env.MECHLENS_ORACLE_VENV ?? join(root, '.venv-oracle');
const want = createHash('sha256').update(readFileSync(join(root, 'oracle', 'requirements.txt'))).digest('hex');
const built = existsSync(join(venv, 'bin', 'python')) && existsSync(join(venv, '.requirements.sha256')) && readFileSync(join(venv, '.requirements.sha256'), 'utf8').trim() === want;
if (!built && !require) {
  loud([
    'ORACLE CHECK SKIPPED: the oracle fixtures or oracle/ changed since the last check, and the',
    `oracle venv (${relative(root, venv) || venv}) is not built. Run: bash oracle/check.sh`,
    '(it builds the venv from oracle/requirements.txt once, a few minutes, then regenerates and compares).',
  ]);
  process.exit(0);
}
const r = spawnSync('bash', [join(root, 'oracle', 'check.sh')], { stdio: 'inherit' });
if (r.status !== 0) {
  loud(['ORACLE CHECK FAILED: the committed fixtures differ from what TransformerLens computes now (listed above).', 'Regenerate with: .venv-oracle/bin/python oracle/regenerate.py, review the diff, commit.']);
}
process.exit(r.status ?? 1);
