/**
 * Validates a positioned JSON tree against the draft-07 subset of schema.ts, producing one
 * problem per violation at the offending node (a missing property points at its object, an
 * unknown one at its key). anyOf/oneOf alternatives that are objects discriminated by a `const`
 * property (an analysis's "kind") are chosen by that property, so a wrong field in an analysis
 * is reported for that analysis's kind rather than as "matches none of 19 alternatives".
 */
import type { JsonNode, JsonPath } from './json.js';
import type { Schema } from './schema.js';

export interface SchemaProblem {
  path: JsonPath;
  /** Point at the key of the last path element (unknown property) rather than its value. */
  atKey?: boolean;
  message: string;
}

function typeOf(n: JsonNode): string {
  if (n.type === 'number') return Number.isInteger(n.value) ? 'integer' : 'number';
  return n.type;
}

function typeMatches(n: JsonNode, t: string): boolean {
  const actual = typeOf(n);
  return actual === t || (t === 'number' && actual === 'integer');
}

function describeValue(n: JsonNode): string {
  switch (n.type) {
    case 'object': return 'an object';
    case 'array': return 'an array';
    case 'string': return JSON.stringify(n.value);
    default: return String(n.value);
  }
}

function resolve(s: Schema, root: Schema): Schema {
  if (!s.$ref) return s;
  const m = /^#\/definitions\/(.+)$/.exec(s.$ref);
  const target = m ? root.definitions?.[m[1]!] : undefined;
  if (!target) throw new Error(`internal: unresolved schema $ref ${s.$ref}`);
  return resolve(target, root);
}

/** A property name and value that tell the alternatives of an anyOf apart, if there is one. */
function discriminator(alts: Schema[], root: Schema): string | null {
  const objs = alts.map((a) => resolve(a, root));
  if (!objs.every((a) => a.type === 'object' && a.properties)) return null;
  const first = objs[0]!;
  for (const key of Object.keys(first.properties!)) {
    if (objs.every((a) => a.properties![key]?.const !== undefined)) return key;
  }
  return null;
}

