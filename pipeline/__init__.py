"""Korean sentiment analysis with LSTMs: a DVC pipeline tracked and served with MLflow."""

__version__ = "0.1.0"
