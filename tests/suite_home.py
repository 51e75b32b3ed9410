"""Imported first by conftest, before anything imports bentoml (which reads the model store
location at import time).

Always a private BENTOML_HOME, even when the user exported one: the suite saves test models
that must never become the user's ``fairgate-loan:latest``. Python imports this module once
per process, so a second import of conftest (as ``tests.conftest``) keeps the same home.
The user's service settings (FAIRGATE_POLICY=randomized, keys...) are not the tests' either.
"""

import os
import tempfile

HOME = tempfile.mkdtemp(prefix="fairgate-bentoml-")
os.environ["BENTOML_HOME"] = HOME
os.environ["BENTOML_DO_NOT_TRACK"] = "True"
for name in [name for name in os.environ if name.startswith("FAIRGATE_")]:
    del os.environ[name]
# Every service the suite starts shares this probe token, and every prober sends it; the
# tests of probe authentication override it per server.
TEST_PROBE_TOKEN = "suite-probe-token-0123456789"
os.environ["FAIRGATE_PROBE_TOKEN"] = TEST_PROBE_TOKEN
# Every service the suite starts keeps its decision record here (gone with the run), never
# in ./fairgate-data of the checkout; tests that count records give their own file.
os.environ["FAIRGATE_DATA_DIR"] = os.path.join(HOME, "data")
