// Adds (or updates) only the package.json "scripts" entries this harness owns, leaving every other
// key and the file's formatting conventions (2-space JSON, trailing newline) as they are.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
const pkg = JSON.parse(readFileSync(file, 'utf8'));
const ours = {
  'test:integration': 'node --import tsx scripts/vscode/run-integration.ts',
  'test:e2e': 'node --import tsx scripts/vscode/run-e2e.ts',
  start: 'node --import tsx scripts/start.ts',
  'setup:vscode': 'node --import tsx scripts/vscode/install.ts',
};
pkg.scripts = { ...(pkg.scripts ?? {}), ...ours };
writeFileSync(file, JSON.stringify(pkg, null, 2) + '\n');
console.log(`package.json scripts: ${Object.keys(ours).join(', ')}`);
