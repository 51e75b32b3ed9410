"""``python -m training``: train and store the synthetic default, as ``fairgate train`` does.

Calls the pipeline directly: no deployable imports the CLI package (tests/test_import_rules.py).
"""

from training.pipeline import TrainConfig, run_training

print(f"saved {run_training(TrainConfig(), print).tag}")
