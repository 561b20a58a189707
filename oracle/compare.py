"""Compares two fixture folders (committed vs regenerated):

    python oracle/compare.py COMMITTED_DIR REGENERATED_DIR [--atol 1e-6]

.safetensors tensor by tensor (names, shapes, dtypes, values within atol), .json structurally
(same keys and lengths, strings and booleans equal, numbers within atol), anything else byte for
byte. Files present on one side only are differences too. Prints every difference (file, key,
worst |diff|, where) and exits 1 on any, 0 when the folders agree."""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
from typing import Any, Iterator


def files(root: pathlib.Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def compare_safetensors(a: pathlib.Path, b: pathlib.Path, atol: float) -> Iterator[str]:
    import torch
    from safetensors.torch import load_file

    ta, tb = load_file(str(a)), load_file(str(b))
    for k in sorted(set(ta) - set(tb)):
        yield f"tensor {k}: only in the committed file"
    for k in sorted(set(tb) - set(ta)):
        yield f"tensor {k}: only in the regenerated file"
    for k in sorted(set(ta) & set(tb)):
        x, y = ta[k], tb[k]
        if x.dtype != y.dtype:
            yield f"tensor {k}: dtype {x.dtype} vs {y.dtype}"
            continue
        if x.shape != y.shape:
            yield f"tensor {k}: shape {list(x.shape)} vs {list(y.shape)}"
            continue
        if x.numel() == 0:
            continue
        if not x.is_floating_point():
            if not torch.equal(x, y):
                i = int((x != y).flatten().nonzero()[0])
                yield f"tensor {k}: integer values differ, first at flat index {i} ({x.flatten()[i].item()} vs {y.flatten()[i].item()})"
            continue
        d = (x.double() - y.double()).abs()
        nan = x.isnan() != y.isnan()
        if bool(nan.any()):
            i = int(nan.flatten().nonzero()[0])
            yield f"tensor {k}: NaN in one file only, first at index {list(_unravel(i, x.shape))}"
            continue
        d = torch.where(x.isnan() & y.isnan(), torch.zeros_like(d), d)
        worst = float(d.max())
        if worst > atol:
            i = int(d.flatten().argmax())
            yield (f"tensor {k}: max |diff| {worst:.3g} > atol {atol:g} at index {list(_unravel(i, x.shape))} "
                   f"({x.flatten()[i].item()!r} vs {y.flatten()[i].item()!r}); {int((d > atol).sum())} of {d.numel()} entries differ")


def _unravel(i: int, shape) -> Iterator[int]:
    out = []
    for s in reversed(list(shape)):
        out.append(i % s)
        i //= s
    return reversed(out)


def compare_json(a: Any, b: Any, atol: float, where: str) -> Iterator[str]:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str) or isinstance(b, str):
        if a != b or type(a) is not type(b):
            yield f"{where or '<root>'}: {json.dumps(a, ensure_ascii=False)[:200]} vs {json.dumps(b, ensure_ascii=False)[:200]}"
        return
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if not (math.isclose(a, b, rel_tol=0, abs_tol=atol) or (math.isnan(a) and math.isnan(b))):
            yield f"{where or '<root>'}: |diff| {abs(a - b):.3g} > atol {atol:g} ({a!r} vs {b!r})"
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) - set(b)):
            yield f"{where}.{k}: only in the committed file"
        for k in sorted(set(b) - set(a)):
            yield f"{where}.{k}: only in the regenerated file"
        for k in a:
            if k in b:
                yield from compare_json(a[k], b[k], atol, f"{where}.{k}" if where else str(k))
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield f"{where}: length {len(a)} vs {len(b)}"
            return
        # Numeric arrays: one line with the worst entry rather than one per entry.
        diffs = [d for i, (x, y) in enumerate(zip(a, b)) for d in compare_json(x, y, atol, f"{where}[{i}]")]
        yield from diffs
        return
    yield f"{where}: {type(a).__name__} vs {type(b).__name__}"


def compare_dirs(committed: pathlib.Path, regenerated: pathlib.Path, atol: float) -> list[str]:
    out: list[str] = []
    fa, fb = files(committed), files(regenerated)
    for f in sorted(fa - fb):
        out.append(f"{f}: only in {committed}")
    for f in sorted(fb - fa):
        out.append(f"{f}: only in {regenerated}")
    for f in sorted(fa & fb):
        a, b = committed / f, regenerated / f
        if f.endswith(".safetensors"):
            out.extend(f"{f}: {d}" for d in compare_safetensors(a, b, atol))
        elif f.endswith(".json"):
            try:
                ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
            except json.JSONDecodeError as e:
                out.append(f"{f}: not valid JSON ({e})")
                continue
            out.extend(f"{f}: {d}" for d in compare_json(ja, jb, atol, ""))
        elif a.read_bytes() != b.read_bytes():
            out.append(f"{f}: bytes differ")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Compare committed oracle fixtures with regenerated ones.")
    ap.add_argument("committed", type=pathlib.Path)
    ap.add_argument("regenerated", type=pathlib.Path)
    ap.add_argument("--atol", type=float, default=1e-6)
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME", help="compare only these top-level fixture folders")
    a = ap.parse_args(argv)
    for d in (a.committed, a.regenerated):
        if not d.is_dir():
            print(f"compare: {d} is not a folder", file=sys.stderr)
            return 2
    names = a.only or sorted({p.name for p in a.regenerated.iterdir() if p.is_dir()})
    diffs: list[str] = []
    if not a.only:
        # A committed oracle fixture that no generator writes any more is stale.
        for p in sorted(a.committed.iterdir()):
            exp = p / "expected.json"
            if p.is_dir() and p.name not in names and exp.is_file() and "transformer_lens_version" in json.loads(exp.read_text()):
                diffs.append(f"{p.name}: committed as an oracle fixture but no generator writes it (delete it or restore its entry)")
    for n in names:
        diffs.extend(f"{n}/{d}" for d in compare_dirs(a.committed / n, a.regenerated / n, a.atol)) if (a.committed / n).is_dir() \
            else diffs.append(f"{n}: regenerated but not committed (run oracle/regenerate.py and commit test/fixtures/{n})")
    for d in diffs:
        print(d)
    print(f"compare: {len(names)} fixture folder(s), {len(diffs)} difference(s) at atol {a.atol:g}", file=sys.stderr)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
