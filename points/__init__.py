"""The domain of Village Points: models and services. No Flask here (docs/DESIGN.md, Layers)."""
