"""varnet-tuner: hyperparameter search for VarNet-family MRI reconstruction (Ray Tune + Optuna + MLflow)."""

__version__ = "0.1.0"
