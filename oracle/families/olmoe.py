"""OLMoE: OLMo's q/k RMSNorm over the whole query and key projections, q/k/v clamped to
±clip_qkv after the norms, rotary, and a sparse mixture-of-experts MLP: a router scores 6
experts per token, the top 2 run (gated SiLU MLPs) and their outputs are summed weighted by the
router's softmax probabilities as they are (norm_topk_prob false, as in the released
OLMoE-1B-7B; the weights of a token do not sum to 1)."""

from transformers import OlmoeConfig

from oracle.fixture import Fixture


def _cfg(vocab: int) -> OlmoeConfig:
    return OlmoeConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=16, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=32, rms_norm_eps=1e-5, rope_theta=10000.0,
        hidden_act="silu", num_experts=6, num_experts_per_tok=2, norm_topk_prob=False, clip_qkv=1.5,
        router_aux_loss_coef=0.0, output_router_logits=False, attention_bias=False,
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
    )


FIXTURES = [
    Fixture("moe-qknorm-clip-top2-of-6", "olmoe",
            "OLMoE: q/k RMSNorm over the whole projection, q/k/v clamped to ±1.5, a router choosing 2 of 6 gated SiLU experts per token, weights not renormalized",
            "byte_level", _cfg, seed=17),
]
