import pytest
import torch

from minidraw.text import EmptyCaptionError, UnknownWordError, Vocabulary, pad, tokenize


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("A Man's hat, on a BUS.") == ["a", "man's", "hat", ",", "on", "a", "bus", "."]
    assert tokenize("the digit 3 is on the left of the digit 7.")[-3:] == ["digit", "7", "."]
    assert tokenize("   ") == []


def test_closed_round_trip_and_ids():
    v = Vocabulary.closed("the digit is on left of . 3 7".split())
    text = "the digit 3 is on the left of the digit 7 ."
    ids = v.encode(text)
    assert ids[0] == v.words.index("the") and 0 not in ids
    assert v.decode(ids) == text
    assert v.decode(ids + [0, 0]) == text  # padding is dropped


def test_closed_unknown_word_lists_words_and_vocabulary():
    v = Vocabulary.closed("the digit is".split())
    with pytest.raises(UnknownWordError) as e:
        v.encode("the digit is purple and round")
    msg = str(e.value)
    assert "'purple'" in msg and "'round'" in msg and "the digit is" in msg
    with pytest.raises(UnknownWordError):
        v.encode(["the", "<pad>"])  # the padding token is not a word


def test_empty_caption_is_an_error():
    v = Vocabulary.closed(["a"])
    with pytest.raises(EmptyCaptionError, match="no words"):
        v.encode(" ")


def test_open_vocabulary_min_count_and_unk():
    corpus = ["a cat sat", "a cat ran", "a dog"]
    v = Vocabulary.from_corpus(corpus, min_count=2)
    assert v.words == ("<pad>", "<unk>", "a", "cat")
    assert v.encode("a dog sat") == [2, 1, 1]
    assert v.decode(v.encode("a cat zebra")) == "a cat <unk>"


def test_batch_padding_lengths_and_round_trip():
    v = Vocabulary.closed("a b c d".split())
    caps = ["a b c d", "b", "c a"]
    ids, lengths = v.encode_batch(caps)
    assert ids.shape == (3, 4) and lengths.tolist() == [4, 1, 2]
    assert (ids[1, 1:] == 0).all() and (ids[2, 2:] == 0).all()
    assert v.decode_batch(ids, lengths) == caps
    wide, _ = v.encode_batch(caps, max_len=6)
    assert torch.equal(wide[:, :4], ids) and (wide[:, 4:] == 0).all()
    with pytest.raises(ValueError, match="longer than 2"):
        v.encode_batch(caps, max_len=2)


def test_serialisation_round_trip():
    v = Vocabulary.from_corpus(["x y y"], min_count=1)
    assert Vocabulary.from_dict(v.to_dict()) == v


def test_bad_vocabularies_rejected():
    with pytest.raises(ValueError, match="duplicate"):
        Vocabulary.closed(["a", "a"])
    with pytest.raises(ValueError, match="start with"):
        Vocabulary(("a", "b"))


def test_pad():
    ids, lengths = pad([[5, 6], [7]])
    assert ids.tolist() == [[5, 6], [7, 0]] and lengths.tolist() == [2, 1]
