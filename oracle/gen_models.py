"""Oracle fixtures of whole models: for every oracle/families/*.py entry, a seeded tiny random
Hugging Face checkpoint, loaded into TransformerLens's HookedTransformer through its own config
and weight conversion (offline, nothing patched), and what TransformerLens computes on it.

Each fixture folder out/<name>/ holds:
  config.json, model.safetensors, tokenizer files   the HF checkpoint (a model folder MechLens loads)
  spec.json             prompts, their tokens, corrupted prompts, answers, detector text
  expected.safetensors  per processing mode <mode>/: logits, every hook of run_with_cache
                        (hook_result included), params/<processed parameter>, dla/..., lens/...,
                        patching/..., loss/per_token
  expected.json         versions, seed, flags asked and applied, TransformerLens config, and the
                        scalar / small results (loss, logit diff, DLA, logit lens, detectors,
                        test_prompt ranks, to_tokens / to_str_tokens)

How TransformerLens is loaded offline is documented in oracle/README.md.
"""

from __future__ import annotations

import importlib
import pathlib
import pkgutil
import re
import shutil
import sys
import tempfile
from typing import Any, Callable

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from oracle.common import deterministic, versions, write_json, write_tensors  # noqa: E402  (sets HF offline first)

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

import transformer_lens.loading_from_pretrained as tl_loading  # noqa: E402
import transformer_lens.patching as tl_patching  # noqa: E402
from transformer_lens import HookedTransformer  # noqa: E402
from transformer_lens.head_detector import HEAD_NAMES, detect_head  # noqa: E402

import oracle.families  # noqa: E402
from oracle.fixture import Fixture  # noqa: E402
from oracle.tiny_tokenizers import write_tokenizer  # noqa: E402
from oracle.tl_configs import tl_config_for  # noqa: E402

# TransformerLens's processing flags for each MechLens processing mode.
MODES: dict[str, dict[str, bool]] = {
    "none": dict(fold_ln=False, center_writing_weights=False, center_unembed=False, fold_value_biases=False, refactor_factored_attn_matrices=False),
    "default": dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True, refactor_factored_attn_matrices=False),
    "default+refactor": dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True, refactor_factored_attn_matrices=True),
}

# Prompts are word prefixes of these, chosen so that two share one token length (batching needs
# equal lengths and this leaves TransformerLens's to_tokens unpadded).
CANDIDATE_PROMPTS = [
    "When Mary and John went to the store, John gave a drink to",
    "When Tom and James went to the park, James gave the ball to",
    "After the meeting, Sarah handed the report to David because",
    "The Eiffel Tower is in Paris and the Colosseum is in",
    "The quick brown fox jumps over the lazy dog and the cat",
]
# Word swaps that make a corrupted prompt (same token length, different tokens).
SWAPS = {"Mary": "John", "John": "Mary", "Tom": "James", "James": "Tom", "store": "park", "park": "store",
         "Sarah": "David", "David": "Sarah", "report": "ball", "Paris": "Rome", "Rome": "Paris",
         "fox": "dog", "dog": "cat", "cat": "dog", "drink": "ball", "ball": "drink"}
# The head detectors run on a phrase said twice (so duplicate and induction patterns exist),
# shortened word by word until it fits the context.
DETECTOR_PHRASE = "the cat sat on the mat and the dog sat on the log."
TEST_PROMPT = {"answer": "Mary"}
TARGET_LENGTHS = (10, 11, 9, 12, 8)
FORBIDDEN_IN_TL_PATH = ("llama", "gemma")


