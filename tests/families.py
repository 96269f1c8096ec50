"""Tiny random QA models of each architecture family, with tokenizers trained offline on the sample data."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import (AlbertConfig, AlbertTokenizer, AutoModelForQuestionAnswering, BertConfig, BertTokenizer,
                          DebertaV2Config, DebertaV2Tokenizer, DistilBertConfig, DistilBertTokenizer, ElectraConfig,
                          PretrainedConfig, PreTrainedTokenizerBase, RobertaConfig, RobertaTokenizer,
                          XLMRobertaConfig, XLMRobertaTokenizer)

SAMPLE = Path(__file__).resolve().parent.parent / "qa_core" / "sample" / "sample-squad.json"
VOCAB_SIZE = 400
POSITIONS = 64  # usable positions of every tiny model; RoBERTa-style tables hold two more (padding_idx offset)
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def sample_texts() -> list[str]:
    """Every context, question and answer of the sample file: the tokenizers' training text."""
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))["data"]
    texts = []
    for article in data:
        for paragraph in article["paragraphs"]:
            texts.append(paragraph["context"])
            for qa in paragraph["qas"]:
                texts.append(qa["question"])
                texts.extend(a["text"] for a in qa["answers"])
    return texts


def train_wordpiece(texts: list[str], specials: list[str], lowercase: bool) -> dict[str, int]:
    """A WordPiece vocabulary, with BERT's normalizer and pre-tokenizer."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials))
    return tokenizer.get_vocab()


def train_byte_bpe(texts: list[str], specials: list[str]) -> tuple[dict[str, int], list]:
    """A byte-level BPE vocabulary and merges, as GPT-2 and RoBERTa use (a leading-space marker 'Ġ')."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    model = json.loads(tokenizer.to_str())["model"]
    return model["vocab"], [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]


def train_unigram(texts: list[str], specials: list[str], unk: str, lowercase: bool) -> list[tuple[str, float]]:
    """A Unigram vocabulary with scores over Metaspace pieces ('▁' marks a word start), as sentencepiece makes."""
    tokenizer = Tokenizer(models.Unigram())
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials, unk_token=unk)
    tokenizer.train_from_iterator(texts, trainer)
    return [(piece, float(score)) for piece, score in json.loads(tokenizer.to_str())["model"]["vocab"]]


BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids as in fairseq's dictionaries
ALBERT_SPECIALS = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]  # AlbertTokenizer expects <unk> at id 1


def bert_tokenizer(texts: list[str]) -> PreTrainedTokenizerBase:
    return BertTokenizer(vocab=train_wordpiece(texts, BERT_SPECIALS, lowercase=True))


def distilbert_tokenizer(texts: list[str]) -> PreTrainedTokenizerBase:
    return DistilBertTokenizer(vocab=train_wordpiece(texts, BERT_SPECIALS, lowercase=False), do_lower_case=False)


def roberta_tokenizer(texts: list[str]) -> PreTrainedTokenizerBase:
    vocab, merges = train_byte_bpe(texts, ROBERTA_SPECIALS)
    return RobertaTokenizer(vocab=vocab, merges=merges)


def albert_tokenizer(texts: list[str]) -> PreTrainedTokenizerBase:
    return AlbertTokenizer(vocab=train_unigram(texts, ALBERT_SPECIALS, "<unk>", lowercase=True))


def deberta_tokenizer(texts: list[str]) -> PreTrainedTokenizerBase:
    return DebertaV2Tokenizer(vocab=train_unigram(texts, BERT_SPECIALS, "[UNK]", lowercase=False))


def xlm_roberta_tokenizer(texts: list[str]) -> PreTrainedTokenizerBase:
    return XLMRobertaTokenizer(vocab=train_unigram(texts, ROBERTA_SPECIALS, "<unk>", lowercase=False))


def bert_config(tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    return BertConfig(vocab_size=len(tokenizer), max_position_embeddings=POSITIONS, **TINY)


def distilbert_config(tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    return DistilBertConfig(vocab_size=len(tokenizer), max_position_embeddings=POSITIONS, dim=32, n_layers=2,
                            n_heads=2, hidden_dim=64)


def roberta_config(tokenizer: PreTrainedTokenizerBase, config_class: type = RobertaConfig) -> PretrainedConfig:
    return config_class(vocab_size=len(tokenizer), max_position_embeddings=POSITIONS + tokenizer.pad_token_id + 1,
                        type_vocab_size=1, **TINY)


def albert_config(tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    return AlbertConfig(vocab_size=len(tokenizer), max_position_embeddings=POSITIONS, embedding_size=16, **TINY)


def electra_config(tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    return ElectraConfig(vocab_size=len(tokenizer), max_position_embeddings=POSITIONS, embedding_size=16, **TINY)


def deberta_v2_config(tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    """DeBERTa-v2's own defaults: absolute position embeddings, no relative attention."""
    return DebertaV2Config(vocab_size=len(tokenizer), max_position_embeddings=POSITIONS, **TINY)


def deberta_v3_config(tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    """As DeBERTa-v3 checkpoints are configured: relative attention only, so no position table limits the length."""
    return DebertaV2Config(vocab_size=len(tokenizer), max_position_embeddings=POSITIONS, relative_attention=True,
                           position_biased_input=False, pos_att_type=["p2c", "c2p"], position_buckets=32,
                           max_relative_positions=-1, norm_rel_ebd="layer_norm", share_att_key=True, **TINY)


@dataclass(frozen=True)
class Family:
    name: str
    make_tokenizer: Callable[[list[str]], PreTrainedTokenizerBase]
    make_config: Callable[[PreTrainedTokenizerBase], PretrainedConfig]


FAMILIES = (
    Family("bert", bert_tokenizer, bert_config),
    Family("distilbert", distilbert_tokenizer, distilbert_config),
    Family("roberta", roberta_tokenizer, roberta_config),
    Family("albert", albert_tokenizer, albert_config),
    Family("electra", bert_tokenizer, electra_config),
    Family("deberta-v2", deberta_tokenizer, deberta_v2_config),
    Family("deberta-v3", deberta_tokenizer, deberta_v3_config),
    Family("xlm-roberta", xlm_roberta_tokenizer, lambda t: roberta_config(t, XLMRobertaConfig)),
)


def build_family(family: Family, folder: Path, texts: list[str], seed: int = 0) -> Path:
    """Save a tiny random QA model of the family with its tokenizer in folder, loadable by qa_core.load_model."""
    tokenizer = family.make_tokenizer(texts)
    config = family.make_config(tokenizer)
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(seed)
    AutoModelForQuestionAnswering.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
