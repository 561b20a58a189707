"""Oracle fixture for SAEs that MechLens trained itself: SAELens loads them and computes their
features on builtin:default's activations.

The SAEs are MechLens's output, not SAELens's: the sample SAE samples/saes/blocks.1.hook_resid_post
(TopK, 1024 features, samples/sae-train.experiment.json) and a standard SAE with 256 features
(test/fixtures/saes-trained/standard-resid-post-0, scripts/train-sae-fixtures.ts). Each is read
with SAELens's own SAE.load_from_disk, which proves that SAELens accepts the folder MechLens
writes (cfg.json keys, tensor names and shapes). The model is builtin:default (models/default: a
TransformerLens config.json and state dict) as HookedTransformer with from_pretrained's default
processing (fold_ln, center_writing_weights, center_unembed, fold_value_biases), which is how
MechLens loads it; the prompts are lines of text in its character vocabulary.

out/saes-trained/standard-resid-post-0/   copied, so the fixture folder is complete
out/saes-trained/expected.safetensors:
  tokens                                [batch, pos] (int64)
  <sae>/<hook>                          the hook's activations (TransformerLens run_with_cache)
  <sae>/feature_acts                    SAE.encode(activations)   [batch, pos, d_sae]
  <sae>/recons                          SAE.decode(feature_acts)  [batch, pos, d_in]
out/saes-trained/expected.json: versions, and per SAE its folder, hook, architecture, sizes and
  the sha256 of its sae_weights.safetensors (so a retrained SAE without a regenerated fixture
  fails the comparison).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import shutil
import sys

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from oracle.common import deterministic, versions, write_json, write_tensors  # noqa: E402  (sets HF offline first)

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "models" / "default"

# (fixture key, folder relative to the repository, copied into the fixture?)
SAES = [
    ("topk-sample", "samples/saes/blocks.1.hook_resid_post", False),
    ("standard-resid-post-0", "test/fixtures/saes-trained/standard-resid-post-0", True),
]

# Positions per prompt (the fixture stores every feature's activation: [2, POS, 1024] for the sample).
POS = 32
PROMPTS = [
    "Call me Ishmael. Some years ago--never mind how long precisely--having little or no money",
    "the whale, the whale! the white whale swam on; and the whale, the whale! the white whale",
]


def fixture_names() -> list[str]:
    return ["saes-trained"]


def load_default_model():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    raw = json.loads((MODEL_DIR / "config.json").read_text())
    fields = {f.name for f in dataclasses.fields(HookedTransformerConfig)}
    cfg = HookedTransformerConfig(**{k: v for k, v in raw.items() if k in fields})
    model = HookedTransformer(cfg, move_to_device=False)
    state = load_file(str(MODEL_DIR / "model.safetensors"))
    model.load_and_process_state_dict(state, fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True,
                                      refactor_factored_attn_matrices=False)
    model.eval()
    chars = json.loads((MODEL_DIR / "vocab.json").read_text())["chars"]
    return model, {c: i for i, c in enumerate(chars)}


def generate(out: pathlib.Path) -> None:
    from sae_lens import SAE

    deterministic(0)
    model, vocab = load_default_model()
    n = POS
    tokens = torch.tensor([[vocab[c] for c in p[:n]] for p in PROMPTS], dtype=torch.int64)
    dest = out / "saes-trained"
    dest.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {"tokens": tokens}
    import importlib.metadata

    v = {**versions(), "sae-lens": importlib.metadata.version("sae-lens")}
    meta: dict[str, object] = {"transformer_lens_version": v["transformer-lens"], "versions": v, "model": "builtin:default", "processing": "default", "prompts": [p[:n] for p in PROMPTS], "saes": {}}
    for key, rel, copy in SAES:
        src = ROOT / rel
        if copy and (dest / key).resolve() != src.resolve():
            shutil.copytree(src, dest / key, dirs_exist_ok=True)
        sae = SAE.load_from_disk(str(src), device="cpu")
        sae.eval()
        hook = sae.cfg.metadata.hook_name
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens, names_filter=[hook])
            x = cache[hook]
            acts = sae.encode(x)
            recons = sae.decode(acts)
        tensors[f"{key}/{hook}"] = x.contiguous()
        tensors[f"{key}/feature_acts"] = acts.contiguous()
        tensors[f"{key}/recons"] = recons.contiguous()
        meta["saes"][key] = {
            "folder": rel,
            "hook": hook,
            "architecture": sae.cfg.architecture(),
            "d_in": sae.cfg.d_in,
            "d_sae": sae.cfg.d_sae,
            "sae_class": type(sae).__name__,
            "weights_sha256": hashlib.sha256((src / "sae_weights.safetensors").read_bytes()).hexdigest(),
            "l0": float((acts > 0).float().sum(-1).mean()),
        }
    write_tensors(dest / "expected.safetensors", tensors)
    write_json(dest / "expected.json", meta)


if __name__ == "__main__":
    generate(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "test" / "fixtures")
