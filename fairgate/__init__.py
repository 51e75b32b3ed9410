"""fairgate: a loan-decision service that measures its own fairness while it runs.

The core: the decision logic every deployable shares, spawning no process and opening no
database. A loan book's data contract (``contract``) is the one applicant schema: the request
model (``contract_request``), the feature builder and group keys (``contract_features``), the
missing-value rules, the prober's twins and synthetic applicants are derived from it. The
model compiled to numpy (``scorer``), the group threshold policy (``policy``) with its keyed
draw (``draw``) and the denial reasons (``reasons``) make a decision (``decider``); the
verified model-store artifacts (``artifacts``) carry them to the service. ``schema`` and
``generator`` are the built-in synthetic book's.
"""

__version__ = "0.1.0"
