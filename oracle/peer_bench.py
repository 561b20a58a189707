#!/usr/bin/env python3
"""TransformerLens's side of MechLens's peer and scale benchmarks (bench/peers.ts, bench/scale.ts).

Two modes:

  peer_bench.py make --config CFG.json --out DIR [--dtypes float32,bfloat16] [--seed N]
      Builds a seeded random Hugging Face checkpoint from a config dict (its "model_type" picks
      the family: gpt2, gpt_neox, llama, ...) with transformers, nothing downloaded, and saves it
      once per dtype into DIR/<dtype>/ (config.json + safetensors). Reuses a folder whose stamp
      matches the config. GPT-2 configs get n_ctx written into config.json: transformers 5's
      GPT2Config dropped it, and TransformerLens's config conversion reads it.

  peer_bench.py serve
      A JSON-lines server: one request per line on stdin, one answer per line on stdout (the
      only thing ever written to stdout; warnings and progress bars go to stderr). The driver in
      Node alternates its own runs with requests here, so the host's drift in speed hits both
      sides alike. Each answer times only the work inside this process.

The model is loaded from a local folder the way HookedTransformer.from_pretrained does it, with
TransformerLens's own functions (see oracle/README.md): AutoModelForCausalLM on the folder,
get_pretrained_model_config(folder, hf_cfg=...), get_pretrained_state_dict(folder, cfg,
hf_model), HookedTransformer(cfg), load_and_process_state_dict(...). Offline (HF_HUB_OFFLINE=1).
torch runs on PEER_THREADS threads (default 2, the target machine's cores).
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import resource
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

torch.set_num_threads(int(os.environ.get("PEER_THREADS", "2")))

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


# ---------------------------------------------------------------------------------------------
# make: random checkpoints


def make(config: dict[str, Any], out: str, dtypes: list[str], seed: int) -> dict[str, Any]:
    from transformers import AutoConfig, AutoModelForCausalLM

    stamp_text = json.dumps({"config": config, "seed": seed}, sort_keys=True)
    stamp = hashlib.sha256(stamp_text.encode()).hexdigest()
    todo = [d for d in dtypes if not _complete(os.path.join(out, d), stamp)]
    result: dict[str, Any] = {"out": out, "made": todo, "reused": [d for d in dtypes if d not in todo]}
    if not todo:
        return result
    t0 = time.perf_counter()
    cfg = dict(config)
    model_type = cfg.pop("model_type")
    # JSON from the bench writes 50.0 as 50; transformers 5 validates Gemma's softcaps as floats.
    for k in ("attn_logit_softcapping", "final_logit_softcapping"):
        if isinstance(cfg.get(k), int):
            cfg[k] = float(cfg[k])
    hf_cfg = AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(hf_cfg, dtype=torch.float32)
    model.eval()
    # fp32 first: the lower precisions are made from it (a cast, in place).
    for d in sorted(todo, key=lambda d: 0 if d == "float32" else 1):
        folder = os.path.join(out, d)
        os.makedirs(folder, exist_ok=True)
        model.to(DTYPES[d])
        model.save_pretrained(folder, safe_serialization=True)
        cfg_path = os.path.join(folder, "config.json")
        with open(cfg_path) as f:
            saved = json.load(f)
        if model_type == "gpt2" and "n_ctx" not in saved:
            saved["n_ctx"] = saved.get("n_positions", 1024)
            with open(cfg_path, "w") as f:
                json.dump(saved, f, indent=2)
        with open(os.path.join(folder, ".complete"), "w") as f:
            f.write(stamp)
    result["make_s"] = round(time.perf_counter() - t0, 1)
    return result


def _complete(folder: str, stamp: str) -> bool:
    try:
        with open(os.path.join(folder, ".complete")) as f:
            return f.read().strip() == stamp
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# serve: TransformerLens timed on requests


class Server:
    def __init__(self) -> None:
        self.model: Any = None
        self.patch: dict[str, Any] = {}
        self.train: dict[str, Any] = {}

    # -- loading --------------------------------------------------------------------------------
    def load(self, folder: str, processing: str = "default", first_tokens: list[list[int]] | None = None) -> dict[str, Any]:
        from transformers import AutoModelForCausalLM
        import transformer_lens
        from transformer_lens import HookedTransformer
        from transformer_lens import loading_from_pretrained as loading

        if processing not in ("none", "default"):
            raise ValueError(f"processing must be none or default, got {processing}")
        fold = processing == "default"
        folder = os.path.abspath(folder)
        rss0 = rss_now()
        t0 = time.perf_counter()
        from transformer_lens.utilities import softcap_enabled
        from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

        from oracle.tl_configs import BY_ARCHITECTURE, tl_config_for

        hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
        hf_cfg = hf_model.config.to_dict()
        # Gemma and OLMo-2: TransformerLens's own config for the family, with this checkpoint's sizes.
        arch = (hf_cfg.get("architectures") or [""])[0]
        with tl_config_for(folder, BY_ARCHITECTURE.get(arch), hf_cfg):
            cfg = loading.get_pretrained_model_config(folder, hf_cfg=hf_cfg, fold_ln=fold, device="cpu", dtype=torch.float32)
        # The folder holds no tokenizer and the bench passes token ids: no tokenizer is loaded.
        cfg.tokenizer_name = None
        state_dict = loading.get_pretrained_state_dict(folder, cfg, hf_model, dtype=torch.float32)
        model = HookedTransformer(cfg, tokenizer=None, move_to_device=False)
        # from_pretrained's own adjustments: no fold_ln / centring for post-norm blocks, no
        # center_unembed under a logit softcap.
        post_norm = cfg.original_architecture in POST_NORM_ARCHITECTURES
        model.load_and_process_state_dict(
            state_dict,
            fold_ln=fold and not post_norm,
            center_writing_weights=fold and not post_norm,
            center_unembed=fold and not softcap_enabled(cfg.output_logits_soft_cap),
            fold_value_biases=fold,
            refactor_factored_attn_matrices=False,
        )
        del state_dict, hf_model
        gc.collect()
        model.eval()
        self.model = model
        load_ms = (time.perf_counter() - t0) * 1000
        out: dict[str, Any] = {
            "load_ms": load_ms,
            "transformer_lens_version": transformer_lens.__version__ if hasattr(transformer_lens, "__version__") else _version("transformer-lens"),
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
            "n_params": sum(p.numel() for p in model.parameters()),
        }
        if first_tokens is not None:
            with torch.inference_mode():
                model(torch.tensor(first_tokens))
            out["load_to_first_result_ms"] = (time.perf_counter() - t0) * 1000
        gc.collect()
        out["rss_after_load"] = rss_now()
        out["rss_growth_load"] = out["rss_after_load"] - rss0
        out["rss_peak"] = rss_peak()
        return out

    def unload(self) -> dict[str, Any]:
        self.model = None
        self.patch = {}
        gc.collect()
        return {"rss_now": rss_now()}

    # -- forward passes -------------------------------------------------------------------------
    def forward(self, tokens: list[list[int]], reps: int = 1) -> dict[str, Any]:
        t = torch.tensor(tokens)
        ms = []
        with torch.inference_mode():
            for _ in range(reps):
                t0 = time.perf_counter()
                self.model(t)
                ms.append((time.perf_counter() - t0) * 1000)
        return {"ms": ms, "rss_peak": rss_peak()}

    def run_with_cache(self, tokens: list[list[int]], reps: int = 1) -> dict[str, Any]:
        t = torch.tensor(tokens)
        ms = []
        with torch.inference_mode():
            for _ in range(reps):
                t0 = time.perf_counter()
                logits, cache = self.model.run_with_cache(t)
                ms.append((time.perf_counter() - t0) * 1000)
                del logits, cache
        return {"ms": ms, "rss_peak": rss_peak()}

    # -- activation patching (transformer_lens.patching) ----------------------------------------
    def patch_setup(self, clean: list[list[int]], corrupted: list[list[int]], answers: list[list[int]]) -> dict[str, Any]:
        model = self.model
        clean_t, corr_t = torch.tensor(clean), torch.tensor(corrupted)
        ans = torch.tensor(answers)
        rows = torch.arange(len(answers))

        def logit_diff(logits: torch.Tensor) -> torch.Tensor:
            last = logits[:, -1, :]
            return (last[rows, ans[:, 0]] - last[rows, ans[:, 1]]).mean()

        with torch.inference_mode():
            clean_logits, clean_cache = model.run_with_cache(clean_t)
            corr_logits = model(corr_t)
        clean_ld, corr_ld = logit_diff(clean_logits).item(), logit_diff(corr_logits).item()

        def metric(logits: torch.Tensor) -> torch.Tensor:
            return (logit_diff(logits) - corr_ld) / (clean_ld - corr_ld)

        self.patch = {"corrupted": corr_t, "cache": clean_cache, "metric": metric}
        return {"clean_logit_diff": clean_ld, "corrupted_logit_diff": corr_ld}

    def patch_cells(self, sweep: str, cells: list[list[int]]) -> dict[str, Any]:
        """Runs TransformerLens's patching function of `sweep` on the given cells only (its
        index_df argument), each cell being [layer, pos | head | neuron]; returns each cell's
        time and metric value."""
        import pandas as pd
        from transformer_lens import patching

        def neuron_setter(corrupted_activation: torch.Tensor, index: list[int], clean_activation: torch.Tensor) -> torch.Tensor:
            # blocks.L.mlp.hook_post [batch, pos, d_mlp]: one neuron at every position.
            corrupted_activation[:, :, index[1]] = clean_activation[:, :, index[1]]
            return corrupted_activation

        fns = {
            "resid_pre": (patching.get_act_patch_resid_pre, ("layer", "pos")),
            "attn_out": (patching.get_act_patch_attn_out, ("layer", "pos")),
            "mlp_out": (patching.get_act_patch_mlp_out, ("layer", "pos")),
            "head_z": (patching.get_act_patch_attn_head_out_all_pos, ("layer", "head")),
            "head_v": (patching.get_act_patch_attn_head_v_all_pos, ("layer", "head")),
            "head_pattern": (patching.get_act_patch_attn_head_pattern_all_pos, ("layer", "head_index")),
        }
        p = self.patch
        # One call per cell (a one-row index_df), so that a burst of other work on this shared
        # host spoils one cell's time, not the whole sample; the driver takes the median.
        ms: list[float] = []
        vals: list[float] = []
        for cell in cells:
            t0 = time.perf_counter()
            with torch.inference_mode():
                if sweep.startswith("neurons"):
                    df = pd.DataFrame([cell], columns=["layer", "neuron"])
                    v = patching.generic_activation_patch(self.model, p["corrupted"], p["cache"], p["metric"], patch_setter=neuron_setter, activation_name="post", index_df=df)
                else:
                    fn, axes = fns[sweep]
                    df = pd.DataFrame([cell], columns=list(axes))
                    v = fn(self.model, p["corrupted"], p["cache"], p["metric"], index_axis_names=None, index_df=df)
            ms.append((time.perf_counter() - t0) * 1000)
            vals.append(float(v[0]))
        return {"ms": ms, "values": vals, "rss_peak": rss_peak()}

    # -- training (the no-positional-embedding experiment) --------------------------------------
    def train_setup(self, seed: int = 123) -> dict[str, Any]:
        from transformer_lens import HookedTransformer, HookedTransformerConfig

        cfg = HookedTransformerConfig(n_layers=2, d_model=64, d_head=64, n_heads=1, d_mlp=256, d_vocab=300, n_ctx=50, act_fn="relu", normalization_type="LN", device="cpu", seed=seed)
        model = HookedTransformer(cfg)
        model.pos_embed.W_pos.data[:] = 0.0
        model.pos_embed.W_pos.requires_grad = False
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(i / 100, 1.0))
        gen = torch.Generator().manual_seed(seed)
        self.train = {"model": model, "opt": opt, "sched": sched, "gen": gen, "cfg": cfg}
        return {"ok": True}

    def train_steps(self, steps: int) -> dict[str, Any]:
        tr = self.train
        model, opt, sched, cfg = tr["model"], tr["opt"], tr["sched"], tr["cfg"]
        ms, loss_v = [], float("nan")
        for _ in range(steps):
            t0 = time.perf_counter()
            # The notebook's data generator and loss: BOS 0, then uniform tokens in [1, d_vocab);
            # position t predicts token t-1.
            tokens = torch.randint(1, cfg.d_vocab, (256, cfg.n_ctx), generator=tr["gen"])
            tokens[:, 0] = 0
            logits = model(tokens)
            log_probs = logits[:, 1:].log_softmax(-1)
            loss = -log_probs.gather(-1, tokens[:, :-1, None])[..., 0].mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
            sched.step()
            loss_v = loss.item()
            ms.append((time.perf_counter() - t0) * 1000)
        return {"ms": ms, "loss": loss_v, "rss_peak": rss_peak()}

    def rss(self) -> dict[str, Any]:
        return {"rss_now": rss_now(), "rss_peak": rss_peak()}


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)


def serve() -> None:
    # The protocol owns the real stdout; anything else printed (libraries, warnings) goes to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    server = Server()
    proto.write(json.dumps({"ready": True, "pid": os.getpid(), "transformer_lens_version": _version("transformer-lens"), "torch_version": torch.__version__, "threads": torch.get_num_threads()}) + "\n")
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        cmd = req.pop("cmd")
        if cmd == "exit":
            break
        try:
            fn = getattr(server, cmd, None)
            if fn is None or cmd.startswith("_"):
                raise ValueError(f"unknown command {cmd}")
            ans = {"ok": True, **fn(**req)}
        except Exception as e:  # the driver reports it and stops
            import traceback

            traceback.print_exc()
            ans = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        proto.write(json.dumps(ans) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    mk = sub.add_parser("make", help="build a seeded random HF checkpoint")
    mk.add_argument("--config", required=True, help="JSON file (or inline JSON) of the HF config, with model_type")
    mk.add_argument("--out", required=True)
    mk.add_argument("--dtypes", default="float32")
    mk.add_argument("--seed", type=int, default=0)
    sub.add_parser("serve", help="JSON-lines server for the Node driver")
    a = ap.parse_args()
    if a.mode == "make":
        text = a.config if a.config.lstrip().startswith("{") else open(a.config).read()
        print(json.dumps(make(json.loads(text), a.out, a.dtypes.split(","), a.seed)))
    else:
        serve()


if __name__ == "__main__":
    main()
