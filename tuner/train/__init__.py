"""The training wing: one model trained on one device, epoch by epoch, and what it needs (data, loss,
metric, memory), shared by search trials and `finalize`. No Ray and no MLflow here."""
