"""Evaluating frozen or fine-tuned encoders: probes, kNN, embedding metrics, pictures."""
