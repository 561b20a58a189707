/**
 * The SAEs an experiment names (`"sae"` of the sae_* analyses): a folder relative to the
 * experiment file, confined to the experiment's root like every file it names (files.ts), or a
 * hub release folder `org/name/<folder>` (read from the HF cache, downloaded unless the model is
 * offline). Parsing reads a local SAE's cfg.json so that its errors, and whether it fits the
 * model, are located diagnostics before anything runs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { confinePath, readNamedFile, type FileReader } from './files.js';
import { parseSaeConfig, type SaeConfig } from '../sae/config.js';
import { parseSaeRef } from '../sae/load.js';
import { SAE_CFG_FILE, SAE_WEIGHTS_FILE } from '../sae/sae.js';

export type SaeSpecResolution =
  | { kind: 'local'; path: string; cfg: SaeConfig }
  | { kind: 'hub'; ref: string }
  | { kind: 'error'; error: string; code: string };

function realInside(root: string, p: string): boolean {
  try {
    const rel = path.relative(fs.realpathSync(root), fs.realpathSync(p));
    return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
  } catch {
    return false;
  }
}

/** Resolves an experiment's `"sae"` value (see the file comment). */
export function resolveSaeSpec(ctx: { root: string; dir: string; reader: FileReader }, spec: string): SaeSpecResolution {
  const looksLocal = spec.startsWith('.') || path.isAbsolute(spec) || /^[A-Za-z]:[\\/]/.test(spec) || fs.existsSync(path.resolve(ctx.dir, spec));
  if (!looksLocal) {
    if (parseSaeRef(spec) === null) return { kind: 'error', error: `${JSON.stringify(spec)} is neither a folder (write ./ before a relative folder) nor a hub release folder such as org/name/blocks.8.hook_resid_pre`, code: 'sae' };
    return { kind: 'hub', ref: spec };
  }
  const c = confinePath(ctx.root, ctx.dir, spec);
  if ('error' in c) return { kind: 'error', error: c.error, code: 'file-outside' };
  const cfgText = readNamedFile(ctx, path.join(spec, SAE_CFG_FILE), "the SAE's config");
  if ('error' in cfgText) {
    const subs = fs.existsSync(c.path) && fs.statSync(c.path).isDirectory() ? fs.readdirSync(c.path).filter((n) => fs.existsSync(path.join(c.path, n, SAE_CFG_FILE))) : [];
    return { kind: 'error', error: subs.length ? `${cfgText.error}: the folder holds one SAE per sub-folder; name one of ${subs.slice(0, 6).join(', ')}` : `${cfgText.error} (an SAE folder holds ${SAE_CFG_FILE} and ${SAE_WEIGHTS_FILE}, SAELens's format)`, code: cfgText.code };
  }
  const weights = path.join(c.path, SAE_WEIGHTS_FILE);
  if (!fs.existsSync(weights)) return { kind: 'error', error: `the SAE folder ${c.path} has no ${SAE_WEIGHTS_FILE}`, code: 'file' };
  if (!realInside(ctx.root, weights)) return { kind: 'error', error: `${SAE_WEIGHTS_FILE} of ${JSON.stringify(spec)} is a link outside the experiment's folder ${ctx.root}`, code: 'file-outside' };
  let raw: unknown;
  try {
    raw = JSON.parse(cfgText.text);
  } catch (e) {
    return { kind: 'error', error: `${path.join(c.path, SAE_CFG_FILE)} is not valid JSON: ${(e as Error).message}`, code: 'sae' };
  }
  try {
    return { kind: 'local', path: c.path, cfg: parseSaeConfig(raw, path.join(c.path, SAE_CFG_FILE)) };
  } catch (e) {
    return { kind: 'error', error: (e as Error).message, code: 'sae' };
  }
}
