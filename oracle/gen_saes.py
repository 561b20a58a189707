"""Oracle fixtures of sparse autoencoders and transcoders, computed by SAELens itself.

For two of the model fixtures (written by gen_models.py), seeded random SAEs of every
architecture SAELens splices (standard, jumprelu, topk, gated) and two transcoders (plain and
jumprelu), each saved with SAELens's own `save_model` (cfg.json + sae_weights.safetensors) and
read back with `SAE.load_from_disk`, plus two SAEs in the pre-6.0 cfg.json layout (top-level
hook_name / hook_point, topk as activation_fn_kwargs) that SAELens converts on loading.
The model is TransformerLens's HookedSAETransformer, loaded exactly as gen_models.load_hooked
loads the HookedTransformer (same steps, then its weights moved over), and every SAE is spliced
with SAELens's own add_sae / run_with_cache / run_with_saes on the model fixture's prompts.

out/saes/<model>/<sae>/cfg.json, sae_weights.safetensors (sparsity.safetensors for one)
out/saes/<model>/expected.safetensors:
  <sae>/with_error/<hook>.hook_sae_{input,acts_pre,acts_post,recons,error,output}  (use_error_term=True)
  <sae>/with_error/logits
  <sae>/without_error/<hook>.hook_sae_{recons,output}, .../logits (input and features are
        the same with and without the error term)
  multi/without_error/... two SAEs spliced at once
  edits/{zero,mean}/logits: features ablated through a forward hook on hook_sae_acts_post (to 0,
        or to their mean over the prompts' positions; SAELens's error term keeps the rest)
  edits/feature_means: every feature's mean activation over the prompts' positions
  edits/steer/logits: the plain model with STEER_ALPHA x W_dec[feature] added at the SAE's hook
        at STEER_POSITIONS (TransformerLens run_with_hooks)
out/saes/<model>/expected.json: versions, processing mode, per SAE its hooks and the cache keys
  SAELens's run_with_cache returned (the SAE hook names), and max |logits_with_error - logits|.
"""

from __future__ import annotations

import pathlib
import shutil
import sys
import tempfile
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from oracle.common import deterministic, versions, write_json, write_tensors  # noqa: E402  (sets HF offline first)

import json  # noqa: E402

import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent

SEED = 1234
D_SAE = 48

# (model fixture, processing mode MechLens loads it with, SAEs). Each SAE: name, architecture,
# input hook, output hook for transcoders, and the cfg fields that change its forward pass.
MODELS: list[tuple[str, str, list[dict[str, Any]]]] = [
    ("gpt2-tied-gelu-new", "default", [
        {"name": "standard-resid-post-0", "architecture": "standard", "hook": "blocks.0.hook_resid_post"},
        {"name": "jumprelu-mlp-out-1", "architecture": "jumprelu", "hook": "blocks.1.hook_mlp_out"},
        {"name": "topk-resid-pre-1", "architecture": "topk", "hook": "blocks.1.hook_resid_pre", "k": 6},
        {"name": "gated-attn-out-0", "architecture": "gated", "hook": "blocks.0.hook_attn_out", "apply_b_dec_to_input": False},
        {"name": "standard-mlp-post-1-layer-norm", "architecture": "standard", "hook": "blocks.1.mlp.hook_post", "normalize_activations": "layer_norm"},
        {"name": "transcoder-mlp-0", "architecture": "transcoder", "hook": "blocks.0.ln2.hook_normalized", "hook_out": "blocks.0.hook_mlp_out"},
        {"name": "legacy-standard-resid-pre-0", "architecture": "standard", "hook": "blocks.0.hook_resid_pre", "legacy": True},
    ]),
    ("rms-gqa-gated", "none", [
        {"name": "standard-resid-pre-1-constant-norm", "architecture": "standard", "hook": "blocks.1.hook_resid_pre", "normalize_activations": "constant_norm_rescale"},
        {"name": "jumprelu-mlp-post-0", "architecture": "jumprelu", "hook": "blocks.0.mlp.hook_post", "sparsity": True},
        {"name": "topk-resid-mid-0-rescaled", "architecture": "topk", "hook": "blocks.0.hook_resid_mid", "k": 5, "rescale_acts_by_decoder_norm": True},
        {"name": "gated-resid-post-1", "architecture": "gated", "hook": "blocks.1.hook_resid_post"},
        {"name": "jumprelu-transcoder-mlp-1", "architecture": "jumprelu_transcoder", "hook": "blocks.1.ln2.hook_normalized", "hook_out": "blocks.1.hook_mlp_out"},
        {"name": "legacy-topk-resid-post-0", "architecture": "topk", "hook": "blocks.0.hook_resid_post", "k": 4, "legacy": True},
    ]),
]
# Feature edits checked per model: this SAE's two most active features zero- and mean-ablated
# (error term on), and steering along its most active feature's decoder row.
EDITED = {"gpt2-tied-gelu-new": "standard-resid-post-0", "rms-gqa-gated": "gated-resid-post-1"}
STEER_ALPHA = 4.0
STEER_POSITIONS = [2, 5]
# Spliced together (without the error term): one SAE and one transcoder per model.
MULTI = {"gpt2-tied-gelu-new": ["standard-resid-post-0", "transcoder-mlp-0"], "rms-gqa-gated": ["topk-resid-mid-0-rescaled", "jumprelu-transcoder-mlp-1"]}
SAE_HOOKS = ("hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post", "hook_sae_recons", "hook_sae_error", "hook_sae_output")


