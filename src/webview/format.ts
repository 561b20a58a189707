/**
 * Number and token formatting shared by every view and the exporters' labels.
 * Display only: CSV/JSON exports keep full precision, but nothing on screen ever shows a raw
 * 17-digit float. Negative numbers use the typographic minus (U+2212) so columns of signed
 * values line up and read like plotly/matplotlib output.
 */

export const MINUS = '\u2212';

function signed(x: number, abs: string): string {
  return (x < 0 && /[1-9]/.test(abs) ? MINUS : '') + abs;
}

/**
 * `digits` significant digits (default 3), trailing zeros kept so columns have a fixed width:
 * 0.5 -> '0.500', -1234.5 -> '−1235', 1.234e-5 -> '1.23e-5'. NaN -> 'n/a', ±Infinity -> '±∞'.
 */
export function formatSig(x: number, digits = 3): string {
  if (Number.isNaN(x)) return 'n/a';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : `${MINUS}∞`;
  if (x === 0) return '0';
  const a = Math.abs(x);
  let s: string;
  if (a < 1e-3 || a >= 1e6) s = a.toExponential(Math.max(0, digits - 1));
  else if (a >= 10 ** digits) s = String(Math.round(a)); // 12345 reads better than 1.23e+4
  else s = a.toPrecision(digits);
  // toPrecision can still round up into exponent form (e.g. 999.95 at 4 digits).
  s = s.replace('e+', 'e');
  return signed(x, s);
}

/**
 * A figure's value relative to the figure's scale (its largest |value|): a value below a
 * 1/100,000th of it is float noise around 0 and is shown as 0 (1.273e-6 on a ±0.9 patching map
 * means 0), anything else as formatSig.
 */
export function formatRelative(x: number, scale: number, digits = 4): string {
  if (Number.isFinite(x) && Number.isFinite(scale) && scale > 0 && Math.abs(x) < scale * 1e-5) return '0';
  return formatSig(x, digits);
}

/** Fixed decimals (logits: 2, like TransformerLens's test_prompt). Never prints '−0.00'. */
export function formatFixed(x: number, decimals = 2): string {
  if (Number.isNaN(x)) return 'n/a';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : `${MINUS}∞`;
  return signed(x, Math.abs(x).toFixed(decimals));
}

/** Signed with an explicit '+' for positives (attribution deltas): '+1.23', '−0.456'. */
export function formatSigned(x: number, digits = 3): string {
  const s = formatSig(x, digits);
  return x > 0 && Number.isFinite(x) ? `+${s}` : s;
}

/**
 * A probability in [0, 1] as a percentage: '68.0%', '4.88%', '0.25%', then significant digits
 * for tiny ones ('0.012%', '3.2e-5%') because the answer's probability is often the small one a
 * researcher is looking for.
 */
export function formatPercent(p: number): string {
  if (!Number.isFinite(p)) return 'n/a';
  const v = p * 100;
  if (v === 0) return '0%';
  const a = Math.abs(v);
  if (a >= 10) return `${signed(v, a.toFixed(1))}%`;
  if (a >= 0.1) return `${signed(v, a.toFixed(2))}%`;
  return `${formatSig(v, 2)}%`;
}

/** Ordinal-free rank as TransformerLens prints it (0-based): 'rank 0'. */
export function formatRank(rank: number): string {
  return Number.isFinite(rank) ? String(Math.round(rank)) : 'n/a';
}

/** 'nice' numbers (1, 2, 5 × 10^k) at least `x`. */
export function niceStep(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x - 1e-12 * p) return m * p;
  return 10 * p;
}

/** Integer step among 1, 2, 5, 10, 20, 50, ... at least `x` (label thinning). */
export function niceIntStep(x: number): number {
  return Math.max(1, Math.round(niceStep(Math.max(1, Math.ceil(x - 1e-9)))));
}

/** About `target` evenly spaced round ticks covering [lo, hi] (inclusive, both ends when round). */
export function niceTicks(lo: number, hi: number, target = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) return [lo];
  const count = (step: number) => Math.floor(hi / step + 1e-9) - Math.ceil(lo / step - 1e-9) + 1;
  // Among the 1-2-5 steps around span/(target-1), the one whose tick count is closest to target
  // (ties: the larger step, fewer labels).
  const p = 10 ** Math.floor(Math.log10((hi - lo) / Math.max(1, target - 1)));
  let step = niceStep((hi - lo) / Math.max(1, target - 1));
  for (const c of [p / 10, p / 5, p / 2, p, 2 * p, 5 * p, 10 * p]) {
    const d = Math.abs(count(c) - target) - Math.abs(count(step) - target);
    if (d < 0 || (d === 0 && c > step)) step = c;
  }
  const out: number[] = [];
  const start = Math.ceil(lo / step - 1e-9);
  const end = Math.floor(hi / step + 1e-9);
  for (let i = start; i <= end; i++) {
    const v = Number((i * step).toPrecision(12)); // 3 * 0.1 -> 0.3, not 0.30000000000000004
    out.push(v === 0 ? 0 : v);
  }
  return out;
}

