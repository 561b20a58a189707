/**
 * Where SAEs come from: a local folder, or a folder of a Hugging Face release repository (SAELens
 * releases hold one folder per hook, e.g. `org/gpt2-small-res-saes/blocks.8.hook_resid_pre`),
 * read from the hub cache like models are (src/engine/model/load.ts), downloaded into it when
 * missing.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fetchHubFiles, isHfModelId, type LoadOptions } from '../model/load.js';
import { SaeFormatError } from './config.js';
import { loadSaeFolder, SAE_CFG_FILE, SAE_SPARSITY_FILE, SAE_WEIGHTS_FILE, type Sae } from './sae.js';

export interface SaeRef {
  /** Hub repository id, org/name. */
  repo: string;
  /** The SAE's folder inside it ('' for an SAE at the repository's root). */
  folder: string;
}

/**
 * Splits `org/name/folder/...` into repository and folder; null when it is not of that shape.
 * A folder name may contain dots (`blocks.8.hook_resid_pre`) but no `..` component.
 */
export function parseSaeRef(spec: string): SaeRef | null {
  const parts = spec.split('/');
  if (parts.length < 2) return null;
  const repo = parts.slice(0, 2).join('/');
  if (!isHfModelId(repo)) return null;
  const rest = parts.slice(2);
  if (rest.some((p) => p === '' || p === '.' || p === '..' || p.includes('\\'))) return null;
  return { repo, folder: rest.join('/') };
}

/**
 * Loads an SAE from a local folder (when `spec` names one) or from a hub release:
 * `org/name/<folder>`, with opts.revision / cacheDir / endpoint / allowDownload as for models.
 */
export async function loadSae(spec: string, opts: LoadOptions = {}): Promise<Sae> {
  const s = spec.trim();
  if (s === '') throw new SaeFormatError('no SAE given: pass an SAE folder (cfg.json + sae_weights.safetensors) or a hub release folder such as org/name/blocks.8.hook_resid_pre');
  const local = path.resolve(s.startsWith('~/') ? path.join(os.homedir(), s.slice(2)) : s);
  if (fs.existsSync(local)) return loadSaeFolder(fs.statSync(local).isFile() ? path.dirname(local) : local);
  const ref = path.isAbsolute(s) || s.startsWith('.') ? null : parseSaeRef(s);
  if (ref === null) {
    throw new SaeFormatError(`SAE folder ${local} does not exist (and ${JSON.stringify(s)} is not a hub release folder such as org/name/blocks.8.hook_resid_pre)`);
  }
  const inRepo = (f: string) => (ref.folder ? `${ref.folder}/${f}` : f);
  const what = `SAE ${ref.folder || '(root)'} of ${ref.repo}`;
  const snap = await fetchHubFiles(ref.repo, [inRepo(SAE_CFG_FILE), inRepo(SAE_WEIGHTS_FILE)], [inRepo(SAE_SPARSITY_FILE)], { ...opts, what });
  const source = `${ref.repo}${opts.revision && opts.revision !== 'main' ? `@${opts.revision}` : ''}/${ref.folder}`;
  return loadSaeFolder(path.join(snap, ...ref.folder.split('/').filter(Boolean)), source);
}
