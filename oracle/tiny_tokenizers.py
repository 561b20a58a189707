"""Tiny deterministic tokenizers in each model family's style, trained offline.

The oracle's fixture models need tokenizers whose vocabularies are a few hundred entries (so the
checkpoints stay small) but which behave like the real families' tokenizers:

* ``train_byte_level_bpe``: GPT-2 / GPT-NeoX style. Byte-level pre-tokenisation (the GPT-2 split
  regex, bytes mapped to printable characters), BPE without unknown tokens, one special token
  ``<|endoftext|>`` used as BOS, EOS and UNK; nothing is added around a sequence (TransformerLens
  prepends the BOS itself).
* ``train_sentencepiece_bpe``: Llama / Mistral style. ``▁`` metaspace (a ``▁`` is prepended to the
  first word and spaces become ``▁``), BPE with byte fallback (``<0x00>``..``<0xFF>`` tokens
  right after the specials, as Llama's vocabulary has them), specials ``<unk>`` = 0, ``<s>`` = 1,
  ``</s>`` = 2, and a post-processor that prepends ``<s>``.

Both train with the Python ``tokenizers`` library on ``CORPUS`` (fixed text below, nothing is
downloaded) and save ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json``
with ``transformers.PreTrainedTokenizerFast.save_pretrained``, so that
``AutoTokenizer.from_pretrained(folder)`` and TransformerLens's ``to_tokens`` load them. Training is
deterministic: the same corpus and vocab size give byte-identical files.

Usage::

    from oracle.tiny_tokenizers import train_byte_level_bpe, train_sentencepiece_bpe
    tok = train_byte_level_bpe(320)            # -> tokenizers.Tokenizer
    save_hf_tokenizer(tok, folder, "byte_level")
    # or in one step:
    write_tokenizer(folder, "sentencepiece", vocab_size=400)
"""

from __future__ import annotations

import collections
import json
import pathlib
from typing import Literal

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

Style = Literal["byte_level", "sentencepiece"]

# A fixed corpus with the things tokenizers get wrong: whitespace runs, newlines and tabs,
# accents, CJK, emoji, digits, punctuation, code. Short, so training takes milliseconds.
CORPUS = """\
When Mary and John went to the store, John gave a drink to Mary.
When Tom and James went to the park, James gave the ball to Tom.
The Eiffel Tower is in Paris. The Colosseum is in Rome. The Brandenburg Gate is in Berlin.
After the meeting, Sarah handed the report to David because David had asked for it.
The cat sat on the mat; the dog sat on the log.  Two spaces here.   Three spaces there.
In 1984, 2001 and 2024 the numbers 3.14159, 42, 1,000,000 and -7 appeared again.
Café, naïve, résumé, jalapeño, Ångström, façade, coöperate, Straße.
東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다.
Emoji: 🙂 🚀 👍🏽 ❤️ — and dashes – and quotes “like this” and ‘this’.
def add(a, b):
    return a + b

for i in range(10):
\tprint(f"{i:>3} -> {add(i, i)}")
if (x != y && z >= 0) { console.log(`value: ${x}`); }
The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX! the quick brown fox?
Tokenization splits words into pieces: token, tokens, tokenizer, tokenized, tokenizing.
Attention heads move information between positions; MLP layers act on each position alone.
The induction head copies the token that followed the previous occurrence of the current token.
"""

BYTE_LEVEL_SPECIAL = "<|endoftext|>"
SP_UNK, SP_BOS, SP_EOS = "<unk>", "<s>", "</s>"
# Characters seen fewer times than this in the corpus are left to byte fallback.
MIN_CHAR_COUNT = 3


