import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { f32, type F32 } from '../../src/engine/tensor/tensor.js';
import {
  SafetensorsError,
  SafetensorsFile,
  halfToFloat,
  readSafetensors,
  writeSafetensors,
} from '../../src/engine/model/safetensors.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-st-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const tmpFile = (name: string): string => path.join(tmp, `${counter++}-${name}`);

/** Builds a safetensors file by hand: 8-byte LE header length, header text, data bytes. */
function handWritten(header: unknown, data: Uint8Array, headerLen?: bigint): string {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLen ?? BigInt(h.length));
  const p = tmpFile('hand.safetensors');
  fs.writeFileSync(p, Buffer.concat([len, h, data]));
  return p;
}

function u16le(values: number[]): Buffer {
  const b = Buffer.alloc(2 * values.length);
  values.forEach((v, i) => b.writeUInt16LE(v, 2 * i));
  return b;
}

/** Asserts fn throws a SafetensorsError whose message matches re. */
function throwsSt(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  });
}

test('round trip: write then read gives the same tensors, dims and metadata', () => {
  // x: [batch=2, pos=3], y: [d_model=4], z: [0] (empty), s: [] (scalar)
  const tensors = new Map<string, F32>([
    ['x', f32([2, 3], [1, -2, 3.5, 1e-30, -0, 3.4e38])],
    ['y', f32([4], [Infinity, -Infinity, 0.1, 7])],
    ['z', f32([0])],
    ['s', f32([], [42])],
  ]);
  const p = tmpFile('rt.safetensors');
  writeSafetensors(p, tensors, { format: 'pt', note: 'hello' });
  const f = SafetensorsFile.open(p);
  try {
    assert.deepEqual(f.metadata, { format: 'pt', note: 'hello' });
    assert.deepEqual(f.names().sort(), ['s', 'x', 'y', 'z']);
    // The data section starts 8-byte aligned, like the reference writer's.
    assert.equal((f.entries.get('x')!.begin) % 8, 0);
  } finally {
    f.close();
  }
  const back = readSafetensors(p);
  for (const [k, t] of tensors) {
    const b = back.get(k)!;
    assert.deepEqual(b.dims, t.dims, k);
    assert.deepEqual([...b.data], [...t.data], k);
  }
  // A Record works too, and a tensor that is a view into a larger buffer writes only its own bytes.
  const big = new Float32Array([9, 8, 7, 6, 5]);
  const view = f32([2], big.subarray(1, 3));
  const p2 = tmpFile('view.safetensors');
  writeSafetensors(p2, { v: view });
  assert.deepEqual([...readSafetensors(p2).get('v')!.data], [8, 7]);
});

test('F16 file written by hand decodes exactly, including subnormals, -0, infinities and NaN', () => {
  const bits = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x3555, 0x0000];
  const want = [1, -2, 0.5, 65504, 2 ** -24, 1023 * 2 ** -24, -0, Infinity, -Infinity, NaN, 0.333251953125, 0];
  // h: [2, 6]
  const p = handWritten({ h: { dtype: 'F16', shape: [2, 6], data_offsets: [0, 24] } }, u16le(bits));
  const h = readSafetensors(p).get('h')!;
  assert.deepEqual(h.dims, [2, 6]);
  want.forEach((w, i) => assert.ok(Object.is(h.data[i], w), `F16 0x${bits[i]!.toString(16)}: got ${h.data[i]}, want ${w}`));
  // The scalar helper agrees with the table the reader uses.
  for (let b = 0; b < 65536; b += 97) {
    const v = halfToFloat(b);
    assert.ok(Number.isNaN(v) || Math.fround(v) === v, `half 0x${b.toString(16)} is exactly representable in float32`);
  }
});

test('BF16 file written by hand decodes exactly (bf16 is the top half of a float32)', () => {
  const bits = [0x3f80, 0xc000, 0x4049, 0x7f7f, 0x7f80, 0xff80, 0x7fc0, 0x0001, 0x8000, 0xbe80];
  const want = [1, -2, 3.140625, 3.3895313892515355e38, Infinity, -Infinity, NaN, 2 ** -133, -0, -0.25];
  // The header is 1 byte longer than needed so the data section is not 4-byte aligned: decoding must not care.
  const header = JSON.stringify({ b: { dtype: 'BF16', shape: [10], data_offsets: [0, 20] } }) + ' ';
  const p = handWritten(header, u16le(bits));
  const b = readSafetensors(p).get('b')!;
  want.forEach((w, i) => assert.ok(Object.is(b.data[i], w), `BF16 0x${bits[i]!.toString(16)}: got ${b.data[i]}, want ${w}`));
});

