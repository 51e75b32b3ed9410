"""Both record writers are ``record.Appender``s, and the service holds its writer as one."""

from __future__ import annotations

import inspect
import typing

import pytest

from record import Appender, RecordWriter, open_record
from record.process_writer import ProcessWriter
from service.recording import DecisionRecorder

MEMBERS = ("start", "append", "append_prepared", "aclose", "close")


@pytest.mark.parametrize("writer", [RecordWriter, ProcessWriter], ids=lambda w: w.__name__)
@pytest.mark.parametrize("name", MEMBERS)
def test_each_writer_has_the_appender_s_methods_with_its_signature(writer, name):
    ours, theirs = getattr(writer, name), getattr(Appender, name)
    assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs), name
    parameters = list(inspect.signature(ours).parameters.values())
    expected = list(inspect.signature(theirs).parameters.values())
    assert [(p.name, p.kind, p.default) for p in parameters] == [
        (p.name, p.kind, p.default) for p in expected
    ]


def test_both_writers_are_appenders_with_a_store_and_a_chain(tmp_path):
    url = f"sqlite:///{tmp_path / 'record.sqlite'}"
    store = open_record(url)
    try:
        # Not started: no thread, no child process.
        for writer in (RecordWriter(store), ProcessWriter(url, store)):
            assert isinstance(writer, Appender)
            assert writer.store is store and writer.writer_id
    finally:
        store.close()


def test_the_service_holds_its_writer_as_an_appender():
    hints = typing.get_type_hints(DecisionRecorder.__init__)
    assert hints["writer"] is Appender
