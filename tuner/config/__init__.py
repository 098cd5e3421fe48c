"""The configuration wing: a search space's YAML and the validated configuration of one trial."""