test('F32 at an unaligned data offset and mixed dtypes in one file', () => {
  const f = Buffer.alloc(12);
  [1.5, -2.25, 1e-7].forEach((v, i) => f.writeFloatLE(v, 4 * i));
  const i32 = Buffer.alloc(8);
  i32.writeInt32LE(-5, 0);
  i32.writeInt32LE(123456, 4);
  const header = JSON.stringify({
    __metadata__: { format: 'pt' },
    a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
    i: { dtype: 'I32', shape: [2], data_offsets: [12, 20] },
  });
  const p = handWritten(header + '   ', Buffer.concat([f, i32]));
  const m = readSafetensors(p);
  assert.deepEqual([...m.get('a')!.data], [1.5, -2.25, Math.fround(1e-7)]);
  assert.deepEqual([...m.get('i')!.data], [-5, 123456]);
});

test('truncated file: clear error naming the tensor and the data section size', () => {
  const p = tmpFile('full.safetensors');
  writeSafetensors(p, { w: f32([4, 4], Array.from({ length: 16 }, (_, i) => i)) });
  const full = fs.readFileSync(p);
  const cut = tmpFile('cut.safetensors');
  fs.writeFileSync(cut, full.subarray(0, full.length - 10));
  throwsSt(() => SafetensorsFile.open(cut), /not a valid safetensors file: tensor w ends at byte 64 .* only 54 bytes \(file truncated\?\)/);
  const tiny = tmpFile('tiny.safetensors');
  fs.writeFileSync(tiny, full.subarray(0, 5));
  throwsSt(() => SafetensorsFile.open(tiny), /file is 5 bytes, shorter than the 8-byte header length/);
});

test('header claiming an absurd size (2^60) is refused before allocating anything', () => {
  const p = handWritten('{}', new Uint8Array(0), 2n ** 60n);
  throwsSt(() => SafetensorsFile.open(p), /header length field claims 1152921504606846976 bytes \(limit \d+\)/);
});

test('header length bigger than the file', () => {
  const p = handWritten('{}', new Uint8Array(0), 1000n);
  throwsSt(() => SafetensorsFile.open(p), /header length field claims 1000 bytes but only 2 bytes follow it/);
});

test('invalid JSON header, and JSON that is not an object', () => {
  throwsSt(() => SafetensorsFile.open(handWritten('{"a": [1, 2', new Uint8Array(0))), /header is not valid JSON/);
  throwsSt(() => SafetensorsFile.open(handWritten('[1, 2]', new Uint8Array(0))), /header is not a JSON object/);
});

test('offsets inconsistent with the shape, overlapping tensors and bad entries', () => {
  const data = new Uint8Array(32);
  throwsSt(
    () => SafetensorsFile.open(handWritten({ w: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 16] } }, data)),
    /tensor w: data_offsets \[0, 16\] span 16 bytes but F32\[2, 3\] needs 24/,
  );
  throwsSt(
    () => SafetensorsFile.open(handWritten({ w: { dtype: 'F32', shape: [2], data_offsets: [16, 8] } }, data)),
    /tensor w has data_offsets \[16, 8\] that end before they begin/,
  );
  throwsSt(
    () => SafetensorsFile.open(handWritten({
      a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
      b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] },
    }, data)),
    /tensors a and b overlap/,
  );
  throwsSt(
    () => SafetensorsFile.open(handWritten({ w: { dtype: 'toString', shape: [2], data_offsets: [0, 8] } }, data)),
    /tensor w has unsupported dtype "toString"/,
  );
  throwsSt(
    () => SafetensorsFile.open(handWritten({ w: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } }, data)),
    /tensor w has an invalid shape/,
  );
  throwsSt(
    () => SafetensorsFile.open(handWritten({ w: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, data)),
    /tensor w has an absurd shape/,
  );
  throwsSt(
    () => SafetensorsFile.open(handWritten({ w: { dtype: 'F32', shape: [2], data_offsets: [0] } }, data)),
    /tensor w has invalid data_offsets/,
  );
});

