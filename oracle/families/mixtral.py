"""Mixtral: Mistral's attention (grouped-query, rotary, no biases) with a sparse mixture-of-experts
MLP: a router (no bias) scores 4 experts per token, the top 2 run (gated SiLU MLPs) and their
outputs are summed weighted by the router's softmax probabilities, renormalized over the two
chosen (TransformerLens pins norm_topk_prob on for Mixtral, as HF's router always renormalizes).
No sliding window (the released checkpoints have none)."""

from transformers import MixtralConfig

from oracle.fixture import Fixture


def _cfg(vocab: int) -> MixtralConfig:
    return MixtralConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=24, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
        rms_norm_eps=1e-5, rope_theta=1000000.0, sliding_window=None, hidden_act="silu",
        num_local_experts=4, num_experts_per_tok=2, router_aux_loss_coef=0.0, output_router_logits=False,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=None,
    )


FIXTURES = [
    Fixture("moe-top2-of-4-renorm", "mixtral",
            "Mixtral: grouped-query rotary attention, a router choosing 2 of 4 gated SiLU experts per token, top-2 weights renormalized",
            "sentencepiece", _cfg, vocab_size=400, seed=13),
]