def all_fixtures() -> list[Fixture]:
    out: list[Fixture] = []
    for info in sorted(pkgutil.iter_modules(oracle.families.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"oracle.families.{info.name}")
        out.extend(getattr(mod, "FIXTURES"))
    names = [f.name for f in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"fixture names must be unique, repeated: {sorted(dup)}")
    return out


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Weights with structure processing must handle: norm gains away from 1, non-zero biases
    (HF's init leaves gains 1 and biases 0, which would make LayerNorm folding trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.dim() >= 2:
                p.copy_(r * 0.2)
            elif "norm" in name or ".ln" in name or "ln_f" in name or "layernorm" in name:
                p.copy_(1.0 + 0.2 * r)
            else:
                p.copy_(0.1 * r)


def write_checkpoint(fx: Fixture, folder: pathlib.Path) -> int:
    """The HF checkpoint: tokenizer files, config.json, model.safetensors. Returns d_vocab."""
    tok = write_tokenizer(folder, fx.tokenizer, fx.vocab_size)
    vocab = tok.get_vocab_size()
    cfg = fx.config(vocab)
    deterministic(fx.seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    randomize(model, fx.seed)
    model.save_pretrained(str(folder), safe_serialization=True)
    if fx.strip_prefix:
        path = folder / "model.safetensors"
        sd = load_file(str(path))
        save_file({(k[len(fx.strip_prefix):] if k.startswith(fx.strip_prefix) else k): v for k, v in sd.items()},
                  str(path), metadata={"format": "pt"})
    gen = folder / "generation_config.json"
    if gen.exists():
        gen.unlink()  # not a model input; one file fewer to keep stable
    return vocab


def tl_view(folder: pathlib.Path, tmp: pathlib.Path) -> pathlib.Path:
    """A folder holding only config.json, under a neutral name: TransformerLens's config
    conversion branches on "llama"/"gemma" in the path it is given and names the model after the
    path's last component."""
    view = tmp / "model"
    view.mkdir()
    shutil.copy(folder / "config.json", view / "config.json")
    low = str(view).lower()
    bad = [w for w in FORBIDDEN_IN_TL_PATH if w in low]
    if bad:
        raise RuntimeError(f"the temporary path {view} contains {bad}; set TMPDIR to a folder without these words")
    return view


def load_hooked(view: pathlib.Path, folder: pathlib.Path, tokenizer: Any, flags: dict[str, bool],
                tl_config: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> tuple[HookedTransformer, dict[str, Any]]:
    """HookedTransformer.from_pretrained's steps, in its order, on a local folder:
    get_pretrained_model_config -> from_pretrained's flag adjustments -> get_pretrained_state_dict
    (the family's weight converter on the HF model read from the folder) -> HookedTransformer(cfg,
    tokenizer, move_to_device=False) -> load_and_process_state_dict(flags). Returns the model and
    what was applied (flags after TransformerLens's own adjustments, and any refusal)."""
    flags = dict(flags)
    applied: dict[str, Any] = {"asked": dict(flags), "notes": []}
    hf_model = AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation="eager", dtype=torch.float32)
    hf_model.eval()
    with tl_config_for(view, tl_config, hf_model.config.to_dict()):
        cfg = tl_loading.get_pretrained_model_config(
            str(view), hf_cfg=hf_model.config.to_dict(), fold_ln=flags["fold_ln"], device="cpu", dtype=torch.float32,
        )
    # from_pretrained's adjustments (HookedTransformer.from_pretrained in TransformerLens 3.9).
    if cfg.positional_embedding_type == "shortformer":
        for k in ("fold_ln", "center_unembed", "center_writing_weights"):
            if flags[k]:
                applied["notes"].append(f"{k} dropped: shortformer positional embeddings")
            flags[k] = False
    if cfg.original_architecture in getattr(tl_loading, "POST_NORM_ARCHITECTURES", ()):
        for k in ("fold_ln", "center_writing_weights"):
            if flags[k]:
                applied["notes"].append(f"{k} dropped: post-norm architecture")
            flags[k] = False
    from transformer_lens.utilities import softcap_enabled  # noqa: PLC0415

    if flags["center_unembed"] and softcap_enabled(cfg.output_logits_soft_cap):
        applied["notes"].append("center_unembed dropped: output logit softcap")
        flags["center_unembed"] = False
    state_dict = tl_loading.get_pretrained_state_dict(str(view), cfg, hf_model, dtype=torch.float32)
    model = HookedTransformer(cfg, tokenizer, move_to_device=False)
    norm_before = model.cfg.normalization_type
    model.load_and_process_state_dict(state_dict, **flags)
    model.eval()
    # What ProcessWeights.process_weights then does for this config (its conditions, read from
    # TransformerLens 3.9's weight_processing.py): RMS norms fold without biases or centring;
    # centring of writing weights only for LayerNorm models without a final RMS norm.
    ln = norm_before in ("LN", "LNPre")
    rms = norm_before in ("RMS", "RMSPre")
    effective = {
        "fold_ln": flags["fold_ln"] and (ln or rms),
        "fold_ln_biases_and_centre": flags["fold_ln"] and ln,
        "center_writing_weights": flags["center_writing_weights"] and ln and not getattr(model.cfg, "final_rms", False),
        "center_unembed": flags["center_unembed"],
        "fold_value_biases": flags["fold_value_biases"],
        "refactor_factored_attn_matrices": flags["refactor_factored_attn_matrices"],
    }
    applied["applied"] = effective
    applied["normalization_type_after"] = model.cfg.normalization_type
    return model, applied


def pick_prompts(model: HookedTransformer) -> tuple[list[str], list[str]]:
    """Two prompts of equal token length (first of TARGET_LENGTHS two candidates reach exactly)
    and their corrupted versions (one word swapped, same token length, different tokens)."""
    def ntok(s: str) -> int:
        return int(model.to_tokens(s).shape[1])

    prefixes: list[dict[int, str]] = []
    for c in CANDIDATE_PROMPTS:
        words = c.split(" ")
        prefixes.append({ntok(" ".join(words[:k])): " ".join(words[:k]) for k in range(1, len(words) + 1)})
    for length in TARGET_LENGTHS:
        chosen = [p[length] for p in prefixes if length in p][:2]
        if len(chosen) == 2:
            break
    else:
        raise RuntimeError("no two candidate prompts share a token length in TARGET_LENGTHS; add candidates")
    corrupted = []
    for p in chosen:
        words = p.split(" ")
        clean_tokens = model.to_tokens(p)
        found = None
        # Prefer the IOI-style swaps; otherwise any word of the candidates at the latest position.
        pool = sorted({w.rstrip(",.") for c in CANDIDATE_PROMPTS for w in c.split(" ")})
        for i in range(len(words) - 1, 0, -1):
            w = words[i].rstrip(",.")
            options = ([SWAPS[w]] if w in SWAPS else []) + [x for x in pool if x != w]
            for r in options:
                cand = " ".join(words[:i] + [words[i].replace(w, r, 1)] + words[i + 1:])
                ct = model.to_tokens(cand)
                if ct.shape == clean_tokens.shape and not torch.equal(ct, clean_tokens):
                    found = cand
                    break
            if found is not None:
                break
        if found is None:
            raise RuntimeError(f"no word swap of {p!r} keeps its token length; extend SWAPS")
        corrupted.append(found)
    return chosen, corrupted


def detector_text(model: HookedTransformer) -> str:
    words = DETECTOR_PHRASE.split(" ")
    while words:
        text = " ".join(words) + " " + " ".join(words)
        if model.to_tokens(text).shape[1] < min(model.cfg.n_ctx, 24):
            return text
        words = words[:-1]
    raise RuntimeError("the detector phrase does not fit the context")


def pick_answers(model: HookedTransformer, tokens: torch.Tensor, corrupted: torch.Tensor) -> list[list[int]]:
    """[correct, wrong] per prompt: the clean run's top token, and the corrupted run's top token
    (or the clean run's second when they coincide), among word tokens (letters, optional leading
    space) so that the answers read as answers, so that clean and corrupted logit
    differences differ and the normalised patching metric is defined."""
    words = torch.tensor([bool(re.fullmatch(r" ?[A-Za-z]+", model.to_string(torch.tensor([t])))) for t in range(model.cfg.d_vocab)])
    with torch.no_grad():
        lc = model(tokens)[:, -1].masked_fill(~words, -torch.inf)
        lx = model(corrupted)[:, -1].masked_fill(~words, -torch.inf)
    out = []
    for b in range(tokens.shape[0]):
        c = int(lc[b].argmax())
        w = int(lx[b].argmax())
        if w == c:
            w = int(lc[b].topk(2).indices[1])
        out.append([c, w])
    return out


def test_prompt_ranks(model: HookedTransformer, prompt: str, answer: str, top_k: int = 10) -> dict[str, Any]:
    """What transformer_lens.utils.test_prompt computes (its printout aside), for one answer:
    the answer's tokens after the prompt, each one's rank among the predictions at the position
    before it, and the top-k predictions after the prompt."""
    ans = answer if answer.startswith(" ") else " " + answer
    prompt_tokens = model.to_tokens(prompt)
    answer_tokens = model.to_tokens([ans], prepend_bos=False)
    tokens = torch.cat((prompt_tokens, answer_tokens), dim=1)
    prompt_len = len(model.to_str_tokens(prompt))
    answer_str = model.to_str_tokens(ans, prepend_bos=False)
    with torch.no_grad():
        logits = model(tokens)
    probs = logits.softmax(dim=-1)
    ranks = []
    for index in range(prompt_len, prompt_len + len(answer_str)):
        tok = tokens[:, index]
        token_probs = probs[:, index - 1]
        _, sorted_pos = token_probs.sort(descending=True)
        rank = sorted_pos.argsort(-1)[range(1), tok].tolist()[0]
        ranks.append({"str": answer_str[index - prompt_len], "token": int(tok[0]), "rank": int(rank),
                      "logit": float(logits[0, index - 1, tok[0]]), "prob": float(token_probs[0, tok[0]])})
    last = probs[0, prompt_len - 1]
    sp, si = last.sort(descending=True)
    top = [{"token": int(si[i]), "str": model.to_string(si[i]), "logit": float(logits[0, prompt_len - 1, si[i]]), "prob": float(sp[i])}
           for i in range(min(top_k, last.shape[0]))]
    return {"prompt": prompt, "answer": ans, "tokens": tokens[0].tolist(), "answer_ranks": ranks, "top_k": top_k, "top": top}


def compute_mode(model: HookedTransformer, spec: dict[str, Any], mode: str, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Everything TransformerLens computes for one processing mode; tensors go into `tensors`
    under <mode>/..., the rest is returned for expected.json."""
    tokens = torch.tensor(spec["tokens"])
    corrupted = torch.tensor(spec["corrupted_tokens"])
    answers = torch.tensor(spec["answers"])
    B = tokens.shape[0]
    res: dict[str, Any] = {}
    model.set_use_attn_result(True)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
        tensors[f"{mode}/logits"] = logits
        for k, v in cache.items():
            tensors[f"{mode}/{k}"] = v
        # Refactoring changes only the attention weights: the parameters it leaves bit-identical
        # to default's are stored once, under default/params/ (listed in expected.json).
        res["params_as_in_default"] = []
        for k, v in model.named_parameters():
            if k == "pos_embed.W_pos" and model.cfg.positional_embedding_type != "standard":
                # ALiBi models (BLOOM) still build a PosEmbed that the forward pass never reads;
                # its W_pos is uninitialised memory (torch.empty), neither a parameter nor stable.
                continue
            if mode == "default+refactor" and torch.equal(v, tensors.get(f"default/params/{k}", torch.empty(0))):
                res["params_as_in_default"].append(k)
                continue
            tensors[f"{mode}/params/{k}"] = v
        res["hooks"] = sorted(cache.keys())
        res["loss"] = float(model(tokens, return_type="loss"))
        tensors[f"{mode}/loss/per_token"] = model(tokens, return_type="loss", loss_per_token=True)

        def ld_of(lg: torch.Tensor) -> torch.Tensor:
            last = lg[:, -1]
            return (last.gather(1, answers[:, :1]) - last.gather(1, answers[:, 1:])).squeeze(1)

        corr_logits = model(corrupted)
        res["logit_diffs"] = ld_of(logits).tolist()
        res["logit_diff"] = float(ld_of(logits).mean())
        res["corrupted_logit_diff"] = float(ld_of(corr_logits).mean())

        # Direct logit attribution at the last position, toward W_U[:, correct] - W_U[:, wrong].
        dirs = model.tokens_to_residual_directions(answers[:, 0]) - model.tokens_to_residual_directions(answers[:, 1])
        tensors[f"{mode}/dla/residual_directions"] = dirs
        dec, dec_labels = cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=True)
        dec_ln = cache.apply_ln_to_stack(dec, layer=-1, pos_slice=-1)
        tensors[f"{mode}/dla/decompose_resid"] = dec
        tensors[f"{mode}/dla/decompose_resid_ln"] = dec_ln
        layer_attr = torch.einsum("cbd,bd->cb", dec_ln, dirs)
        tensors[f"{mode}/dla/layer_attr"] = layer_attr
        res["layer_dla_labels"] = dec_labels
        res["layer_dla"] = layer_attr.mean(1).tolist()
        heads, head_labels = cache.stack_head_results(layer=-1, pos_slice=-1, return_labels=True)
        heads_ln = cache.apply_ln_to_stack(heads, layer=-1, pos_slice=-1)
        tensors[f"{mode}/dla/stack_head_results"] = heads
        tensors[f"{mode}/dla/stack_head_results_ln"] = heads_ln
        head_attr = torch.einsum("cbd,bd->cb", heads_ln, dirs)
        tensors[f"{mode}/dla/head_attr"] = head_attr
        res["head_dla_labels"] = head_labels
        res["head_dla"] = head_attr.mean(1).reshape(model.cfg.n_layers, model.cfg.n_heads).tolist()
        # Parallel attention+MLP blocks have no hook_resid_mid, and TransformerLens's
        # accumulated_resid does not skip it by itself.
        incl_mid = not (model.cfg.attn_only or model.cfg.parallel_attn_mlp)
        res["logit_lens_incl_mid"] = incl_mid
        acc, acc_labels = cache.accumulated_resid(layer=-1, incl_mid=incl_mid, pos_slice=-1, apply_ln=True, return_labels=True)
        tensors[f"{mode}/lens/accumulated_resid_ln"] = acc
        lens_attr = torch.einsum("cbd,bd->cb", acc, dirs)
        tensors[f"{mode}/lens/attr"] = lens_attr
        res["logit_lens"] = {"labels": acc_labels, "values": lens_attr.mean(1).tolist()}

    # Activation patching with transformer_lens.patching, normalised logit-diff metric:
    # (ld(patched) - ld(corrupted)) / (ld(clean) - ld(corrupted)), mean over the batch.
    clean_ld, corr_ld = res["logit_diff"], res["corrupted_logit_diff"]

    def metric(lg: torch.Tensor) -> torch.Tensor:
        return (ld_of(lg).mean() - corr_ld) / (clean_ld - corr_ld)

    model.set_use_attn_result(False)
    _, clean_cache = model.run_with_cache(tokens)
    sweeps: dict[str, Callable[..., torch.Tensor]] = {
        "resid_pre": tl_patching.get_act_patch_resid_pre,
        "attn_out": tl_patching.get_act_patch_attn_out,
        "mlp_out": tl_patching.get_act_patch_mlp_out,
        "head_z_all_pos": tl_patching.get_act_patch_attn_head_out_all_pos,
        "head_q_all_pos": tl_patching.get_act_patch_attn_head_q_all_pos,
        "head_k_all_pos": tl_patching.get_act_patch_attn_head_k_all_pos,
        "head_v_all_pos": tl_patching.get_act_patch_attn_head_v_all_pos,
        "head_pattern_all_pos": tl_patching.get_act_patch_attn_head_pattern_all_pos,
        "head_z_by_pos": tl_patching.get_act_patch_attn_head_out_by_pos,
        "head_q_by_pos": tl_patching.get_act_patch_attn_head_q_by_pos,
        "head_k_by_pos": tl_patching.get_act_patch_attn_head_k_by_pos,
        "head_v_by_pos": tl_patching.get_act_patch_attn_head_v_by_pos,
        "head_pattern_by_pos": tl_patching.get_act_patch_attn_head_pattern_by_pos,
    }
    res["patching_axes"] = {}
    for name, fn in sweeps.items():
        with torch.no_grad():
            r = fn(model, corrupted, clean_cache, metric)
        tensors[f"{mode}/patching/{name}"] = r
        # The result's axes as TransformerLens names them (index_axis_names of its partial),
        # e.g. pattern by position is [layer, head_index, dest_pos], the others [layer, pos, head_index].
        res["patching_axes"][name] = list(fn.keywords["index_axis_names"])
    res["resid_pre_patching"] = tensors[f"{mode}/patching/resid_pre"].tolist()
    res["head_z_patching"] = tensors[f"{mode}/patching/head_z_all_pos"].tolist()

    # Head detectors, on the detector text (TransformerLens tokenizes it with to_tokens).
    # The detectors read only the patterns; they get a cache of those, made as detect_head makes
    # its own (remove_batch_dim): TransformerLens 3.9's remove_batch_dim fails on the per-head
    # q/k-norm hooks ([batch·pos·head_index, d_head], no batch axis), so a full cache cannot be made
    # for those models. The numbers are the same either way.
    with torch.no_grad():
        _, det_cache = model.run_with_cache(model.to_tokens(spec["detector_text"]), remove_batch_dim=True,
                                            names_filter=lambda n: n.endswith("hook_pattern"))
    det: dict[str, Any] = {}
    for variant, kw in {"mul": {}, "abs": {"error_measure": "abs"}, "mul_exclude_bos_current": {"exclude_bos": True, "exclude_current_token": True}}.items():
        det[variant] = {h: detect_head(model, spec["detector_text"], h, cache=det_cache, **kw).tolist() for h in HEAD_NAMES}
    res["head_detectors"] = det
    res["test_prompt"] = test_prompt_ranks(model, spec["test_prompt"]["prompt"], spec["test_prompt"]["answer"])
    return res


def generate_one(fx: Fixture, out: pathlib.Path) -> None:
    folder = out / fx.name
    # TransformerLens's to_str_tokens changes its input's shape when "gemma" is in the tokenizer's
    # path (it loads from this folder), which breaks it for every model.
    if "gemma" in str(folder.resolve()).lower():
        raise RuntimeError(f"the fixture folder {folder.resolve()} contains 'gemma', which TransformerLens's to_str_tokens "
                           "branches on; generate into a folder without it (--out) and copy the result")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    write_checkpoint(fx, folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tensors: dict[str, torch.Tensor] = {}
    expected: dict[str, Any] = {
        "fixture": fx.name, "family": fx.family, "description": fx.description,
        "transformer_lens_version": versions()["transformer-lens"], "versions": versions(), "seed": fx.seed,
        "processing": {}, "unsupported": {},
    }
    spec: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tl-oracle-") as tmp:
        view = tl_view(folder, pathlib.Path(tmp))
        for mode, flags in MODES.items():
            deterministic(fx.seed)
            try:
                model, applied = load_hooked(view, folder, tokenizer, flags, fx.tl_config)
            except AssertionError as e:  # TransformerLens refuses (e.g. refactoring with rotary)
                expected["unsupported"][mode] = f"TransformerLens {versions()['transformer-lens']} refuses: {e}"
                continue
            if mode == "none":
                prompts, corrupted = pick_prompts(model)
                tokens = model.to_tokens(prompts)
                ctoks = model.to_tokens(corrupted)
                spec = {
                    "prompts": prompts, "tokens": tokens.tolist(),
                    "str_tokens": [model.to_str_tokens(p) for p in prompts],
                    "corrupted_prompts": corrupted, "corrupted_tokens": ctoks.tolist(),
                    "answers": pick_answers(model, tokens, ctoks),
                    "detector_text": detector_text(model),
                    "test_prompt": {"prompt": prompts[0], **TEST_PROMPT},
                    "prepend_bos": bool(model.cfg.default_prepend_bos),
                }
                spec["detector_tokens"] = model.to_tokens(spec["detector_text"]).tolist()
                spec["answer_strs"] = [[model.to_string(torch.tensor([a])) for a in pair] for pair in spec["answers"]]
                # The config names the temporary folder TransformerLens read (tokenizer_name);
                # that path changes on every run, so it is recorded as "<folder>".
                expected["tl_cfg"] = {k: ("<folder>" if v == str(view) else v) for k, v in model.cfg.to_dict().items()}
                # to_tokens / to_str_tokens of a few texts, with and without BOS.
                texts = [*prompts, spec["detector_text"], " Mary", "Café 東京 🙂  x\n\ty"]
                expected["to_tokens"] = [
                    {"text": t, "prepend_bos": pb, "tokens": model.to_tokens(t, prepend_bos=pb)[0].tolist(),
                     "str_tokens": model.to_str_tokens(t, prepend_bos=pb)}
                    for t in texts for pb in (True, False)
                ]
                # TransformerLens against the HF model it converted: how faithful its conversion is.
                hf = AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation="eager", dtype=torch.float32).eval()
                with torch.no_grad():
                    diff = (hf(tokens).logits - model(tokens)).abs().max()
                expected["hf_vs_transformer_lens_logits_max_abs_diff"] = float(diff)
            r = compute_mode(model, spec, mode, tensors)
            r.update(applied)
            r["tl_cfg_after_processing"] = {k: model.cfg.to_dict()[k] for k in ("normalization_type", "final_rms", "n_ctx")}
            expected["processing"][mode] = r
    write_json(folder / "spec.json", spec)
    write_json(folder / "expected.json", expected)
    write_tensors(folder / "expected.safetensors", dict(sorted(tensors.items())))


def fixture_names() -> list[str]:
    """The fixture folders this generator writes (regenerate.py --only uses them)."""
    return [f.name for f in all_fixtures()]


def generate(out: pathlib.Path, only: list[str] | None = None) -> None:
    fixtures = all_fixtures()
    known = {f.name for f in fixtures}
    for n in only or []:
        if n not in known:
            raise SystemExit(f"unknown fixture {n!r}; the model fixtures are: {', '.join(sorted(known))}")
    for fx in fixtures:
        if only and fx.name not in only:
            continue
        print(f"oracle: {fx.name}", file=sys.stderr)
        generate_one(fx, out)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent.parent / "test" / "fixtures"))
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    generate(pathlib.Path(a.out), a.names or None)
