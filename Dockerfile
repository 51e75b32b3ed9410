# One image for the service and the prober (docker-compose.yml picks the command).
FROM python:3.11-slim
WORKDIR /app
# pyproject.toml's dependencies are the one list (the Bento's are generated from it by
# scripts/bentofile.py); every package it installs is copied (tests/test_dockerfile.py).
COPY pyproject.toml README.md ./
COPY cli cli
COPY fairgate fairgate
COPY record record
COPY training training
COPY service service
COPY monitoring monitoring
COPY loadtests loadtests
RUN pip install --no-cache-dir .
# The model store lives on a volume so a trained model survives restarts.
ENV BENTOML_HOME=/data/bentoml \
    BENTOML_DO_NOT_TRACK=True \
    OMP_NUM_THREADS=1
ENTRYPOINT ["fairgate"]
