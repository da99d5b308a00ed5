"""Training: continual CLIP training over time steps (tic-train) and its evaluation."""
