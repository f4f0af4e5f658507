"""PyTorch PEM: model, datasets, losses, training and evaluation."""
