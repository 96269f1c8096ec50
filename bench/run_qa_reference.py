"""The real peer: transformers' Trainer with run_qa.py's preprocessing and post-processing, run as shipped.

prepare_train_features, prepare_validation_features and postprocess_qa_predictions are shortened from
huggingface/transformers, examples/pytorch/question-answering/run_qa.py and utils_qa.py (Apache-2.0), for
SQuAD v1.1 with a right-padding tokenizer (question first), as that script runs it for BERT-family models.
The logic (labels, CLS index, n-best search over argsort, softmax) is theirs; only v2 and file output are left out.
"""

from __future__ import annotations

import collections
import json
import resource
import time
from pathlib import Path

import numpy as np

# The protocol as run_qa.py's options; the rest are run_qa.py's and TrainingArguments' defaults
# (fp32, random batches, the model's attention dropout, fused AdamW, max_grad_norm 1.0, linear schedule).
MAX_SEQ_LENGTH, DOC_STRIDE = 256, 128
TRAINING_ARGUMENTS = dict(per_device_train_batch_size=16, per_device_eval_batch_size=8, learning_rate=1e-4,
                          num_train_epochs=2.0, warmup_steps=0.1, weight_decay=0.01, seed=42)
N_BEST_SIZE, MAX_ANSWER_LENGTH = 20, 30


