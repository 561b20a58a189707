"""OLMo-2: a post-norm decoder (attention and MLP read the residual stream unnormalized; their
outputs are RMS-normalized before the residual add), RMSNorm over the whole query and key
projections, SiLU-gated MLP, rotary, untied unembedding.

TransformerLens 3.9 cannot convert an OLMo-2 config.json: its convert_hf_model_config has fixed
configs for allenai/OLMo-2-0425-1B and allenai/OLMo-2-1124-7B only, reached after fetching their
hub config (impossible offline). The fixture therefore gives TransformerLens the dict those
branches hold (the same keys and fixed values, copied from TransformerLens 3.9's source) with the
checkpoint's sizes, plus what convert_hf_model_config appends to every config
(original_architecture, quantization_method, tokenizer_name). Weight conversion
(convert_olmo2_weights), the post-norm flag handling, processing and the forward pass are
TransformerLens's own."""

from __future__ import annotations

from typing import Any

from transformers import Olmo2Config

from oracle.fixture import Fixture


def _cfg(vocab: int) -> Olmo2Config:
    return Olmo2Config(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=32, rms_norm_eps=1e-6, rope_theta=500000.0,
        hidden_act="silu", tie_word_embeddings=False, attention_bias=False,
        bos_token_id=vocab - 1, eos_token_id=vocab - 1, pad_token_id=None,
    )


def tl_olmo2(hf: dict[str, Any]) -> dict[str, Any]:
    rp = hf.get("rope_parameters") or {}
    return {
        # TransformerLens 3.9's allenai/OLMo-2-0425-1B entry, sizes replaced by the checkpoint's.
        "d_model": hf["hidden_size"],
        "d_head": hf["hidden_size"] // hf["num_attention_heads"],
        "n_heads": hf["num_attention_heads"],
        "d_mlp": hf["intermediate_size"],
        "n_layers": hf["num_hidden_layers"],
        "n_ctx": hf["max_position_embeddings"],
        "eps": hf["rms_norm_eps"],
        "d_vocab": hf["vocab_size"],
        "act_fn": "silu",
        "initializer_range": 0.02,
        "normalization_type": "RMS",
        "rotary_base": float(hf.get("rope_theta") or rp.get("rope_theta")),
        "attn_types": ["global"] * hf["num_hidden_layers"],
        "positional_embedding_type": "rotary",
        "gated_mlp": True,
        # What convert_hf_model_config adds after its branches.
        "original_architecture": "Olmo2ForCausalLM",
        "quantization_method": None,
        "tokenizer_name": "allenai/OLMo-2-0425-1B",
    }


FIXTURES = [
    Fixture("postnorm-qknorm-whole", "olmo2",
            "OLMo-2: post-norm blocks (norms on the attention and MLP outputs, none on their inputs), RMSNorm over the whole q / k projections, gated SiLU MLP, rotary",
            "byte_level", _cfg, seed=11, tl_config=tl_olmo2),
]
