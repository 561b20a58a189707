/**
 * safetensors reader and writer (format: 8-byte little-endian header length, JSON header
 * {name: {dtype, shape, data_offsets:[begin,end]}, __metadata__?}, then the raw byte buffer).
 *
 * The reader validates the header before trusting it (sizes must fit the file, offsets must be
 * in range, consistent with dtype x shape and must not overlap) and reads tensors one at a time
 * with positioned reads, so a 500 MB checkpoint never needs a second whole-file copy in memory.
 * F32, F16 and BF16 are decoded to float32; F64 and integer dtypes are converted when asked for.
 * Every problem is a SafetensorsError whose message names the file and what is wrong.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { f32, numel, type F32 } from '../tensor/tensor.js';

export type StDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
const BYTES: Record<StDType, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

function isStDType(v: unknown): v is StDType {
  // Object.hasOwn, not `in`: `'toString' in BYTES` is true and would let a hostile header through.
  return typeof v === 'string' && Object.hasOwn(BYTES, v);
}

export interface StEntry {
  name: string;
  dtype: StDType;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

/** Headers over this are refused: real checkpoints have headers of a few hundred KB. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** The host's byte order; safetensors is little-endian, so only LE hosts may copy F32 bytes as-is. */
const HOST_LE = os.endianness() === 'LE';

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

export class SafetensorsFile {
  readonly entries = new Map<string, StEntry>();
  metadata: Record<string, string> = {};

  private constructor(readonly filePath: string, private fd: number | null, readonly fileSize: number) {}

