/**
 * A JSON parser that keeps where every value is written, so experiment-file diagnostics point at
 * the offending text (line and column as VS Code counts them: 0-based, UTF-16 code units).
 * Strict JSON (RFC 8259): no comments, no trailing commas; the first syntax error is reported
 * with its position.
 */

export interface Position {
  /** 0-based line. */
  line: number;
  /** 0-based column in UTF-16 code units. */
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

interface NodeBase {
  /** Offset of the first character of the value (a string's opening quote) and its length. */
  offset: number;
  length: number;
}

export type JsonNode =
  | (NodeBase & { type: 'object'; properties: JsonProperty[] })
  | (NodeBase & { type: 'array'; items: JsonNode[] })
  | (NodeBase & { type: 'string'; value: string })
  | (NodeBase & { type: 'number'; value: number })
  | (NodeBase & { type: 'boolean'; value: boolean })
  | (NodeBase & { type: 'null'; value: null });

export interface JsonProperty {
  key: string;
  keyNode: NodeBase;
  value: JsonNode;
}

export class JsonSyntaxError extends Error {
  constructor(message: string, readonly offset: number) {
    super(message);
  }
}

/** Maps offsets to line/column. */
export class LineIndex {
  private readonly starts: number[] = [0];
  constructor(readonly text: string) {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) this.starts.push(i + 1);
      else if (c === 13) {
        if (text.charCodeAt(i + 1) === 10) i++;
        this.starts.push(i + 1);
      }
    }
  }

  position(offset: number): Position {
    let lo = 0, hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, character: offset - this.starts[lo]! };
  }

  range(offset: number, length: number): Range {
    return { start: this.position(offset), end: this.position(offset + Math.max(0, length)) };
  }
}

/**
 * Bounds that keep a hostile or careless file from exhausting the parser (docs/experiments.md,
 * "Limits"): nesting depth (the parser recurses once per level) and the length of one string.
 */
export const JSON_LIMITS = { maxDepth: 64, maxStringChars: 1_000_000 } as const;

/** Parses `text`; throws JsonSyntaxError with the offset of the problem. */
export function parseJsonWithPositions(text: string, limits: { maxDepth: number; maxStringChars: number } = JSON_LIMITS): JsonNode {
  let depth = 0;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const ws = () => {
    while (i < text.length) {
      const c = text[i];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') i++;
      else break;
    }
  };
  const fail = (msg: string, at = i): never => {
    throw new JsonSyntaxError(msg, at);
  };
  const describe = (at: number) => (at >= text.length ? 'the end of the file' : `${JSON.stringify(text[at])}`);

  const parseString = (): { value: string; offset: number; length: number } => {
    const start = i;
    i++; // opening quote
    let out = '';
    while (true) {
      if (i >= text.length) fail('unterminated string: a closing " is missing', start);
      const c = text[i]!;
      if (c === '"') break;
      if (c === '\\') {
        const e = text[i + 1];
        const map: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e !== undefined && e in map) {
          out += map[e];
          i += 2;
        } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
        } else {
          fail('invalid escape in a string: use \\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX');
        }
        continue;
      }
      if (c.charCodeAt(0) < 0x20) fail('a string cannot contain a raw control character (a line break inside quotes?): write \\n');
      // Copy the run up to the next quote, backslash or control character at once (a long
      // string char by char was quadratic-ish in practice).
      let j = i + 1;
      while (j < text.length) {
        const d = text.charCodeAt(j);
        if (d === 0x22 || d === 0x5c || d < 0x20) break;
        j++;
      }
      out += text.slice(i, j);
      i = j;
      if (out.length > limits.maxStringChars) fail(`a string longer than ${limits.maxStringChars} characters: shorten it (descriptions and prompts belong in a few lines)`, start);
    }
    i++; // closing quote
    return { value: out, offset: start, length: i - start };
  };

  const parseValue = (): JsonNode => {
    ws();
    const start = i;
    const c = text[i];
    if ((c === '{' || c === '[') && ++depth > limits.maxDepth) fail(`nested deeper than ${limits.maxDepth} levels: an experiment file needs a handful`);
    try {
      return parseValueAt(start, c);
    } finally {
      if (c === '{' || c === '[') depth--;
    }
  };

  const parseValueAt = (start: number, c: string | undefined): JsonNode => {
    if (c === '{') {
      i++;
      const properties: JsonProperty[] = [];
      ws();
      if (text[i] === '}') {
        i++;
        return { type: 'object', properties, offset: start, length: i - start };
      }
      while (true) {
        ws();
        if (text[i] !== '"') fail(text[i] === '}' ? 'trailing comma before }: JSON allows none' : `expected a property name in double quotes, found ${describe(i)}`);
        const k = parseString();
        ws();
        if (text[i] !== ':') fail(`expected ':' after the property name "${k.value}", found ${describe(i)}`);
        i++;
        const value = parseValue();
        properties.push({ key: k.value, keyNode: { offset: k.offset, length: k.length }, value });
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return { type: 'object', properties, offset: start, length: i - start };
        }
        fail(`expected ',' or '}' after a property value, found ${describe(i)}`);
      }
    }
    if (c === '[') {
      i++;
      const items: JsonNode[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return { type: 'array', items, offset: start, length: i - start };
      }
      while (true) {
        ws();
        if (text[i] === ']') fail('trailing comma before ]: JSON allows none');
        items.push(parseValue());
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return { type: 'array', items, offset: start, length: i - start };
        }
        fail(`expected ',' or ']' after an array element, found ${describe(i)}`);
      }
    }
    if (c === '"') {
      const s = parseString();
      return { type: 'string', value: s.value, offset: s.offset, length: s.length };
    }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 64));
    if (m && m[0] !== '' && m[0] !== '-') {
      i += m[0].length;
      return { type: 'number', value: Number(m[0]), offset: start, length: m[0].length };
    }
    for (const [lit, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return value === null ? { type: 'null', value: null, offset: start, length: lit.length } : { type: 'boolean', value, offset: start, length: lit.length };
      }
    }
    if (text.startsWith('//', i) || text.startsWith('/*', i)) fail('comments are not allowed in JSON');
    return fail(i >= text.length ? 'unexpected end of the file: a value is missing' : `unexpected ${describe(i)}: expected a value (object, array, string, number, true, false or null)`);
  };

  const root = parseValue();
  ws();
  if (i < text.length) fail(`unexpected ${describe(i)} after the end of the JSON value`);
  return root;
}

/** The plain value of a node. */
export function toValue(n: JsonNode): unknown {
  switch (n.type) {
    case 'object': return Object.fromEntries(n.properties.map((p) => [p.key, toValue(p.value)]));
    case 'array': return n.items.map(toValue);
    default: return n.value;
  }
}

export type JsonPath = readonly (string | number)[];

/** The node at `path`, or the deepest existing ancestor (so a missing property points at its object). */
export function nodeAt(root: JsonNode, path: JsonPath): { node: JsonNode; exact: boolean; key?: NodeBase } {
  let node = root;
  let key: NodeBase | undefined;
  for (const p of path) {
    if (node.type === 'object' && typeof p === 'string') {
      const prop = node.properties.find((x) => x.key === p);
      if (!prop) return { node, exact: false, key };
      node = prop.value;
      key = prop.keyNode;
    } else if (node.type === 'array' && typeof p === 'number' && p < node.items.length) {
      node = node.items[p]!;
      key = undefined;
    } else {
      return { node, exact: false, key };
    }
  }
  return { node, exact: true, key };
}
