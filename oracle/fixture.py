"""What one oracle fixture is: a tiny random Hugging Face checkpoint of one family, built from a
transformers config with a tiny trained tokenizer (oracle/tiny_tokenizers.py)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal

from transformers import PretrainedConfig


@dataclasses.dataclass(frozen=True)
class Fixture:
    #: Folder name under test/fixtures/ (and the name MechLens gives the model).
    name: str
    #: The family (the oracle/families/<family>.py file it comes from).
    family: str
    #: What the fixture exercises, one sentence (goes into expected.json and the README table).
    description: str
    #: Tokenizer style of oracle/tiny_tokenizers.py ("byte_level" or "sentencepiece").
    tokenizer: Literal["byte_level", "sentencepiece"]
    #: The HF config for a given vocabulary size (the tokenizer's).
    config: Callable[[int], PretrainedConfig]
    #: Vocabulary size asked of the tokenizer trainer.
    vocab_size: int = 320
    #: Seed of the random weights.
    seed: int = 0
    #: A prefix to strip from the saved weight names (GPT-2's hub checkpoints have none: "h.0...").
    strip_prefix: str | None = None
    #: For families TransformerLens cannot convert from config.json (it knows Gemma only by its
    #: official names): the TransformerLens config dict for this checkpoint, given its HF config
    #: dict. gen_models.load_hooked hands it to TransformerLens in place of convert_hf_model_config's
    #: answer; every other loading step stays TransformerLens's own.
    tl_config: Callable[[dict[str, Any]], dict[str, Any]] | None = None
