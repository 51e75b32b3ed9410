"""Offline training: loan book -> model -> fairness audit -> compiled policy -> artifacts."""
