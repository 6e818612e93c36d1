"""The zoo: every ``keras.applications`` model, built by real Keras, read back by archdiff and compared.

``catalog`` says which models (and which part runs in CI), ``builder`` is the
script that builds them under Keras 3 or tf-keras, ``cache`` builds what the
git-ignored cache lacks, ``oracle`` compares archdiff's answers with Keras'.
``tests/test_zoo.py`` holds the tests; ``make test-zoo`` runs every model.
"""