def squad_dataset(path: str, limit: int | None = None):
    """The flat layout run_qa.py expects (the `squad` data set's columns) from an official SQuAD JSON file."""
    from datasets import Dataset

    rows = [{"id": qa["id"], "title": article.get("title", ""), "context": paragraph["context"],
             "question": qa["question"],
             "answers": {"text": [a["text"] for a in qa["answers"]],
                         "answer_start": [a["answer_start"] for a in qa["answers"]]}}
            for article in json.loads(Path(path).read_text(encoding="utf-8"))["data"]
            for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    return Dataset.from_list(rows[:limit] if limit else rows)


def _tokenize(examples: dict, tokenizer):
    examples["question"] = [q.lstrip() for q in examples["question"]]
    return tokenizer(examples["question"], examples["context"], truncation="only_second", max_length=MAX_SEQ_LENGTH,
                     stride=DOC_STRIDE, return_overflowing_tokens=True, return_offsets_mapping=True,
                     padding="max_length")


def prepare_train_features(examples: dict, tokenizer) -> dict:
    """run_qa.py's training windows: answers outside a window point at its CLS token."""
    tokenized = _tokenize(examples, tokenizer)
    sample_mapping = tokenized.pop("overflow_to_sample_mapping")
    offset_mapping = tokenized.pop("offset_mapping")
    tokenized["start_positions"], tokenized["end_positions"] = [], []
    for i, offsets in enumerate(offset_mapping):
        input_ids = tokenized["input_ids"][i]
        cls_index = input_ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in input_ids else 0
        sequence_ids = tokenized.sequence_ids(i)
        answers = examples["answers"][sample_mapping[i]]
        if len(answers["answer_start"]) == 0:
            tokenized["start_positions"].append(cls_index)
            tokenized["end_positions"].append(cls_index)
            continue
        start_char = answers["answer_start"][0]
        end_char = start_char + len(answers["text"][0])
        token_start_index = 0
        while sequence_ids[token_start_index] != 1:
            token_start_index += 1
        token_end_index = len(input_ids) - 1
        while sequence_ids[token_end_index] != 1:
            token_end_index -= 1
        if not (offsets[token_start_index][0] <= start_char and offsets[token_end_index][1] >= end_char):
            tokenized["start_positions"].append(cls_index)
            tokenized["end_positions"].append(cls_index)
            continue
        while token_start_index < len(offsets) and offsets[token_start_index][0] <= start_char:
            token_start_index += 1
        tokenized["start_positions"].append(token_start_index - 1)
        while offsets[token_end_index][1] >= end_char:
            token_end_index -= 1
        tokenized["end_positions"].append(token_end_index + 1)
    return tokenized


def prepare_validation_features(examples: dict, tokenizer) -> dict:
    """run_qa.py's evaluation windows: example_id, and offsets set to None outside the context."""
    tokenized = _tokenize(examples, tokenizer)
    sample_mapping = tokenized.pop("overflow_to_sample_mapping")
    tokenized["example_id"] = []
    for i in range(len(tokenized["input_ids"])):
        sequence_ids = tokenized.sequence_ids(i)
        tokenized["example_id"].append(examples["id"][sample_mapping[i]])
        tokenized["offset_mapping"][i] = [(o if sequence_ids[k] == 1 else None)
                                          for k, o in enumerate(tokenized["offset_mapping"][i])]
    return tokenized


def postprocess_qa_predictions(examples, features, predictions: tuple[np.ndarray, np.ndarray]) -> dict[str, str]:
    """utils_qa.py's n-best search (SQuAD v1.1): the best start x end pair of any window of each example."""
    all_start_logits, all_end_logits = predictions
    example_id_to_index = {k: i for i, k in enumerate(examples["id"])}
    features_per_example = collections.defaultdict(list)
    for i, feature in enumerate(features):
        features_per_example[example_id_to_index[feature["example_id"]]].append(i)
    all_predictions = collections.OrderedDict()
    for example_index, example in enumerate(examples):
        prelim_predictions = []
        for feature_index in features_per_example[example_index]:
            start_logits, end_logits = all_start_logits[feature_index], all_end_logits[feature_index]
            offset_mapping = features[feature_index]["offset_mapping"]
            start_indexes = np.argsort(start_logits)[-1: -N_BEST_SIZE - 1: -1].tolist()
            end_indexes = np.argsort(end_logits)[-1: -N_BEST_SIZE - 1: -1].tolist()
            for start_index in start_indexes:
                for end_index in end_indexes:
                    if (start_index >= len(offset_mapping) or end_index >= len(offset_mapping)
                            or offset_mapping[start_index] is None or offset_mapping[end_index] is None):
                        continue
                    if end_index < start_index or end_index - start_index + 1 > MAX_ANSWER_LENGTH:
                        continue
                    offsets = (offset_mapping[start_index][0], offset_mapping[end_index][1])
                    prelim_predictions.append({"offsets": offsets,
                                               "score": start_logits[start_index] + end_logits[end_index]})
        predictions = sorted(prelim_predictions, key=lambda x: x["score"], reverse=True)[:N_BEST_SIZE]
        for pred in predictions:
            pred["text"] = example["context"][pred["offsets"][0]:pred["offsets"][1]]
        if not predictions or (len(predictions) == 1 and predictions[0]["text"] == ""):
            predictions.insert(0, {"text": "empty", "score": 0.0})
        scores = np.array([pred["score"] for pred in predictions])
        probabilities = np.exp(scores - np.max(scores))
        probabilities /= probabilities.sum()
        all_predictions[example["id"]] = predictions[0]["text"]
    return all_predictions


def run_reference(train_file: str, dev_file: str, max_steps: int, output_dir: str, train_limit: int | None = None,
                  eval_limit: int | None = None) -> dict:
    """Load, preprocess, train with Trainer, save, then evaluate as run_qa.py does; times, memory and scores."""
    from transformers import (AutoModelForQuestionAnswering, AutoTokenizer, Trainer, TrainerCallback,
                              TrainingArguments, default_data_collator, set_seed)

    from qa_core.metrics import compute_metrics
    from qa_core.modeling import embedded_model_path

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    started = time.perf_counter()  # training wall: model loading, windows, the loop and saving, as ours is timed
    set_seed(TRAINING_ARGUMENTS["seed"])
    source = embedded_model_path()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForQuestionAnswering.from_pretrained(source)
    train_rows = squad_dataset(train_file, train_limit)
    train_features = train_rows.map(prepare_train_features, batched=True, remove_columns=train_rows.column_names,
                                    fn_kwargs={"tokenizer": tokenizer})
    args = TrainingArguments(output_dir=output_dir, max_steps=max_steps, use_cpu=True, report_to="none",
                             disable_tqdm=True, **TRAINING_ARGUMENTS)
    clock = StepClock()
    trainer = Trainer(model=model, args=args, train_dataset=train_features, processing_class=tokenizer,
                      data_collator=default_data_collator, callbacks=[clock])
    result = trainer.train()
    trainer.save_model()
    train_seconds = time.perf_counter() - started
    train_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    dev_rows = squad_dataset(dev_file, eval_limit)
    dev_features = dev_rows.map(prepare_validation_features, batched=True, remove_columns=dev_rows.column_names,
                                fn_kwargs={"tokenizer": tokenizer})
    logits = trainer.predict(dev_features).predictions
    predictions = postprocess_qa_predictions(dev_rows, dev_features, logits)
    metrics = compute_metrics(predictions, {row["id"]: row["answers"]["text"] for row in dev_rows})
    eval_seconds = time.perf_counter() - started
    return {"steps": result.global_step, "train_features": len(train_features),
            "train_seconds": train_seconds, "step_times": clock.times,
            "train_peak_rss_kib": train_peak, "eval_seconds": eval_seconds, "eval_features": len(dev_features),
            "exact_match": metrics.exact_match, "f1": metrics.f1,
            "settings": {"attention_probs_dropout_prob": model.config.attention_probs_dropout_prob,
                         "optim": getattr(args.optim, "value", args.optim), "max_seq_length": MAX_SEQ_LENGTH, "doc_stride": DOC_STRIDE,
                         "pad_to_max_length": True, **TRAINING_ARGUMENTS}}