  static open(filePath: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(filePath, 'r');
    } catch (e) {
      throw new SafetensorsError(`cannot open ${filePath}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new SafetensorsError(`cannot read ${filePath}: it is not a regular file`);
      const f = new SafetensorsFile(filePath, fd, st.size);
      f.parseHeader();
      return f;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  private fail(msg: string): never {
    throw new SafetensorsError(`${path.basename(this.filePath)} is not a valid safetensors file: ${msg}`);
  }

  /** Reads exactly buf.length bytes at pos (readSync may return short counts). */
  private readExactly(buf: Uint8Array, pos: number, what: string): void {
    if (this.fd === null) throw new SafetensorsError(`${this.filePath} is closed`);
    let got = 0;
    while (got < buf.length) {
      const r = fs.readSync(this.fd, buf, got, buf.length - got, pos + got);
      if (r === 0) this.fail(`unexpected end of file while reading ${what} (file truncated?)`);
      got += r;
    }
  }

  private parseHeader(): void {
    if (this.fileSize < 8) this.fail(`file is ${this.fileSize} bytes, shorter than the 8-byte header length (truncated?)`);
    const lenBuf = Buffer.alloc(8);
    this.readExactly(lenBuf, 0, 'the header length');
    const headerLen = lenBuf.readBigUInt64LE(0);
    if (headerLen > BigInt(MAX_HEADER_BYTES)) {
      this.fail(`header length field claims ${headerLen} bytes (limit ${MAX_HEADER_BYTES}); the file is corrupt or not safetensors`);
    }
    const hl = Number(headerLen);
    if (8 + hl > this.fileSize) {
      this.fail(`header length field claims ${hl} bytes but only ${this.fileSize - 8} bytes follow it (truncated?)`);
    }
    const hb = Buffer.alloc(hl);
    this.readExactly(hb, 8, 'the header');
    let header: unknown;
    try {
      header = JSON.parse(hb.toString('utf8'));
    } catch (e) {
      this.fail(`header is not valid JSON (${(e as Error).message})`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) this.fail('header is not a JSON object');
    const dataStart = 8 + hl;
    const dataLen = this.fileSize - dataStart;
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) this.fail('__metadata__ is not a JSON object');
        const meta: Record<string, string> = {};
        for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
          if (typeof v !== 'string') this.fail(`__metadata__ value ${k} is not a string`);
          meta[k] = v;
        }
        this.metadata = meta;
        continue;
      }
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) this.fail(`entry ${name} is not an object`);
      const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const dtype = e.dtype;
      if (!isStDType(dtype)) this.fail(`tensor ${name} has unsupported dtype ${JSON.stringify(e.dtype)}`);
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        this.fail(`tensor ${name} has an invalid shape ${JSON.stringify(e.shape)}`);
      }
      const offs = e.data_offsets;
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
        this.fail(`tensor ${name} has invalid data_offsets ${JSON.stringify(offs)}`);
      }
      const [b, en] = offs as [number, number];
      const shape = e.shape as number[];
      const want = numel(shape) * BYTES[dtype];
      if (!Number.isSafeInteger(want)) this.fail(`tensor ${name} has an absurd shape [${shape.join(', ')}]`);
      if (en < b) this.fail(`tensor ${name} has data_offsets [${b}, ${en}] that end before they begin`);
      if (en - b !== want) {
        this.fail(`tensor ${name}: data_offsets [${b}, ${en}] span ${en - b} bytes but ${dtype}[${shape.join(', ')}] needs ${want}`);
      }
      if (en > dataLen) this.fail(`tensor ${name} ends at byte ${en} of the data section, which has only ${dataLen} bytes (file truncated?)`);
      this.entries.set(name, { name, dtype, shape: [...shape], begin: dataStart + b, end: dataStart + en });
    }
    // Overlapping tensors mean a corrupt header: one tensor's bytes would silently be read as another's.
    const sorted = [...this.entries.values()].filter((x) => x.end > x.begin).sort((x, y) => x.begin - y.begin);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1]!;
      const cur = sorted[i]!;
      if (cur.begin < prev.end) this.fail(`tensors ${prev.name} and ${cur.name} overlap in the data section`);
    }
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  private entry(name: string): StEntry {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError(`${path.basename(this.filePath)} has no tensor named ${name}`);
    return e;
  }

  /**
   * Values [i0, i0 + m) of a tensor as float32 into out[at ..]: F32 bytes are read straight into
   * `out`, other dtypes are decoded from a small reused scratch buffer chunk by chunk.
   */
  private readRange(e: StEntry, i0: number, m: number, out: Float32Array, at: number): void {
    if (e.dtype === 'F32' && HOST_LE) {
      this.readExactly(new Uint8Array(out.buffer, out.byteOffset + at * 4, m * 4), e.begin + i0 * 4, e.name);
      return;
    }
    const size = BYTES[e.dtype];
    const per = Math.floor(SCRATCH_BYTES / size);
    const u32 = new Uint32Array(out.buffer, out.byteOffset, out.length);
    for (let j = 0; j < m; j += per) {
      const k = Math.min(per, m - j);
      const buf = scratch().subarray(0, k * size);
      this.readExactly(buf, e.begin + (i0 + j) * size, e.name);
      decode(e.dtype, buf, k, out, u32, at + j);
    }
  }

  /**
   * Reads one tensor as float32 (F32/F16/BF16/F64 and integer dtypes are converted). The result
   * is the only buffer allocated, so reading a checkpoint leaves no file-sized garbage behind for
   * the garbage collector (which frees it late: a 6 GB checkpoint read through per-tensor byte
   * buffers peaked ~0.6 GB above its weights).
   */
  readF32(name: string): F32 {
    const e = this.entry(name);
    const n = numel(e.shape);
    const out = new Float32Array(n);
    this.readRange(e, 0, n, out, 0);
    return f32(e.shape, out);
  }

  /**
   * Streams a tensor as float32 rows of `rowLength` values, in order: visit(rows, firstRow) gets
   * whole rows in a reused buffer that is valid only during the call. For conversions that
   * rearrange a tensor (transposes): the source is never held whole.
   */
  readRowsF32(name: string, rowLength: number, visit: (rows: Float32Array, firstRow: number) => void): void {
    const e = this.entry(name);
    const n = numel(e.shape);
    if (!(Number.isInteger(rowLength) && rowLength > 0 && n % rowLength === 0)) throw new SafetensorsError(`${name}: ${n} values do not split into rows of ${rowLength}`);
    const rowsPer = Math.max(1, Math.floor(SCRATCH_BYTES / 4 / rowLength));
    const buf = rowsPer * rowLength * 4 <= SCRATCH_BYTES ? rowScratch() : new Float32Array(rowsPer * rowLength);
    const rows = n / rowLength;
    for (let r = 0; r < rows; r += rowsPer) {
      const k = Math.min(rowsPer, rows - r);
      const chunk = buf.subarray(0, k * rowLength);
      this.readRange(e, r * rowLength, k * rowLength, chunk, 0);
      visit(chunk, r);
    }
  }

  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}

/** Bytes of the scratch buffer non-F32 tensors are decoded through (a multiple of every dtype's size). */
const SCRATCH_BYTES = 1 << 22;
let SCRATCH: Buffer | null = null;
function scratch(): Buffer {
  return (SCRATCH ??= Buffer.allocUnsafeSlow(SCRATCH_BYTES));
}
/** The float32 rows readRowsF32 hands out (decoded through `scratch`, so a separate buffer). */
let ROW_SCRATCH: Float32Array | null = null;
function rowScratch(): Float32Array {
  return (ROW_SCRATCH ??= new Float32Array(SCRATCH_BYTES / 4));
}

/** Decodes m little-endian values of `dtype` from buf into out[at .. at + m) (u32: out's bits). */
function decode(dtype: StDType, buf: Buffer, m: number, out: Float32Array, u32: Uint32Array, at: number): void {
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < m; i++) out[at + i] = buf.readFloatLE(4 * i);
      break;
    case 'F16': {
      const table = halfTable();
      if (HOST_LE && buf.byteOffset % 2 === 0) {
        const h = new Uint16Array(buf.buffer, buf.byteOffset, m);
        for (let i = 0; i < m; i++) out[at + i] = table[h[i]!]!;
      } else {
        for (let i = 0; i < m; i++) out[at + i] = table[buf.readUInt16LE(2 * i)]!;
      }
      break;
    }
    case 'BF16':
      // bf16 is the top half of a float32, so shifting its bits up is an exact conversion.
      if (HOST_LE && buf.byteOffset % 2 === 0) {
        const h = new Uint16Array(buf.buffer, buf.byteOffset, m);
        for (let i = 0; i < m; i++) u32[at + i] = h[i]! << 16;
      } else {
        for (let i = 0; i < m; i++) u32[at + i] = (buf.readUInt16LE(2 * i) << 16) >>> 0;
      }
      break;
    case 'F64':
      for (let i = 0; i < m; i++) out[at + i] = buf.readDoubleLE(8 * i);
      break;
    case 'I64':
      for (let i = 0; i < m; i++) out[at + i] = Number(buf.readBigInt64LE(8 * i));
      break;
    case 'I32':
      for (let i = 0; i < m; i++) out[at + i] = buf.readInt32LE(4 * i);
      break;
    case 'I16':
      for (let i = 0; i < m; i++) out[at + i] = buf.readInt16LE(2 * i);
      break;
    case 'I8':
      for (let i = 0; i < m; i++) out[at + i] = buf.readInt8(i);
      break;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < m; i++) out[at + i] = buf[i]!;
      break;
  }
}

/** IEEE 754 half -> number. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

let HALF_TABLE: Float32Array | null = null;
/** All 65536 half values as float32 (256 KB), built on first use: F16 checkpoints decode by lookup. */
function halfTable(): Float32Array {
  if (HALF_TABLE === null) {
    HALF_TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) HALF_TABLE[h] = halfToFloat(h);
  }
  return HALF_TABLE;
}

/** Reads every tensor of a file as float32. */
export function readSafetensors(filePath: string): Map<string, F32> {
  const f = SafetensorsFile.open(filePath);
  try {
    const out = new Map<string, F32>();
    for (const n of f.names()) out.set(n, f.readF32(n));
    return out;
  } finally {
    f.close();
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
}

/**
 * Writes float32 tensors as a safetensors file. Writes to a uniquely named temporary file in the
 * same folder (same filesystem, so the rename is atomic), flushes it and renames it into place,
 * so a failure or crash never leaves a partial file under the final name.
 */
export function writeSafetensors(filePath: string, tensors: Map<string, F32> | Record<string, F32>, metadata?: Record<string, string>): void {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(`cannot write ${filePath}: metadata value ${k} is not a string`);
    }
    header['__metadata__'] = metadata;
  }
  let off = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new SafetensorsError(`cannot write ${filePath}: "__metadata__" is reserved and cannot name a tensor`);
    if (t.data.length !== numel(t.dims)) {
      throw new SafetensorsError(`cannot write ${filePath}: tensor ${name} has ${t.data.length} elements but dims [${t.dims.join(', ')}]`);
    }
    const n = t.data.byteLength;
    header[name] = { dtype: 'F32', shape: [...t.dims], data_offsets: [off, off + n] };
    off += n;
  }
  let hjson = Buffer.from(JSON.stringify(header), 'utf8');
  // Pad the header with spaces so the data section starts 8-byte aligned (as the reference writer does).
  const pad = (8 - ((8 + hjson.length) % 8)) % 8;
  if (pad) hjson = Buffer.concat([hjson, Buffer.alloc(pad, 0x20)]);
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(hjson.length));
  const tmp = `${filePath}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fd: number | null = fs.openSync(tmp, 'wx');
  try {
    writeAll(fd, lenBuf);
    writeAll(fd, hjson);
    for (const [, t] of entries) {
      const d = t.data;
      if (HOST_LE) {
        writeAll(fd, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      } else {
        const b = Buffer.allocUnsafe(d.byteLength);
        for (let i = 0; i < d.length; i++) b.writeFloatLE(d[i]!, 4 * i);
        writeAll(fd, b);
      }
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, filePath);
  } catch (e) {
    if (fd !== null) {
      try { fs.closeSync(fd); } catch { /* already closed */ }
    }
    try { fs.unlinkSync(tmp); } catch { /* never created or already renamed */ }
    throw e;
  }
}
