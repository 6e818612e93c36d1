"""The synthetic next-token task validate fine-tunes a language model on (no Keras: the model's inputs and head
are given as validate reads them from the live model)."""
from __future__ import annotations

import numpy as np

from archdiff.validate.data import ModelIO, _token_task
from archdiff.validate.heads import CLASSES, REGRESSION, Head
from archdiff.validate.options import ValidateOptions

LM_IO = ModelIO(inputs=(("padding_mask", (None, None), "int32"), ("token_ids", (None, None), "int32"),
                        ("segment_ids", (None, None), "int32")),
                outputs=(("logits", (None, 12, 30)),), fill=12)
HEAD = Head("logits", 30, CLASSES, "sparse_categorical_crossentropy", True, "logits")


def test_each_sequence_counts_up_and_the_target_is_the_next_token():
    options = ValidateOptions(samples=6, test_samples=4, seed=3)
    data = _token_task(options, LM_IO, [HEAD], None)
    assert data is not None and data.kind == "tokens"
    (x_train, y_train), (x_val, y_val) = data.train, data.val
    tokens = np.concatenate([x_train["token_ids"], x_val["token_ids"]])
    targets = np.concatenate([y_train, y_val])
    assert tokens.shape == targets.shape == (10, 12) and tokens.dtype == np.int32
    # Independently: every step adds one modulo the vocabulary, and the target is the token after each position.
    assert np.array_equal((tokens[:, 1:] - tokens[:, :-1]) % 30, np.ones((10, 11)))
    assert np.array_equal(targets, (tokens + 1) % 30)
    assert tokens.min() >= 0 and tokens.max() < 30 and len(set(tokens[:, 0])) > 1  # seeded starts, not one
    assert (x_train["padding_mask"] == 1).all() and (x_train["segment_ids"] == 0).all()
    assert data.description["vocabulary"] == 30 and data.description["length"] == 12
    again = _token_task(options, LM_IO, [HEAD], None)
    assert np.array_equal(again.train[0]["token_ids"], x_train["token_ids"])  # seeded


def test_a_model_that_is_not_a_language_model_gets_no_token_task():
    options = ValidateOptions(samples=4, test_samples=2)
    classifier = ModelIO(inputs=LM_IO.inputs, outputs=(("logits", (None, 5)),), fill=12)
    assert _token_task(options, classifier, [Head("logits", 5, CLASSES, "scc", True, "")], None) is None
    regression = ModelIO(inputs=LM_IO.inputs, outputs=(("y", (None, 12, 30)),), fill=12)
    assert _token_task(options, regression, [Head("y", 30, REGRESSION, "mse", False, "")], None) is None
    no_tokens = ModelIO(inputs=(("ids", (None, None), "int32"),), outputs=LM_IO.outputs, fill=12)
    assert _token_task(options, no_tokens, [HEAD], None) is None  # an Embedding of unknown size, not token_ids
    shorter = ModelIO(inputs=LM_IO.inputs, outputs=(("logits", (None, 8, 30)),), fill=12)
    assert _token_task(options, shorter, [HEAD], None) is None  # one target per input position, or none
