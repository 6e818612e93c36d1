"""A tf-keras process that builds generated models on request (tests/test_zoo_generated.py).

Keras 3 and tf-keras never share a process, and importing tf-keras costs
seconds, so one worker builds every tf-keras example: each line on stdin is
``{"recipe": ..., "folder": ...}``; the worker builds the recipe
(``generated.build``) from a clean session with seeded weights, saves it as
``m.h5``, ``m_weights.h5`` and ``m.json``, and answers one JSON line with
tf-keras' own answers (or ``{"error": ...}``). Holds no tests.
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FILES = {"h5": "m.h5", "weights_h5": "m_weights.h5", "json": "m.json"}


def main() -> int:
    import logging
    import warnings

    import numpy as np
    import tf_keras as keras

    from zoo import builder, generated

    warnings.filterwarnings("ignore")
    logging.getLogger("absl").setLevel(logging.ERROR)
    print(json.dumps({"ready": keras.__version__}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        try:
            keras.backend.clear_session()
            keras.utils.set_random_seed(0)
            model = generated.build(keras, job["recipe"])
            builder.seed_weights(model, np.random.default_rng(0))
            folder = job["folder"]
            model.save(os.path.join(folder, FILES["h5"]))
            model.save_weights(os.path.join(folder, FILES["weights_h5"]))
            with open(os.path.join(folder, FILES["json"]), "w") as f:
                f.write(model.to_json())
            truth = {"rows": builder.rows_of(model), "weights": builder.weights_of(model),
                     "operations": builder.operations_of(keras, "k2", model),
                     "totals": [int(model.count_params()),
                                int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
                                int(sum(int(np.prod(w.shape)) for w in model.non_trainable_weights))]}
        except Exception as exc:  # noqa: BLE001 - the test reports what tf-keras said
            truth = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        print(json.dumps(truth), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