def fixture_names() -> list[str]:
    return [m for m, _, _ in MODELS]


def sae_versions() -> dict[str, str]:
    import importlib.metadata

    return {**versions(), "sae-lens": importlib.metadata.version("sae-lens")}


def random_weights(spec: dict[str, Any], d_in: int, d_out: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Weights with about a third of the features active on the fixture prompts: encoder columns
    σ 1/sqrt(d_in) (pre-activations of order |x| / 1), negative encoder biases, decoder rows σ 0.3."""
    def n(*shape: int, s: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * s

    arch = spec["architecture"]
    w: dict[str, torch.Tensor] = {
        "W_enc": n(d_in, D_SAE, s=d_in ** -0.5),
        "W_dec": n(D_SAE, d_out, s=0.3),
        "b_dec": n(d_out, s=0.1),
    }
    if arch == "gated":
        w["b_gate"] = n(D_SAE, s=0.3) - 0.2
        w["b_mag"] = n(D_SAE, s=0.3)
        w["r_mag"] = n(D_SAE, s=0.2)
    else:
        w["b_enc"] = n(D_SAE, s=0.3) - 0.2
    if arch in ("jumprelu", "jumprelu_transcoder"):
        # Some thresholds below zero, where the ReLU decides, most above it.
        w["threshold"] = n(D_SAE, s=0.3).abs() - 0.05
    return w


def sae_cfg_dict(spec: dict[str, Any], model_name: str, d_in: int, d_out: int) -> dict[str, Any]:
    arch = spec["architecture"]
    transcoder = arch.endswith("transcoder")
    cfg: dict[str, Any] = {
        "architecture": arch, "d_in": d_in, "d_sae": D_SAE, "dtype": "float32", "device": "cpu",
        "apply_b_dec_to_input": False if transcoder else spec.get("apply_b_dec_to_input", True),
        "normalize_activations": spec.get("normalize_activations", "none"), "reshape_activations": "none",
        "metadata": {"model_name": model_name, "hook_name": spec["hook"], "prepend_bos": True},
    }
    if transcoder:
        cfg["d_out"] = d_out
        cfg["metadata"]["hook_name_out"] = spec["hook_out"]
    if arch == "topk":
        cfg["k"] = spec["k"]
        cfg["rescale_acts_by_decoder_norm"] = spec.get("rescale_acts_by_decoder_norm", False)
    return cfg


def legacy_cfg(spec: dict[str, Any], model_name: str, d_in: int) -> dict[str, Any]:
    """cfg.json as SAELens 3.x-5.x wrote it: flat, `hook_point` (oldest) or `hook_name`, topk as
    an activation function with its k in activation_fn_kwargs."""
    cfg: dict[str, Any] = {
        "model_name": model_name, "hook_layer": int(spec["hook"].split(".")[1]), "hook_head_index": None,
        "d_in": d_in, "d_sae": D_SAE, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": True,
        "finetuning_scaling_factor": False, "normalize_activations": False, "context_size": 128,
        "sae_lens_training_version": "3.13.0", "prepend_bos": True,
    }
    if spec["architecture"] == "topk":
        cfg.update({"hook_name": spec["hook"], "activation_fn_str": "topk", "activation_fn_kwargs": {"k": spec["k"]}})
    else:
        cfg.update({"hook_point": spec["hook"], "activation_fn_str": "relu"})
    return cfg


def hook_size(model: Any, hook: str, tokens: torch.Tensor) -> int:
    _, cache = model.run_with_cache(tokens[:1, :2], names_filter=[hook])
    return int(cache[hook].shape[-1])


def load_sae_model(name: str, mode: str, out: pathlib.Path, tmp: pathlib.Path) -> tuple[Any, Any, pathlib.Path]:
    """HookedSAETransformer with the model fixture's weights, processed as `mode`."""
    from sae_lens import HookedSAETransformer

    from oracle.gen_models import MODES, load_hooked, tl_view

    folder = out / name if (out / name / "config.json").exists() else ROOT / "test" / "fixtures" / name
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    view = tl_view(folder, tmp)
    deterministic(SEED)
    plain, _ = load_hooked(view, folder, tokenizer, MODES[mode])
    model = HookedSAETransformer(plain.cfg, tokenizer, move_to_device=False)
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"HookedSAETransformer does not take the HookedTransformer's weights: missing {missing}, unexpected {unexpected}")
    model.eval()
    return model, plain, folder


