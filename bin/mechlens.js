#!/usr/bin/env node
// Thin launcher for the bundled CLI (npm run build writes dist/cli.js).
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const bundled = path.join(__dirname, '..', 'dist', 'cli.js');
if (!fs.existsSync(bundled)) {
  process.stderr.write('mechlens: dist/cli.js is missing; run `npm run build` first\n');
  process.exit(1);
}
require(bundled).main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
