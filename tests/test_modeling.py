"""Model loading: where models are looked for, the QA-head check, the attention-dropout override."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

from qa_core import cli
from qa_core.modeling import ModelNotFoundError, load_model
from tests.conftest import tiny_bert


def _attention_dropouts(model: torch.nn.Module) -> set[float]:
    return {m.dropout.p for m in model.modules() if type(m).__name__.endswith("SelfAttention")}


def test_attention_dropout_override_reaches_every_layer(tiny_model_dir: Path) -> None:
    loaded = load_model(str(tiny_model_dir), attention_dropout=0.0)
    assert loaded.model.config.attention_probs_dropout_prob == 0.0
    assert _attention_dropouts(loaded.model) == {0.0}


def test_attention_dropout_none_keeps_the_models_own(tiny_model_dir: Path) -> None:
    loaded = load_model(str(tiny_model_dir))
    assert _attention_dropouts(loaded.model) == {0.1}


def test_missing_local_folder_names_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=re.escape(str(tmp_path / "nope"))):
        load_model(str(tmp_path / "nope"))


def test_a_name_that_is_no_hub_id_says_so_in_the_users_words(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no folder of that name here
    with pytest.raises(ModelNotFoundError, match="'Who keeps the hives[?]': not a local folder, and not a hub id"):
        load_model("Who keeps the hives?")


def test_folder_without_config_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        load_model(str(tmp_path))


def test_fine_tuned_folder_has_a_qa_head(tiny_model_dir: Path) -> None:
    assert load_model(str(tiny_model_dir)).has_qa_head


def test_a_fresh_qa_head_is_the_same_at_every_load_and_leaves_the_global_generator_alone(tokenizer,
                                                                                          tmp_path: Path) -> None:
    """The app's untrained embedded model answered differently after every restart; a training run on another
    thread draws its dropout masks from the generator a load used to draw the head from."""
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path)  # a base model: no QA head
    tokenizer.save_pretrained(tmp_path)
    heads = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        state = torch.get_rng_state()
        loaded = load_model(str(tmp_path))
        assert not loaded.has_qa_head and torch.equal(torch.get_rng_state(), state)
        heads.append(loaded.model.qa_outputs.weight)
    assert torch.equal(*heads)
    assert not torch.equal(heads[0], load_model(str(tmp_path), head_seed=7).model.qa_outputs.weight)


def test_evaluating_or_answering_with_an_untrained_head_warns(tiny_model_dir: Path, caplog) -> None:
    """Found by trying the CLI: predict with the embedded base model answered confidently, warning nothing."""
    from qa_core.modeling import warn_if_untrained

    with caplog.at_level("WARNING", logger="qa_core.modeling"):
        warn_if_untrained(load_model(str(tiny_model_dir)))
        assert "untrained head" not in caplog.text
        assert cli.main(["predict", "--question", "Who keeps the hives?", "--context", "Tomas keeps hives."]) == 0
    assert "has no fine-tuned question answering head" in caplog.text


def test_a_model_folder_without_its_vocabulary_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Copied without tokenizer.json and vocab.txt (keeping tokenizer_config.json), transformers made a tokenizer of
    its 5 special tokens: every word became [UNK], and the model answered and trained on nothing but those."""
    folder = tmp_path / "no-vocab"
    shutil.copytree(tiny_model_dir, folder)
    for name in ("tokenizer.json", "vocab.txt"):
        (folder / name).unlink(missing_ok=True)  # a fast tokenizer saves tokenizer.json alone
    vocab_size = json.loads((folder / "config.json").read_text())["vocab_size"]
    with pytest.raises(ModelNotFoundError, match=re.escape(f"{folder}: the tokenizer has 5 tokens against the "
                                                           f"model's vocab_size {vocab_size}")) as caught:
        load_model(str(folder))
    assert "vocabulary file" in str(caught.value)


def test_embeddings_padded_above_the_tokenizer_or_a_few_added_tokens_still_load(tokenizer, tmp_path: Path) -> None:
    """Models pad their embedding rows (to a multiple of 64, say), and tokenizers add a few tokens of their own."""
    padded = tmp_path / "padded"
    tiny_bert(len(tokenizer) + 64).save_pretrained(padded)
    tokenizer.save_pretrained(padded)
    assert load_model(str(padded)).model.config.vocab_size == len(tokenizer) + 64
    added = tmp_path / "added"
    tiny_bert(len(tokenizer)).save_pretrained(added)
    more = copy.deepcopy(tokenizer)
    more.add_tokens(["<lighthouse>", "<keeper>"])
    more.save_pretrained(added)
    assert len(load_model(str(added)).tokenizer) == len(tokenizer) + 2


def test_a_folder_without_weights_says_so(tiny_model_dir: Path, tmp_path: Path) -> None:
    """It said '... not a local folder (... does not exist) and not loadable from the hub' of a folder that exists."""
    only_config = tmp_path / "onlycfg"
    only_config.mkdir()
    shutil.copy(tiny_model_dir / "config.json", only_config)
    no_weights = tmp_path / "no-weights"
    shutil.copytree(tiny_model_dir, no_weights)
    (no_weights / "model.safetensors").unlink()
    for folder in (only_config, no_weights):
        with pytest.raises(ModelNotFoundError, match=re.escape(f"{folder}: folder has no model weights "
                                                               f"(model.safetensors or pytorch_model.bin)")) as caught:
            load_model(str(folder))
        assert "does not exist" not in str(caught.value) and "hub" not in str(caught.value)
