"""Runs every oracle generator (oracle/gen_*.py, each exposing generate(out: pathlib.Path)) into
one folder.

    python oracle/regenerate.py [--out DIR] [--only NAME ...]

--out defaults to test/fixtures (what is committed). --only limits the run to the named fixtures
(a generator whose generate() takes `only` gets the names; any other generator runs only when its
module name, gen_<what>, is named as <what>)."""

from __future__ import annotations

import argparse
import importlib
import inspect
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def generators() -> list[str]:
    return sorted(p.stem for p in (ROOT / "oracle").glob("gen_*.py"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate the oracle fixtures with TransformerLens.")
    ap.add_argument("--out", default=str(ROOT / "test" / "fixtures"), help="output folder (default: test/fixtures)")
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME", help="fixture names, or a generator's <what>")
    a = ap.parse_args(argv)
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    mods = {name: importlib.import_module(f"oracle.{name}") for name in generators()}
    if a.only is not None:
        known = {n for name, m in mods.items() for n in (name[len("gen_"):], *_known(m))}
        unknown = sorted(set(a.only) - known)
        if unknown:
            raise SystemExit(f"unknown fixture(s) {unknown}; known: {', '.join(sorted(known))}")
    for name, mod in mods.items():
        gen = getattr(mod, "generate", None)
        if gen is None:
            raise SystemExit(f"oracle/{name}.py has no generate(out) function")
        what = name[len("gen_"):]
        t0 = time.time()
        if a.only is None or what in a.only:
            gen(out)
        else:
            sel = [n for n in a.only if n in _known(mod)]
            if not sel:
                continue
            if "only" not in inspect.signature(gen).parameters:
                raise SystemExit(f"oracle/{name}.py's generate() cannot limit itself to {sel}")
            gen(out, only=sel)
        print(f"oracle: {name} done in {time.time() - t0:.1f} s", file=sys.stderr)
    return 0


def _known(mod) -> set[str]:
    """Fixture names a generator declares with fixture_names() (optional)."""
    f = getattr(mod, "fixture_names", None)
    return set(f()) if f else set()


if __name__ == "__main__":
    sys.exit(main())
