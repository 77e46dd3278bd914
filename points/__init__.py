"""The domain of Village Points: models and services. No Flask here (DESIGN.md, Layers)."""
