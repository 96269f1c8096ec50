"""A public server's caps on training options (train_policy.check_limits), each refused naming the option."""

from __future__ import annotations

import pytest

from qa_core.config import QAConfig
from qa_core.hosting import Settings, TrainLimits
from qa_core.train_policy import check_limits, window_cost

PUBLIC = Settings(public=True)


def test_dataloader_workers_are_capped_on_a_public_server():
    assert check_limits(QAConfig(dataloader_num_workers=2), PUBLIC).dataloader_num_workers == 2
    with pytest.raises(ValueError, match=r"dataloader_num_workers 64 is over this server's limit of 2 "
                                         r"\(QA_MAX_DATALOADER_WORKERS\)"):
        check_limits(QAConfig(dataloader_num_workers=64), PUBLIC)
    assert check_limits(QAConfig(dataloader_num_workers=64), Settings()).dataloader_num_workers == 64  # local


def test_a_stride_that_multiplies_windows_is_refused_on_a_public_server():
    default = QAConfig()
    assert window_cost(default) < TrainLimits().window_cost  # the defaults train anywhere
    check_limits(QAConfig(max_seq_length=128, doc_stride=32), PUBLIC)
    # 384 - 64 - 4 special tokens leave 316 tokens of context a window; a stride of 315 advances each window by one
    # token, so every context token is computed in 384 windows' worth of tokens
    creeping = QAConfig(max_seq_length=384, doc_stride=315, max_query_length=64)
    assert window_cost(creeping) == 384
    with pytest.raises(ValueError, match=r"doc_stride 315 .* advances each window by 1 token.* 384 tokens computed "
                                         r"per context token; this server allows up to 8 tokens per context token "
                                         r"\(QA_MAX_WINDOW_COST\): lower doc_stride"):
        check_limits(creeping, PUBLIC)
    assert check_limits(creeping, Settings()) == creeping  # a local user trains what they ask for


def test_a_window_with_no_room_left_for_context_is_refused():
    tight = QAConfig(max_seq_length=70, doc_stride=1, max_query_length=64)  # 2 context tokens after 4 specials
    with pytest.raises(ValueError, match="doc_stride 1 .* 70 tokens computed per context token"):
        check_limits(tight, PUBLIC)
    no_room = QAConfig(max_seq_length=384, doc_stride=316, max_query_length=64)  # room for BERT's 3, not RoBERTa's 4
    with pytest.raises(ValueError, match="doc_stride 316 .* leaves a window no context to advance by"):
        check_limits(no_room, PUBLIC)


def test_the_new_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("QA_MAX_DATALOADER_WORKERS", "0")
    monkeypatch.setenv("QA_MAX_WINDOW_COST", "2.5")
    limits = TrainLimits.from_env()
    assert (limits.dataloader_workers, limits.window_cost) == (0, 2.5)
