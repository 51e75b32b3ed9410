"""A worker's policy watch against a real SQLite policy store: it switches on a promotion or
rollback, only then, and keeps its version while the store is unreadable or a version edited."""

import logging
import sqlite3
import time

import pytest

from fairgate.policy import ThresholdPolicy
from record.policy_store import Active, PolicyStore, Scope
from service.policy_watch import PolicyWatch

SCOPE = Scope("fairgate-loan:test", "mitigated")


def policy(female: float, male: float) -> ThresholdPolicy:
    table = ThresholdPolicy.single_threshold(attributes=["gender"], groups=["female", "male"])
    rules = {"female": table.rules["female"].threshold(female),
             "male": table.rules["male"].threshold(male)}  # fmt: skip
    return ThresholdPolicy(attributes=("gender",), rules=rules, unseen=rules["male"],
                           unseen_rule="most-lenient", constraint="test", objective="test",
                           mode="mitigated")  # fmt: skip


TRAINED, RECALIBRATED = policy(0.45, 0.71), policy(0.30, 0.68)


@pytest.fixture
def store(tmp_path):
    opened = PolicyStore.open(f"sqlite:///{tmp_path / 'record.sqlite'}")
    for p, parent in ((TRAINED, ""), (RECALIBRATED, TRAINED.version)):
        opened.add_version(SCOPE, p.version, parent=parent, body={"policy": p.to_dict()})
    yield opened
    opened.close()


class Worker:
    """What the service does with a switch: remember the policy it decides with."""

    def __init__(self) -> None:
        self.policy = TRAINED
        self.switches: list[tuple[str, Active]] = []

    def apply(self, policy: ThresholdPolicy, active: Active) -> None:
        self.policy = policy
        self.switches.append((policy.version, active))


def test_switches_on_promote_and_rollback_only(store):
    worker = Worker()
    watch = PolicyWatch(store, SCOPE, TRAINED, worker.apply)
    assert watch.check() is False and worker.switches == []  # nothing promoted yet
    store.promote(SCOPE, RECALIBRATED.version, trained=TRAINED.version, author="a", reason="r")
    assert watch.check() is True
    assert worker.policy == RECALIBRATED and worker.policy.version == RECALIBRATED.version
    assert worker.switches[-1][1].since.author == "a"
    assert watch.check() is False  # no new entry: no switch
    # Another scope's promotion is an entry, but not this worker's business.
    other = Scope("fairgate-loan:test", "lda")
    store.add_version(other, "p-other", parent="", body={"policy": TRAINED.to_dict()})
    assert watch.check() is False and len(worker.switches) == 1
    store.rollback(SCOPE, trained=TRAINED.version, author="b", reason="back")
    assert watch.check() is True and worker.policy == TRAINED
    history = watch.history()
    assert [row["kind"] for row in history][:2] == ["rollback", "promote"]
    assert all("policy" not in row["body"] for row in history)


def test_a_new_worker_starts_with_the_active_version(store):
    store.promote(SCOPE, RECALIBRATED.version, trained=TRAINED.version, author="a", reason="r")
    worker = Worker()
    assert PolicyWatch(store, SCOPE, TRAINED, worker.apply).check() is True
    assert worker.policy.version == RECALIBRATED.version


def test_an_edited_version_is_refused_and_the_worker_keeps_its_own(store, tmp_path):
    store.promote(SCOPE, RECALIBRATED.version, trained=TRAINED.version, author="a", reason="r")
    conn = sqlite3.connect(tmp_path / "record.sqlite")
    conn.execute("DROP TRIGGER policy_log_append_only")
    # A threshold changed in the stored body, the version (its content hash) left as it was.
    conn.execute("UPDATE policy_log SET body = replace(body, '0.3', '0.9') WHERE kind = 'version'")
    conn.commit()
    worker = Worker()
    with pytest.raises(ValueError, match="does not match its version hash"):
        PolicyWatch(store, SCOPE, TRAINED, worker.apply).check()
    assert worker.policy == TRAINED and worker.switches == []


def test_an_unreadable_store_keeps_the_version_and_is_logged_once(store, tmp_path, caplog):
    worker = Worker()
    watch = PolicyWatch(store, SCOPE, TRAINED, worker.apply, interval=0.05)
    conn = sqlite3.connect(tmp_path / "record.sqlite")
    conn.execute("ALTER TABLE policy_log RENAME TO policy_log_away")
    conn.commit()
    with caplog.at_level(logging.WARNING, logger="bentoml.fairgate"):
        watch.start()
        time.sleep(0.5)  # about ten failed polls
        assert worker.policy == TRAINED
        said = [r.getMessage() for r in caplog.records]
        unreadable = [m for m in said if "cannot read the active policy version" in m]
        assert len(unreadable) == 1
        conn.execute("ALTER TABLE policy_log_away RENAME TO policy_log")
        conn.commit()
        store.promote(SCOPE, RECALIBRATED.version, trained=TRAINED.version, author="a",
                      reason="r")  # fmt: skip
        deadline = time.monotonic() + 5
        while worker.policy != RECALIBRATED and time.monotonic() < deadline:
            time.sleep(0.02)
    watch.stop()
    assert worker.policy == RECALIBRATED  # recovered by itself