export function validate(node: JsonNode, schema: Schema, root: Schema = schema, path: JsonPath = []): SchemaProblem[] {
  const s = resolve(schema, root);
  const out: SchemaProblem[] = [];
  const alts = s.anyOf ?? s.oneOf;
  if (alts) {
    const key = node.type === 'object' ? discriminator(alts, root) : null;
    if (key !== null && node.type === 'object') {
      const prop = node.properties.find((p) => p.key === key);
      const values = alts.map((a) => resolve(a, root).properties![key]!.const!);
      if (!prop) return [{ path, message: `missing "${key}": one of ${values.map((v) => JSON.stringify(v)).join(', ')}` }];
      const i = values.findIndex((v) => prop.value.type !== 'object' && prop.value.type !== 'array' && prop.value.value === v);
      if (i < 0) return [{ path: [...path, key], message: `unknown ${key} ${describeValue(prop.value)}: expected one of ${values.map((v) => JSON.stringify(v)).join(', ')}` }];
      return validate(node, alts[i]!, root, path);
    }
    const results = alts.map((a) => validate(node, a, root, path));
    if (results.some((r) => r.length === 0)) return [];
    // Prefer the alternative of the right type with the fewest problems.
    const typed = results.filter((_, i) => {
      const a = resolve(alts[i]!, root);
      return a.type === undefined ? a.const === undefined || node.type !== 'object' : (Array.isArray(a.type) ? a.type : [a.type]).some((t) => typeMatches(node, t));
    });
    const pool = typed.length > 0 ? typed : results;
    const best = pool.reduce((a, b) => (b.length < a.length ? b : a));
    if (typed.length === 0) {
      const desc = s.description ? ` (${s.description})` : '';
      return [{ path, message: `${describeValue(node)} is not allowed here${desc}` }];
    }
    return best;
  }
  if (s.const !== undefined) {
    if (node.type === 'object' || node.type === 'array' || node.value !== s.const) out.push({ path, message: `expected ${JSON.stringify(s.const)}, got ${describeValue(node)}` });
    return out;
  }
  if (s.enum) {
    if (node.type === 'object' || node.type === 'array' || !s.enum.includes(node.value as string)) {
      out.push({ path, message: `${describeValue(node)} is not allowed: expected one of ${s.enum.map((v) => JSON.stringify(v)).join(', ')}` });
    }
    return out;
  }
  if (s.type) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (!types.some((t) => typeMatches(node, t))) {
      const want = types.map((t) => (t === 'integer' ? 'an integer' : t === 'object' ? 'an object' : t === 'array' ? 'an array' : `a ${t}`)).join(' or ');
      return [{ path, message: `expected ${want}, got ${describeValue(node)}` }];
    }
  }
  if (node.type === 'number') {
    if (s.minimum !== undefined && node.value < s.minimum) out.push({ path, message: `${node.value} is below the minimum ${s.minimum}` });
    if (s.maximum !== undefined && node.value > s.maximum) out.push({ path, message: `${node.value} is above the maximum ${s.maximum}` });
    if (s.exclusiveMinimum !== undefined && !(node.value > s.exclusiveMinimum)) out.push({ path, message: `${node.value} must be greater than ${s.exclusiveMinimum}` });
  }
  if (node.type === 'string') {
    if (s.minLength !== undefined && node.value.length < s.minLength) out.push({ path, message: node.value.length === 0 ? 'must not be empty' : `must be at least ${s.minLength} characters` });
    if (s.pattern !== undefined && !new RegExp(s.pattern).test(node.value)) {
      out.push({ path, message: s.pattern.includes('L(0') ? `${JSON.stringify(node.value)} is not a head: write L{layer}H{head}, e.g. "L7H11"` : `${JSON.stringify(node.value)} does not match ${s.pattern}` });
    }
  }
  if (node.type === 'array') {
    if (s.minItems !== undefined && node.items.length < s.minItems) out.push({ path, message: s.minItems === s.maxItems ? `needs exactly ${s.minItems} elements` : `needs at least ${s.minItems} element${s.minItems === 1 ? '' : 's'}` });
    else if (s.maxItems !== undefined && node.items.length > s.maxItems) out.push({ path, message: s.minItems === s.maxItems ? `needs exactly ${s.maxItems} elements` : `allows at most ${s.maxItems} elements` });
    if (s.items) node.items.forEach((it, i) => out.push(...validate(it, s.items!, root, [...path, i])));
  }
  if (node.type === 'object') {
    const props = s.properties ?? {};
    for (const r of s.required ?? []) {
      if (!node.properties.some((p) => p.key === r)) {
        const d = Object.prototype.hasOwnProperty.call(props, r) ? props[r]?.description : undefined;
        out.push({ path, message: `missing required property "${r}"${d ? `: ${d}` : ''}` });
      }
    }
    const seen = new Set<string>();
    for (const p of node.properties) {
      if (seen.has(p.key)) out.push({ path: [...path, p.key], atKey: true, message: `duplicate property "${p.key}"` });
      seen.add(p.key);
      // Own properties only: a key such as "constructor" or "__proto__" must not find Object.prototype's.
      const ps = Object.prototype.hasOwnProperty.call(props, p.key) ? props[p.key] : undefined;
      if (ps) out.push(...validate(p.value, ps, root, [...path, p.key]));
      else if (s.additionalProperties === false) {
        const known = Object.keys(props).filter((k) => k !== '$schema');
        out.push({ path: [...path, p.key], atKey: true, message: `unknown property "${p.key}"; allowed here: ${known.join(', ')}` });
      } else if (typeof s.additionalProperties === 'object') {
        out.push(...validate(p.value, s.additionalProperties, root, [...path, p.key]));
      }
    }
  }
  return out;
}
