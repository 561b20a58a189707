"""Gemma 1, 2 and 3: RMSNorm applied as (1 + w), the embedding scaled by sqrt(d_model), gated
MLP, rotary, grouped-query attention with head_dim != hidden_size / num_attention_heads, tied
unembedding. Gemma 2 adds norms after attention and the MLP, attention scores divided by
sqrt(query_pre_attn_scalar) (24 here, not d_head), softcaps on attention scores and final logits
(small enough to bite on this tiny model), and alternating sliding-window (4 keys, shorter than the
prompts) and global layers. Gemma 3 drops the softcaps and adds per-head q/k norms and a separate
rotary base on local layers (linear rope scaling on global ones).

TransformerLens 3.9 cannot convert a Gemma config.json (its convert_hf_model_config knows Gemma
only by the official google/gemma-* names, with fixed sizes), so each fixture gives it
TransformerLens's own config for an official model (google/gemma-2b, google/gemma-2-2b, google/gemma-3-1b-pt) with the
sizes, heads, window, softcaps, rotary base and attention scale replaced by this checkpoint's
(Fixture.tl_config). Weight conversion (convert_gemma_weights), processing and the forward pass are
TransformerLens's, unchanged. Fixture names avoid "gemma": TransformerLens's config conversion
branches on that word in the path it is given."""

from __future__ import annotations

import math
from typing import Any

import transformer_lens.loading_from_pretrained as tl_loading
from transformers import Gemma2Config, Gemma3TextConfig, GemmaConfig

from oracle.fixture import Fixture

_SIZES = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              head_dim=16, max_position_embeddings=32, rms_norm_eps=1e-6, rope_theta=10000.0,
              tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=None)


def _gemma1(vocab: int) -> GemmaConfig:
    return GemmaConfig(vocab_size=vocab, hidden_act="gelu_pytorch_tanh", **_SIZES)


def _gemma2(vocab: int) -> Gemma2Config:
    return Gemma2Config(vocab_size=vocab, hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=24, sliding_window=4,
                        attn_logit_softcapping=5.0, final_logit_softcapping=3.0, **_SIZES)


def _gemma3(vocab: int) -> Gemma3TextConfig:
    sizes = {k: v for k, v in _SIZES.items() if k != "rope_theta"}
    return Gemma3TextConfig(
        vocab_size=vocab, hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=24, sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "linear", "rope_theta": 1000000.0, "factor": 8.0}},
        **sizes)


def _rope_theta(hf: dict[str, Any]) -> float:
    rp = hf.get("rope_parameters") or {}
    return float(hf.get("rope_theta") or rp.get("rope_theta") or 10000.0)


def _sizes(hf: dict[str, Any]) -> dict[str, Any]:
    """The fields of TransformerLens's official Gemma configs that depend on the checkpoint."""
    return {
        "d_model": hf["hidden_size"], "d_head": hf["head_dim"], "n_heads": hf["num_attention_heads"],
        "d_mlp": hf["intermediate_size"], "n_layers": hf["num_hidden_layers"], "n_ctx": hf["max_position_embeddings"],
        "eps": hf["rms_norm_eps"], "d_vocab": hf["vocab_size"], "n_key_value_heads": hf["num_key_value_heads"],
        "rotary_base": _rope_theta(hf),
    }


def tl_gemma1(hf: dict[str, Any]) -> dict[str, Any]:
    cfg = tl_loading.convert_hf_model_config("google/gemma-2b")
    cfg.update(_sizes(hf), rotary_dim=hf["head_dim"])
    return cfg


def tl_gemma2(hf: dict[str, Any]) -> dict[str, Any]:
    cfg = tl_loading.convert_hf_model_config("google/gemma-2-2b")
    cfg.update(
        _sizes(hf),
        window_size=hf["sliding_window"],
        attn_types=["local" if t == "sliding_attention" else "global" for t in hf["layer_types"]],
        attn_scores_soft_cap=hf["attn_logit_softcapping"],
        output_logits_soft_cap=hf["final_logit_softcapping"],
        # TransformerLens's gemma-2-27b config gives attn_scale = sqrt(query_pre_attn_scalar) (12.0);
        # the 2b / 9b ones leave the default sqrt(d_head), which equals it there.
        attn_scale=math.sqrt(hf["query_pre_attn_scalar"]),
    )
    return cfg


def tl_gemma3(hf: dict[str, Any]) -> dict[str, Any]:
    cfg = tl_loading.convert_hf_model_config("google/gemma-3-1b-pt")
    rp = hf["rope_parameters"]
    cfg.update(
        _sizes({**hf, "rope_theta": rp["full_attention"]["rope_theta"]}),
        rotary_base_local=rp["sliding_attention"]["rope_theta"],
        # TransformerLens's gemma-3-4b config: linear scaling of the global layers' rotary.
        rotary_scaling_factor=rp["full_attention"].get("factor", 1.0),
        window_size=hf["sliding_window"],
        attn_types=["local" if t == "sliding_attention" else "global" for t in hf["layer_types"]],
        attn_scale=math.sqrt(hf["query_pre_attn_scalar"]),
    )
    return cfg


FIXTURES = [
    Fixture("rms1p-scaled-embed", "gemma",
            "Gemma 1: RMSNorm as (1 + w), embedding scaled by sqrt(d_model), gated MLP (TransformerLens: exact GELU), rotary, grouped-query attention with head_dim 16 != 32 / 4, tied unembedding",
            "sentencepiece", _gemma1, vocab_size=400, seed=8, tl_config=tl_gemma1),
    Fixture("postnorm-softcap-local", "gemma2",
            "Gemma 2: as Gemma 1 plus norms after attention and MLP, attention scale sqrt(24), softcaps 5 (scores) and 3 (logits), GELU-tanh, layer 0 sliding window 4, layer 1 global",
            "sentencepiece", _gemma2, vocab_size=400, seed=9, tl_config=tl_gemma2),
    Fixture("qknorm-local-rope-base", "gemma3",
            "Gemma 3: post-norms, per-head q/k RMSNorm (1 + w), attention scale sqrt(24), layer 0 sliding window 4 with rotary base 10000, layer 1 global with base 1e6 and linear rope scaling 8, no softcaps",
            "sentencepiece", _gemma3, vocab_size=400, seed=12, tl_config=tl_gemma3),
]
