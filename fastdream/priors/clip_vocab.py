"""A real CLIP BPE tokenizer (vocab.json + merges.txt) over the shapes vocabulary, as transformers' CLIPTokenizer
loads it: CLIP's 512 byte-level symbols (each also with the end-of-word mark </w>), merges learned here so every
word of the shapes captions is one token, then <|startoftext|> and <|endoftext|> (also padding, as in SD 1.x).
Any other text still tokenizes, letter by letter.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter

from fastdream.priors.tokenizer import default_vocabulary

__all__ = ["BOS", "EOS", "bytes_to_unicode", "caption_words", "learn_merges", "build_vocab", "write_clip_tokenizer"]

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
_EOW = "</w>"


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible map from the 256 byte values to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def caption_words() -> list[str]:
    """The words of the shapes captions as CLIP's pre-tokenizer splits them (letter runs, single digits,
    punctuation), without the special tokens of the word-level tokenizer."""
    words: list[str] = []
    for entry in default_vocabulary():
        if entry.startswith("<"):
            continue
        for w in re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", entry.lower()):
            if w not in words:
                words.append(w)
    return words


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """Byte-pair merges that turn every word into one token: repeatedly merge the most frequent adjacent pair
    (ties broken by the pair's text, so the result is deterministic) until no word has two symbols left."""
    seqs = [tuple(w[:-1]) + (w[-1] + _EOW,) for w in words]
    merges: list[tuple[str, str]] = []
    while True:
        pairs = Counter(p for s in seqs for p in zip(s, s[1:]))
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        seqs = [_merge(s, best) for s in seqs]


def _merge(seq: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and (seq[i], seq[i + 1]) == pair:
            out.append(seq[i] + seq[i + 1])
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return tuple(out)


def build_vocab(words: list[str] | None = None) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(token -> id, merges) in CLIP's order: byte symbols, the same with </w>, merged tokens, BOS, EOS."""
    merges = learn_merges(words or caption_words())
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + _EOW for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges


def write_clip_tokenizer(folder: str, model_max_length: int = 16, words: list[str] | None = None) -> int:
    """Write vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json into `folder`, loadable with
    CLIPTokenizer.from_pretrained (slow or fast, transformers 4 or 5). Returns the vocabulary size."""
    vocab, merges = build_vocab(words)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "CLIPTokenizer", "model_max_length": model_max_length, "do_lower_case": True,
                   "add_prefix_space": False, "errors": "replace", **special}, f, indent=1)
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=1)
    return len(vocab)
