# One image for the service and the prober (docker-compose.yml picks the command).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md bentofile.yaml ./
COPY cli cli
COPY fairgate fairgate
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