def generate_model(name: str, mode: str, specs: list[dict[str, Any]], out: pathlib.Path) -> None:
    from sae_lens import SAE

    root = out / "saes" / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    tensors: dict[str, torch.Tensor] = {}
    expected: dict[str, Any] = {"model": name, "processing": mode, "seed": SEED, "d_sae": D_SAE, "versions": sae_versions(), "saes": {}}
    with tempfile.TemporaryDirectory(prefix="sae-oracle-") as tmp:
        model, plain, folder = load_sae_model(name, mode, out, pathlib.Path(tmp))
        spec_json = json.loads((folder / "spec.json").read_text())
        tokens = torch.tensor(spec_json["tokens"])
        expected["tokens"] = tokens.tolist()
        with torch.no_grad():
            base_logits = plain(tokens)
            if (model(tokens) - base_logits).abs().max() > 0:
                raise RuntimeError("HookedSAETransformer and HookedTransformer disagree without SAEs")
        g = torch.Generator().manual_seed(SEED)
        saes: dict[str, Any] = {}
        for spec in specs:
            d_in = hook_size(model, spec["hook"], tokens)
            d_out = hook_size(model, spec["hook_out"], tokens) if "hook_out" in spec else d_in
            w = random_weights(spec, d_in, d_out, g)
            folder_out = root / spec["name"]
            if spec.get("legacy"):
                folder_out.mkdir()
                (folder_out / "cfg.json").write_text(json.dumps(legacy_cfg(spec, name, d_in), indent=1) + "\n")
                write_tensors(folder_out / "sae_weights.safetensors", w)
            else:
                sae = SAE.from_dict(sae_cfg_dict(spec, name, d_in, d_out))
                sae.load_state_dict(w, strict=True)
                sae.save_model(folder_out)
                # SAELens's save_model writes compact JSON; rewrite it indented (same keys and values).
                cfg = json.loads((folder_out / "cfg.json").read_text())
                (folder_out / "cfg.json").write_text(json.dumps(cfg, indent=1) + "\n")
            if spec.get("sparsity"):
                # log10 feature density, as SAELens's trainer writes it.
                write_tensors(folder_out / "sparsity.safetensors", {"sparsity": -torch.rand(D_SAE, generator=g) * 4})
            sae = SAE.load_from_disk(folder_out)
            sae.eval()
            saes[spec["name"]] = sae
            hook_out = spec.get("hook_out", spec["hook"])
            entry: dict[str, Any] = {"architecture": sae.cfg.architecture(), "hook_name": spec["hook"], "hook_name_out": hook_out, "d_in": d_in, "d_out": d_out}
            for use_error in (True, False):
                tag = "with_error" if use_error else "without_error"
                with torch.no_grad():
                    model.add_sae(sae, use_error_term=use_error)
                    logits, cache = model.run_with_cache(tokens)
                    model.reset_saes()
                    logits2 = model.run_with_saes(tokens, saes=[sae], use_error_term=use_error)
                if (logits2 - logits).abs().max() > 0:
                    raise RuntimeError(f"{spec['name']}: run_with_saes and add_sae + run_with_cache disagree")
                keys = sorted(k for k in cache.keys() if ".hook_sae_" in k)
                entry[f"{tag}_cache_keys"] = keys
                entry[f"{tag}_base_hook_cached"] = hook_out in cache.keys()
                # The SAE's input and features do not depend on the error term: stored once.
                for k in keys if use_error else [k for k in keys if k.endswith(("hook_sae_output", "hook_sae_recons"))]:
                    tensors[f"{spec['name']}/{tag}/{k}"] = cache[k]
                tensors[f"{spec['name']}/{tag}/logits"] = logits
                entry[f"{tag}_max_abs_logits_change"] = float((logits - base_logits).abs().max())
            acts = tensors[f"{spec['name']}/with_error/{hook_out}.hook_sae_acts_post"]
            entry["l0_mean"] = float((acts > 0).float().sum(-1).mean())
            expected["saes"][spec["name"]] = entry
        multi = MULTI[name]
        with torch.no_grad():
            for n in multi:
                model.add_sae(saes[n], use_error_term=False)
            logits, cache = model.run_with_cache(tokens)
            model.reset_saes()
        keys = sorted(k for k in cache.keys() if ".hook_sae_" in k)
        for k in keys:
            if k.endswith(("acts_post", "output")):
                tensors[f"multi/without_error/{k}"] = cache[k]
        tensors["multi/without_error/logits"] = logits
        expected["multi"] = {"saes": multi, "cache_keys": keys}
        expected["edits"] = edits(model, plain, saes[EDITED[name]], EDITED[name], tokens, tensors)
    write_json(root / "expected.json", expected)
    write_tensors(root / "expected.safetensors", dict(sorted(tensors.items())))


