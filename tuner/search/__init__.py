"""The search wing: the Ray Tune driver, the Optuna searcher, the trainable and the search record."""