test('missing file, a folder, and an unknown tensor name', () => {
  throwsSt(() => SafetensorsFile.open(path.join(tmp, 'nope.safetensors')), /cannot open .*nope\.safetensors: ENOENT/);
  throwsSt(() => SafetensorsFile.open(tmp), /not a regular file/);
  const p = tmpFile('one.safetensors');
  writeSafetensors(p, { a: f32([1], [1]) });
  const f = SafetensorsFile.open(p);
  try {
    throwsSt(() => f.readF32('b'), /has no tensor named b/);
  } finally {
    f.close();
  }
});

test('writeSafetensors never leaves a partial file under the final name', () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'w-'));
  const p = path.join(dir, 'model.safetensors');
  writeSafetensors(p, { old: f32([2], [1, 2]) });
  const before = fs.readFileSync(p);
  // A tensor whose data fails midway through writing (after the header is on disk).
  let reads = 0;
  const good = f32([3], [1, 2, 3]);
  const failing = {
    dtype: 'float32' as const,
    dims: [3],
    get data(): Float32Array {
      reads++;
      if (reads > 2) throw new Error('disk on fire');
      return good.data;
    },
  };
  assert.throws(() => writeSafetensors(p, { a: good, b: failing as F32 }), /disk on fire/);
  assert.deepEqual(fs.readFileSync(p), before, 'the earlier file is untouched');
  assert.deepEqual(fs.readdirSync(dir), ['model.safetensors'], 'no temporary file is left behind');
  // Inconsistent tensors are refused before anything is written.
  const bad = { dtype: 'float32' as const, dims: [5], data: new Float32Array(2) };
  throwsSt(() => writeSafetensors(path.join(dir, 'new.safetensors'), { bad }), /tensor bad has 2 elements but dims \[5\]/);
  assert.deepEqual(fs.readdirSync(dir), ['model.safetensors']);
});

test('readRowsF32 streams a tensor in whole rows equal to readF32, across chunk boundaries, for F32, F16 and BF16', () => {
  // 1300 x 1000 values: 5.2 MB as F32, more than one 4 MB read chunk, so rows cross chunks.
  const rows = 1300;
  const cols = 1000;
  const data = new Float32Array(rows * cols).map((_, i) => (((i * 7919) % 255) - 127) / 16); // exact in f16 and bf16
  const p = tmpFile('rows.safetensors');
  writeSafetensors(p, { w: f32([rows, cols], data) });
  const f16 = handWritten({ h: { dtype: 'F16', shape: [rows, cols], data_offsets: [0, 2 * rows * cols] } }, u16le([...data].map(toHalfBits)));
  const bf16 = handWritten({ b: { dtype: 'BF16', shape: [rows, cols], data_offsets: [0, 2 * rows * cols] } }, u16le([...data].map((v) => new Uint32Array(Float32Array.of(v).buffer)[0]! >>> 16)));
  for (const [file, name] of [[p, 'w'], [f16, 'h'], [bf16, 'b']] as const) {
    const st = SafetensorsFile.open(file);
    try {
      const whole = st.readF32(name).data;
      assertSame(whole, data, `${name}: readF32`);
      const seen = new Float32Array(rows * cols);
      let next = 0;
      let calls = 0;
      st.readRowsF32(name, cols, (chunk, first) => {
        assert.equal(first, next, `${name}: rows must arrive in order`);
        assert.equal(chunk.length % cols, 0, `${name}: a chunk must hold whole rows`);
        seen.set(chunk, first * cols);
        next += chunk.length / cols;
        calls++;
      });
      assert.equal(next, rows);
      assert.ok(calls > 1, `${name}: expected more than one chunk`);
      assertSame(seen, data, `${name}: streamed rows`);
      throwsSt(() => st.readRowsF32(name, 999, () => undefined), /do not split into rows of 999/);
    } finally {
      st.close();
    }
  }
});

function assertSame(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) assert.fail(`${what}: value ${i} is ${got[i]}, expected ${want[i]}`);
}

/** float32 -> IEEE half bits, for values exactly representable in half precision. */
function toHalfBits(v: number): number {
  if (v === 0) return Object.is(v, -0) ? 0x8000 : 0;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  let e = Math.floor(Math.log2(a));
  if (e < -14) e = -14; // subnormal
  const m = a / 2 ** e;
  const exp = e === -14 && m < 1 ? 0 : e + 15;
  const frac = Math.round((exp === 0 ? m : m - 1) * 1024);
  return sign | (exp << 10) | frac;
}