/** A tick label with just enough decimals for `step` (0.25 -> '0.25', 0.5 step -> '1.5'). */
export function formatTick(v: number, step: number): string {
  if (v === 0 || Math.abs(v) < step * 1e-9) return '0';
  const a = Math.abs(step);
  if (a >= 1e6 || a < 1e-4) return formatSig(v, 2);
  const decimals = Math.max(0, -Math.floor(Math.log10(a) + 1e-9));
  // 0.25 needs two decimals even though the step's magnitude is 0.1.
  const d = Number((a * 10 ** decimals).toFixed(6)) % 1 === 0 ? decimals : decimals + 1;
  return signed(v, Math.abs(v).toFixed(d));
}

// ---------------------------------------------------------------------------------------------
// Tokens

/** Visible stand-ins for whitespace and control characters inside a token. */
const WS: Record<string, string> = { ' ': '·', '\n': '⏎', '\t': '⇥', '\r': '␍', '\u00a0': '⍽' };

function visibleChar(ch: string): string | null {
  const w = WS[ch];
  if (w !== undefined) return w;
  const c = ch.charCodeAt(0);
  if (c < 0x20) return String.fromCharCode(0x2400 + c); // Unicode "control pictures" ␀..␟
  if (c === 0x7f) return '␡';
  return null;
}

/**
 * A token as plain text with whitespace made visible: ' Mary' -> '·Mary', '\n' -> '⏎',
 * '' -> '∅'. Used on canvas axes and in exports' labels.
 */
export function visibleToken(s: string): string {
  if (s.length === 0) return '∅';
  let out = '';
  for (const ch of s) out += visibleChar(ch) ?? ch;
  return out;
}

/** A token split into runs: visible text, and whitespace markers (`ws`) that chips dim. */
export interface TokenPiece {
  text: string;
  ws: boolean;
}

export function tokenPieces(s: string): TokenPiece[] {
  if (s.length === 0) return [{ text: '∅', ws: true }];
  const out: TokenPiece[] = [];
  for (const ch of s) {
    const v = visibleChar(ch);
    const ws = v !== null;
    const text = v ?? ch;
    const last = out[out.length - 1];
    if (last && last.ws === ws) last.text += text;
    else out.push({ text, ws });
  }
  return out;
}

/**
 * Axis labels for token positions. When a token string occurs more than once (' John' twice in
 * an IOI prompt) every label gets its position, TransformerLens-notebook style (`·John_4`), so
 * hover text and exported CSV headers are unambiguous; otherwise the plain visible token.
 */
export function positionLabels(strTokens: readonly string[]): string[] {
  const seen = new Set<string>();
  let repeats = false;
  for (const t of strTokens) {
    if (seen.has(t)) repeats = true;
    seen.add(t);
  }
  return strTokens.map((t, i) => (repeats ? `${visibleToken(t)}_${i}` : visibleToken(t)));
}

/**
 * An axis label from the host made safe to draw: leading/trailing spaces become '·' (so
 * ' Mary' and 'Mary' differ), line breaks and control characters get symbols; inner spaces of
 * ordinary labels ('L0 H3') stay.
 */
export function displayLabel(s: string): string {
  if (s.length === 0) return '∅';
  const lead = /^ */.exec(s)?.[0].length ?? 0;
  const trail = s.length > lead ? (/ *$/.exec(s)?.[0].length ?? 0) : 0;
  let out = '·'.repeat(lead);
  for (const ch of s.slice(lead, s.length - trail)) out += ch === ' ' ? ' ' : (visibleChar(ch) ?? ch);
  return out + '·'.repeat(trail);
}

/** Shortens a label to `max` characters with an ellipsis (full text stays in the hover). */
export function truncateLabel(s: string, max = 18): string {
  const chars = [...s];
  return chars.length <= max ? s : `${chars.slice(0, Math.max(1, max - 1)).join('')}…`;
}

/** A file-name-safe stem from a title: 'Logit diff (L9)' -> 'logit-diff-l9'. */
export function slug(s: string, fallback = 'mechlens'): string {
  const t = s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60);
  return t || fallback;
}
