/**
 * What the experiment readers (parse.ts for analysis experiments, trainParse.ts for training
 * experiments) report: shared here so neither imports the other's module.
 */
import type { Range } from './json.js';

export interface Diagnostic {
  /** Absolute path of the file the range is in (the experiment, or a .prompts / text file it names). */
  file: string;
  range: Range;
  severity: 'error' | 'warning';
  message: string;
  code: string;
}

/** A place in a file. */
export interface Location {
  file: string;
  range: Range;
}
