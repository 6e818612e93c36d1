"""Matching step 0: layers a Keras 3 weights file names only by Keras' key, paired the way Keras loads them.

A Keras 3 ``.weights.h5`` keys each layer of a ``layers`` container by its
class in snake case and its order among the layers of that class
(``reshape``, ``reshape_1``, ...: ``_save_container_state`` in
``keras/src/saving/saving_lib.py``). Keras 3.15 also writes the layer's real
name into the ``vars`` group's ``name`` attribute; older writers, and a group
whose ``name`` is not text, leave only the key
(:attr:`archdiff.model.Layer.key_only`), and a key is often not the name:
MobileNet's Reshape ``reshape_2`` is the file's ``reshape``. Pairing keys with
the other model's names (or by order, since a weights file's order is the
HDF5 key order) gives made-up renames; Keras' ``load_weights`` pairs by key,
so this step does the same: it computes the other model's keys from its
layer order and pairs equal keys. Such a pair is no rename (the file does
not know the name).
"""
from __future__ import annotations

from archdiff.diff.matching.state import Pairing
from archdiff.model import Layer
from archdiff.names import auto_names, canonical_class


def keras3_keys(kids: list[Layer]) -> dict[str, Layer]:
    """The key Keras 3 saves each layer of one ``layers`` container under, from the layer order.

    Operations are not in ``model.layers`` and are not saved; a nested model is saved under the
    class Keras 3 rebuilds it as (a Keras 2 ``Model`` is ``Functional``).
    """
    members = [k for k in kids if not k.is_operation]
    keys = auto_names([canonical_class(k.class_name) if k.is_model else k.class_name for k in members])
    return dict(zip(keys, members))


def pair_by_key(m: Pairing, kids_a: list[Layer], kids_b: list[Layer]) -> None:
    """Pair each key-only layer of one side with the other side's layer of that key (where it is free)."""
    for keyed, other, flip in ((kids_b, kids_a, False), (kids_a, kids_b, True)):
        if not any(k.key_only for k in keyed) or any(k.key_only for k in other):
            continue
        if any(k.index is None and not k.is_operation for k in other):
            continue  # the other side's order is not Keras' either: its keys cannot be computed
        by_key = keras3_keys(other)
        taken_keyed = m.ab if flip else m.ba
        taken_other = m.ba if flip else m.ab
        for layer in keyed:
            if not layer.key_only or layer.path in taken_keyed:
                continue
            match = by_key.get(layer.name)
            if match is None or match.path in taken_other:
                continue
            evidence = (f"the weights file names this layer only by Keras' key '{layer.name}' (class + order "
                        f"among its model's layers), the key Keras saves and loads '{match.name}' under",)
            if flip:
                m.pair(layer.path, match.path, "key", evidence)
            else:
                m.pair(match.path, layer.path, "key", evidence)
