from fairgate.cli import app

app(["train"])