def train_byte_level_bpe(vocab_size: int = 320, corpus: str = CORPUS) -> Tokenizer:
    """Trains a GPT-2/GPT-NeoX-style byte-level BPE tokenizer.

    vocab_size counts the 256 byte symbols and ``<|endoftext|>`` (so at least 257); the rest are
    merges learnt from ``corpus``. ``<|endoftext|>`` gets the last id, as in GPT-2.
    """
    if vocab_size < 257:
        raise ValueError(f"vocab_size {vocab_size} is below 257 (256 bytes + <|endoftext|>)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(corpus.splitlines(keepends=True), trainer=trainer)
    tok.add_special_tokens([BYTE_LEVEL_SPECIAL])
    return tok


def train_sentencepiece_bpe(vocab_size: int = 400, corpus: str = CORPUS) -> Tokenizer:
    """Trains a Llama/Mistral-style SentencePiece BPE tokenizer with byte fallback.

    Ids: 0 ``<unk>``, 1 ``<s>``, 2 ``</s>``, 3..258 the byte tokens ``<0x00>``..``<0xFF>``, then the
    learnt pieces and merges (so vocab_size must exceed 259). Characters not in the vocabulary
    fall back to their UTF-8 bytes, as SentencePiece's ``byte_fallback`` does.
    """
    n_fixed = 3 + 256
    if vocab_size <= n_fixed:
        raise ValueError(f"vocab_size {vocab_size} must exceed {n_fixed} (3 specials + 256 byte tokens)")
    # Train the pieces and merges with the metaspace normaliser, then rebuild the model with the
    # specials and byte tokens first, as Llama's tokenizer.json lays them out.
    # SentencePiece never merges across a word start, so train on "▁word" pieces (the
    # Metaspace split); the saved tokenizer applies the merges to the whole string, as Llama 2's
    # tokenizer.json does, which gives the same pieces since no learnt token has an inner "▁".
    base = Tokenizer(models.BPE(unk_token=SP_UNK))
    base.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 256,  # the trainer's count includes the 3 specials
        min_frequency=1,
        show_progress=False,
        special_tokens=[SP_UNK, SP_BOS, SP_EOS],
    )
    # Rare characters (most CJK, emoji, most accents) stay out of the alphabet and reach the model
    # as UTF-8 byte tokens, which is what byte fallback is for. They are removed from the training
    # text here rather than with the trainer's limit_alphabet, which breaks frequency ties in hash
    # order (a different vocabulary on each run).
    counts = collections.Counter(corpus)
    kept = "".join(ch for ch in corpus if counts[ch] >= MIN_CHAR_COUNT or ch == "\n")
    base.train_from_iterator(kept.splitlines(), trainer=trainer)
    trained = json.loads(base.to_str())["model"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    ordered = [SP_UNK, SP_BOS, SP_EOS, *byte_tokens]
    learnt = sorted(
        (t for t in trained["vocab"] if t not in (SP_UNK, SP_BOS, SP_EOS) and t not in byte_tokens),
        key=lambda t: trained["vocab"][t],
    )
    vocab = {t: i for i, t in enumerate(ordered + learnt)}
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=SP_UNK, fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens([SP_UNK, SP_BOS, SP_EOS])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{SP_BOS} $A", pair=f"{SP_BOS} $A {SP_BOS} $B", special_tokens=[(SP_BOS, 1)]
    )
    return tok


def special_tokens(style: Style) -> dict[str, str]:
    """The bos/eos/unk tokens of a style, as HF's tokenizer_config.json names them."""
    if style == "byte_level":
        return {"bos_token": BYTE_LEVEL_SPECIAL, "eos_token": BYTE_LEVEL_SPECIAL, "unk_token": BYTE_LEVEL_SPECIAL}
    if style == "sentencepiece":
        return {"bos_token": SP_BOS, "eos_token": SP_EOS, "unk_token": SP_UNK}
    raise ValueError(f"unknown tokenizer style {style!r}: use 'byte_level' or 'sentencepiece'")


def save_hf_tokenizer(tok: Tokenizer, folder: pathlib.Path | str, style: Style, model_max_length: int = 1024) -> None:
    """Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json into folder.

    The config files are written by transformers itself (PreTrainedTokenizerFast.save_pretrained)
    so that AutoTokenizer reads them back exactly as it reads a hub checkpoint's.
    """
    from transformers import PreTrainedTokenizerFast

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length, **special_tokens(style))
    fast.save_pretrained(str(folder))
    # special_tokens_map.json is no longer written by every transformers release; write it
    # ourselves so that older readers (and MechLens) find the specials in the usual place.
    smap = folder / "special_tokens_map.json"
    if not smap.exists():
        smap.write_text(json.dumps(special_tokens(style), indent=2, sort_keys=True) + "\n")


def write_tokenizer(folder: pathlib.Path | str, style: Style, vocab_size: int | None = None) -> Tokenizer:
    """Trains a tokenizer of the given style (default sizes: 320 byte-level, 400 sentencepiece)
    and saves it into folder as HF expects. Returns the trained tokenizers.Tokenizer."""
    if style == "byte_level":
        tok = train_byte_level_bpe(vocab_size or 320)
    elif style == "sentencepiece":
        tok = train_sentencepiece_bpe(vocab_size or 400)
    else:
        raise ValueError(f"unknown tokenizer style {style!r}: use 'byte_level' or 'sentencepiece'")
    save_hf_tokenizer(tok, folder, style)
    return tok


if __name__ == "__main__":
    import sys

    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-tokenizers")
    for s in ("byte_level", "sentencepiece"):
        t = write_tokenizer(out / s, s)  # type: ignore[arg-type]
        enc = t.encode("When Mary and John went to the store, 東京 🙂 x")
        print(s, t.get_vocab_size(), enc.tokens, enc.ids)
