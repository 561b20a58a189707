"""Llama: RMSNorm, gated SiLU MLP, full rotary, grouped-query attention (fewer key/value heads
than query heads), untied unembedding, SentencePiece-style tokenizer with <s>. One variant has
Llama-3's rope scaling, with an original context short enough that the scaling changes most
frequencies of this tiny head size."""

from transformers import LlamaConfig

from oracle.fixture import Fixture


def _cfg(rope_scaling):
    def make(vocab: int) -> LlamaConfig:
        return LlamaConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
            rms_norm_eps=1e-5, rope_theta=10000.0, rope_scaling=rope_scaling, hidden_act="silu",
            tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
            bos_token_id=1, eos_token_id=2, pad_token_id=None,
        )
    return make


LLAMA3_SCALING = {
    "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8,
}

# Fixture names avoid "llama": TransformerLens's config conversion branches on that word in the
# path it is given (the generator hands it a neutral folder anyway).
FIXTURES = [
    Fixture("rms-gqa-gated", "llama", "Llama: RMSNorm, gated MLP, rotary, grouped-query attention (4 query heads, 2 key/value heads)",
            "sentencepiece", _cfg(None), vocab_size=400, seed=5),
    Fixture("rms-gqa-rope-scaling", "llama", "Llama-3: as rms-gqa-gated with llama3 rope scaling (factor 8, original context 8)",
            "sentencepiece", _cfg(LLAMA3_SCALING), vocab_size=400, seed=6),
]
