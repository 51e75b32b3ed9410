"""A worker's view of the policy store: which version to decide with, picked up while running.

Every ``interval`` seconds a thread of the worker reads the store's newest entry number (one
indexed read, see ``record.policy_store``); only when it moved does it replay the scope's
activations and, if the active version changed, load that version (its content hash checked)
and hand it to ``apply``, which swaps the worker's decider in one assignment. A request
decides with the decider it started with, so none fails or mixes two versions. A store that
cannot be read keeps the version in use and is tried again at the next tick; the failure is
logged once, not every second.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from fairgate.policy import ThresholdPolicy
from record.policy_store import Active, PolicyEntry, PolicyStore, Scope
from record.store import store_errors

log = logging.getLogger("bentoml.fairgate")
Apply = Callable[[ThresholdPolicy, Active], None]


class PolicyWatch:
    """Polls ``store`` for ``scope``'s active version; ``trained``: the model's own policy."""

    def __init__(
        self,
        store: PolicyStore,
        scope: Scope,
        trained: ThresholdPolicy,
        apply: Apply,
        *,
        interval: float = 1.0,
    ) -> None:
        self.store = store
        self.scope = scope
        self.trained = trained
        self.apply = apply
        self.interval = interval
        self.version = trained.version
        self.entries: list[PolicyEntry] = []  # the scope's history, as last read
        self._seen = -1
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """One poll; True if the worker now decides with another version."""
        seq = self.store.last_seq()
        if seq == self._seen:
            return False
        entries = self.store.entries(self.scope)
        active = self.store.active(self.scope, self.trained.version)
        changed = active.version != self.version
        if changed:
            policy = self.trained
            if active.version != self.trained.version:
                body = self.store.version(self.scope, active.version).body_data()
                policy = ThresholdPolicy.from_dict(body["policy"])  # refuses an edited one
            self.apply(policy, active)
            self.version = active.version
        self.entries = entries
        self._seen = seq
        return changed

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except (*store_errors(), ValueError, KeyError) as error:
                if not self._failing:
                    log.warning("fairgate: cannot read the active policy version, keeping %s: %s",
                                self.version, error)  # fmt: skip
                self._failing = True
                self.store.store.reset()
            else:
                if self._failing:
                    log.info("fairgate: the policy store is readable again")
                self._failing = False

    def start(self) -> PolicyWatch:
        self._thread = threading.Thread(target=self._run, name="fairgate-policy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.store.close()

    def history(self) -> list[dict[str, Any]]:
        """The scope's entries, newest first, without the policies' rule tables."""
        shown = []
        for entry in reversed(self.entries):
            row = entry.as_dict()
            row["body"].pop("policy", None)
            shown.append(row)
        return shown