def edits(model: Any, plain: Any, sae: Any, name: str, tokens: torch.Tensor, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    hook = sae.cfg.metadata.hook_name_out or sae.cfg.metadata.hook_name
    acts_name = f"{hook}.hook_sae_acts_post"
    with torch.no_grad():
        _, cache = model.run_with_cache_with_saes(tokens, saes=[sae], use_error_term=True)
        acts = cache[acts_name]
        top = torch.argsort(acts.sum(dim=(0, 1)), descending=True)[:2].tolist()
        means = acts.mean(dim=(0, 1))
        for kind in ("zero", "mean"):
            def edit(x: torch.Tensor, hook: Any) -> torch.Tensor:  # noqa: ARG001
                x = x.clone()
                x[..., top] = 0.0 if kind == "zero" else means[top]
                return x

            model.add_sae(sae, use_error_term=True)
            logits = model.run_with_hooks(tokens, fwd_hooks=[(acts_name, edit)])
            model.reset_saes()
            tensors[f"edits/{kind}/logits"] = logits
        direction = sae.W_dec[top[0]] * STEER_ALPHA

        def steer(x: torch.Tensor, hook: Any) -> torch.Tensor:  # noqa: ARG001
            x = x.clone()
            x[:, STEER_POSITIONS] += direction
            return x

        tensors["edits/steer/logits"] = plain.run_with_hooks(tokens, fwd_hooks=[(hook, steer)])
    tensors["edits/feature_means"] = means
    return {"sae": name, "hook": hook, "features": top, "steer": {"feature": top[0], "alpha": STEER_ALPHA, "positions": STEER_POSITIONS}}


def generate(out: pathlib.Path, only: list[str] | None = None) -> None:
    try:
        import sae_lens  # noqa: F401
    except ImportError as e:
        raise SystemExit(
            f"oracle/gen_saes.py needs SAELens ({e}): the oracle venv predates oracle/requirements-sae.txt; "
            "rerun oracle/setup.sh (it rebuilds the venv when the requirements change)") from e
    for name, mode, specs in MODELS:
        if only and name not in only:
            continue
        print(f"oracle: saes for {name}", file=sys.stderr)
        generate_model(name, mode, specs, out)
