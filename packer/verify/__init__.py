"""Prove a packed model loads and answers in a real tritonserver (local or in a Docker image)."""
