"""Tokenizer oracle: ids, offsets and TransformerLens's to_tokens/to_str_tokens for awkward strings.

For every tokenizer below this writes ``out/tokenizers/<name>.json`` with, per corpus string, what
the Python ``tokenizers`` library gives (ids, tokens, character offsets, with and without special
tokens) and what TransformerLens's ``to_tokens`` gives with ``prepend_bos`` True and False (using
TransformerLens's own ``get_tokenizer_with_bos`` / ``get_input_with_manually_prepended_bos`` /
``get_tokens_with_bos_removed`` on ``transformers.AutoTokenizer``), and the per-token strings
``to_str_tokens`` shows.

Tokenizers: the tiny trained ones of ``oracle/tiny_tokenizers.py`` (their files are written next to
the fixture, they are ours), and the real files in ``../shared/tokenizers`` (resolved from the
repository root). Real files are never copied: the fixture holds their path relative to
``../shared/tokenizers``, their sha256, and the tokenizer_config.json used when the folder has none.

Usage: ``python oracle/gen_tokenizers.py --out test/fixtures``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tokenizers import Tokenizer  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402
from transformer_lens.utilities.tokenize_utils import (  # noqa: E402
    get_input_with_manually_prepended_bos,
    get_tokenizer_with_bos,
    get_tokens_with_bos_removed,
)

from oracle.tiny_tokenizers import write_tokenizer  # noqa: E402

SHARED_TOKENIZERS = REPO.parent / "shared" / "tokenizers"

CORPUS: list[str] = [
    "",
    "Hello world",
    " Hello world",
    "When Mary and John went to the store, John gave a drink to",
    "two  spaces,   three,    four and a trailing space ",
    "   leading spaces",
    "tabs\tand\t\tmore\ttabs",
    "line one\nline two\n\nline four\r\nwindows",
    "\n\n\n",
    "Café naïve résumé jalapeño Ångström façade Straße",
    "combining: e\u0301 a\u0308 o\u0302\u0323 n\u0303",
    "東京は日本の首都です。北京是中国的首都。",
    "서울은 한국의 수도입니다",
    "emoji 🙂 🚀 👍🏽 ❤️ and 👨‍👩‍👧‍👦 family",
    "🙂🙂🙂",
    "digits 0 12 345 6789 3.14159 1,000,000 -7 2024-01-31",
    "def add(a, b):\n    return a + b\n",
    "for (let i = 0; i < 10; i++) { console.log(`v: ${i}`); }",
    "if x != y && z >= 0:\n\tprint(f\"{x:>3}\")",
    "<|endoftext|>Hello<|endoftext|> world",
    "<s> hello </s> world <unk>",
    "quotes “like this” and ‘this’ — dash – dash",
    "MiXeD CaSe and ALLCAPS and lowercase",
    "a",
    " ",
    "x\u200by zero width\u00a0nbsp",
]

# Bare tokenizer.json files of the shared folder have no tokenizer_config.json; these are the
# hub configs' specials for those families (the fixture records them so MechLens reads the same).
REAL: list[dict] = [
    {"name": "gpt-neox-pythia", "file": "gpt-neox-pythia/20B_tokenizer.json", "architecture": "GPTNeoXForCausalLM",
     "config": {"tokenizer_class": "GPTNeoXTokenizer", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "add_bos_token": False, "add_eos_token": False}},
    {"name": "olmo1", "file": "olmo/allenai_gpt-neox-olmo-dolma-v1_5.json", "architecture": "OlmoForCausalLM",
     "config": {"tokenizer_class": "GPTNeoXTokenizer", "bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|padding|>", "add_bos_token": False, "add_eos_token": False}},
    # transformers 5 rebuilds the pre-tokeniser from tokenizer_class: GPT2Tokenizer (OLMo 2's hub
    # class) uses GPT-2's split regex, not the file's cl100k-style Split; the oracle records
    # what TransformerLens then gets.
    {"name": "olmo2-dolma2", "file": "olmo/allenai_dolma2.json", "architecture": "Olmo2ForCausalLM",
     "config": {"tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|pad|>", "add_bos_token": False, "add_eos_token": False}},
    {"name": "phi3", "file": "phi3/tokenizer.json", "architecture": "Phi3ForCausalLM", "config": None},
    {"name": "phi2", "file": "phi2/tokenizer.json", "architecture": "PhiForCausalLM", "config": None},
    # The Llama 2 tokenizer.json of the shared folder (a re-serialised copy) is rejected by the
    # Python tokenizers library ("Merges text file invalid"), so it has no oracle; Phi-3's
    # tokenizer.json is the official Llama 2 vocabulary plus 11 tokens and stands in for it.
]


# GPT-2's vocab.json + merges.txt (and Qwen2's) have no tokenizer.json: the pipeline around the
# vocabulary is this skeleton (what transformers' GPT2Tokenizer builds), shared by the Python
# and the MechLens side so both tokenize the same description.
VOCAB_MERGES: list[dict] = [
    {"name": "gpt2-vocab-merges", "folder": "gpt2-gptneo-gptj", "architecture": "GPT2LMHeadModel",
     "config": {"tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"},
     "skeleton": {
         "version": "1.0",
         "truncation": None,
         "padding": None,
         "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": True}],
         "normalizer": None,
         "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
         "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
         "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
         "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False},
     }},
]


def tokenizer_json_from_vocab_merges(folder: pathlib.Path, skeleton: dict) -> dict:
    """skeleton + vocab.json + merges.txt (header line and blank lines dropped, CRLF tolerated)."""
    tj = json.loads(json.dumps(skeleton))
    tj["model"]["vocab"] = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    lines = (folder / "merges.txt").read_text(encoding="utf-8").replace("\r\n", "\n").split("\n")
    tj["model"]["merges"] = [ln for ln in lines if ln and not ln.startswith("#version")]
    return tj


def sha256(p: pathlib.Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def tl_to_tokens(tok, text: str, prepend_bos: bool, prepends: bool) -> list[int]:
    """HookedTransformer.to_tokens for one string (default_prepend_bos overridden locally)."""
    inp = text
    if prepend_bos and not prepends:
        inp = get_input_with_manually_prepended_bos(tok.bos_token, text)
    import torch

    ids = torch.tensor([tok(inp)["input_ids"]], dtype=torch.long)
    if not prepend_bos and prepends:
        ids = get_tokens_with_bos_removed(tok, ids)
    return [int(x) for x in ids[0].tolist()]


def cases_for(raw: Tokenizer, folder: pathlib.Path, architecture: str) -> dict:
    hf = AutoTokenizer.from_pretrained(str(folder))
    # HookedTransformer.set_tokenizer: OLMo models keep their tokenizer, the others get add_bos_token=True.
    tok = hf if architecture in ("OlmoForCausalLM", "OlmoeForCausalLM", "Olmo2ForCausalLM") else get_tokenizer_with_bos(hf)
    prepends = len(tok.encode("")) > 0
    if tok.bos_token is None and tok.eos_token is not None:
        tok.bos_token = tok.eos_token  # as set_tokenizer does
    out = []
    for text in CORPUS:
        e = raw.encode(text, add_special_tokens=False)
        es = raw.encode(text, add_special_tokens=True)
        with_bos = tl_to_tokens(tok, text, True, prepends)
        # The transformers tokenizer TransformerLens uses may rebuild the pipeline from the
        # tokenizer class (LlamaTokenizer: Metaspace instead of tokenizer.json's normaliser), so
        # its plain ids and offsets are recorded too.
        plain = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        out.append({
            "text": text,
            "ids": e.ids,
            "tokens": e.tokens,
            "offsets": [list(o) for o in e.offsets],
            "ids_with_special": es.ids,
            "hf_ids": list(plain["input_ids"]),
            "hf_offsets": [list(o) for o in plain["offset_mapping"]],
            "to_tokens_bos": with_bos,
            "to_tokens_no_bos": tl_to_tokens(tok, text, False, prepends),
            "str_tokens_bos": tok.batch_decode([[i] for i in with_bos], clean_up_tokenization_spaces=False),
            "decode": tok.decode(e.ids, clean_up_tokenization_spaces=False),
        })
    return {
        "architecture": architecture,
        "tokenizer_prepends_bos": prepends,
        "bos_token": tok.bos_token,
        "bos_token_id": tok.bos_token_id,
        "vocab_size": raw.get_vocab_size(with_added_tokens=True),
        "cases": out,
    }


def generate(out: pathlib.Path) -> None:
    base = pathlib.Path(out) / "tokenizers"
    base.mkdir(parents=True, exist_ok=True)
    # Trained tokenizers: files written beside the fixture (small, ours).
    for style, arch in (("byte_level", "GPT2LMHeadModel"), ("sentencepiece", "LlamaForCausalLM")):
        folder = base / f"trained-{style}"
        write_tokenizer(folder, style)  # type: ignore[arg-type]
        raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
        fx = {"name": f"trained-{style}", "source": {"kind": "trained", "style": style, "folder": folder.name}}
        fx.update(cases_for(raw, folder, arch))
        (base / f"trained-{style}.json").write_text(json.dumps(fx, indent=1, ensure_ascii=False) + "\n")
    # Real files: read in place from ../shared; a temporary folder links them with a config.
    for spec in REAL:
        src = SHARED_TOKENIZERS / spec["file"]
        if not src.exists():
            print(f"skip {spec['name']}: {src} is absent", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            folder = pathlib.Path(tmp)
            (folder / "tokenizer.json").symlink_to(src)
            if spec["config"] is not None:
                (folder / "tokenizer_config.json").write_text(json.dumps(spec["config"]))
            else:
                for side in ("tokenizer_config.json", "special_tokens_map.json"):
                    if (src.parent / side).exists():
                        (folder / side).symlink_to(src.parent / side)
            raw = Tokenizer.from_file(str(src))
            fx = {
                "name": spec["name"],
                "source": {"kind": "shared", "file": spec["file"], "sha256": sha256(src), "tokenizer_config": spec["config"]},
            }
            fx.update(cases_for(raw, folder, spec["architecture"]))
        (base / f"{spec['name']}.json").write_text(json.dumps(fx, indent=1, ensure_ascii=False) + "\n")
    # Qwen2's folders have vocab.json + merges.txt + tokenizer_config.json (Qwen2Tokenizer) and no
    # tokenizer.json: transformers builds the tokenizer itself, and that is the oracle. Qwen2.5's
    # folder has the same vocabulary with its own tokenizer_config.json (more added tokens: tool
    # calls, vision and code-completion markers), which Qwen3 shares.
    for name, sub in (("qwen2-vocab-merges", "qwen2"), ("qwen2.5-vocab-merges", "qwen2/qwen2.5")):
        qwen = SHARED_TOKENIZERS / sub
        if not (qwen / "vocab.json").exists():
            print(f"skip {name}: {qwen} is absent", file=sys.stderr)
            continue
        hf = AutoTokenizer.from_pretrained(str(qwen))
        fx = {
            "name": name,
            "source": {
                "kind": "hf_folder",
                "folder": sub,
                "sha256": {f: sha256(qwen / f) for f in ("vocab.json", "merges.txt", "tokenizer_config.json", "added_tokens.json") if (qwen / f).exists()},
            },
        }
        fx.update(cases_for(hf.backend_tokenizer, qwen, "Qwen2ForCausalLM"))
        (base / f"{name}.json").write_text(json.dumps(fx, indent=1, ensure_ascii=False) + "\n")
    for spec in VOCAB_MERGES:
        src = SHARED_TOKENIZERS / spec["folder"]
        if not (src / "vocab.json").exists():
            print(f"skip {spec['name']}: {src} is absent", file=sys.stderr)
            continue
        tj = tokenizer_json_from_vocab_merges(src, spec["skeleton"])
        with tempfile.TemporaryDirectory() as tmp:
            folder = pathlib.Path(tmp)
            (folder / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False))
            (folder / "tokenizer_config.json").write_text(json.dumps(spec["config"]))
            raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
            fx = {
                "name": spec["name"],
                "source": {
                    "kind": "vocab_merges",
                    "folder": spec["folder"],
                    "sha256": {f: sha256(src / f) for f in ("vocab.json", "merges.txt")},
                    "tokenizer_config": spec["config"],
                    "skeleton": spec["skeleton"],
                },
            }
            fx.update(cases_for(raw, folder, spec["architecture"]))
        (base / f"{spec['name']}.json").write_text(json.dumps(fx, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, default=REPO / "test" / "fixtures")
    generate(ap.parse_args().out)
