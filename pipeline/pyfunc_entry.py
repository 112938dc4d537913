"""Model-from-code entry point: MLflow executes this file to build the model, no pickle."""

from mlflow.models import set_model

from pipeline.pyfunc import SentimentModel

set_model(SentimentModel())
