"""Shared by every oracle generator: determinism, version stamps, and writers whose output is
byte-stable for the same inputs (so that a regenerated fixture compares equal)."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import pathlib
import platform
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # transformer_lens.patching draws a bar per sweep

import torch  # noqa: E402
import transformers  # noqa: E402

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()


def deterministic(seed: int) -> None:
    """One thread, deterministic kernels, a fixed seed: the same fixture on every rerun."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def versions() -> dict[str, str]:
    """Versions of what computes the fixture (recorded in every expected.json)."""
    out = {"python": platform.python_version()}
    for pkg in ("transformer-lens", "torch", "transformers", "tokenizers", "safetensors", "numpy"):
        out[pkg] = importlib.metadata.version(pkg)
    return out


def jsonable(x: Any) -> Any:
    """Plain JSON values from tensors, tuples, dtypes and the odd objects of a TransformerLens config."""
    if isinstance(x, torch.Tensor):
        return jsonable(x.detach().cpu().tolist())
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return str(x)
        return x
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, torch.dtype):
        return str(x)
    return str(x)


def write_json(path: pathlib.Path, obj: Any) -> None:
    path.write_text(json.dumps(jsonable(obj), indent=1, ensure_ascii=False) + "\n")


def write_tensors(path: pathlib.Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """float32 safetensors, contiguous, own storage (views of one buffer cannot be saved)."""
    from safetensors.torch import save_file

    clean = {}
    for k, v in tensors.items():
        t = v.detach().cpu()
        if t.is_floating_point():
            t = t.to(torch.float32)
        clean[k] = t.contiguous().clone()
    save_file(clean, str(path), metadata=metadata)
