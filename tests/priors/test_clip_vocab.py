"""The CLIP BPE tokenizer of the latent shapes model: loads with transformers' CLIPTokenizer, one token per word."""
import json

import pytest

from fastdream.priors import clip_vocab
from fastdream.priors.shapes_data import COLOR_NAMES, SHAPE_NAMES, VIEWS, caption


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import CLIPTokenizer
    root = tmp_path_factory.mktemp("tok")
    clip_vocab.write_clip_tokenizer(str(root / "tokenizer"), model_max_length=16)
    return CLIPTokenizer.from_pretrained(str(root), subfolder="tokenizer", local_files_only=True)


def test_every_caption_word_is_one_token_and_decodes_back(tokenizer):
    words = clip_vocab.caption_words()
    assert set(SHAPE_NAMES) | set(COLOR_NAMES) | set(VIEWS) <= set(words)
    for w in words:
        ids = tokenizer(w).input_ids
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
        assert len(ids) == 3, (w, tokenizer.convert_ids_to_tokens(ids))
        assert tokenizer.decode(ids, skip_special_tokens=True) == w


def test_captions_round_trip_and_pad_to_the_model_length(tokenizer):
    for s in SHAPE_NAMES:
        for c in COLOR_NAMES:
            for v in (None, *VIEWS):
                text = caption(s, c, v)
                out = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length).input_ids
                assert len(out) == 16
                # CLIP decodes word by word, so the comma comes back with a space before it
                assert tokenizer.decode(out, skip_special_tokens=True).replace(" ,", ",") == text


def test_other_text_still_tokenizes_letter_by_letter(tokenizer):
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("a dinosaur").input_ids)
    assert tokens[1] == "a</w>" and len(tokens) > 4 and tokenizer.unk_token not in tokens[1:-1]


def test_merges_are_deterministic_and_vocab_is_clip_shaped():
    vocab, merges = clip_vocab.build_vocab()
    assert (vocab, merges) == clip_vocab.build_vocab()
    assert len(set(vocab.values())) == len(vocab) == 512 + len(merges) + 2
    assert vocab[clip_vocab.BOS] == len(vocab) - 2 and vocab[clip_vocab.EOS] == len(vocab) - 1
    assert all("".join(m) in vocab for m in merges)


def test_written_files_are_what_clip_tokenizer_reads(tmp_path):
    n = clip_vocab.write_clip_tokenizer(str(tmp_path), model_max_length=12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merges.txt", "special_tokens_map.json",
                                                         "tokenizer_config.json", "vocab.json"]
    assert len(json.loads((tmp_path / "vocab.json").read_text())) == n
    assert (tmp_path / "merges.txt").read_text().startswith("#version: 0.2\n")
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["model_max_length"] == 12
