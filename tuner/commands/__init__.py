"""One module per command of `python -m tuner`: the orchestration behind each."""
