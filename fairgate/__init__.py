"""fairgate: a loan-decision service that measures its own fairness while it runs.

The core package holds what every deployable shares: the applicant schema, the feature
builder, the applicant generator, the compiled scorer and the decision policy.
"""

__version__ = "0.1.0"
