"""The MLflow wing: every call the project makes to MLflow (runs, metrics, artifacts, models)."""
