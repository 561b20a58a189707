// Runs a TypeScript worker entry under tsx (tests use the sources; the extension uses the bundle).
require('tsx/cjs');
require(require('node:worker_threads').workerData.entry);
